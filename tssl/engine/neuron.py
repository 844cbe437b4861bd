"""The TSSL-BP neuron: LIF membrane, hard reset, first-order PSP synapse, and its two gradients.

Tensors are time-first, ``[T, ...]``. The forward follows spec section 1; the ``"tsslbp"`` backward is the
closed form of spec section 2 written as a reverse-time recursion, O(T) per neuron with no ``T x T`` tensor.
The ``"surrogate"`` backward keeps the same forward and back-propagates through time with the sigmoid
surrogate of the warm-up branch in place of the spike's derivative (plain surrogate-gradient BPTT).

The PyTorch path runs one time step at a time with in-place ops into preallocated ``[T, ...]`` buffers (no
per-step allocation); every value it produces is bit-identical to the plain formulas above each function.
Only the pre-reset membrane ``u`` is kept for the backward: the spikes are ``u > V`` again, ``du`` and the
neuron's own trace are recomputed from them.
"""

from __future__ import annotations

import torch

from tssl.engine.kernels import neuron_backend
from tssl.engine.neuron_base import (
    INV_DU_CLAMP,
    SURROGATE_ARG_CLAMP,
    SURROGATE_WIDTH,
    GradRule,
    NeuronTrace,
    check_grad_rule,
    decays,
    spike_increment,
)
from tssl.engine.neuron_compiled import compile_requested, compiled_backward, compiled_forward, compiled_trace
from tssl.engine.precision import neuron_input


def psp_filter(x: torch.Tensor, tau_s: float) -> torch.Tensor:
    """First-order synaptic filter over time: ``y[t] = (1 - 1/tau_s) y[t-1] + x[t] / tau_s``, ``y[-1] = 0``."""
    _, syn_decay = decays(1.0, tau_s)
    if x.requires_grad and torch.is_grad_enabled():  # differentiable: plain out-of-place ops
        out = torch.empty_like(x)
        state = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            state = state * syn_decay + x[t] / tau_s
            out[t] = state
        return out
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    torch.div(x[0], tau_s, out=out[0])
    for t in range(1, x.shape[0]):
        torch.mul(out[t - 1], syn_decay, out=out[t])
        out[t].add_(x[t] / tau_s)
    return out


def trace_from_membrane(membrane: torch.Tensor, threshold: float, tau_s: float) -> torch.Tensor:
    """The trace the neuron emitted, rebuilt from its pre-reset membrane ``u`` ``[T, ...]`` (spikes are
    ``u > threshold``): bit for bit what the forward returned, since it runs the same operations."""
    _, syn_decay = decays(1.0, tau_s)
    increment = spike_increment(membrane.dtype, tau_s)
    if compile_requested(membrane):  # the same fused code as the compiled forward's trace
        trace = compiled_trace(membrane, tau_s, threshold, increment)
        if trace is not None:
            return trace
    trace = torch.empty(membrane.shape, dtype=membrane.dtype, device=membrane.device)
    spike = torch.empty_like(membrane[0])
    for t in range(membrane.shape[0]):
        torch.gt(membrane[t], threshold, out=spike)
        if t == 0:
            torch.mul(spike, increment, out=trace[0])
        else:
            torch.mul(trace[t - 1], syn_decay, out=trace[t])
            trace[t].add_(spike, alpha=increment)
    return trace


