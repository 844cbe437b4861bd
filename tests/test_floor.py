"""tssl.measure.floor: the network with its neurons replaced by a multiply."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tssl.engine.layers import SpikingNeuron
from tssl.engine.network import build_network
from tssl.measure.floor import FloorNeuron, floor_network


def test_floor_replaces_every_neuron_and_leaves_the_original():
    torch.manual_seed(0)
    net = build_network("4C3-P2-6", (1, 8, 8), 3, 5)
    floor = floor_network(net)
    assert sum(isinstance(m, FloorNeuron) for m in floor.modules()) == 3
    assert not any(isinstance(m, SpikingNeuron) for m in floor.modules())
    assert sum(isinstance(m, SpikingNeuron) for m in net.modules()) == 3
    for a, b in zip(net.parameters(), floor.parameters(), strict=True):
        assert torch.equal(a, b) and a is not b


def test_floor_computes_the_layers_without_the_neuron():
    torch.manual_seed(0)
    net = build_network("5", (1, 2, 2), 3, 4, tau_s=2.0)
    floor = floor_network(net)
    x = torch.randn(2, 1, 2, 2)
    filtered = net.input_filter(x)
    hidden = F.linear(filtered.reshape(4, 2, -1), net.layers[0].weight)
    assert torch.equal(floor(x), F.linear(hidden, net.layers[1].weight))


def test_floor_needs_a_spiking_neuron():
    with pytest.raises(ValueError, match=r"no tssl\.engine\.layers\.SpikingNeuron"):
        floor_network(nn.Linear(2, 2))
