"""Each baseline learns the digits with the shared loop (tssl.engine.train.fit), both recipes, seeded.

Settings beside the native engine's digits run: 16C3-P2-64, padding 1, T=5, batch 32, lr 5e-3, 4 epochs,
kernel loss for the matched recipe. Chance is 0.1. The native recipes read out the output spike count,
which at T=5 takes only six values (ties go to the lowest class), so their bar is lower.
"""

from __future__ import annotations

import pytest
import torch

from tssl.data.digits import CLASSES, INPUT_SHAPE, load_digits_split
from tssl.engine.losses import make_loss
from tssl.engine.train import fit
from tssl.methods import ModelConfig, get_method, training_recipe

STEPS, BATCH, LR, EPOCHS, SEED = 5, 32, 5e-3, 4, 0
BARS = {"matched": 0.85, "native": 0.7}


def batches(x, y, size, generator=None):
    def epoch():
        order = torch.randperm(len(y), generator=generator) if generator is not None else torch.arange(len(y))
        return [(x[order[i : i + size]], y[order[i : i + size]]) for i in range(0, len(y), size)]

    return epoch


@pytest.mark.parametrize("recipe", ["matched", "native"])
@pytest.mark.parametrize("name", ["snntorch", "spikingjelly"])
def test_baseline_learns_the_digits(name, recipe):
    data = load_digits_split()
    config = ModelConfig("16C3-P2-64", INPUT_SHAPE, CLASSES, STEPS, padding=1)
    torch.manual_seed(SEED)
    method = get_method(name, recipe=recipe)
    model = method.build(config)
    plan = training_recipe(method, config, make_loss("kernel", STEPS, config.tau_s))
    history = fit(
        model,
        plan.loss,
        plan.make_optimizer(model.parameters(), LR),
        batches(data.train_x, data.train_y, BATCH, torch.Generator().manual_seed(SEED)),
        batches(data.test_x, data.test_y, 500),
        EPOCHS,
        reset=method.reset,
        progress=False,
    )
    accuracy = history[-1].test_accuracy
    assert accuracy >= BARS[recipe], f"{name} ({recipe}): test accuracy {accuracy:.3f} after {EPOCHS} epochs"
    record = method.provenance(model)
    assert record["recipe"] == plan.name == recipe
    assert record[name] is not None and record["implementation"]
