"""Training methods behind one protocol: the native engine (``tssl``, ``tssl-surrogate``) and the baselines.

Every method builds the same architecture from a :class:`ModelConfig`, maps inputs to output traces
``[T, B, classes]``, says how to reset its state between batches and what ran (provenance). Losses,
prediction, the optimiser recipe, data and the training loop are shared (``tssl.engine.losses``, ``tssl.engine.recipe``,
``tssl.engine.train``) and never re-implemented by a method. Adding a method is one module plus one entry in
``METHODS``.

A method trains with a :class:`Recipe`: ``matched`` is TSSL-BP's own (the task's loss on the output traces,
AdamW, spec section 3); ``native`` is the framework's documented recipe where that differs (its usual loss,
readout and optimiser, cited where it is defined). Ask for one with ``get_method(name, recipe="native")``;
``training_recipe(method, config, task_loss)`` gives the loss and optimiser to train with, and provenance
records which recipe ran. For the native engine the two coincide.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import torch
from torch import nn

from tssl.engine.network import SpikingNetwork, build_network
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


def build_native(config: ModelConfig, grad: str) -> SpikingNetwork:
    """The native engine's network for ``config`` with gradient rule ``grad``."""
    network = build_network(
        config.architecture,
        config.input_shape,
        config.classes,
        config.steps,
        tau_m=config.tau_m,
        tau_s=config.tau_s,
        threshold=config.threshold,
        padding=config.padding,
        conv_weight_scale=config.conv_weight_scale,
        linear_weight_scale=config.linear_weight_scale,
        dropout=config.dropout,
        grad=grad,
    )
    network.set_recompute(config.recompute)
    return network


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


@dataclass(frozen=True)
class NativeMethod:
    """The native engine with the TSSL-BP rule (``tsslbp``) or a plain sigmoid surrogate (``surrogate``).

    TSSL-BP's recipe is this engine's own, so ``recipe="native"`` and ``"matched"`` train the same way.
    """

    name: str
    grad: str
    recipe: str = "matched"

    def __post_init__(self) -> None:
        check_recipe(self.recipe)

    def build(self, config: ModelConfig) -> nn.Module:
        return build_native(config, self.grad)

    def reset(self, model: nn.Module) -> None:
        """The native network holds no state between calls."""

    def provenance(self, model: nn.Module) -> dict:
        return {
            "engine": "tssl",
            "grad_rule": self.grad,
            "torch": torch.__version__,
            "kernel": _kernel_used(model),
            "recompute": bool(getattr(model, "recompute", False)),
            "recipe": self.recipe,
        }

    def training_recipe(self, config: ModelConfig, task_loss: LossFn) -> Recipe:
        return matched_recipe(task_loss, self.recipe)


def _kernel_used(model: nn.Module | None) -> str:
    """Which neuron implementation runs on the model's device: "triton" (tssl.engine.kernels), "torch.compile"
    (TSSL_NEURON_COMPILE=1 on a CPU, tssl.engine.neuron_compiled) or "torch" (the eager PyTorch path)."""
    from tssl.engine.kernels import neuron_backend
    from tssl.engine.neuron_compiled import compile_requested

    parameter = next(model.parameters(), None) if model is not None else None
    probe = torch.empty(0, device=parameter.device if parameter is not None else "cpu")
    backend = neuron_backend(probe)
    return "torch.compile" if backend == "torch" and compile_requested(probe) else backend


# name -> the method itself, or "module:attribute" for methods whose libraries are imported only when used.
METHODS: dict[str, Method | str] = {
    "tssl": NativeMethod("tssl", "tsslbp"),
    "tssl-surrogate": NativeMethod("tssl-surrogate", "surrogate"),
    "snntorch": "tssl_baselines.snntorch_backend:METHOD",
    "spikingjelly": "tssl_baselines.spikingjelly_backend:METHOD",
}
NATIVE_METHODS: tuple[str, ...] = tuple(name for name, entry in METHODS.items() if isinstance(entry, NativeMethod))


def get_method(name: str, **options) -> Method:
    """The method registered as ``name``; ``options`` set its fields, e.g. ``recipe="native"`` or, for
    SpikingJelly, ``implementation="triton"``."""
    if name not in METHODS:
        raise KeyError(f"method {name!r} is unknown; allowed: {', '.join(METHODS)}")
    entry = METHODS[name]
    if isinstance(entry, str):
        module, attribute = entry.split(":")
        entry = getattr(importlib.import_module(module), attribute)
    if options:
        if not dataclasses.is_dataclass(entry):
            raise TypeError(f"method {name!r} takes no options")
        allowed = [f.name for f in dataclasses.fields(entry) if f.name != "name"]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(f"method {name!r} has no option {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        entry = dataclasses.replace(entry, **options)
    return entry
