"""Layers of a TSSL-BP network over time-first tensors ``[T, B, ...]``.

Weighted layers (conv, linear) have no bias, apply the same weights at every step and end in a spiking
neuron whose PSP trace, not its spikes, goes to the next layer. Pooling is not spiking.

What the backward keeps: a weighted layer needs its input for the weight gradient, and that input is (a pooled,
dropped-out) trace of the layer before. The trace is a function of that layer's membrane ``u`` (spikes are
``u > V``), which its neuron keeps anyway, so a weighted layer keeps a *recipe* instead of its fp32 input: the
tensors it is rebuilt from (the membrane, or the raw network input; bool dropout masks) and the operations to
replay. Each activation produced by these layers carries its recipe (:func:`rebuild_recipe`); a layer that
receives a tensor without one, or one changed in place since, keeps its input as usual. The rebuilt input runs
the same operations as the forward, so gradients are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from tssl.engine.neuron import (
    membrane_backward,
    membrane_forward,
    psp_filter,
    trace_from_membrane,
    tsslbp_neuron_with_membrane,
)
from tssl.engine.neuron_base import GradRule, check_grad_rule, spike_increment
from tssl.engine.neuron_compiled import compile_requested, compiled_pooled_trace

POOL_GAIN = 1.1  # the authors' pooling: 1.1 x the sum over each window
_RECIPE_ATTRIBUTE = "_tssl_rebuild_recipe"


@dataclass(frozen=True)
class RebuildRecipe:
    """How to recompute an activation: ``base(tensors[0])``, then each step ``fn(activation, *its tensors)``.

    The functions hold constants only; every tensor is in ``tensors`` so that autograd saves (and counts) it.
    """

    base: Callable[[torch.Tensor], torch.Tensor]
    steps: tuple[tuple[Callable[..., torch.Tensor], int], ...]
    tensors: tuple[torch.Tensor, ...]

    def then(self, fn: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> RebuildRecipe:
        return RebuildRecipe(self.base, (*self.steps, (fn, len(tensors))), (*self.tensors, *tensors))

    def build(self, tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
        with torch.no_grad():
            activation = self.base(tensors[0])
            index = 1
            for fn, count in self.steps:
                activation = fn(activation, *tensors[index : index + count])
                index += count
        return activation


def attach_recipe(activation: torch.Tensor, recipe: RebuildRecipe) -> torch.Tensor:
    """Record on ``activation`` how to rebuild it (valid until it is changed in place); returns it."""
    setattr(activation, _RECIPE_ATTRIBUTE, (recipe, activation._version))
    return activation


def rebuild_recipe(activation: torch.Tensor) -> RebuildRecipe | None:
    """The recipe attached to ``activation``, or None when it has none or was changed in place since."""
    entry = getattr(activation, _RECIPE_ATTRIBUTE, None)
    if entry is None or entry[1] != activation._version:
        return None
    return entry[0]


class SpikingNeuron(nn.Module):
    """The TSSL-BP neuron as a module: input current ``[T, ...]`` to PSP trace ``[T, ...]``."""

    def __init__(self, tau_m: float, tau_s: float, threshold: float, grad: GradRule = "tsslbp") -> None:
        super().__init__()
        check_grad_rule(grad)
        self.tau_m, self.tau_s, self.threshold, self.grad = float(tau_m), float(tau_s), float(threshold), grad

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        trace, membrane = tsslbp_neuron_with_membrane(current, self.tau_m, self.tau_s, self.threshold, self.grad)
        if not torch.is_grad_enabled():  # nothing will be saved: let the membrane go now
            return trace
        base = partial(trace_from_membrane, threshold=self.threshold, tau_s=self.tau_s)
        return attach_recipe(trace, RebuildRecipe(base, (), (membrane,)))

    def extra_repr(self) -> str:
        return f"tau_m={self.tau_m}, tau_s={self.tau_s}, threshold={self.threshold}, grad={self.grad}"


def _merge_time(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _split_time(y: torch.Tensor, steps: int) -> torch.Tensor:
    return y.reshape(steps, y.shape[0] // steps, *y.shape[1:])


def _conv(x: torch.Tensor, weight: torch.Tensor, padding: int, stride: int) -> torch.Tensor:
    return _split_time(F.conv2d(_merge_time(x), weight, padding=padding, stride=stride), x.shape[0])


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.linear(x.reshape(x.shape[0], x.shape[1], -1), weight)


def _current(x: torch.Tensor, weight: torch.Tensor, kind: str, options: tuple) -> torch.Tensor:
    return _conv(x, weight, *options) if kind == "conv" else _linear(x, weight)


class _RebuiltInputFunction(torch.autograd.Function):
    """A conv or linear layer that keeps its input's recipe instead of the input for the weight gradient."""

    @staticmethod
    def forward(ctx, x, weight, kind, options, recipe, *recipe_tensors):
        ctx.kind, ctx.options, ctx.recipe = kind, options, recipe
        ctx.save_for_backward(weight, *recipe_tensors)
        return _current(x, weight, kind, options)

    @staticmethod
    def backward(ctx, grad_out):
        weight, *recipe_tensors = ctx.saved_tensors
        x = ctx.recipe.build(tuple(recipe_tensors))
        grad_x, grad_weight = _current_backward(grad_out, x, weight, ctx.kind, ctx.options, *ctx.needs_input_grad[:2])
        return (grad_x, grad_weight, None, None, None, *(None for _ in recipe_tensors))


