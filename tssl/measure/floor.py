"""The "floor" of a network: the same network with every spiking neuron replaced by one multiply (``x * 1.0``).

What is left is the cost of the dense kernels (conv, linear, pooling, dropout), the loss and the optimiser,
i.e. the part of a training step that no SNN engine built on those kernels can avoid. Benchmarks report the
engine's step time and saved activations as ratios against it.

    floor = floor_network(net)   # a deep copy; ``net`` is left as it is
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from tssl.engine.layers import SpikingConv2d, SpikingLinear, SpikingNeuron


class FloorNeuron(nn.Module):
    """Stands in for a spiking neuron: returns its input current times 1.0 (a new tensor, nothing saved)."""

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return current * 1.0


def floor_network(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` (same weights, same layers) whose :class:`~tssl.engine.layers.SpikingNeuron` modules
    are each replaced by a :class:`FloorNeuron`. Raises ``ValueError`` if ``model`` has no such neuron."""
    floor = copy.deepcopy(model)
    replaced = 0
    for module in list(floor.modules()):
        if isinstance(module, (SpikingConv2d, SpikingLinear)):  # the floor keeps what its dense layers save
            module.recompute = False
        for child_name, child in list(module.named_children()):
            if isinstance(child, SpikingNeuron):
                setattr(module, child_name, FloorNeuron())
                replaced += 1
    if not replaced:
        raise ValueError(f"{type(model).__name__} has no tssl.engine.layers.SpikingNeuron to replace")
    return floor
