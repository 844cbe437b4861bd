"""Spiking networks built from architecture strings or layer specifications."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from tssl.engine.architecture import (
    ArchitectureError,
    ConvSpec,
    DropoutSpec,
    LayerSpec,
    LinearSpec,
    PoolSpec,
    parse_architecture,
    with_dropout,
)
from tssl.engine.layers import PSPInput, SpikingConv2d, SpikingLinear, SpikingNeuron, SumPool2d, TimeSharedDropout
from tssl.engine.neuron_base import GradRule, check_grad_rule


@dataclass(frozen=True)
class WeightedLayerOptions:
    """Per-layer settings of one conv or linear layer, resolved from network-wide defaults."""

    threshold: float = 1.0
    weight_scale: float = 1.0


@dataclass
class NetworkSpec:
    """Everything needed to build a network; ``layers`` includes the output layer."""

    layers: list[LayerSpec]
    input_shape: tuple[int, ...]
    steps: int
    tau_m: float = 5.0
    tau_s: float = 3.0
    padding: int = 0
    grad: GradRule = "tsslbp"
    options: list[WeightedLayerOptions] = field(default_factory=list)  # one per conv/linear layer


class SpikingNetwork(nn.Module):
    """A TSSL-BP network: PSP input filter, then conv / pooling / dropout / linear layers.

    ``forward`` takes static inputs ``[B, *input_shape]`` or event frames ``[T, B, *input_shape]`` and
    returns the output layer's traces ``[T, B, classes]``.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        check_grad_rule(spec.grad)
        if spec.steps < 1:
            raise ArchitectureError(f"the number of time steps must be >= 1; got {spec.steps}")
        self.spec = spec
        self.input_filter = PSPInput(spec.steps, spec.tau_s, len(spec.input_shape))
        self.layers = nn.ModuleList(_build_layers(spec))

    @property
    def steps(self) -> int:
        return self.spec.steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.input_filter(x)
        for layer in self.layers:
            out = layer(out)
        return out

    def spiking_neurons(self) -> Iterator[tuple[str, SpikingNeuron]]:
        """The spiking neurons in layer order, with their module names."""
        for name, module in self.named_modules():
            if isinstance(module, SpikingNeuron):
                yield name, module

    def set_grad_rule(self, grad: GradRule) -> None:
        check_grad_rule(grad)
        for _, neuron in self.spiking_neurons():
            neuron.grad = grad

    def set_recompute(self, recompute: bool) -> None:
        """Keep only each conv/linear layer's input for the backward and recompute its current and membrane
        there (saved activations about the floor's, one more forward per layer), or keep the membranes."""
        for module in self.modules():
            if isinstance(module, (SpikingConv2d, SpikingLinear)):
                module.recompute = bool(recompute)

    @property
    def recompute(self) -> bool:
        return any(m.recompute for m in self.modules() if isinstance(m, (SpikingConv2d, SpikingLinear)))


