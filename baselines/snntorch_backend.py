"""snntorch 1.0 baseline: every TSSL-BP neuron replaced by ``snntorch.Leaky``.

The neuron: ``snntorch.Leaky(beta=1 - 1/tau_m, threshold=V, reset_mechanism="zero")``. Leaky computes
``u[t] = beta * m[t-1] + x[t]`` and fires on ``u[t] - V > 0`` (strict, as the native engine), so its
forward is the native neuron's exactly. ``reset_delay`` does not delay the spike: with ``True`` (snntorch's
default) the stored membrane keeps the pre-reset value and the zeroing, by a detached copy of the spike,
happens at the start of the next step; with ``False`` the membrane is zeroed in the same step by the spike
itself, so the gradient also flows through the reset, as the native ``surrogate`` backward does
(``dm/ds = -u``). Both give the same spikes and membranes; only the gradient differs.

Recipes (``docs/baselines.md``):

- ``matched``: PSP synapse, ``reset_delay=False`` and the native engine's surrogate (sigmoid of width 0.2,
  argument clamped to [-8, 8]) through ``snntorch.surrogate.custom_surrogate``, so the gradient equals the
  native engine's ``grad="surrogate"``. Not ``snntorch.surrogate.sigmoid(slope=5)``: snntorch 1.0 computes it
  as ``exp(-k x) / (exp(-k x) + 1)**2``, which is NaN in float32 once ``k (u - V) < -88`` (pinned in
  ``tests/test_baselines_equivalence.py``).
- ``native``: snntorch tutorial 6 ("Training Convolutional Spiking Neural Networks", snntorch docs,
  ``docs/tutorials/tutorial_6.rst``): ``surrogate.fast_sigmoid(slope=25)``, spikes between layers, loss
  ``snntorch.functional.ce_rate_loss()`` on the output spikes, ``torch.optim.Adam(lr, betas=(0.9, 0.999))``,
  Leaky's default ``reset_delay=True``. The neuron constants stay TSSL-BP's (tau_m, threshold, reset to zero).

State: Leaky keeps its membrane in ``Leaky.mem`` between calls; :meth:`SnntorchMethod.reset` zeroes it with
each neuron's own ``reset_mem()`` before every batch. (``snntorch.utils.reset(net)`` looks for neurons only
among the direct children of ``net``, which misses these nested ones, and when it finds one it zeroes every
Leaky in the process through the class-wide ``SpikingNeuron.instances`` list.)
"""

from __future__ import annotations

from dataclasses import dataclass

import snntorch
import snntorch.functional as snn_functional
import torch
from snntorch import surrogate as snn_surrogate
from torch import nn

from tssl.engine.neuron_base import SURROGATE_ARG_CLAMP, SURROGATE_WIDTH
from tssl.methods import LossFn, ModelConfig, Recipe, check_recipe, matched_recipe

from .common import (
    RECIPE_SYNAPSE,
    BaselineNetwork,
    LIFSequences,
    build_baseline_network,
    model_device,
    package_versions,
    sum_over_batch,
)

NATIVE_SLOPE = 25  # snntorch tutorial 6: surrogate.fast_sigmoid(slope=25)
NATIVE_SOURCE = (
    "snntorch tutorial 6, Training Convolutional Spiking Neural Networks "
    "(https://snntorch.readthedocs.io/en/latest/tutorials/tutorial_6.html)"
)


def tssl_surrogate():
    """The native engine's surrogate as an snntorch surrogate: sigma'((u - V)/0.2)/0.2, argument clamped."""

    def gradient(shifted: torch.Tensor, grad_input: torch.Tensor, _spikes: torch.Tensor) -> torch.Tensor:
        sig = torch.sigmoid((shifted / SURROGATE_WIDTH).clamp(-SURROGATE_ARG_CLAMP, SURROGATE_ARG_CLAMP))
        return grad_input * sig * (1.0 - sig) / SURROGATE_WIDTH

    return snn_surrogate.custom_surrogate(gradient)


