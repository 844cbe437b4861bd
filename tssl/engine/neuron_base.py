"""What every implementation of the TSSL-BP neuron shares: the PyTorch path (``tssl.engine.neuron``), the
compiled CPU path (``tssl.engine.neuron_compiled``) and the Triton kernels (``tssl.engine.kernels``).

The gradient rules, the constants of the reference rule (spec section 2), the decays and the spike increment,
and the tuple of state sequences a forward returns. Kept apart from ``tssl.engine.neuron`` so that the kernels
can use them without importing the module that chooses between the kernels.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

GradRule = Literal["tsslbp", "surrogate"]
GRAD_RULES: tuple[str, ...] = ("tsslbp", "surrogate")

# Constants of the reference rule (spec section 2).
INV_DU_CLAMP = 8.0  # |1/du| is clamped to this value
SURROGATE_WIDTH = 0.2  # sigmoid surrogate: sigma'((u - V) / 0.2) / 0.2
SURROGATE_ARG_CLAMP = 8.0  # the sigmoid's argument is clamped to [-8, 8]


class NeuronTrace(NamedTuple):
    """Every state sequence of one multi-step forward, each ``[T, ...]``."""

    trace: torch.Tensor  # a: post-synaptic trace, what the layer passes on
    membrane: torch.Tensor  # u: membrane potential before reset
    spikes: torch.Tensor  # s: bool


def check_grad_rule(grad: str) -> None:
    if grad not in GRAD_RULES:
        raise ValueError(f"grad={grad!r} is not a gradient rule; allowed: {', '.join(GRAD_RULES)}")


def decays(tau_m: float, tau_s: float) -> tuple[float, float]:
    """The membrane and synaptic decays ``(1 - 1/tau_m, 1 - 1/tau_s)``; both time constants must be >= 1."""
    if tau_m < 1 or tau_s < 1:
        raise ValueError(f"tau_m and tau_s must be >= 1 (decay 1 - 1/tau in [0, 1)); got {tau_m}, {tau_s}")
    return 1.0 - 1.0 / tau_m, 1.0 - 1.0 / tau_s


def spike_increment(dtype: torch.dtype, tau_s: float) -> float:
    """``1 / tau_s`` exactly as ``spike / tau_s`` rounds in ``dtype`` for a spike of 1, so that adding it with
    ``alpha=`` (exact for a 0/1 spike) gives the same bits as dividing a float spike by ``tau_s``."""
    return (torch.ones((), dtype=dtype) / tau_s).item()