def _build_layers(spec: NetworkSpec) -> list[nn.Module]:
    weighted = [s for s in spec.layers if isinstance(s, (ConvSpec, LinearSpec))]
    if len(spec.options) != len(weighted):
        raise ArchitectureError(
            f"{len(spec.options)} per-layer option sets given for {len(weighted)} conv/linear layers"
        )
    if not weighted or not isinstance(spec.layers[-1], LinearSpec):
        raise ArchitectureError("a network must end in a linear output layer")
    shape = tuple(spec.input_shape)
    options = iter(spec.options)
    modules: list[nn.Module] = []
    for index, layer in enumerate(spec.layers):
        where = f"layer {index + 1} ({type(layer).__name__.removesuffix('Spec').lower()})"
        if isinstance(layer, (ConvSpec, LinearSpec)):
            opts = next(options)
            neuron = SpikingNeuron(spec.tau_m, spec.tau_s, opts.threshold, spec.grad)
        if isinstance(layer, ConvSpec):
            if len(shape) != 3:
                raise ArchitectureError(f"{where}: conv needs a (C, H, W) input; got shape {shape}")
            padding = spec.padding if layer.padding is None else layer.padding
            channels, height, width = shape
            height = (height + 2 * padding - layer.kernel_size) // layer.stride + 1
            width = (width + 2 * padding - layer.kernel_size) // layer.stride + 1
            modules.append(
                SpikingConv2d(
                    channels, layer.out_channels, layer.kernel_size, neuron, padding, layer.stride, opts.weight_scale
                )
            )
            shape = (layer.out_channels, height, width)
        elif isinstance(layer, PoolSpec):
            if len(shape) != 3:
                raise ArchitectureError(f"{where}: pooling needs a (C, H, W) input; got shape {shape}")
            channels, height, width = shape
            shape = (channels, height // layer.kernel_size, width // layer.kernel_size)
            modules.append(SumPool2d(layer.kernel_size))
        elif isinstance(layer, LinearSpec):
            in_features = 1
            for size in shape:
                in_features *= size
            modules.append(SpikingLinear(in_features, layer.out_features, neuron, opts.weight_scale))
            shape = (layer.out_features,)
        elif isinstance(layer, DropoutSpec):
            modules.append(TimeSharedDropout(layer.p))
        if any(size < 1 for size in shape):
            raise ArchitectureError(
                f"{where} leaves an empty output {shape} for input shape {tuple(spec.input_shape)}: "
                "use padding or a larger input"
            )
    return modules


def _per_weighted_layer(value: float | Sequence[float], count: int, name: str) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * count
    values = [float(v) for v in value]
    if len(values) != count:
        raise ArchitectureError(f"{name} has {len(values)} values for {count} conv/linear layers (output included)")
    return values


def build_network(
    architecture: str,
    input_shape: Sequence[int],
    classes: int,
    steps: int,
    *,
    tau_m: float = 5.0,
    tau_s: float = 3.0,
    threshold: float | Sequence[float] = 1.0,
    padding: int = 0,
    conv_weight_scale: float = 1.0,
    linear_weight_scale: float = 1.0,
    weight_scale: Sequence[float] | None = None,
    dropout: float = 0.0,
    grad: GradRule = "tsslbp",
) -> SpikingNetwork:
    """Build a network from a paper architecture string, e.g. ``build_network("784-400-400", (1, 28, 28), 10, 5)``.

    ``threshold`` and ``weight_scale`` take one value or one per conv/linear layer (output included);
    ``weight_scale`` overrides the conv/linear defaults. ``dropout`` inserts time-shared dropout on the
    input of every weighted layer but the first, as the authors' CIFAR-10 config does.
    """
    if classes < 1:
        raise ArchitectureError(f"classes must be >= 1; got {classes}")
    hidden = parse_architecture(architecture)
    if dropout and any(isinstance(s, DropoutSpec) for s in hidden):
        raise ArchitectureError("give dropout either as D<p> tokens in the architecture or as dropout=, not both")
    layers = with_dropout([*hidden, LinearSpec(classes)], dropout)
    weighted = [s for s in layers if isinstance(s, (ConvSpec, LinearSpec))]
    thresholds = _per_weighted_layer(threshold, len(weighted), "threshold")
    if weight_scale is None:
        scales = [conv_weight_scale if isinstance(s, ConvSpec) else linear_weight_scale for s in weighted]
    else:
        scales = _per_weighted_layer(weight_scale, len(weighted), "weight_scale")
    options = [WeightedLayerOptions(t, w) for t, w in zip(thresholds, scales, strict=True)]
    spec = NetworkSpec(layers, tuple(int(s) for s in input_shape), steps, tau_m, tau_s, padding, grad, options)
    return SpikingNetwork(spec)


def predict(output: torch.Tensor) -> torch.Tensor:
    """Class prediction from output traces ``[T, B, classes]``: argmax of the summed trace (ties: lowest)."""
    return output.sum(0).argmax(-1)
