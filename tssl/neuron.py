"""The TSSL-BP neuron: LIF membrane, hard reset, first-order PSP synapse, and its two gradients.

Tensors are time-first, ``[T, ...]``. The forward follows spec section 1; the ``"tsslbp"`` backward is the
closed form of spec section 2 written as a reverse-time recursion, O(T) per neuron with no ``T x T`` tensor.
The ``"surrogate"`` backward keeps the same forward and back-propagates through time with the sigmoid
surrogate of the warm-up branch in place of the spike's derivative (plain surrogate-gradient BPTT).
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


def _decays(tau_m: float, tau_s: float) -> tuple[float, float]:
    if tau_m < 1 or tau_s < 1:
        raise ValueError(f"tau_m and tau_s must be >= 1 (decay 1 - 1/tau in [0, 1)); got {tau_m}, {tau_s}")
    return 1.0 - 1.0 / tau_m, 1.0 - 1.0 / tau_s


def psp_filter(x: torch.Tensor, tau_s: float) -> torch.Tensor:
    """First-order synaptic filter over time: ``y[t] = (1 - 1/tau_s) y[t-1] + x[t] / tau_s``, ``y[-1] = 0``."""
    _, syn_decay = _decays(1.0, tau_s)
    out = torch.empty_like(x)
    state = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        state = state * syn_decay + x[t] / tau_s
        out[t] = state
    return out


@torch.no_grad()
def neuron_forward(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float) -> NeuronTrace:
    """Run the neuron over ``x`` (input current ``[T, ...]``) and return trace, pre-reset membrane, spikes."""
    mem_decay, _ = _decays(tau_m, tau_s)
    membrane = torch.empty_like(x)
    spikes = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    mem = torch.zeros_like(x[0])
    for t in range(x.shape[0]):
        u_t = torch.add(x[t], mem, alpha=mem_decay)
        s_t = u_t > threshold
        membrane[t] = u_t
        spikes[t] = s_t
        mem = u_t.masked_fill(s_t, 0.0)
    return NeuronTrace(psp_filter(spikes.to(x.dtype), tau_s), membrane, spikes)


def _membrane_before(membrane: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """m[t-1], the membrane after reset one step earlier (zero at t = 0), for every t."""
    previous = torch.zeros_like(membrane)
    previous[1:] = membrane[:-1].masked_fill(spikes[:-1], 0.0)
    return previous


def _sigmoid_surrogate(membrane: torch.Tensor, threshold: float) -> torch.Tensor:
    z = ((membrane - threshold) / SURROGATE_WIDTH).clamp(-SURROGATE_ARG_CLAMP, SURROGATE_ARG_CLAMP)
    sig = torch.sigmoid(z)
    return sig * (1.0 - sig) / SURROGATE_WIDTH


def _tsslbp_backward(grad_trace, membrane, spikes, tau_m, tau_s, threshold) -> torch.Tensor:
    mem_decay, syn_decay = _decays(tau_m, tau_s)
    steps = membrane.shape[0]
    du = membrane - _membrane_before(membrane, spikes)
    # P[t] = min(1/du, 8) for du > 0, 8 for du == 0, 0 for du < 0 (as -clamp(-1/du, -8, 0)).
    inv_du = -(-1.0 / du).clamp(-INV_DU_CLAMP, 0.0)
    trace = psp_filter(spikes.to(membrane.dtype), tau_s)
    # Warm-up switch: the surrogate applies where the neuron's own trace is strictly below 1/(4 tau_s).
    use_surrogate = trace < 1.0 / (4.0 * tau_s)
    surrogate = _sigmoid_surrogate(membrane, threshold)

    grad_x = torch.empty_like(membrane)
    kernel_grad = torch.zeros_like(membrane[0])  # K[t] = sum_j k[j] g[t+j]
    carried = torch.zeros_like(membrane[0])  # F[t] = D[n] * am**(n - t - 1), n = next spike after t
    d_next = torch.zeros_like(membrane[0])  # D[t+1]
    for t in reversed(range(steps)):
        kernel_grad = kernel_grad * syn_decay + grad_trace[t] / tau_s
        if t + 1 < steps:
            carried = torch.where(spikes[t + 1], d_next, carried * mem_decay)
        d_spike = inv_du[t] * (kernel_grad + carried * membrane[t] / tau_m)
        d_now = torch.where(spikes[t], d_spike, carried * mem_decay)
        grad_x[t] = torch.where(use_surrogate[t], surrogate[t] * kernel_grad, d_now)
        d_next = d_now
    return grad_x


def _surrogate_backward(grad_trace, membrane, spikes, tau_m, tau_s, threshold) -> torch.Tensor:
    mem_decay, syn_decay = _decays(tau_m, tau_s)
    surrogate = _sigmoid_surrogate(membrane, threshold)
    not_spiking = (~spikes).to(membrane.dtype)
    grad_x = torch.empty_like(membrane)
    kernel_grad = torch.zeros_like(membrane[0])  # dL/da[t] through the synapse, divided by tau_s = dL/ds[t]
    grad_u_next = torch.zeros_like(membrane[0])
    for t in reversed(range(membrane.shape[0])):
        kernel_grad = kernel_grad * syn_decay + grad_trace[t] / tau_s
        grad_mem = grad_u_next * mem_decay  # dL/dm[t]: m[t] leaks into u[t+1]
        # m[t] = u[t] (1 - s[t]), so dm/ds = -u[t] (the reset path) and dm/du = 1 - s[t].
        grad_spike = kernel_grad - grad_mem * membrane[t]
        grad_u = grad_spike * surrogate[t] + grad_mem * not_spiking[t]
        grad_x[t] = grad_u
        grad_u_next = grad_u
    return grad_x


_BACKWARDS = {"tsslbp": _tsslbp_backward, "surrogate": _surrogate_backward}


class _NeuronFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tau_m, tau_s, threshold, grad_rule):
        trace, membrane, spikes = neuron_forward(x, tau_m, tau_s, threshold)
        # Only u (compute dtype) and s (bool) are kept; du and the trace are recomputed in the backward.
        ctx.save_for_backward(membrane, spikes)
        ctx.constants = (tau_m, tau_s, threshold, grad_rule)
        return trace

    @staticmethod
    def backward(ctx, grad_trace):
        membrane, spikes = ctx.saved_tensors
        tau_m, tau_s, threshold, grad_rule = ctx.constants
        grad_x = _BACKWARDS[grad_rule](grad_trace.contiguous(), membrane, spikes, tau_m, tau_s, threshold)
        return grad_x, None, None, None, None


def tsslbp_neuron(
    x: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    grad: GradRule = "tsslbp",
) -> torch.Tensor:
    """Map input currents ``x`` ``[T, ...]`` to PSP traces ``[T, ...]``.

    ``grad="tsslbp"`` applies the TSSL-BP rule in the backward; ``grad="surrogate"`` applies plain
    surrogate-gradient BPTT through the same neuron. Works on any device and floating dtype.
    """
    check_grad_rule(grad)
    _decays(tau_m, tau_s)
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"x must be time-first [T, ...] with T >= 1; got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor; got {x.dtype}")
    return _NeuronFunction.apply(x, float(tau_m), float(tau_s), float(threshold), grad)
