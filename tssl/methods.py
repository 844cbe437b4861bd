"""Training methods behind one protocol: the native engine (``tssl``, ``tssl-surrogate``) and the baselines.

Every method builds the same architecture from a :class:`ModelConfig`, maps inputs to output traces
``[T, B, classes]``, says how to reset its state between batches and what ran (provenance). Losses,
prediction, the optimiser recipe, data and the training loop are shared (``tssl.losses``, ``tssl.recipe``,
``tssl.train``) and never re-implemented by a method. Adding a method is one module plus one entry in
``METHODS``.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
from torch import nn

from tssl.network import build_network


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
class NativeMethod:
    """The native engine with the TSSL-BP rule (``tsslbp``) or a plain sigmoid surrogate (``surrogate``)."""

    name: str
    grad: str

    def build(self, config: ModelConfig) -> nn.Module:
        return build_network(
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
            grad=self.grad,
        )

    def reset(self, model: nn.Module) -> None:
        """The native network holds no state between calls."""

    def provenance(self, model: nn.Module) -> dict:
        return {"engine": "tssl", "grad_rule": self.grad, "torch": torch.__version__, "kernel": "torch"}


# name -> the method itself, or "module:attribute" for methods whose libraries are imported only when used.
METHODS: dict[str, Method | str] = {
    "tssl": NativeMethod("tssl", "tsslbp"),
    "tssl-surrogate": NativeMethod("tssl-surrogate", "surrogate"),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"method {name!r} is unknown; allowed: {', '.join(METHODS)}")
    entry = METHODS[name]
    if isinstance(entry, str):
        module, attribute = entry.split(":")
        entry = getattr(importlib.import_module(module), attribute)
    return entry
