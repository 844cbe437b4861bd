# ruff: noqa: N803 - Triton's convention: compile-time (tl.constexpr) kernel arguments are UPPER_CASE
"""The TSSL-BP neuron (``tssl/engine/neuron.py``) as two Triton kernels: one forward, one backward per layer.

Each program owns ``BLOCK`` neurons and walks the time axis inside the kernel with the state in registers, so a
layer costs one launch forward and one backward, and every input is read once (the TSSL-BP backward reads u or
the spikes twice, see there). The contracts are those of ``tssl.engine.neuron``: ``[T, ...]`` time-first tensors,
flattened here to ``[T, N]``; the forward returns the trace in ``x``'s dtype, the pre-reset membrane ``u``
(compute dtype) and the spikes (bool); the backward needs only ``u`` (the spikes are ``u > V``, optionally
passed in) and recomputes ``du``, the trace and the surrogate in registers. State is float64 for float64 inputs
and float32 for every other float dtype.

The kernels are plain functions wrapped by ``triton.jit`` on first use, not at import: ``triton.jit`` decides
between the compiler and the CPU interpreter from ``TRITON_INTERPRET`` when it is called, so tests can switch the
interpreter on after import. For the same reason the kernels call only Triton builtins (``tl.full``, ``tl.exp``),
never ``tl.zeros`` or ``tl.sigmoid``: those are ``triton.jit`` functions wrapped when ``triton`` is imported, and
the interpreter cannot call compiled ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import triton
import triton.language as tl

from tssl.engine.kernels import require_triton_device, triton_interpreting
from tssl.engine.neuron_base import (
    INV_DU_CLAMP,
    SURROGATE_ARG_CLAMP,
    SURROGATE_WIDTH,
    NeuronTrace,
    check_grad_rule,
    decays,
)

BLOCK = 512  # neurons per program: 4 per thread at 4 warps, so loads of u and x are 16-byte vectors
NUM_WARPS = 4


def _forward_kernel(
    x_ptr,
    trace_ptr,
    membrane_ptr,
    spikes_ptr,
    steps,
    n_neurons,
    MEM_DECAY: tl.constexpr,
    SYN_DECAY: tl.constexpr,
    INV_TAU_S: tl.constexpr,
    THRESHOLD: tl.constexpr,
    STORE_SPIKES: tl.constexpr,
    COMPUTE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_neurons
    x_ptrs = x_ptr + offsets
    trace_ptrs = trace_ptr + offsets
    membrane_ptrs = membrane_ptr + offsets
    spikes_ptrs = spikes_ptr + offsets
    mem = tl.full([BLOCK], 0.0, COMPUTE)  # m[t-1], after reset
    trace = tl.full([BLOCK], 0.0, COMPUTE)  # a[t-1]
    for _ in range(steps):
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(COMPUTE)
        u = x + mem * MEM_DECAY
        spike = u > THRESHOLD  # strict
        mem = tl.where(spike, 0.0, u)
        # spike.to(COMPUTE) * constant, not tl.where(spike, constant, 0): a bare constant would be float32.
        trace = trace * SYN_DECAY + spike.to(COMPUTE) * INV_TAU_S
        tl.store(membrane_ptrs, u.to(membrane_ptr.dtype.element_ty), mask=mask)
        tl.store(trace_ptrs, trace.to(trace_ptr.dtype.element_ty), mask=mask)
        if STORE_SPIKES:
            tl.store(spikes_ptrs, spike.to(tl.uint8), mask=mask)
            spikes_ptrs += n_neurons
        x_ptrs += n_neurons
        trace_ptrs += n_neurons
        membrane_ptrs += n_neurons


def _backward_kernel(
    grad_trace_ptr,
    membrane_ptr,
    spikes_ptr,
    low_trace_ptr,
    grad_x_ptr,
    steps,
    n_neurons,
    last_row,
    MEM_DECAY: tl.constexpr,
    SYN_DECAY: tl.constexpr,
    INV_TAU_S: tl.constexpr,
    INV_TAU_M: tl.constexpr,
    THRESHOLD: tl.constexpr,
    SWITCH: tl.constexpr,
    INV_DU_CLAMP: tl.constexpr,
    INV_WIDTH: tl.constexpr,
    ARG_CLAMP: tl.constexpr,
    TSSLBP: tl.constexpr,
    HAS_SPIKES: tl.constexpr,
    COMPUTE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # Without saved spikes (HAS_SPIKES false) they are u > V again: the forward decided on this very u.
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_neurons
    if TSSLBP:
        # Pass 1, forward in time: the warm-up switch needs the trace a[t], which only the forward recursion
        # gives exactly (ties at 1/(4 tau_s) must match it), so one bit per step is kept for the reverse pass.
        spikes_ptrs = spikes_ptr + offsets
        membrane_ptrs = membrane_ptr + offsets
        low_ptrs = low_trace_ptr + offsets
        trace = tl.full([BLOCK], 0.0, COMPUTE)
        for _ in range(steps):
            if HAS_SPIKES:
                spike = tl.load(spikes_ptrs, mask=mask, other=0) != 0
                spikes_ptrs += n_neurons
            else:
                spike = tl.load(membrane_ptrs, mask=mask, other=0.0).to(COMPUTE) > THRESHOLD
                membrane_ptrs += n_neurons
            trace = trace * SYN_DECAY + spike.to(COMPUTE) * INV_TAU_S
            tl.store(low_ptrs, (trace < SWITCH).to(tl.uint8), mask=mask)  # strict '<'
            low_ptrs += n_neurons

    # Pass 2, reverse in time. last_row = (T - 1) * N comes from the host, so it is 64-bit when it must be.
    grad_trace_ptrs = grad_trace_ptr + last_row + offsets
    membrane_ptrs = membrane_ptr + last_row + offsets
    spikes_ptrs = spikes_ptr + last_row + offsets
    low_ptrs = low_trace_ptr + last_row + offsets
    grad_x_ptrs = grad_x_ptr + last_row + offsets
    u = tl.load(membrane_ptrs, mask=mask, other=0.0).to(COMPUTE)
    spike = tl.load(spikes_ptrs, mask=mask, other=0) != 0 if HAS_SPIKES else u > THRESHOLD
    kernel_grad = tl.full([BLOCK], 0.0, COMPUTE)  # K[t] = sum_j k[j] g[t+j] = dL/ds[t] via the synapse
    carried = tl.full([BLOCK], 0.0, COMPUTE)  # tsslbp: D[n] * am**(n - t - 1), n = next spike after t
    d_next = tl.full([BLOCK], 0.0, COMPUTE)  # tsslbp: D[t+1]
    spike_next = tl.full([BLOCK], 0, tl.int1)  # tsslbp: s[t+1]
    grad_u_next = tl.full([BLOCK], 0.0, COMPUTE)  # surrogate: dL/du[t+1]
    for i in range(steps):
        # Step t = T-1-i. u[t-1] and s[t-1] give m[t-1] for du[t], and are step t-1's u and s next iteration.
        has_previous = mask & (i < steps - 1)
        u_previous = tl.load(membrane_ptrs - n_neurons, mask=has_previous, other=0.0).to(COMPUTE)
        if HAS_SPIKES:
            spike_previous = tl.load(spikes_ptrs - n_neurons, mask=has_previous, other=0) != 0
            spikes_ptrs -= n_neurons
        else:
            spike_previous = (u_previous > THRESHOLD) & has_previous
        grad_trace = tl.load(grad_trace_ptrs, mask=mask, other=0.0).to(COMPUTE)
        kernel_grad = kernel_grad * SYN_DECAY + grad_trace * INV_TAU_S
        z = tl.minimum(tl.maximum((u - THRESHOLD) * INV_WIDTH, -ARG_CLAMP), ARG_CLAMP)
        sig = 1.0 / (1.0 + tl.exp(-z))
        surrogate = sig * (1.0 - sig) * INV_WIDTH
        if TSSLBP:
            du = u - tl.where(spike_previous, 0.0, u_previous)
            # P = min(1/du, 8) for du > 0, 8 for du == 0, 0 for du < 0. Divide only by positive du (no inf), and
            # round like PyTorch: IEEE division (Triton's float32 '/' is approximate on GPUs; float64's is not).
            positive_du = tl.where(du > 0.0, du, 1.0)
            if COMPUTE == tl.float64:  # noqa: SIM300 - COMPUTE is an argument, not a constant
                inv_du = 1.0 / positive_du
            else:
                inv_du = tl.math.div_rn(tl.full([BLOCK], 1.0, COMPUTE), positive_du)
            inv_du = tl.where(du > 0.0, tl.minimum(inv_du, INV_DU_CLAMP), tl.where(du == 0.0, INV_DU_CLAMP, 0.0))
            carried = tl.where(spike_next, d_next, carried * MEM_DECAY)
            d_spike = inv_du * (kernel_grad + carried * u * INV_TAU_M)
            d_now = tl.where(spike, d_spike, carried * MEM_DECAY)
            low_trace = tl.load(low_ptrs, mask=mask, other=0) != 0
            grad = tl.where(low_trace, surrogate * kernel_grad, d_now)
            d_next = d_now
            spike_next = spike
            low_ptrs -= n_neurons
        else:
            grad_mem = grad_u_next * MEM_DECAY  # dL/dm[t]: m[t] leaks into u[t+1]
            # m[t] = u[t] (1 - s[t]): dm/ds = -u[t] (the reset path), dm/du = 1 - s[t].
            grad_spike = kernel_grad - grad_mem * u
            grad = grad_spike * surrogate + tl.where(spike, 0.0, grad_mem)
            grad_u_next = grad
        tl.store(grad_x_ptrs, grad.to(grad_x_ptr.dtype.element_ty), mask=mask)
        u = u_previous
        spike = spike_previous
        grad_trace_ptrs -= n_neurons
        membrane_ptrs -= n_neurons
        grad_x_ptrs -= n_neurons


_JITTED: dict[bool, tuple[Callable, Callable]] = {}


def _kernels() -> tuple[Callable, Callable]:
    """(forward, backward), compiled or interpreted as ``TRITON_INTERPRET`` says now."""
    interpret = triton_interpreting()
    if interpret not in _JITTED:
        _JITTED[interpret] = (triton.jit(_forward_kernel), triton.jit(_backward_kernel))
    return _JITTED[interpret]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _on_device(x: torch.Tensor):
    """Launch on x's GPU, not the current one (multi-GPU processes)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _as_rows(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"{what} must be time-first [T, ...] with T >= 1; got shape {tuple(x.shape)}")
    return x.contiguous().reshape(x.shape[0], -1)


