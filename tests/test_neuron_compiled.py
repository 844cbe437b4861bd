"""tssl.engine.neuron_compiled: the opt-in torch.compile path falls back to the PyTorch neuron when compiling fails.

Compiling takes tens of seconds, so the comparisons with the eager path run only with TSSL_TEST_COMPILE=1, which
`tox -e test` (and so CI) sets; benchmarks/engine_vs_floor.py --compile times the compiled path."""

from __future__ import annotations

import logging
import os

import pytest
import torch

import tssl.engine.neuron_compiled as compiled
from tssl.engine.neuron import tsslbp_neuron


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


@pytest.mark.skipif(os.environ.get("TSSL_TEST_COMPILE") != "1", reason="compiling takes tens of seconds")
@pytest.mark.parametrize("shape", [(5, 3, 4, 8, 8), (5, 2, 3, 7, 9)])  # even, and a ragged edge pooling drops
def test_compiled_pooled_rebuild_is_the_forward_pooled_trace_bit_for_bit(fresh_compile_state, shape):
    from tssl.engine.layers import POOL_GAIN, pooled_trace_from_membrane, sum_pool
    from tssl.engine.neuron import tsslbp_neuron_with_membrane

    torch.manual_seed(1)
    x = torch.rand(*shape) * 1.6 - 0.3
    trace, membrane = tsslbp_neuron_with_membrane(x, 5.0, 3.0, 1.0)
    rebuilt = pooled_trace_from_membrane(membrane, 2, threshold=1.0, tau_s=3.0)
    assert "pooled_trace-5-float32" in compiled.COMPILE_SECONDS  # the fused path ran, not the fallback
    assert torch.equal(rebuilt, sum_pool(trace, 2)) and POOL_GAIN == 1.1


def test_compiling_sees_a_large_example_so_every_kernel_is_multithreaded():
    # Inductor picks threading from the compiling call's sizes; the 10-neuron output layer compiles first.
    small, flag = torch.zeros(5, 50, 10), 3.0
    grown, same = compiled._large_example((small, flag))
    assert same == flag and grown.shape[0] == 5 and grown.shape[2:] == small.shape[2:]
    assert grown[0].numel() >= compiled.HINT_ELEMENTS_PER_STEP
    big = torch.zeros(5, compiled.HINT_ELEMENTS_PER_STEP + 1)
    assert compiled._large_example((big,))[0].shape == big.shape
