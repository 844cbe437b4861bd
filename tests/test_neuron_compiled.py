"""tssl.neuron_compiled: the opt-in torch.compile path falls back to the PyTorch neuron when compiling fails.

Compiling itself takes tens of seconds here, so the comparison of compiled and eager results runs only with
TSSL_TEST_COMPILE=1 (benchmarks/engine_vs_floor.py --compile times it)."""

from __future__ import annotations

import logging
import os

import pytest
import torch

import tssl.neuron_compiled as compiled
from tssl.neuron import tsslbp_neuron


@pytest.fixture
def fresh_compile_state(monkeypatch):
    monkeypatch.setattr(compiled, "_compiled", {})
    monkeypatch.setattr(compiled, "_failed", False)
    monkeypatch.setattr(compiled, "COMPILE_SECONDS", {})
    monkeypatch.setenv(compiled.COMPILE_ENV, "1")


def eager_and_requested(x, g, rule, monkeypatch):
    monkeypatch.setenv(compiled.COMPILE_ENV, "0")
    xa = x.clone().requires_grad_(True)
    tsslbp_neuron(xa, 5.0, 3.0, 1.0, rule).backward(g)
    monkeypatch.setenv(compiled.COMPILE_ENV, "1")
    xb = x.clone().requires_grad_(True)
    trace = tsslbp_neuron(xb, 5.0, 3.0, 1.0, rule)
    trace.backward(g)
    return xa.grad, xb.grad


def test_a_failing_compile_falls_back_once_with_a_warning(fresh_compile_state, monkeypatch, caplog):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    x, g = torch.rand(5, 2, 7) * 1.5, torch.randn(5, 2, 7)
    with caplog.at_level(logging.WARNING, logger="tssl"):
        eager, fallback = eager_and_requested(x, g, "tsslbp", monkeypatch)
    assert torch.equal(eager, fallback)
    assert compiled._failed and not compiled.compile_requested(x)
    assert sum("torch.compile failed" in r.message for r in caplog.records) == 1


def test_not_requested_by_default(monkeypatch):
    monkeypatch.delenv(compiled.COMPILE_ENV, raising=False)
    assert not compiled.compile_requested(torch.zeros(1))


@pytest.mark.skipif(os.environ.get("TSSL_TEST_COMPILE") != "1", reason="compiling takes tens of seconds")
@pytest.mark.parametrize("rule", ["tsslbp", "surrogate"])
def test_compiled_matches_eager(fresh_compile_state, monkeypatch, rule):
    torch.manual_seed(0)
    x, g = torch.rand(5, 3, 50, dtype=torch.float64) * 1.6 - 0.3, torch.randn(5, 3, 50, dtype=torch.float64)
    eager, fused = eager_and_requested(x, g, rule, monkeypatch)
    assert not compiled._failed and compiled.COMPILE_SECONDS
    torch.testing.assert_close(fused, eager, rtol=1e-12, atol=1e-14)