def _current_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    kind: str,
    options: tuple,
    need_input: bool,
    need_weight: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(dL/dx, dL/dweight)`` of :func:`_current`, computed as autograd computes them (same kernels)."""
    grad_x = grad_weight = None
    if kind == "conv":
        padding, stride = options
        # What autograd's ConvolutionBackward runs for F.conv2d (same kernel, same result).
        grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
            _merge_time(grad_out.contiguous()),
            _merge_time(x),
            weight,
            None,
            (stride, stride),
            (padding, padding),
            (1, 1),
            False,
            (0, 0),
            1,
            [need_input, need_weight, False],
        )
        if grad_x is not None:
            grad_x = grad_x.reshape(x.shape)
    else:
        grad_rows = grad_out.reshape(-1, grad_out.shape[-1])
        if need_input:
            grad_x = grad_rows.mm(weight).reshape(x.shape)
        if need_weight:
            grad_weight = grad_rows.t().mm(x.reshape(grad_rows.shape[0], -1))  # as autograd's linear
    return grad_x, grad_weight


def _weighted(x: torch.Tensor, weight: torch.Tensor, kind: str, options: tuple) -> torch.Tensor:
    recipe = rebuild_recipe(x)
    # Under autocast (precision=bf16) the plain path: autocast casts and saves the input itself, and the
    # rebuilt-input backward would meet a bfloat16 gradient with float32 weights.
    if (
        recipe is None
        or not torch.is_grad_enabled()
        or not (x.requires_grad or weight.requires_grad)
        or torch.is_autocast_enabled(x.device.type)
    ):
        return _current(x, weight, kind, options)
    return _RebuiltInputFunction.apply(x, weight, kind, options, recipe, *recipe.tensors)


class _RecomputedLayerFunction(torch.autograd.Function):
    """A conv or linear layer and its spiking neuron that keep only the layer's input (or its recipe).

    The backward runs the layer's forward again, the current and then the neuron with its membrane, before
    the neuron's and the layer's backward: one more conv/linear and neuron forward per layer, in exchange for
    not keeping a membrane per neuron and step. It runs the same operations as the kept path, under the same
    autocast state, so the gradients are the same.
    """

    @staticmethod
    def forward(ctx, x, weight, kind, options, neuron, recipe, *recipe_tensors):
        device_type = x.device.type
        ctx.kind, ctx.options, ctx.neuron, ctx.recipe = kind, options, neuron, recipe
        ctx.autocast = (device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        ctx.save_for_backward(weight, *(recipe_tensors if recipe is not None else (x,)))
        return _neuron_trace(_current(x, weight, kind, options), neuron)

    @staticmethod
    def backward(ctx, grad_trace):
        weight, *kept = ctx.saved_tensors
        x = ctx.recipe.build(tuple(kept)) if ctx.recipe is not None else kept[0]
        need_input, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        device_type, autocast_on, autocast_dtype = ctx.autocast
        neuron = ctx.neuron
        if autocast_on:  # replay through autograd, which applies autocast's casts and their backward
            with torch.enable_grad(), torch.autocast(device_type, dtype=autocast_dtype):
                x_leaf = x.detach().requires_grad_(need_input)
                weight_leaf = weight.detach().requires_grad_(need_weight)
                trace = _neuron_trace(_current(x_leaf, weight_leaf, ctx.kind, ctx.options), neuron)
            wanted = [leaf for leaf, need in ((x_leaf, need_input), (weight_leaf, need_weight)) if need]
            grads = iter(torch.autograd.grad(trace, wanted, grad_trace))
            grad_x = next(grads) if need_input else None
            grad_weight = next(grads) if need_weight else None
        else:  # directly, dropping the current and the trace as soon as they are used: fewer live tensors
            with torch.no_grad():
                current = _current(x, weight, ctx.kind, ctx.options)
                membrane, kernel = membrane_forward(current, neuron.tau_m, neuron.tau_s, neuron.threshold)[1:]
                del current
                grad_current = membrane_backward(
                    grad_trace, membrane, kernel, neuron.tau_m, neuron.tau_s, neuron.threshold, neuron.grad
                )
                del membrane
                grad_x, grad_weight = _current_backward(
                    grad_current, x, weight, ctx.kind, ctx.options, need_input, need_weight
                )
        return (grad_x, grad_weight, None, None, None, None, *(None for _ in kept))


def _neuron_trace(current: torch.Tensor, neuron: SpikingNeuron) -> torch.Tensor:
    return tsslbp_neuron_with_membrane(current, neuron.tau_m, neuron.tau_s, neuron.threshold, neuron.grad)[0]


def _spiking_layer(
    x: torch.Tensor, weight: torch.Tensor, kind: str, options: tuple, neuron: SpikingNeuron, recompute: bool
) -> torch.Tensor:
    """The layer's current through its neuron; with ``recompute``, keeping only the input for the backward."""
    if recompute and torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        recipe = rebuild_recipe(x)
        tensors = recipe.tensors if recipe is not None else ()
        return _RecomputedLayerFunction.apply(x, weight, kind, options, neuron, recipe, *tensors)
    return neuron(_weighted(x, weight, kind, options))


