"""Architecture strings: the paper's networks build with the right shapes; malformed strings are refused."""

from __future__ import annotations

import pytest
import torch

from tssl.engine.architecture import ArchitectureError, ConvSpec, DropoutSpec, LinearSpec, PoolSpec, parse_architecture
from tssl.engine.layers import SpikingConv2d, SumPool2d, TimeSharedDropout
from tssl.engine.network import build_network, predict

PAPER_NETWORKS = [
    ("15C5-P2-40C5-P2-300", (1, 28, 28), 0, [(15, 1, 5, 5), (40, 15, 5, 5), (300, 640), (10, 300)]),
    ("784-400-400", (1, 28, 28), 0, [(784, 784), (400, 784), (400, 400), (10, 400)]),
    ("400-400", (1, 28, 28), 0, [(400, 784), (400, 400), (10, 400)]),
    ("32C5-P2-64C5-P2-1024", (1, 28, 28), 2, [(32, 1, 5, 5), (64, 32, 5, 5), (1024, 3136), (10, 1024)]),
    ("12C5p1-P2-64C5-P2", (2, 34, 34), 0, [(12, 2, 5, 5), (64, 12, 5, 5), (10, 2304)]),
    (
        "96C3-256C3-P2-384C3-P2-384C3-256C3-1024-1024",
        (3, 32, 32),
        1,
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
]


def test_tokens():
    assert parse_architecture("15C5-P2-300") == [ConvSpec(15, 5), PoolSpec(2), LinearSpec(300)]
    assert parse_architecture("12C5p1-64C3s2-D0.2-10") == [
        ConvSpec(12, 5, padding=1),
        ConvSpec(64, 3, stride=2),
        DropoutSpec(0.2),
        LinearSpec(10),
    ]


@pytest.mark.parametrize(("architecture", "input_shape", "padding", "shapes"), PAPER_NETWORKS)
def test_paper_networks_build(architecture, input_shape, padding, shapes):
    net = build_network(architecture, input_shape, 10, 5, padding=padding)
    assert [tuple(p.shape) for p in net.parameters()] == shapes
    if sum(p.numel() for p in net.parameters()) < 5_000_000:
        out = net(torch.randn(2, *input_shape))
        assert out.shape == (5, 2, 10)
        assert predict(out).shape == (2,)


@pytest.mark.parametrize(
    ("architecture", "bad_token"),
    [
        ("15C5-P2-40X5", "40X5"),
        ("15C5--300", ""),
        ("C5-300", "C5"),
        ("15C0-300", "15C0"),
        ("300-P2", "P2"),
        ("15c5", "15c5"),
        ("D1.5-10", "D1.5"),
        ("96C3-256C3-P-1024", "P"),
    ],
)
def test_malformed_strings_name_the_token_and_the_accepted_forms(architecture, bad_token):
    with pytest.raises(ArchitectureError) as error:
        build_network(architecture, (1, 28, 28), 10, 5)
    assert repr(bad_token) in str(error.value)
    if bad_token != "P2":
        assert "'<n>C<k>' conv" in str(error.value)


def test_impossible_shapes_and_settings_are_refused():
    with pytest.raises(ArchitectureError, match="empty output"):
        build_network("16C5-P2-16C5-P2-16C5", (1, 8, 8), 10, 5)
    with pytest.raises(ArchitectureError, match="threshold has 2 values for 3"):
        build_network("16-16", (1, 8, 8), 10, 5, threshold=[1.0, 1.0])
    with pytest.raises(ArchitectureError, match="not both"):
        build_network("16-D0.2-16", (1, 8, 8), 10, 5, dropout=0.2)
    with pytest.raises(ValueError, match="allowed: tsslbp, surrogate"):
        build_network("16", (1, 8, 8), 10, 5, grad="exact")


def test_dropout_placement_follows_the_authors_cifar10_config():
    net = build_network("8C3-8C3-P2-16", (3, 8, 8), 10, 5, padding=1, dropout=0.2)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == [
        "SpikingConv2d",
        "TimeSharedDropout",
        "SpikingConv2d",
        "SumPool2d",
        "TimeSharedDropout",
        "SpikingLinear",
        "TimeSharedDropout",
        "SpikingLinear",
    ]


def test_dropout_mask_is_shared_over_time_and_off_in_eval():
    drop = TimeSharedDropout(0.5).train()
    x = torch.ones(7, 4, 3, 5, 5)
    y = drop(x)
    assert torch.equal(y, y[:1].expand_as(y))  # the same mask at every step
    assert set(y.unique().tolist()) <= {0.0, 2.0}  # inverted-dropout scaling 1 / (1 - p)
    assert (y[0].flatten(1) != 0).any(1).all()  # no sample dropped whole
    assert torch.equal(drop.eval()(x), x)


def test_sum_pooling_is_1_1_times_the_window_sum():
    x = torch.arange(2 * 1 * 1 * 4 * 4, dtype=torch.float64).reshape(2, 1, 1, 4, 4)
    pooled = SumPool2d(2)(x)
    assert pooled[0, 0, 0, 0, 0].item() == pytest.approx(1.1 * (0 + 1 + 4 + 5))
    assert pooled.shape == (2, 1, 1, 2, 2)


def test_weight_scales_and_initialisation():
    torch.manual_seed(0)
    net = build_network("64C3-512", (3, 16, 16), 10, 5, conv_weight_scale=5, linear_weight_scale=1)
    conv, linear = net.layers[0].weight, net.layers[1].weight
    bound = 5 / (3 * 3 * 3) ** 0.5  # default conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), times 5
    assert conv.abs().max().item() <= bound and conv.abs().max().item() > 0.9 * bound
    assert linear.std().item() == pytest.approx((2 / (64 * 14 * 14)) ** 0.5, rel=0.05)  # kaiming normal, fan_in
    assert isinstance(net.layers[0], SpikingConv2d)


def test_static_and_event_inputs():
    net = build_network("4C3-P2-8", (2, 6, 6), 3, 5)
    assert net(torch.randn(2, 2, 6, 6)).shape == (5, 2, 3)
    assert net(torch.rand(9, 2, 2, 6, 6)).shape == (9, 2, 3)  # event frames carry their own T
    with pytest.raises(ValueError, match="static"):
        net(torch.randn(6, 6))
