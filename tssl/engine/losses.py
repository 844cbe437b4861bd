"""TSSL-BP losses on output traces ``[T, B, classes]``; each sums over the batch (spec section 3)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tssl.engine.kernel_target import KernelTarget, authors_define, base_pattern
from tssl.engine.neuron import psp_filter

LOSSES = ("kernel", "count", "softmax")
# How the kernel target reaches a T for which the authors define none (see kernel_target_trace).
KERNEL_TARGET_FILLS = ("last", "first")
KernelTargetFill = Literal["last", "first"]


class LossConfigError(ValueError):
    """An impossible loss configuration (e.g. an unknown kernel target, or counts in the wrong order)."""


def _base_pattern(steps: int, convention: KernelTarget) -> list[int]:
    try:
        return base_pattern(steps, convention)
    except ValueError as error:
        raise LossConfigError(str(error)) from None


def desired_pattern_error(steps: int, convention: KernelTarget = "final") -> str:
    """Why the authors' code has no kernel target at this T."""
    rule = "a multiple of 5 when T < 10 and of 10 when T >= 10" if convention == "final" else "a multiple of 5"
    return f"the authors' {convention} kernel target needs T {rule}; got T={steps}"


def desired_pattern(steps: int, convention: KernelTarget = "final") -> torch.Tensor:
    """The label neuron's desired spike pattern over T steps, where the authors define one.

    ``final`` (the authors' last code): [0,1,1,1,1] tiled for T < 10, [0,1,0,1,0,1,0,1,0,1] tiled for T >= 10.
    ``paper`` (the paper and the code at submission): [0,1,0,1,1] tiled.
    """
    base = _base_pattern(steps, convention)
    if not authors_define(steps, convention):
        raise LossConfigError(desired_pattern_error(steps, convention))
    return torch.tensor(base * (steps // len(base)), dtype=torch.float64)


def _filtered(pattern: torch.Tensor, tau_s: float, convention: KernelTarget) -> torch.Tensor:
    """The target trace of a spike pattern: PSP-filtered twice (``final``, the authors' last code) or once."""
    target = psp_filter(pattern, tau_s)
    return psp_filter(target, tau_s) if convention == "final" else target


def kernel_target_trace(steps: int, tau_s: float, convention: KernelTarget = "final",
                        fill: KernelTargetFill = "last") -> torch.Tensor:
    """The label neuron's target trace ``[T]`` (float64).

    Where the authors define a target (``authors_define``) it is theirs, whatever ``fill`` says. Elsewhere the
    pattern period of this T is tiled to the next whole number of periods, T' >= T, filtered like theirs, and
    ``fill`` picks T entries of that T'-step target:

    - ``last``: the last T entries (T=2, final: 0.41, 0.54). The label neuron is asked to fire from the first
      step, as it does late in the authors' window.
    - ``first``: the first T entries, i.e. the tiled pattern cut to T (T=2, final: 0, 0.11). Below T=4 its best
      spike train is nearly or wholly silent (at T=2 silence has the lower loss than any spike), so the label
      neuron is asked for almost what every other neuron is asked for; docs/latency.md has the measurements.
    """
    if steps < 1:
        raise LossConfigError(f"the kernel loss needs T >= 1; got T={steps}")
    if fill not in KERNEL_TARGET_FILLS:
        raise LossConfigError(f"kernel target fill {fill!r} is unknown; allowed: {', '.join(KERNEL_TARGET_FILLS)}")
    base = _base_pattern(steps, convention)
    periods = -(-steps // len(base))  # ceil: T' = periods x period length >= T
    full = _filtered(torch.tensor(base * periods, dtype=torch.float64), tau_s, convention)
    trace = full[-steps:] if fill == "last" else full[:steps]
    if not trace.any():
        raise LossConfigError(f"the kernel target ({convention}, fill {fill}) is zero at every step for T={steps}: "
                              "the label neuron would be asked for what the others are; use fill last")
    return trace


class KernelLoss(nn.Module):
    """``L = 1/2 sum (a - target)^2``: the label neuron follows a PSP-filtered spike pattern, others stay silent.

    With the ``final`` convention the pattern is filtered twice (the authors' final code), with ``paper`` once;
    ``fill`` says how the target reaches a T the authors define none for (``kernel_target_trace``).
    """

    def __init__(self, steps: int, tau_s: float, convention: KernelTarget = "final",
                 fill: KernelTargetFill = "last") -> None:
        super().__init__()
        target = kernel_target_trace(steps, tau_s, convention, fill)
        self.steps, self.convention, self.fill = steps, convention, fill
        self.register_buffer("label_target", target, persistent=False)  # [T]

    def target(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(labels, output.shape[-1]).to(output.dtype)  # [B, C]
        return self.label_target.to(output.dtype)[:, None, None] * one_hot

    def forward(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_steps(output, self.steps)
        return 0.5 * (output - self.target(output, labels)).square().sum()


class CountLoss(nn.Module):
    """Asymmetric count loss: the summed trace of the label class should reach ``desired_count``, every other
    class stay at or below ``undesired_count``; ``L = sum (c - target)^2 / (2T)`` over the violating entries."""

    def __init__(self, steps: int, desired_count: float, undesired_count: float) -> None:
        super().__init__()
        self.steps, self.desired_count, self.undesired_count = steps, float(desired_count), float(undesired_count)

    def forward(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_steps(output, self.steps)
        count = output.sum(0)  # [B, C]
        is_label = F.one_hot(labels, output.shape[-1]).bool()
        target = torch.where(is_label, self.desired_count, self.undesired_count).to(output.dtype)
        error = count - target
        with torch.no_grad():
            kept = torch.where(is_label, error < 0, error > 0)
        return (error * kept).square().sum() / (2 * output.shape[0])


class SoftmaxLoss(nn.Module):
    """Cross-entropy on the summed output trace, summed over the batch."""

    def forward(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output.sum(0), labels, reduction="sum")


def _check_steps(output: torch.Tensor, steps: int) -> None:
    if output.shape[0] != steps:
        raise LossConfigError(f"the loss was built for T={steps} but the output has T={output.shape[0]}")


def make_loss(
    name: str,
    steps: int,
    tau_s: float,
    *,
    kernel_target: KernelTarget = "final",
    kernel_target_fill: KernelTargetFill = "last",
    desired_count: float | None = None,
    undesired_count: float | None = None,
) -> nn.Module:
    """Build a loss by name, refusing impossible combinations with a message that says why."""
    if name == "kernel":
        return KernelLoss(steps, tau_s, kernel_target, kernel_target_fill)
    if name == "count":
        if desired_count is None or undesired_count is None:
            raise LossConfigError("the count loss needs desired_count and undesired_count")
        if undesired_count >= desired_count:
            raise LossConfigError(
                f"the count loss needs desired_count > undesired_count; got {desired_count} and {undesired_count}"
            )
        return CountLoss(steps, desired_count, undesired_count)
    if name == "softmax":
        return SoftmaxLoss()
    raise LossConfigError(f"loss {name!r} is unknown; allowed: {', '.join(LOSSES)}")