class SpikingConv2d(nn.Module):
    """2-D convolution at every time step, no bias, followed by a spiking neuron."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        neuron: SpikingNeuron,
        padding: int = 0,
        stride: int = 1,
        weight_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.padding, self.stride, self.weight_scale = padding, stride, weight_scale
        self.neuron = neuron
        self.recompute = False  # keep only the input; the backward recomputes current and membrane
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # PyTorch's default conv init (kaiming uniform, a = sqrt 5), scaled, as the authors' code does.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.weight.mul_(self.weight_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _spiking_layer(x, self.weight, "conv", (self.padding, self.stride), self.neuron, self.recompute)


class SpikingLinear(nn.Module):
    """Fully connected layer at every time step, no bias, followed by a spiking neuron.

    The input is flattened over (C, H, W) in that order.
    """

    def __init__(self, in_features: int, out_features: int, neuron: SpikingNeuron, weight_scale: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_scale = weight_scale
        self.neuron = neuron
        self.recompute = False  # keep only the input; the backward recomputes current and membrane
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Kaiming normal (fan_in, gain sqrt 2), scaled, as the authors' code does.
        nn.init.kaiming_normal_(self.weight)
        self.weight.mul_(self.weight_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _spiking_layer(x, self.weight, "linear", (), self.neuron, self.recompute)


def sum_pool(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """``avg_pool2d(x, k, stride=k) * (k * k * 1.1)`` bit for bit, about 3x faster on CPU: the window sum is
    accumulated over strided views in the kernel's order (row by row, left to right), then divided by k*k."""
    k = kernel_size
    height, width = x.shape[-2] // k * k, x.shape[-1] // k * k  # floor mode: a ragged edge is dropped
    total = x[..., 0:height:k, 0:width:k].clone()
    for i in range(k):
        for j in range(k):
            if i or j:
                total.add_(x[..., i:height:k, j:width:k])
    return total.div_(k * k).mul_(k * k * POOL_GAIN)


def pooled_trace_from_membrane(membrane: torch.Tensor, kernel_size: int, threshold: float, tau_s: float):
    """``sum_pool(trace_from_membrane(membrane))``; with the compiled neuron in one pass that never writes the
    full-size trace (the same operations in the same order, so the same bits)."""
    if compile_requested(membrane) and membrane.dim() == 5:
        increment = spike_increment(membrane.dtype, tau_s)
        pooled = compiled_pooled_trace(membrane, tau_s, threshold, increment, kernel_size, POOL_GAIN)
        if pooled is not None:
            return pooled
    return sum_pool(trace_from_membrane(membrane, threshold, tau_s), kernel_size)


