"""tssl.measure.memory: bytes saved for the backward, per sample, counted exactly on small known networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tssl.engine.layers
from tssl.engine.losses import KernelLoss
from tssl.engine.network import build_network
from tssl.measure.floor import floor_network
from tssl.measure.memory import authors_layout_bytes, saved_activation_bytes, saved_tensor_storages

STEPS = 5


def test_plain_module_counts_inputs_and_outputs_autograd_keeps():
    # Linear keeps its input (for the weight gradient; the weight itself is excluded), sigmoid its output.
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Sigmoid())
    x = torch.randn(2, 4)
    assert saved_activation_bytes(model, x) == (2 * 4 * 4 + 2 * 3 * 4) / 2


def test_a_storage_saved_twice_is_counted_once():
    class Square(nn.Module):
        def forward(self, x):
            return x * x  # mul keeps both operands: the same storage

    x = torch.randn(3, 5, requires_grad=True)
    assert saved_tensor_storages(Square(), x) == {("cpu", x.untyped_storage().data_ptr()): 3 * 5 * 4}


def tiny_network() -> nn.Module:
    torch.manual_seed(0)
    return build_network("3", (1, 2, 2), 2, STEPS)  # 4 inputs -> 3 spiking -> 2 spiking outputs


def test_native_network_counts_the_engines_compact_form():
    net, batch = tiny_network(), 4
    x, labels = torch.randn(batch, 1, 2, 2), torch.randint(0, 2, (batch,))
    per_sample = saved_activation_bytes(net, x, labels, KernelLoss(STEPS, 3.0))
    image = 4 * 4  # the static image once, not T filtered copies
    membranes = STEPS * (3 + 2) * 4  # u of each spiking layer (fp32); spikes and traces are rebuilt from it
    loss = STEPS * 2 * 4  # the kernel loss keeps (output - target)
    assert per_sample == image + membranes + loss


def test_native_network_without_recipes_keeps_the_traces(monkeypatch):
    net, batch = tiny_network(), 4
    x, labels = torch.randn(batch, 1, 2, 2), torch.randint(0, 2, (batch,))
    monkeypatch.setattr(tssl.engine.layers, "rebuild_recipe", lambda activation: None)
    per_sample = saved_activation_bytes(net, x, labels, KernelLoss(STEPS, 3.0))
    traces = STEPS * (4 + 3) * 4  # each weighted layer keeps its fp32 input trace
    assert per_sample == traces + STEPS * (3 + 2) * 4 + STEPS * 2 * 4


def test_floor_keeps_the_image_and_the_hidden_layer_input():
    net, batch = tiny_network(), 4
    x = torch.randn(batch, 1, 2, 2)
    # The floor's neuron is a multiply, so the hidden layer's output is kept as it is (fp32, T copies).
    assert saved_activation_bytes(floor_network(net), x) == 4 * 4 + STEPS * 3 * 4


def test_authors_layout_formula():
    net = tiny_network()
    x = torch.randn(3, 1, 2, 2)
    assert authors_layout_bytes(net, x) == 4 * STEPS * (4 * (3 + 2) + 2 * 3)


def test_authors_layout_needs_spiking_neurons():
    with pytest.raises(ValueError, match=r"no tssl\.engine\.layers\.SpikingNeuron"):
        authors_layout_bytes(nn.Linear(2, 2), torch.randn(1, 2))


@pytest.mark.parametrize("method", ["snntorch", "spikingjelly"])
def test_baselines_are_measured(method):
    pytest.importorskip(method)
    from tssl.methods import ModelConfig, get_method

    config = ModelConfig("8", (1, 4, 4), 3, STEPS)
    model = get_method(method).build(config)
    x, labels = torch.randn(2, 1, 4, 4), torch.tensor([0, 2])
    assert saved_activation_bytes(model, x, labels, KernelLoss(STEPS, 3.0)) > 0
