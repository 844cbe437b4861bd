"""What every baseline shares, so that no backend re-implements the model around its neuron.

A baseline network is the TSSL-BP network of the same :class:`~tssl.methods.ModelConfig` with only the
spiking neuron swapped: :func:`build_baseline_network` builds the native network with
:func:`tssl.engine.network.build_network` (same architecture parsing, shape checks, per-step conv / linear without
bias, 1.1 x sum pooling, time-shared dropout, weight init drawn in the same order from the same RNG) and
replaces the TSSL-BP neuron of every conv / linear layer by a :class:`BaselineNeuron`: the framework's LIF
(input current ``[T, ...]`` to spikes ``[T, ...]``) followed by the synapse.

Two synapses, chosen by the recipe (``docs/baselines.md``):

- ``psp`` (recipe ``matched``): the TSSL-BP model exactly. The input is the static image as a constant
  current over T steps, filtered by the first-order PSP filter (``tssl.engine.layers.PSPInput``), and every layer
  passes its PSP trace ``a[t] = (1 - 1/tau_s) a[t-1] + s[t]/tau_s`` (``tssl.engine.neuron.psp_filter``) on, not its
  spikes. Neither framework's LIF has this synapse; it is applied here, outside the framework's neuron, with
  autograd through it. The output is the output layer's trace.
- ``spike`` (recipe ``native``): what both frameworks' tutorials build: the image as a constant current over
  T steps straight into the first layer (direct encoding), spikes between layers, output spikes as the
  output (rate readout: the shared summed-trace argmax is the spike-count argmax).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import nn

from tssl.engine.layers import PSPInput, SpikingConv2d, SpikingLinear
from tssl.engine.neuron import psp_filter
from tssl.engine.precision import neuron_input
from tssl.methods import ModelConfig, build_native

RECIPE_SYNAPSE = {"matched": "psp", "native": "spike"}


class BackendUnavailableError(RuntimeError):
    """An implementation that was asked for explicitly cannot run here."""


class BackendFallbackNotice(RuntimeWarning):
    """An optional accelerated implementation is missing; the next one in the framework's order runs."""


class LIFSequences(NamedTuple):
    """A framework LIF layer's state over time, each ``[T, ...]``, as :func:`tssl.engine.neuron.neuron_forward`
    names it."""

    membrane: torch.Tensor  # u[t], before reset
    spikes: torch.Tensor  # s[t], bool
    after_reset: torch.Tensor  # m[t] = u[t] (1 - s[t]), what leaks into the next step


class ConstantCurrent(nn.Module):
    """Direct encoding: a static image ``[B, ...]`` becomes the same current at each of T steps; event frames
    ``[T, B, ...]`` pass as they are. No PSP filter (recipe ``native``)."""

    def __init__(self, steps: int, sample_dims: int) -> None:
        super().__init__()
        self.steps, self.sample_dims = steps, sample_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == self.sample_dims + 1:
            return x.unsqueeze(0).expand(self.steps, *x.shape)
        if x.dim() != self.sample_dims + 2:
            raise ValueError(
                f"input must be static [B, ...] ({self.sample_dims + 1} dims) or event frames [T, B, ...] "
                f"({self.sample_dims + 2} dims); got shape {tuple(x.shape)}"
            )
        return x

    def extra_repr(self) -> str:
        return f"steps={self.steps}"


class PSPSynapse(nn.Module):
    """TSSL-BP's first-order synapse on a spike train ``[T, ...]``: the trace the next layer receives."""

    def __init__(self, tau_s: float) -> None:
        super().__init__()
        self.tau_s = float(tau_s)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return psp_filter(spikes, self.tau_s)

    def extra_repr(self) -> str:
        return f"tau_s={self.tau_s}"


class BaselineNeuron(nn.Module):
    """A framework's LIF layer (current ``[T, ...]`` to spikes) and the synapse after it."""

    def __init__(self, lif: nn.Module, synapse: nn.Module) -> None:
        super().__init__()
        self.lif, self.synapse = lif, synapse

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        # As the native neuron: under bf16 autocast the LIF state stays float32 (and SpikingJelly's fused
        # op, which takes float32 only, still runs).
        return self.synapse(self.lif(neuron_input(current)))


