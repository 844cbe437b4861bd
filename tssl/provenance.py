"""Where a result came from: code version, packages, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import torch

from tssl import cpu_allocator

PACKAGES = ("tssl-bench", "torch", "torchvision", "numpy", "scikit-learn", "snntorch", "spikingjelly", "tonic",
            "triton", "pandas", "matplotlib")


OUTPUT_PATHSPECS = (":(exclude,top)results", ":(exclude,top)reports")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_state(cwd: Path | None = None) -> dict[str, object]:
    """The checkout's commit and whether tracked files other than the outputs differ from it; nulls outside a
    git checkout. The committed results stores and reports (``results/``, ``reports/``) are left out: a run
    appending to a tracked store would otherwise mark every later run of the same checkout dirty."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", *OUTPUT_PATHSPECS)
    dirty = None if sha is None else bool(status)
    return {"git_sha": sha, "git_dirty": dirty}


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
