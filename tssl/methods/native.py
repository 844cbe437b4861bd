"""The native engine as a method: ``tssl`` (the TSSL-BP rule) and ``tssl-surrogate`` (a plain sigmoid
surrogate), both with TSSL-BP's own recipe."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tssl.engine.kernels import neuron_backend
from tssl.engine.network import SpikingNetwork, build_network
from tssl.engine.neuron_compiled import compile_requested
from tssl.methods.base import LossFn, ModelConfig, Recipe, check_recipe, matched_recipe


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
    parameter = next(model.parameters(), None) if model is not None else None
    probe = torch.empty(0, device=parameter.device if parameter is not None else "cpu")
    backend = neuron_backend(probe)
    return "torch.compile" if backend == "torch" and compile_requested(probe) else backend
