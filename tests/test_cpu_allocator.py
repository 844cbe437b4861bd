"""tssl.harness.cpu_allocator: tssl commands keep freed activation memory in the heap (glibc), and say so in records."""

from __future__ import annotations

import platform

import pytest

import tssl.harness.cpu_allocator as cpu_allocator
from tssl.cli import main
from tssl.harness.provenance import environment


@pytest.fixture
def untuned(monkeypatch):
    monkeypatch.setattr(cpu_allocator, "_state", None)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning applies to glibc only")
def test_tune_sets_the_glibc_thresholds_once_and_records_it(untuned, monkeypatch):
    monkeypatch.delenv(cpu_allocator.ENV, raising=False)
    calls = []
    monkeypatch.setattr(cpu_allocator, "_apply", lambda: calls.append(1) or True)
    assert cpu_allocator.tune() == cpu_allocator.TUNED
    assert cpu_allocator.tune() == cpu_allocator.TUNED
    assert len(calls) == 1
    assert environment(__import__("torch").device("cpu"))["cpu_allocator"] == cpu_allocator.TUNED


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning applies to glibc only")
def test_real_mallopt_accepts_the_tuned_settings(untuned, monkeypatch):
    monkeypatch.delenv(cpu_allocator.ENV, raising=False)
    assert cpu_allocator.tune() == cpu_allocator.TUNED
    assert cpu_allocator.reapply()


def test_default_leaves_glibc_alone(untuned, monkeypatch):
    monkeypatch.setenv(cpu_allocator.ENV, "default")
    monkeypatch.setattr(cpu_allocator, "_apply", lambda: pytest.fail("mallopt called"))
    assert "TSSL_CPU_ALLOCATOR=default" in cpu_allocator.tune()
    assert not cpu_allocator.reapply()  # the bench's memory probe then restores its own values


def test_a_bad_value_is_one_sentence_and_exit_2(untuned, monkeypatch, capsys):
    monkeypatch.setenv(cpu_allocator.ENV, "jemalloc")
    assert main(["status", "digits"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "TSSL_CPU_ALLOCATOR='jemalloc'" in err and "tuned, default" in err
    assert "Traceback" not in err
