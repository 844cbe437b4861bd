"""The engine learns real handwriting (sklearn's 8x8 digits), with either gradient rule."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tssl.data.digits import CLASSES, INPUT_SHAPE, load_digits_split
from tssl.engine.losses import make_loss
from tssl.engine.network import build_network
from tssl.engine.recipe import make_optimizer
from tssl.engine.train import evaluate, fit

CHANCE = 1 / CLASSES


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.mark.parametrize(("grad", "loss"), [("tsslbp", "kernel"), ("surrogate", "kernel"), ("tsslbp", "count")])
def test_learns_digits_far_above_chance(digits, grad, loss):
    torch.manual_seed(0)
    net = build_network("16C3-P2-64", INPUT_SHAPE, CLASSES, 5, padding=1, grad=grad)
    loss_fn = make_loss(loss, 5, 3.0, desired_count=5, undesired_count=1)
    generator = torch.Generator().manual_seed(0)
    train = TensorDataset(digits.train_x, digits.train_y)
    test = TensorDataset(digits.test_x, digits.test_y)
    test_batches = lambda: DataLoader(test, batch_size=500)  # noqa: E731
    before = evaluate(net, test_batches())
    history = fit(
        net,
        loss_fn,
        make_optimizer(net.parameters(), 5e-3),
        lambda: DataLoader(train, batch_size=32, shuffle=True, generator=generator),
        test_batches,
        epochs=4,
        progress=False,
    )
    assert before < 0.3
    assert history[-1].test_accuracy >= 0.85, [round(r.test_accuracy, 3) for r in history]
    assert history[-1].train_loss < history[0].train_loss


def test_digits_split_is_fixed_and_real(digits):
    again = load_digits_split()
    assert torch.equal(digits.test_y, again.test_y) and torch.equal(digits.train_x, again.train_x)
    assert digits.train_x.shape == (1297, 1, 8, 8) and digits.test_x.shape == (500, 1, 8, 8)
    assert torch.bincount(digits.test_y).min() >= 45  # stratified: every class present
    assert "real" in digits.source
