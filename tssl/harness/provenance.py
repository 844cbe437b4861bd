"""Where a result came from: code version and local changes, packages, hardware, threads, command line and the
determinism settings in force."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from tssl.harness import cpu_allocator

PACKAGES = ("tssl-bench", "torch", "torchvision", "numpy", "scikit-learn", "snntorch", "spikingjelly", "tonic",
            "triton", "pandas", "matplotlib")


OUTPUT_PATHSPECS = (":(exclude,top)results", ":(exclude,top)reports")


def _git(cwd: Path | None, *args: str) -> bytes | None:
    """``git ARGS``'s output, or None when git is missing, fails or this is not a checkout."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(cwd: Path | None = None) -> dict[str, object]:
    """The checkout's commit and whether tracked files other than the outputs differ from it; nulls outside a
    git checkout. The committed results stores and reports (``results/``, ``reports/``) are left out: a run
    appending to a tracked store would otherwise mark every later run of the same checkout dirty."""
    def git(*args: str) -> str | None:
        output = _git(cwd, *args)
        return None if output is None else output.decode(errors="replace").strip()

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", *OUTPUT_PATHSPECS)
    dirty = None if sha is None else bool(status)
    return {"git_sha": sha, "git_dirty": dirty}


def git_diff_sha256(cwd: Path | None = None) -> str | None:
    """``sha256:`` of ``git diff HEAD`` over the tracked files ``git_state`` looks at (outputs left out), so that
    a dirty record names the exact changes it ran with; None when the tree is clean or outside a checkout."""
    # Plain, binary-safe patch text whatever the user's git config says (no colour, external diff or textconv).
    diff = _git(cwd, "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--",
                ".", *OUTPUT_PATHSPECS)
    return "sha256:" + hashlib.sha256(diff).hexdigest() if diff else None


def determinism() -> dict[str, bool | None]:
    """The determinism settings in force: deterministic algorithms, cuDNN's deterministic / benchmark modes, and
    whether cuDNN convolutions and CUDA matmuls may use TF32 (None where torch cannot say)."""
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_allow_tf32": _tf32_allowed(lambda: torch.backends.cudnn.allow_tf32,
                                          lambda: torch.backends.cudnn.conv.fp32_precision),
        "matmul_allow_tf32": _tf32_allowed(lambda: torch.backends.cuda.matmul.allow_tf32,
                                           lambda: torch.backends.cuda.matmul.fp32_precision),
    }


def _tf32_allowed(legacy, precision) -> bool | None:
    """A TF32 flag through torch's legacy API, or its per-backend ``fp32_precision`` when something set that one
    (torch then refuses to read the legacy flag: see tssl.engine.precision)."""
    try:
        return bool(legacy())
    except RuntimeError:
        pass
    try:
        return precision() == "tf32"
    except (RuntimeError, AttributeError):
        return None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def hardware(device: torch.device) -> str:
    cpu = f"{platform.machine()}, {os.cpu_count()} cores ({_cpu_name()}), {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}; host {cpu}"
    return cpu


def environment(device: torch.device) -> dict[str, object]:
    return {
        **git_state(),
        "packages": package_versions(),
        "device": str(device),
        "hardware": hardware(device),
        "cpu_allocator": cpu_allocator.describe(),
        "python": platform.python_version(),
    }


def run_environment(device: torch.device) -> dict[str, object]:
    """``environment`` plus what a training run's record also says: torch's CPU threads, the command line, the
    hash of the uncommitted diff and the determinism settings in force (call it where they are)."""
    return {
        **environment(device),
        "torch_threads": torch.get_num_threads(),
        "argv": list(sys.argv),
        "git_diff_sha256": git_diff_sha256(),
        "determinism": determinism(),
    }
