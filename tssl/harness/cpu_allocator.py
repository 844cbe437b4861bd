"""Keep freed activation memory in the process instead of handing it back to the kernel after every op.

A CPU training step allocates and frees activation-sized tensors (a few MB each) hundreds of times. glibc's
``malloc`` serves blocks above its mmap threshold with a fresh ``mmap`` and unmaps them on ``free``, and it trims
the top of the heap once more than its trim threshold is free, so the next step's tensors page-fault every page
again: the kernel zero-fills each 4 KiB page on first touch. On the 2-core reference machine that cost a
quarter of a training step, for every method alike (``docs/engine-performance.md``). Raising both thresholds
makes ``malloc`` reuse the heap, as a caching allocator would.

:func:`tune` applies it once per process (``tssl`` commands and training workers call it); it changes no
numbers, only where memory comes from. The process keeps its peak heap instead of shrinking after a step.
``TSSL_CPU_ALLOCATOR=default`` leaves glibc's own settings. Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

ENV = "TSSL_CPU_ALLOCATOR"
CHOICES = ("tuned", "default")
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2, 32 MiB on 64-bit; larger blocks are still mmapped.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2**31 - 1  # the largest value mallopt takes (an int): in effect, never trim the heap top
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers from <malloc.h>
TUNED = f"glibc mmap_threshold {MMAP_THRESHOLD >> 20} MiB, trim_threshold 2 GiB (tssl.harness.cpu_allocator)"

_state: str | None = None  # what tune() did in this process, for provenance


class AllocatorSettingError(ValueError):
    """TSSL_CPU_ALLOCATOR holds a value other than tuned or default."""


@functools.cache
def glibc() -> ctypes.CDLL | None:
    """The process's C library where it is glibc on Linux (``mallopt``, ``malloc_trim``), else None."""
    name = ctypes.util.find_library("c") if platform.system() == "Linux" else None
    if not name or platform.libc_ver()[0] != "glibc":
        return None
    library = ctypes.CDLL(name)
    library.mallopt.argtypes, library.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return library


def mallopt(parameter: int, value: int) -> bool:
    """glibc's ``mallopt``; False where it refused the value or there is no glibc."""
    library = glibc()
    return library is not None and library.mallopt(parameter, value) == 1


def requested() -> str:
    value = os.environ.get(ENV, "tuned").strip().lower() or "tuned"
    if value not in CHOICES:
        raise AllocatorSettingError(
            f"environment variable {ENV}={os.environ[ENV]!r} is not allowed; use one of: {', '.join(CHOICES)}"
        )
    return value


def tune() -> str:
    """Apply the tuned glibc settings unless ``TSSL_CPU_ALLOCATOR=default``; returns :func:`describe`."""
    global _state
    if _state is not None:
        return _state
    if requested() == "default":
        _state = "glibc defaults (TSSL_CPU_ALLOCATOR=default)"
    elif glibc() is None:
        _state = "platform default (not glibc; nothing tuned)"
    else:
        _state = TUNED if _apply() else "glibc defaults (mallopt refused the tuned settings)"
    return _state


def _apply() -> bool:
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def reapply() -> bool:
    """Set the tuned values again after something else changed them (``tssl bench``'s memory probe); False
    when this process was not tuned, so the caller restores its own choice."""
    return _state == TUNED and _apply()


def describe() -> str:
    """What this process's CPU allocator runs with, for result records."""
    return _state if _state is not None else "glibc defaults (not tuned in this process)"