class SnntorchLIF(nn.Module):
    """``snntorch.Leaky`` over a time-first current ``[T, ...]``, one call per step; returns spikes ``[T, ...]``."""

    def __init__(self, tau_m: float, threshold: float, recipe: str = "matched", reset_delay: bool | None = None):
        super().__init__()
        check_recipe(recipe)
        if tau_m < 1:
            raise ValueError(f"tau_m must be >= 1 (decay 1 - 1/tau_m in [0, 1)); got {tau_m}")
        self.tau_m, self.threshold, self.recipe = float(tau_m), float(threshold), recipe
        if reset_delay is None:
            reset_delay = recipe == "native"
        spike_grad = tssl_surrogate() if recipe == "matched" else snn_surrogate.fast_sigmoid(slope=NATIVE_SLOPE)
        # float64 buffers, so that a float64 run uses the exact constants; float32 runs round them as usual.
        self.leaky = snntorch.Leaky(
            beta=torch.tensor(1.0 - 1.0 / self.tau_m, dtype=torch.float64),
            threshold=torch.tensor(self.threshold, dtype=torch.float64),
            spike_grad=spike_grad,
            reset_mechanism="zero",
            reset_delay=reset_delay,
        )

    def run(self, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes and the membrane Leaky returns at each step (pre-reset with ``reset_delay=True``,
        post-reset with ``False``), both ``[T, ...]`` in the dtype of ``current``."""
        spikes, membranes = [], []
        for t in range(current.shape[0]):
            spike, mem = self.leaky(current[t])
            spikes.append(spike)
            membranes.append(mem)
        return torch.stack(spikes).to(current.dtype), torch.stack(membranes).to(current.dtype)

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return self.run(current)[0]

    def extra_repr(self) -> str:
        return f"tau_m={self.tau_m}, threshold={self.threshold}, recipe={self.recipe}"


class CrossEntropyRateLoss(nn.Module):
    """``snntorch.functional.ce_rate_loss()`` on output spikes ``[T, B, classes]`` (cross entropy of the spikes
    at every step, averaged over steps and batch), scaled to sum over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = snn_functional.ce_rate_loss()

    def forward(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return sum_over_batch(self.inner(output, labels), output)


def adam(params, lr: float) -> torch.optim.Optimizer:
    """The optimiser of snntorch tutorial 6 at the task's learning rate."""
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))


@dataclass(frozen=True)
class SnntorchMethod:
    name: str = "snntorch"
    recipe: str = "matched"

    def __post_init__(self) -> None:
        check_recipe(self.recipe)

    def build(self, config: ModelConfig) -> BaselineNetwork:
        return build_baseline_network(config, SnntorchLIF, framework="snntorch", recipe=self.recipe)

    def reset(self, model: nn.Module) -> None:
        for module in model.modules():
            if isinstance(module, snntorch.Leaky):
                module.reset_mem()

    def training_recipe(self, config: ModelConfig, task_loss: LossFn) -> Recipe:
        if self.recipe == "matched":
            return matched_recipe(task_loss, surrogate="sigmoid width 0.2 (clamp 8) via custom_surrogate")
        return Recipe(
            "native",
            CrossEntropyRateLoss(),
            adam,
            {
                "loss": "snntorch.functional.ce_rate_loss() on the output spikes, x batch size",
                "readout": "argmax of the output spike count",
                "optimizer": "Adam(betas=(0.9, 0.999))",
                "surrogate": f"snntorch.surrogate.fast_sigmoid(slope={NATIVE_SLOPE})",
                "source": NATIVE_SOURCE,
            },
        )

    def provenance(self, model: nn.Module) -> dict:
        recipe = getattr(model, "recipe", self.recipe)
        matched = recipe == "matched"
        return {
            "engine": "snntorch",
            **package_versions("snntorch", "torch"),
            "recipe": recipe,
            "synapse": RECIPE_SYNAPSE[recipe],
            "neuron": f"snntorch.Leaky(reset_mechanism='zero', reset_delay={not matched})",
            "surrogate": "custom_surrogate(tssl sigmoid, width 0.2)" if matched else f"fast_sigmoid({NATIVE_SLOPE})",
            "implementation": "torch autograd, one Leaky call per time step (snntorch has no fused kernels)",
            "device": str(model_device(model)),
        }


METHOD = SnntorchMethod()


@torch.no_grad()
def lif_sequences(current: torch.Tensor, tau_m: float, threshold: float, recipe: str = "matched") -> LIFSequences:
    """Run ``snntorch.Leaky`` as the ``recipe``'s network builds it over ``current`` ``[T, ...]``.

    Spikes and the post-reset membrane come from that neuron with ``reset_delay=False`` semantics; Leaky
    returns the pre-reset membrane only with ``reset_delay=True``, so a twin with that setting (same forward)
    supplies it.
    """
    configured = SnntorchLIF(tau_m, threshold, recipe)
    spikes, _ = configured.run(current)
    _, after_reset = SnntorchLIF(tau_m, threshold, recipe, reset_delay=False).run(current)
    _, membrane = SnntorchLIF(tau_m, threshold, recipe, reset_delay=True).run(current)
    return LIFSequences(membrane, spikes.bool(), after_reset)