@torch.no_grad()
def _forward_torch(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Trace and pre-reset membrane, one step at a time:
    ``u[t] = am m[t-1] + x[t]``, ``s[t] = u[t] > V``, ``m[t] = u[t] (1 - s[t])``, ``a[t] = as a[t-1] + s[t]/tau_s``."""
    mem_decay, syn_decay = decays(tau_m, tau_s)
    increment = spike_increment(x.dtype, tau_s)
    steps = x.shape[0]
    membrane = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    trace = torch.empty_like(membrane)
    spike = torch.empty_like(membrane[0])  # 0/1 floats: masks multiply (see the note above the backwards)
    after_reset = torch.empty_like(membrane[0])
    for t in range(steps):
        u, a = membrane[t], trace[t]
        if t == 0:
            u.copy_(x[0])
        else:
            torch.add(x[t], after_reset, alpha=mem_decay, out=u)
        torch.gt(u, threshold, out=spike)
        if t == 0:
            torch.mul(spike, increment, out=a)
        else:
            torch.mul(trace[t - 1], syn_decay, out=a)
            a.add_(spike, alpha=increment)
        if t + 1 < steps:
            torch.le(u, threshold, out=after_reset)
            after_reset.mul_(u)
    return trace, membrane


@torch.no_grad()
def neuron_forward(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float) -> NeuronTrace:
    """Run the neuron over ``x`` (input current ``[T, ...]``) and return trace, pre-reset membrane, spikes."""
    trace, membrane = _forward_torch(x, tau_m, tau_s, threshold)
    return NeuronTrace(trace, membrane, membrane > threshold)


def _sigmoid_surrogate(u: torch.Tensor, threshold: float, out: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """``sigma'(z) / 0.2`` with ``z = clamp((u - V) / 0.2, -8, 8)``, as ``sig * (1 - sig) / 0.2``, into ``out``."""
    torch.sub(u, threshold, out=out).div_(SURROGATE_WIDTH).clamp_(-SURROGATE_ARG_CLAMP, SURROGATE_ARG_CLAMP).sigmoid_()
    torch.neg(out, out=scratch).add_(1.0)  # 1 - sig, the same rounding
    return out.mul_(scratch).div_(SURROGATE_WIDTH)


# Both backward rules below run one reverse pass over time on per-step buffers ``[...]`` reused at every step;
# only the result is ``[T, ...]``. (Fresh activation-sized temporaries cost more in page faults than in
# arithmetic on CPU.) Spikes and other masks are 0/1 floats applied by multiplying: ``torch.where`` and
# ``masked_fill`` with a data-dependent mask are scalar, branchy loops on CPU, about 100x slower than a
# multiply, and ``v * 1 = v``, ``v * 0 = 0`` give the same values for the finite quantities masked here.
# ``spikes`` is accepted for a common signature with the other backends and ignored: it is ``membrane > V``.


def _tsslbp_backward(grad_trace, membrane, spikes, tau_m, tau_s, threshold) -> torch.Tensor:
    """Spec section 2. With ``K[t] = as K[t+1] + g[t] / tau_s`` and ``D[t+1]`` carried into step t (``D[T] = 0``)::

        D[t] = P[t] (K[t] + D[t+1] u[t] / tau_m)   if s[t]       (inter-neuron + reset term)
        D[t] = am D[t+1]                           otherwise    (leak path)
        dL/dx[t] = sigma'(...) K[t] where the neuron's own trace a[t] < 1/(4 tau_s), else D[t]

    ``P[t] = clamp(1/du[t], 0, 8)`` (1/+0 = inf -> 8, du < 0 -> 0: the reference's ``-clamp(-1/du, -8, 0)``),
    ``du[t] = u[t] - m[t-1]``, ``m = u (1 - s)``.
    """
    mem_decay, syn_decay = decays(tau_m, tau_s)
    increment = spike_increment(membrane.dtype, tau_s)
    switch = 1.0 / (4.0 * tau_s)
    steps = membrane.shape[0]
    grad_x = torch.empty_like(membrane)
    # Six per-step buffers, each reused for several quantities (fresh memory costs page faults). Masks are
    # folded in with addcmul where one operand is a 0/1 mask: the product is exact, so is the single rounding.
    spike, kernel_grad, d_now, d_next, term, scratch = (torch.empty_like(membrane[0]) for _ in range(6))
    # Forward in time: the neuron's own trace, parked in grad_x until its step of the reverse pass.
    for t in range(steps):
        torch.gt(membrane[t], threshold, out=spike)
        if t == 0:
            torch.mul(spike, increment, out=grad_x[0])
        else:
            torch.mul(grad_x[t - 1], syn_decay, out=grad_x[t]).add_(spike, alpha=increment)
    for t in reversed(range(steps)):
        u, own_trace = membrane[t], grad_x[t]
        torch.div(grad_trace[t], tau_s, out=scratch)
        if t + 1 == steps:
            kernel_grad.copy_(scratch)
        else:
            kernel_grad.mul_(syn_decay).add_(scratch)
        inv_du = scratch
        if t == 0:
            inv_du.copy_(u)
        else:  # du = u[t] - m[t-1], m[t-1] = u[t-1] (u[t-1] <= V)
            torch.le(membrane[t - 1], threshold, out=inv_du)
            torch.addcmul(u, membrane[t - 1], inv_du, value=-1.0, out=inv_du)
        inv_du.reciprocal_().clamp_(0.0, INV_DU_CLAMP)
        torch.gt(u, threshold, out=spike)
        if t + 1 == steps:
            torch.mul(inv_du, kernel_grad, out=d_now).mul_(spike)
        else:
            torch.mul(d_next, u, out=term).div_(tau_m).add_(kernel_grad).mul_(inv_du).mul_(spike)
            torch.mul(d_next, mem_decay, out=d_now)  # the leak path, kept where the neuron is silent
            torch.addcmul(term, d_now, torch.le(u, threshold, out=scratch), out=d_now)
        surrogate = _sigmoid_surrogate(u, threshold, term, spike).mul_(kernel_grad)
        surrogate.mul_(torch.lt(own_trace, switch, out=scratch))  # warm-up: the surrogate
        torch.addcmul(surrogate, d_now, torch.ge(own_trace, switch, out=scratch), out=grad_x[t])  # settled: D
        d_now, d_next = d_next, d_now
    return grad_x


def _surrogate_backward(grad_trace, membrane, spikes, tau_m, tau_s, threshold) -> torch.Tensor:
    """BPTT with ``ds/du = sigma'(...)`` (the reset path included), ``K`` as for TSSL-BP::

        dL/dm[t] = am dL/du[t+1]
        dL/du[t] = (K[t] - dL/dm[t] u[t]) sigma'(u[t]) + dL/dm[t] (1 - s[t])

    with ``dL/du[T] = 0``.
    """
    mem_decay, syn_decay = decays(tau_m, tau_s)
    steps = membrane.shape[0]
    grad_x = torch.empty_like(membrane)
    kernel_grad, grad_mem, surrogate, scratch = (torch.empty_like(membrane[0]) for _ in range(4))
    for t in reversed(range(steps)):
        u = membrane[t]
        torch.div(grad_trace[t], tau_s, out=scratch)
        if t + 1 == steps:
            kernel_grad.copy_(scratch)
        else:
            kernel_grad.mul_(syn_decay).add_(scratch)
        _sigmoid_surrogate(u, threshold, surrogate, scratch)
        if t + 1 == steps:
            torch.mul(kernel_grad, surrogate, out=grad_x[t])
            continue
        torch.mul(grad_x[t + 1], mem_decay, out=grad_mem)  # m[t] leaks into u[t+1]
        # m[t] = u[t] (1 - s[t]), so dm/ds = -u[t] (the reset path) and dm/du = 1 - s[t].
        grad_spike = grad_x[t]
        torch.mul(grad_mem, u, out=grad_spike)
        torch.sub(kernel_grad, grad_spike, out=grad_spike).mul_(surrogate)
        torch.addcmul(grad_spike, grad_mem, torch.le(u, threshold, out=scratch), out=grad_spike)
    return grad_x


# The PyTorch backward of each rule: the reference the compiled and Triton backwards are tested against.
BACKWARDS = {"tsslbp": _tsslbp_backward, "surrogate": _surrogate_backward}


def membrane_forward(
    x: torch.Tensor, tau_m: float, tau_s: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(trace, membrane, kernel)`` of the multi-step forward, without autograd; ``kernel`` names the code that
    ran ("triton", "torch.compile" or "torch") and is what :func:`membrane_backward` must be given."""
    if neuron_backend(x) == "triton":  # fused CUDA kernels; TSSL_NEURON_BACKEND overrides
        from tssl.engine.kernels.triton_neuron import triton_trace_and_membrane

        return (*triton_trace_and_membrane(x, tau_m, tau_s, threshold), "triton")
    # TSSL_NEURON_COMPILE=1: fused loops from torch.compile on CPU (tssl.engine.neuron_compiled), else eager.
    if compile_requested(x):
        compiled = compiled_forward(x, tau_m, tau_s, threshold, spike_increment(x.dtype, tau_s))
        if compiled is not None:
            return (*compiled, "torch.compile")
    return (*_forward_torch(x, tau_m, tau_s, threshold), "torch")


def membrane_backward(
    grad_trace: torch.Tensor,
    membrane: torch.Tensor,
    kernel: str,
    tau_m: float,
    tau_s: float,
    threshold: float,
    grad_rule: GradRule,
) -> torch.Tensor:
    """dL/dx of the neuron under ``grad_rule`` from dL/d(trace) and the kept membrane, without autograd."""
    if kernel == "triton":
        from tssl.engine.kernels.triton_neuron import triton_neuron_backward

        return triton_neuron_backward(grad_trace, membrane, None, tau_m, tau_s, threshold, grad_rule)
    if kernel == "torch.compile":
        increment = spike_increment(membrane.dtype, tau_s)
        constants = (1.0 / (4.0 * tau_s), INV_DU_CLAMP, SURROGATE_WIDTH, SURROGATE_ARG_CLAMP)
        grad_x = compiled_backward(
            grad_rule, grad_trace.contiguous(), membrane, tau_m, tau_s, threshold, increment, constants
        )
        if grad_x is not None:
            return grad_x
    return BACKWARDS[grad_rule](grad_trace.contiguous(), membrane, None, tau_m, tau_s, threshold)


class _NeuronFunction(torch.autograd.Function):
    """``x -> (trace, membrane)``; the membrane is a non-differentiable output that layers may keep to rebuild
    the trace later (``tssl.engine.layers``), so it is stored once for both."""

    @staticmethod
    def forward(ctx, x, tau_m, tau_s, threshold, grad_rule):
        trace, membrane, ctx.kernel = membrane_forward(x, tau_m, tau_s, threshold)
        # Only u is kept: the spikes are u > V again in the backward, du and the trace are recomputed.
        ctx.save_for_backward(membrane)
        ctx.mark_non_differentiable(membrane)
        ctx.set_materialize_grads(False)  # the membrane never gets a gradient: no zero tensor for it
        ctx.constants = (tau_m, tau_s, threshold, grad_rule)
        return trace, membrane

    @staticmethod
    def backward(ctx, grad_trace, _grad_membrane):
        if grad_trace is None:
            return None, None, None, None, None
        (membrane,) = ctx.saved_tensors
        return membrane_backward(grad_trace, membrane, ctx.kernel, *ctx.constants), None, None, None, None


def _check_neuron_args(x: torch.Tensor, tau_m: float, tau_s: float, grad: str) -> None:
    check_grad_rule(grad)
    decays(tau_m, tau_s)
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"x must be time-first [T, ...] with T >= 1; got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor; got {x.dtype}")


def tsslbp_neuron_with_membrane(
    x: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    grad: GradRule = "tsslbp",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`tsslbp_neuron`, also returning the pre-reset membrane ``u`` (not differentiable) it keeps for
    the backward: the spikes are ``u > threshold``, so a consumer can rebuild the trace from it."""
    _check_neuron_args(x, tau_m, tau_s, grad)
    x = neuron_input(x)  # under bf16 autocast the state stays float32 (tssl.engine.precision)
    return _NeuronFunction.apply(x, float(tau_m), float(tau_s), float(threshold), grad)


def tsslbp_neuron(
    x: torch.Tensor,
    tau_m: float,
    tau_s: float,
    threshold: float,
    grad: GradRule = "tsslbp",
) -> torch.Tensor:
    """Map input currents ``x`` ``[T, ...]`` to PSP traces ``[T, ...]``.

    ``grad="tsslbp"`` applies the TSSL-BP rule in the backward; ``grad="surrogate"`` applies plain
    surrogate-gradient BPTT through the same neuron. Works on any device and floating dtype; under
    autocast a bfloat16 / float16 input is cast to float32 first.
    """
    return tsslbp_neuron_with_membrane(x, tau_m, tau_s, threshold, grad)[0]
