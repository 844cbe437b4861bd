"""Layers of a TSSL-BP network over time-first tensors ``[T, B, ...]``.

Weighted layers (conv, linear) have no bias, apply the same weights at every step and end in a spiking
neuron whose PSP trace, not its spikes, goes to the next layer. Pooling is not spiking.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tssl.neuron import GradRule, check_grad_rule, psp_filter, tsslbp_neuron

POOL_GAIN = 1.1  # the authors' pooling: 1.1 x the sum over each window


class SpikingNeuron(nn.Module):
    """The TSSL-BP neuron as a module: input current ``[T, ...]`` to PSP trace ``[T, ...]``."""

    def __init__(self, tau_m: float, tau_s: float, threshold: float, grad: GradRule = "tsslbp") -> None:
        super().__init__()
        check_grad_rule(grad)
        self.tau_m, self.tau_s, self.threshold, self.grad = float(tau_m), float(tau_s), float(threshold), grad

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return tsslbp_neuron(current, self.tau_m, self.tau_s, self.threshold, self.grad)

    def extra_repr(self) -> str:
        return f"tau_m={self.tau_m}, tau_s={self.tau_s}, threshold={self.threshold}, grad={self.grad}"


def _merge_time(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _split_time(y: torch.Tensor, steps: int) -> torch.Tensor:
    return y.reshape(steps, y.shape[0] // steps, *y.shape[1:])


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
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # PyTorch's default conv init (kaiming uniform, a = sqrt 5), scaled, as the authors' code does.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.weight.mul_(self.weight_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = F.conv2d(_merge_time(x), self.weight, padding=self.padding, stride=self.stride)
        return self.neuron(_split_time(current, x.shape[0]))


class SpikingLinear(nn.Module):
    """Fully connected layer at every time step, no bias, followed by a spiking neuron.

    The input is flattened over (C, H, W) in that order.
    """

    def __init__(self, in_features: int, out_features: int, neuron: SpikingNeuron, weight_scale: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_scale = weight_scale
        self.neuron = neuron
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Kaiming normal (fan_in, gain sqrt 2), scaled, as the authors' code does.
        nn.init.kaiming_normal_(self.weight)
        self.weight.mul_(self.weight_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = F.linear(x.reshape(x.shape[0], x.shape[1], -1), self.weight)
        return self.neuron(current)


class SumPool2d(nn.Module):
    """1.1 x the sum over non-overlapping k x k windows (stride k) at every step; not a spiking layer."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        pooled = F.avg_pool2d(_merge_time(x), k, stride=k) * (k * k * POOL_GAIN)
        return _split_time(pooled, x.shape[0])

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, gain={POOL_GAIN}"


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
        keep = torch.empty_like(x[0]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * keep.unsqueeze(0)

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
        return psp_filter(x, self.tau_s)
