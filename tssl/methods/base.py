"""What a method is: the :class:`Method` protocol, the :class:`ModelConfig` every method builds from, and the
:class:`Recipe` it trains with.

Every method builds the same architecture from a :class:`ModelConfig`, maps inputs to output traces
``[T, B, classes]``, says how to reset its state between batches and what ran (provenance). Losses,
prediction, the optimiser recipe, data and the training loop are shared (``tssl.engine.losses``,
``tssl.engine.recipe``, ``tssl.engine.train``) and never re-implemented by a method. Adding a method is one
module plus one entry in ``tssl.methods.registry.METHODS``.

A method trains with a :class:`Recipe`: ``matched`` is TSSL-BP's own (the task's loss on the output traces,
AdamW, spec section 3); ``native`` is the framework's documented recipe where that differs (its usual loss,
readout and optimiser, cited where it is defined). Ask for one with ``get_method(name, recipe="native")``;
``training_recipe(method, config, task_loss)`` gives the loss and optimiser to train with, and provenance
records which recipe ran. For the native engine the two coincide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch
from torch import nn

from tssl.engine.recipe import make_optimizer

RECIPES = ("matched", "native")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OptimizerFactory = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]


@dataclass(frozen=True)
class ModelConfig:
    """What every method builds from; all methods get the same values."""

    architecture: str
    input_shape: tuple[int, ...]
    classes: int
    steps: int
    tau_m: float = 5.0
    tau_s: float = 3.0
    threshold: float = 1.0
    padding: int = 0
    conv_weight_scale: float = 1.0
    linear_weight_scale: float = 1.0
    dropout: float = 0.0
    # Native engine only: keep each conv/linear layer's input and recompute its current and membrane in the
    # backward (tssl.engine.layers), instead of keeping every membrane.
    recompute: bool = False

    @classmethod
    def from_task(cls, task, input_shape: tuple[int, ...], classes: int) -> ModelConfig:
        """The model a suite task (``tssl.harness.suites.TaskConfig``) describes, for inputs of ``input_shape``."""
        return cls(
            task.architecture, input_shape, classes, task.steps, task.tau_m, task.tau_s, task.threshold,
            task.padding, task.conv_weight_scale, task.linear_weight_scale, task.dropout, task.recompute,
        )

    def as_dict(self) -> dict:
        return asdict(self)


class Method(Protocol):
    name: str

    def build(self, config: ModelConfig) -> nn.Module:
        """A model mapping static ``[B, ...]`` or event ``[T, B, ...]`` inputs to traces ``[T, B, classes]``."""

    def reset(self, model: nn.Module) -> None:
        """Clear any state carried between batches (a no-op for stateless models)."""

    def provenance(self, model: nn.Module) -> dict:
        """Package versions and the implementation that actually ran."""


@dataclass(frozen=True)
class Recipe:
    """How a method trains: the loss on its outputs ``[T, B, classes]`` (summed over the batch, as the shared
    loop expects) and the optimiser at the task's learning rate. ``details`` goes into the run record."""

    name: str  # "matched" or "native"
    loss: LossFn
    make_optimizer: OptimizerFactory
    details: dict = field(default_factory=dict)


def check_recipe(recipe: str) -> None:
    if recipe not in RECIPES:
        raise ValueError(f"recipe {recipe!r} is unknown; allowed: {', '.join(RECIPES)}")


def matched_recipe(task_loss: LossFn, name: str = "matched", **details) -> Recipe:
    """TSSL-BP's recipe (spec section 3): the task's loss on the output traces, AdamW (weight decay 0.01)."""
    return Recipe(
        name,
        task_loss,
        make_optimizer,
        {
            "loss": f"task loss ({type(task_loss).__name__}) on the output PSP traces",
            "readout": "argmax of the summed output trace",
            "optimizer": "AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)",
            "source": "TSSL-BP (Zhang & Li, NeurIPS 2020), docs/tsslbp-spec.md section 3",
            **details,
        },
    )


def training_recipe(method: Method, config: ModelConfig, task_loss: LossFn) -> Recipe:
    """The loss and optimiser ``method`` trains with; methods without a ``training_recipe`` use TSSL-BP's."""
    own = getattr(method, "training_recipe", None)
    return own(config, task_loss) if own is not None else matched_recipe(task_loss)