def _pooled_recipe(recipe: RebuildRecipe, kernel_size: int) -> RebuildRecipe:
    """``recipe`` followed by sum-pooling; a neuron's trace pooled straight after it is rebuilt in one step."""
    base = recipe.base
    if not recipe.steps and isinstance(base, partial) and base.func is trace_from_membrane:
        return RebuildRecipe(partial(pooled_trace_from_membrane, kernel_size=kernel_size, **base.keywords), (),
                             recipe.tensors)
    return recipe.then(partial(sum_pool, kernel_size=kernel_size))


class _SumPoolFunction(torch.autograd.Function):
    """Sum-pooling over ``[T, B, C, H, W]`` that keeps only its input's shape: its backward needs no values."""

    @staticmethod
    def forward(ctx, x, kernel_size):
        ctx.kernel_size, ctx.input_shape = kernel_size, x.shape
        return sum_pool(x, kernel_size)

    @staticmethod
    def backward(ctx, grad_out):
        k = ctx.kernel_size
        # As autograd's for avg_pool2d(x) * gain: scale, divide by k*k, spread over each window (0 elsewhere).
        grad = (grad_out * (k * k * POOL_GAIN)).div_(k * k)
        height, width = grad.shape[-2] * k, grad.shape[-1] * k
        ragged = (height, width) != tuple(ctx.input_shape[-2:])  # the dropped edge gets no gradient
        grad_x = grad.new_zeros(ctx.input_shape) if ragged else grad.new_empty(ctx.input_shape)
        for i in range(k):  # strided writes: several times faster than avg_pool2d_backward or an expand
            for j in range(k):
                grad_x[..., i:height:k, j:width:k] = grad
        return grad_x, None


class SumPool2d(nn.Module):
    """1.1 x the sum over non-overlapping k x k windows (stride k) at every step; not a spiking layer."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = _SumPoolFunction.apply(x, self.kernel_size)
        recipe = rebuild_recipe(x)
        if recipe is not None:
            attach_recipe(pooled, _pooled_recipe(recipe, self.kernel_size))
        return pooled

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, gain={POOL_GAIN}"


def _apply_keep(x: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """``x`` times the time-shared mask: ``keep`` (bool ``[B, ...]``) as 0 or ``1/(1-p)``, as bernoulli/(1-p)."""
    return x * (keep.to(x.dtype) / (1.0 - p)).unsqueeze(0)


class _SharedDropoutFunction(torch.autograd.Function):
    """``x * mask`` that keeps the mask as bool (one byte per (sample, neuron)) for the backward."""

    @staticmethod
    def forward(ctx, x, keep, p):
        ctx.p = p
        ctx.save_for_backward(keep)
        return _apply_keep(x, keep, p)

    @staticmethod
    def backward(ctx, grad_out):
        (keep,) = ctx.saved_tensors
        return _apply_keep(grad_out, keep, ctx.p), None, None


class TimeSharedDropout(nn.Module):
    """Dropout with one mask per (sample, neuron), shared by every time step; never drops whole samples."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout p must be in [0, 1); got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x[0]).bernoulli_(1.0 - self.p).bool()
        dropped = _SharedDropoutFunction.apply(x, keep, self.p)
        recipe = rebuild_recipe(x)
        if recipe is not None:
            attach_recipe(dropped, recipe.then(partial(_apply_keep, p=self.p), keep))
        return dropped

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PSPInput(nn.Module):
    """Encodes the network input: a static image becomes a constant current over T steps, event frames
    pass as they are; either way the PSP filter is applied before the first weighted layer."""

    def __init__(self, steps: int, tau_s: float, sample_dims: int) -> None:
        super().__init__()
        self.steps, self.tau_s, self.sample_dims = steps, float(tau_s), sample_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.sample_dims + 1:  # static [B, ...]
            x = x.unsqueeze(0).expand(self.steps, *x.shape)
        elif x.dim() != self.sample_dims + 2:  # events [T, B, ...]
            raise ValueError(
                f"input must be static [B, ...] ({self.sample_dims + 1} dims) or event frames [T, B, ...] "
                f"({self.sample_dims + 2} dims); got shape {tuple(x.shape)}"
            )
        filtered = psp_filter(x, self.tau_s)
        if x.requires_grad or not torch.is_grad_enabled():  # kept as autograd would keep it, or not at all
            return filtered
        # A static image is kept as [B, ...] (the expanded view shares its storage), not as T filtered copies.
        return attach_recipe(filtered, RebuildRecipe(partial(psp_filter, tau_s=self.tau_s), (), (x,)))
