"""Layers keep a recipe (membrane, image, bool masks) instead of fp32 inputs; gradients must not change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tssl.engine.layers
from tssl.engine.layers import POOL_GAIN, SpikingNeuron, SumPool2d, TimeSharedDropout, rebuild_recipe
from tssl.engine.losses import KernelLoss
from tssl.engine.network import build_network
from tssl.measure.memory import saved_activation_bytes

STEPS = 5


def grads_and_output(net, x, labels, use_recipes: bool, monkeypatch):
    if not use_recipes:
        monkeypatch.setattr(tssl.engine.layers, "rebuild_recipe", lambda activation: None)
    torch.manual_seed(1)  # the same dropout masks in both runs
    net.zero_grad()
    out = net(x)
    KernelLoss(STEPS, 3.0)(out, labels).backward()
    monkeypatch.undo()
    return out.detach(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("grad", ["tsslbp", "surrogate"])
def test_rebuilt_inputs_give_bit_identical_gradients(grad, dtype, monkeypatch):
    torch.manual_seed(0)
    net = build_network(
        "6C3-8C3-P2-5C3-P2-12", (2, 10, 10), 4, STEPS, padding=1, conv_weight_scale=5.0, dropout=0.2, grad=grad
    ).to(dtype)
    x, labels = torch.randn(3, 2, 10, 10, dtype=dtype), torch.tensor([0, 3, 1])
    out_a, grads_a = grads_and_output(net, x, labels, True, monkeypatch)
    out_b, grads_b = grads_and_output(net, x, labels, False, monkeypatch)
    assert torch.equal(out_a, out_b)
    assert any(g.abs().sum() > 0 for g in grads_a)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert torch.equal(a, b)
    # ... and the recipes keep less: membranes instead of every layer's fp32 input.
    kept = saved_activation_bytes(net, x, labels, KernelLoss(STEPS, 3.0))
    monkeypatch.setattr(tssl.engine.layers, "rebuild_recipe", lambda activation: None)
    assert kept < saved_activation_bytes(net, x, labels, KernelLoss(STEPS, 3.0))


def test_a_trace_changed_in_place_is_kept_as_it_is():
    torch.manual_seed(0)
    neuron = SpikingNeuron(5.0, 3.0, 1.0)
    weight = torch.randn(3, 4, requires_grad=True)
    trace = neuron(torch.rand(STEPS, 2, 4) * 2)
    assert rebuild_recipe(trace) is not None
    trace.mul_(2.0)  # the recipe would rebuild the old values
    assert rebuild_recipe(trace) is None
    out = tssl.engine.layers.SpikingLinear(4, 3, SpikingNeuron(5.0, 3.0, 0.1))
    out.weight = torch.nn.Parameter(weight.detach().clone())
    out(trace).sum().backward()
    expected = torch.nn.Parameter(weight.detach().clone())
    current = F.linear(trace, expected)
    tssl.engine.neuron.tsslbp_neuron(current, 5.0, 3.0, 0.1).sum().backward()
    assert torch.equal(out.weight.grad, expected.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("size", [8, 9])
def test_sum_pool_is_avg_pool_bit_for_bit_and_keeps_nothing(size, k, dtype):
    torch.manual_seed(size + k)
    x = torch.randn(STEPS, 2, 3, size, size, dtype=dtype, requires_grad=True)
    g = torch.randn(STEPS, 2, 3, size // k, size // k, dtype=dtype)
    pool = SumPool2d(k)
    pool(x).backward(g)
    ref_x = x.detach().clone().requires_grad_(True)
    ref = F.avg_pool2d(ref_x.reshape(-1, 3, size, size), k, stride=k) * (k * k * POOL_GAIN)
    ref.backward(g.reshape(ref.shape))
    assert torch.equal(pool(x).detach().reshape(ref.shape), ref.detach())
    assert torch.equal(x.grad, ref_x.grad)
    assert saved_activation_bytes(pool, x) == 0


def test_dropout_mask_is_shared_over_time_and_kept_as_bool():
    torch.manual_seed(0)
    x = torch.randn(STEPS, 4, 6, requires_grad=True)
    drop = TimeSharedDropout(0.25)
    torch.manual_seed(1)
    out = drop(x)
    torch.manual_seed(1)
    expected_mask = torch.empty(4, 6).bernoulli_(0.75) / 0.75
    assert torch.equal(out, x * expected_mask)
    out.backward(torch.ones_like(out))
    assert torch.equal(x.grad, expected_mask.expand(STEPS, 4, 6))
    assert saved_activation_bytes(drop, x, torch.zeros(4)) == 6  # one byte per (sample, neuron)