class BaselineNetwork(nn.Module):
    """Encoder, then the TSSL-BP layer stack with framework neurons; ``[B, ...]`` or ``[T, B, ...]`` in,
    ``[T, B, classes]`` out. ``recipe`` (``matched`` or ``native``) fixes the synapse and the framework
    neuron's settings; :meth:`set_recipe` switches it in place (neurons and encoder only: no weights)."""

    def __init__(
        self,
        layers: nn.ModuleList,
        config: ModelConfig,
        make_lif: Callable[[float, float, str], nn.Module],
        framework: str,
        recipe: str,
    ) -> None:
        super().__init__()
        self.layers, self.config, self.make_lif, self.framework = layers, config, make_lif, framework
        self.recipe = self.synapse = None
        self.encoder: nn.Module = nn.Identity()
        self.set_recipe(recipe)

    @property
    def steps(self) -> int:
        return self.config.steps

    def set_recipe(self, recipe: str) -> None:
        """Rebuild the encoder, synapses and framework neurons for ``recipe``; the weights stay as they are."""
        if recipe not in RECIPE_SYNAPSE:
            raise ValueError(f"recipe {recipe!r} is unknown; allowed: {', '.join(RECIPE_SYNAPSE)}")
        if recipe == self.recipe:
            return
        synapse, device = RECIPE_SYNAPSE[recipe], model_device(self)
        sample_dims = len(self.config.input_shape)
        if synapse == "psp":
            self.encoder = PSPInput(self.config.steps, self.config.tau_s, sample_dims)
        else:
            self.encoder = ConstantCurrent(self.config.steps, sample_dims)
        for layer in self.layers:
            if isinstance(layer, (SpikingConv2d, SpikingLinear)):
                old = layer.neuron.lif if isinstance(layer.neuron, BaselineNeuron) else layer.neuron
                after = PSPSynapse(self.config.tau_s) if synapse == "psp" else nn.Identity()
                lif = self.make_lif(old.tau_m, old.threshold, recipe)
                layer.neuron = BaselineNeuron(lif, after).to(device)
        self.recipe, self.synapse = recipe, synapse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.encoder(x)
        for layer in self.layers:
            out = layer(out)
        return out

    def lif_layers(self) -> Iterator[tuple[str, nn.Module]]:
        """The framework LIF modules in layer order, with their module names."""
        for name, module in self.named_modules():
            if isinstance(module, BaselineNeuron):
                yield f"{name}.lif", module.lif

    def extra_repr(self) -> str:
        return f"framework={self.framework}, recipe={self.recipe}, synapse={self.synapse}"


def build_baseline_network(
    config: ModelConfig,
    make_lif: Callable[[float, float, str], nn.Module],
    *,
    framework: str,
    recipe: str,
) -> BaselineNetwork:
    """The TSSL-BP network of ``config`` with every neuron replaced by ``make_lif(tau_m, threshold, recipe)``.

    Weights are drawn exactly as the native engine draws them (same layer classes, same order), so a seeded
    build gives the native network's initial weights.
    """
    native = build_native(config, grad="surrogate")
    return BaselineNetwork(native.layers, config, make_lif, framework, recipe)


@torch.no_grad()
def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy every weight of ``source`` into ``target`` in layer order (native network to baseline or back)."""
    src, dst = list(source.parameters()), list(target.parameters())
    if len(src) != len(dst):
        raise ValueError(f"source has {len(src)} weight tensors, target {len(dst)}: not the same architecture")
    for index, (a, b) in enumerate(zip(src, dst, strict=True)):
        if a.shape != b.shape:
            raise ValueError(f"weight {index}: source shape {tuple(a.shape)} != target shape {tuple(b.shape)}")
        b.copy_(a)


def model_device(model: nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


def package_versions(*distributions: str) -> dict[str, str | None]:
    """Installed versions of the named distributions (None where one is not installed)."""
    versions: dict[str, str | None] = {}
    for dist in distributions:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def sum_over_batch(mean_loss: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """A framework loss that averages over the batch, scaled to sum over it as the shared loop expects
    (its reported loss is the mean per sample, computed as sum / samples)."""
    return mean_loss.sum() * output.shape[1]