def triton_neuron_forward(x: torch.Tensor, tau_m: float, tau_s: float, threshold: float) -> NeuronTrace:
    """``tssl.engine.neuron.neuron_forward`` as one Triton launch: trace (x's dtype), pre-reset membrane, spikes."""
    return NeuronTrace(*_forward(x, tau_m, tau_s, threshold, with_spikes=True))


def triton_trace_and_membrane(
    x: torch.Tensor, tau_m: float, tau_s: float, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Trace and pre-reset membrane only (what ``tssl.engine.neuron``'s autograd function keeps): no spike tensor is
    written, since the backward takes the spikes as ``u > V``."""
    trace, membrane, _ = _forward(x, tau_m, tau_s, threshold, with_spikes=False)
    return trace, membrane


def _forward(
    x: torch.Tensor, tau_m: float, tau_s: float, threshold: float, with_spikes: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    mem_decay, syn_decay = decays(tau_m, tau_s)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor; got {x.dtype}")
    require_triton_device(x)
    rows = _as_rows(x.detach(), "x")
    steps, n_neurons = rows.shape
    compute = _compute_dtype(x.dtype)
    trace = torch.empty_like(rows)
    membrane = torch.empty(rows.shape, dtype=compute, device=x.device)
    spikes = torch.empty(rows.shape if with_spikes else (1,), dtype=torch.bool, device=x.device)
    if n_neurons:
        forward, _ = _kernels()
        with _on_device(x):
            forward[(triton.cdiv(n_neurons, BLOCK),)](
                rows,
                trace,
                membrane,
                spikes.view(torch.uint8),
                steps,
                n_neurons,
                MEM_DECAY=mem_decay,
                SYN_DECAY=syn_decay,
                INV_TAU_S=1.0 / tau_s,
                THRESHOLD=float(threshold),
                STORE_SPIKES=with_spikes,
                COMPUTE=tl.float64 if compute == torch.float64 else tl.float32,
                BLOCK=BLOCK,
                num_warps=NUM_WARPS,
            )
    shape = x.shape
    return trace.reshape(shape), membrane.reshape(shape), spikes.reshape(shape) if with_spikes else None


def triton_neuron_backward(
    grad_trace: torch.Tensor,
    membrane: torch.Tensor,
    spikes: torch.Tensor | None,
    tau_m: float,
    tau_s: float,
    threshold: float,
    grad_rule: str,
) -> torch.Tensor:
    """``tssl.engine.neuron.BACKWARDS[grad_rule]`` as one Triton launch: dL/dx, shaped and typed like ``membrane``.

    ``spikes=None`` (what ``tssl.engine.neuron`` saves) recomputes them in the kernel as ``membrane > threshold``.
    """
    check_grad_rule(grad_rule)
    mem_decay, syn_decay = decays(tau_m, tau_s)
    shapes = [tuple(t.shape) for t in (grad_trace, membrane, spikes) if t is not None]
    if len(set(shapes)) != 1:
        raise ValueError(f"grad_trace, membrane and spikes must have one shape; got {', '.join(map(str, shapes))}")
    require_triton_device(membrane)
    membrane_rows = _as_rows(membrane, "membrane")
    steps, n_neurons = membrane_rows.shape
    if spikes is None:  # a 1-byte stand-in pointer; the kernel never reads it
        spikes_rows = torch.empty(1, dtype=torch.uint8, device=membrane.device)
    else:
        spikes_rows = _as_rows(spikes.to(torch.bool), "spikes").view(torch.uint8)
    grad_rows = _as_rows(grad_trace, "grad_trace")
    compute = _compute_dtype(membrane.dtype)
    grad_x = torch.empty_like(membrane_rows)
    tsslbp = grad_rule == "tsslbp"
    # Scratch for the TSSL-BP warm-up switch: 1 byte per neuron-step, instead of the trace in the compute dtype.
    low_trace = torch.empty(membrane_rows.shape if tsslbp else (1,), dtype=torch.uint8, device=membrane.device)
    if n_neurons:
        _, backward = _kernels()
        with _on_device(membrane):
            backward[(triton.cdiv(n_neurons, BLOCK),)](
                grad_rows,
                membrane_rows,
                spikes_rows,
                low_trace,
                grad_x,
                steps,
                n_neurons,
                (steps - 1) * n_neurons,
                MEM_DECAY=mem_decay,
                SYN_DECAY=syn_decay,
                INV_TAU_S=1.0 / tau_s,
                INV_TAU_M=1.0 / tau_m,
                THRESHOLD=float(threshold),
                SWITCH=1.0 / (4.0 * tau_s),
                INV_DU_CLAMP=INV_DU_CLAMP,
                INV_WIDTH=1.0 / SURROGATE_WIDTH,
                ARG_CLAMP=SURROGATE_ARG_CLAMP,
                TSSLBP=tsslbp,
                HAS_SPIKES=spikes is not None,
                COMPUTE=tl.float64 if compute == torch.float64 else tl.float32,
                BLOCK=BLOCK,
                num_warps=NUM_WARPS,
            )
    return grad_x.reshape(membrane.shape)
