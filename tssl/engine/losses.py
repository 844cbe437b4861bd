"""TSSL-BP losses on output traces ``[T, B, classes]``; each sums over the batch (spec section 3)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tssl.engine.neuron import psp_filter

LOSSES = ("kernel", "count", "softmax")
KERNEL_TARGETS = ("final", "paper")
KernelTarget = Literal["final", "paper"]


class LossConfigError(ValueError):
    """An impossible loss configuration (e.g. the kernel loss with T not a multiple of 5 or 10)."""


def desired_pattern(steps: int, convention: KernelTarget = "final") -> torch.Tensor:
    """The label neuron's desired spike pattern over T steps.

    ``final`` (the authors' last code): [0,1,1,1,1] tiled for T < 10, [0,1,0,1,0,1,0,1,0,1] tiled for T >= 10.
    ``paper`` (the paper and the code at submission): [0,1,0,1,1] tiled.
    """
    if convention == "final":
        base = [0, 1, 1, 1, 1] if steps < 10 else [0, 1] * 5
        rule = "a multiple of 5 when T < 10 and of 10 when T >= 10"
    elif convention == "paper":
        base, rule = [0, 1, 0, 1, 1], "a multiple of 5"
    else:
        raise LossConfigError(f"kernel target {convention!r} is unknown; allowed: {', '.join(KERNEL_TARGETS)}")
    if steps < 1 or steps % len(base):
        raise LossConfigError(f"the kernel loss ({convention} target) needs T {rule}; got T={steps}")
    return torch.tensor(base * (steps // len(base)), dtype=torch.float64)


class KernelLoss(nn.Module):
    """``L = 1/2 sum (a - target)^2``: the label neuron follows a PSP-filtered spike pattern, others stay silent.

    With the ``final`` convention the pattern is filtered twice (the authors' final code), with ``paper`` once.
    """

    def __init__(self, steps: int, tau_s: float, convention: KernelTarget = "final") -> None:
        super().__init__()
        pattern = desired_pattern(steps, convention)
        target = psp_filter(pattern, tau_s)
        if convention == "final":
            target = psp_filter(target, tau_s)
        self.steps, self.convention = steps, convention
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
    desired_count: float | None = None,
    undesired_count: float | None = None,
) -> nn.Module:
    """Build a loss by name, refusing impossible combinations with a message that says why."""
    if name == "kernel":
        return KernelLoss(steps, tau_s, kernel_target)
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
