"""Building the authors' five shipped network files, loading their checkpoints, and refusing bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tssl.compat import official
from tssl.engine.layers import SpikingConv2d, SpikingLinear, SumPool2d, TimeSharedDropout
from tssl.engine.losses import CountLoss, KernelLoss

CONFIGS = Path(__file__).parent / "configs" / "official"
# file -> (input shape, steps, weight shapes in the authors' parameter order)
SHIPPED = {
    "MNIST_CNN.yaml": ((1, 28, 28), 5, [(15, 1, 5, 5), (40, 15, 5, 5), (300, 640), (10, 300)]),
    "FashionMNIST_400_400.yaml": ((1, 28, 28), 5, [(400, 784), (400, 400), (10, 400)]),
    "FashionMNIST_CNN.yaml": ((1, 28, 28), 5, [(32, 1, 5, 5), (64, 32, 5, 5), (1024, 3136), (10, 1024)]),
    "NMNIST_CNN.yaml": ((2, 34, 34), 30, [(12, 2, 5, 5), (64, 12, 5, 5), (10, 2304)]),
    "CIFAR10.yaml": (
        (3, 32, 32),
        5,
        [
            (96, 3, 3, 3),
            (256, 96, 3, 3),
            (384, 256, 3, 3),
            (384, 384, 3, 3),
            (256, 384, 3, 3),
            (1024, 16384),
            (1024, 1024),
            (10, 1024),
        ],
    ),
}


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_config_builds_and_runs(name):
    input_shape, steps, weight_shapes = SHIPPED[name]
    torch.manual_seed(0)
    net, loss_fn = official.build(CONFIGS / name)  # a path; the dataset name gives the input shape
    assert [tuple(p.shape) for p in net.parameters()] == weight_shapes
    assert net.steps == steps
    labels = torch.tensor([3, 7])
    if name.startswith("NMNIST"):
        x = (torch.rand(steps, 2, *input_shape) < 0.2).float()  # event frames [T, N, C, H, W]
        assert isinstance(loss_fn, CountLoss)
    else:
        x = torch.randn(2, *input_shape)  # static images [N, C, H, W]
        assert isinstance(loss_fn, KernelLoss)
    out = net(x)
    assert out.shape == (steps, 2, 10)
    loss = loss_fn(out, labels)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_cifar10_layer_sequence_and_settings():
    net, _ = official.build((CONFIGS / "CIFAR10.yaml").read_text())  # YAML text works as well as a path
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [
        SpikingConv2d,
        TimeSharedDropout,
        SpikingConv2d,
        SumPool2d,
        TimeSharedDropout,
        SpikingConv2d,
        SumPool2d,
        TimeSharedDropout,
        SpikingConv2d,
        TimeSharedDropout,
        SpikingConv2d,
        TimeSharedDropout,
        SpikingLinear,
        TimeSharedDropout,
        SpikingLinear,
        TimeSharedDropout,
        SpikingLinear,
    ]
    assert net.layer_names[:3] == ["conv_1", "dropout_1", "conv_2"]
    convs = [layer for layer in net.layers if isinstance(layer, SpikingConv2d)]
    assert all(layer.padding == 1 and layer.weight_scale == 5 for layer in convs)
    assert {neuron.tau_s for _, neuron in net.spiking_neurons()} == {3.0}


def test_checkpoint_round_trip_in_the_authors_format():
    torch.manual_seed(1)
    source, _ = official.build(CONFIGS / "MNIST_CNN.yaml")
    checkpoint = {}
    for i, p in enumerate(source.parameters()):  # the authors save conv weights as (out, in, k, k, 1)
        checkpoint[f"my_parameters.{i}"] = p.detach().unsqueeze(-1) if p.dim() == 4 else p.detach()
    torch.manual_seed(2)
    loaded, _ = official.build(CONFIGS / "MNIST_CNN.yaml", state_dict=checkpoint)
    for a, b in zip(source.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(source(x), loaded(x))


YAML = (CONFIGS / "FashionMNIST_400_400.yaml").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("n_inputs: 784", "n_inputs: 780"), "Layers.hidden_1: n_inputs=780 but the layer receives 784"),
        (('type: "linear"', 'type: "convspiking"'), "type 'convspiking' is not supported; allowed: conv, linear"),
        (("n_steps: 5", "n_steps: 7"), "the authors' final kernel target needs T a multiple of 5"),
        (('loss: "kernel"', 'loss: "hinge"'), "loss 'hinge' is unknown; allowed: kernel, count, softmax"),
        (("  tau_m: 5\n", ""), "Network: missing key 'tau_m'"),
        (('dataset: "FashionMNIST"', 'dataset: "SVHN"'), "has no known input shape; pass input_shape"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(change, message):
    with pytest.raises(official.OfficialConfigError) as error:
        official.build(YAML.replace(*change))
    assert message in str(error.value)


def test_bad_checkpoint_is_refused():
    net, _ = official.build(YAML)
    good = {f"my_parameters.{i}": p.detach() for i, p in enumerate(net.parameters())}
    with pytest.raises(official.OfficialConfigError, match=r"missing \['my_parameters.2'\]"):
        official.build(YAML, {k: v for k, v in good.items() if k != "my_parameters.2"})
    with pytest.raises(official.OfficialConfigError, match=r"my_parameters\.0 has shape"):
        official.build(YAML, {**good, "my_parameters.0": torch.zeros(400, 783)})


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(official.OfficialConfigError, match=r"missing\.yaml: cannot read"):
        official.build(tmp_path / "missing.yaml")
