"""Where the authors define the kernel loss's desired spike pattern (torch-free: suites read it without torch)."""

from __future__ import annotations

from typing import Literal

KERNEL_TARGETS = ("final", "paper")
KernelTarget = Literal["final", "paper"]


def base_pattern(steps: int, convention: KernelTarget) -> list[int]:
    """The one period of the desired spike pattern that the authors tile for this T."""
    if convention == "final":
        return [0, 1, 1, 1, 1] if steps < 10 else [0, 1] * 5
    if convention == "paper":
        return [0, 1, 0, 1, 1]
    raise ValueError(f"kernel target {convention!r} is unknown; allowed: {', '.join(KERNEL_TARGETS)}")


def authors_define(steps: int, convention: KernelTarget = "final") -> bool:
    """Whether the authors' code defines a kernel target at this T: T a whole number of pattern periods
    (``final``: 5 when T < 10, a multiple of 10 from 10 on; ``paper``: a multiple of 5)."""
    return steps >= 1 and steps % len(base_pattern(steps, convention)) == 0
