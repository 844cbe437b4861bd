"""Build networks from the authors' TSSL-BP YAML network files and load their checkpoints.

``build(config_yaml, state_dict=None, input_shape=None)`` returns ``(net, loss_fn)``: ``net`` is a
:class:`~tssl.engine.network.SpikingNetwork` whose ``parameters()`` follow the authors' parameter order (conv and
linear layers in YAML order), ``loss_fn(out, labels)`` is the config's loss summed over the batch.
A checkpoint uses the authors' keys ``my_parameters.i``; 5-D conv weights ``(out, in, k, k, 1)`` are accepted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from tssl.engine.architecture import ConvSpec, DropoutSpec, LayerSpec, LinearSpec, PoolSpec
from tssl.engine.kernel_target import authors_define
from tssl.engine.losses import desired_pattern_error, make_loss
from tssl.engine.network import NetworkSpec, SpikingNetwork, WeightedLayerOptions


class OfficialConfigError(ValueError):
    """A YAML network file that the authors' code would not build, or a checkpoint that does not fit it."""


LAYER_TYPES = ("conv", "linear", "pooling", "dropout")
# Input shapes of the datasets the authors' configs name, for when the caller gives none.
DATASET_INPUT_SHAPES = {
    "MNIST": (1, 28, 28),
    "FashionMNIST": (1, 28, 28),
    "NMNIST_Spiking": (2, 34, 34),
    "NMNIST": (2, 34, 34),
    "CIFAR10": (3, 32, 32),
}


def _read_config(config_yaml: str | os.PathLike) -> tuple[dict[str, Any], str]:
    if isinstance(config_yaml, os.PathLike) or (
        isinstance(config_yaml, str) and "\n" not in config_yaml and config_yaml.endswith((".yaml", ".yml"))
    ):
        path = Path(config_yaml)
        try:
            return yaml.safe_load(path.read_text()), str(path)
        except OSError as error:
            raise OfficialConfigError(f"{path}: cannot read the network file ({error.strerror})") from None
    return yaml.safe_load(config_yaml), "<config text>"


def _require(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise OfficialConfigError(f"{where}: missing key {key!r}")
    return section[key]


def _layer_specs(layers: Mapping[str, Any], source: str, input_shape: tuple[int, ...]):
    specs: list[LayerSpec] = []
    options: list[WeightedLayerOptions] = []
    names: list[str] = []
    shape = input_shape
    for name, layer in layers.items():
        where = f"{source}: Layers.{name}"
        if not isinstance(layer, Mapping):
            raise OfficialConfigError(f"{where}: expected a mapping of layer settings")
        kind = _require(layer, "type", where)
        if kind == "conv":
            in_channels = int(_require(layer, "in_channels", where))
            if len(shape) != 3 or shape[0] != in_channels:
                raise OfficialConfigError(f"{where}: in_channels={in_channels} but the layer receives shape {shape}")
            kernel, padding = int(_require(layer, "kernel_size", where)), int(layer.get("padding", 0))
            stride = int(layer.get("stride", 1))
            spec = ConvSpec(int(_require(layer, "out_channels", where)), kernel, padding, stride)
            size = [(s + 2 * padding - kernel) // stride + 1 for s in shape[1:]]
            shape = (spec.out_channels, *size)
        elif kind == "pooling":
            spec = PoolSpec(int(_require(layer, "kernel_size", where)))
            shape = (shape[0], *[s // spec.kernel_size for s in shape[1:]])
        elif kind == "linear":
            n_inputs, flat = int(_require(layer, "n_inputs", where)), 1
            for size in shape:
                flat *= size
            if n_inputs != flat:
                raise OfficialConfigError(f"{where}: n_inputs={n_inputs} but the layer receives {flat} ({shape})")
            spec = LinearSpec(int(_require(layer, "n_outputs", where)))
            shape = (spec.out_features,)
        elif kind == "dropout":
            spec = DropoutSpec(float(_require(layer, "p", where)))
        else:
            raise OfficialConfigError(f"{where}: type {kind!r} is not supported; allowed: {', '.join(LAYER_TYPES)}")
        if isinstance(spec, (ConvSpec, LinearSpec)):
            options.append(
                WeightedLayerOptions(float(layer.get("threshold", 1.0)), float(layer.get("weight_scale", 1.0)))
            )
        specs.append(spec)
        names.append(str(name))
    return specs, options, names


def load_state_dict(net: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy an authors'-format checkpoint (``my_parameters.i``) into ``net``'s weights, in order."""
    params = list(net.parameters())
    expected = [f"my_parameters.{i}" for i in range(len(params))]
    missing = [key for key in expected if key not in state_dict]
    extra = sorted(set(state_dict) - set(expected))
    if missing or extra:
        raise OfficialConfigError(
            f"checkpoint keys do not fit the network: missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    with torch.no_grad():
        for key, param in zip(expected, params, strict=True):
            value = state_dict[key]
            if value.dim() == 5 and value.shape[-1] == 1:  # the authors' Conv3d weight (out, in, k, k, 1)
                value = value.squeeze(-1)
            if value.shape != param.shape:
                raise OfficialConfigError(
                    f"checkpoint {key} has shape {tuple(value.shape)}; the network needs {tuple(param.shape)}"
                )
            param.copy_(value)


def build(
    config_yaml: str | os.PathLike,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    input_shape: tuple[int, int, int] | None = None,
) -> tuple[SpikingNetwork, nn.Module]:
    """Build ``(net, loss_fn)`` from one of the authors' YAML network files (its text or its path)."""
    config, source = _read_config(config_yaml)
    if not isinstance(config, Mapping):
        raise OfficialConfigError(f"{source}: expected the sections 'Network' and 'Layers'")
    network = _require(config, "Network", source)
    layers = _require(config, "Layers", source)
    if input_shape is None:
        dataset = network.get("dataset")
        if dataset not in DATASET_INPUT_SHAPES:
            raise OfficialConfigError(
                f"{source}: Network.dataset={dataset!r} has no known input shape; pass input_shape=(C, H, W)"
            )
        input_shape = DATASET_INPUT_SHAPES[dataset]
    where = f"{source}: Network"
    steps = int(_require(network, "n_steps", where))
    tau_m, tau_s = float(_require(network, "tau_m", where)), float(_require(network, "tau_s", where))
    specs, options, names = _layer_specs(layers, source, tuple(input_shape))
    n_class = network.get("n_class")
    if n_class is not None and (not isinstance(specs[-1], LinearSpec) or specs[-1].out_features != int(n_class)):
        raise OfficialConfigError(f"{where}: n_class={n_class} but the last layer is not a linear layer of that size")
    net = SpikingNetwork(NetworkSpec(specs, tuple(input_shape), steps, tau_m, tau_s, 0, "tsslbp", options))
    net.layer_names = names
    if state_dict is not None:
        load_state_dict(net, state_dict)
    loss_name = str(_require(network, "loss", where))
    if loss_name == "kernel" and not authors_define(steps, "final"):  # their code has no target here: no fill
        raise OfficialConfigError(f"{where}: {desired_pattern_error(steps)}")
    try:
        loss_fn = make_loss(
            loss_name,
            steps,
            tau_s,
            desired_count=network.get("desired_count"),
            undesired_count=network.get("undesired_count"),
        )
    except ValueError as error:
        raise OfficialConfigError(f"{where}: {error}") from None
    return net, loss_fn
