"""A NIR graph as a network of our engine (``load_nir``), to train with TSSL-BP or to evaluate.

The graph must be a chain from its Input to its Output of layers our engine has: weights (``Conv2d``, ``Linear``,
``Affine`` with a zero bias) each followed by a ``CubaLIF``, and between layers ``SumPool2d`` (optionally followed
by a ``Scale``), ``AvgPool2d``, a uniform ``Scale`` and ``Flatten``. Where the graph's gains differ from ours (an
average pool, a sum pool without our 1.1, snnTorch's unnormalised synapse), they are folded into the next
weights: the same network in exact arithmetic. A graph we exported reads back with no folding, bit for bit.
Anything else is one :class:`NIRError` naming the node.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tssl.compat.nir.errors import NIRError, require_nir
from tssl.compat.nir.mapping import (
    DEFAULT_DT,
    NeuronConstants,
    avg_pool_fold,
    fold_into_weights,
    neuron_from_cuba_lif,
)
from tssl.engine.architecture import ArchitectureError, ConvSpec, LayerSpec, LinearSpec, PoolSpec
from tssl.engine.layers import POOL_GAIN, SpikingConv2d, SpikingLinear
from tssl.engine.network import NetworkSpec, SpikingNetwork, WeightedLayerOptions
from tssl.engine.neuron_base import GradRule, check_grad_rule

if TYPE_CHECKING:
    import nir

NODE_TYPES = "Input, Conv2d, Linear, Affine (zero bias), CubaLIF, SumPool2d, AvgPool2d, Scale, Flatten, Output"


@dataclass
class _PendingWeights:
    """A conv or linear node read, waiting for the CubaLIF that completes the layer."""

    name: str
    spec: ConvSpec | LinearSpec
    weight: np.ndarray
    gain: float  # folded into the weight when the layer is complete


@dataclass
class _GraphReader:
    """Walks the chain node by node, collecting our layer specifications and their weights."""

    shape: tuple[int, ...]
    dt: float
    layers: list[LayerSpec] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    options: list[WeightedLayerOptions] = field(default_factory=list)
    neurons: list[tuple[str, NeuronConstants]] = field(default_factory=list)
    pending: _PendingWeights | None = None
    fold: float = 1.0  # gains between layers, waiting for the next weights

    def read(self, name: str, node: Any, following: Any) -> bool:
        """Read one node; True when it also consumed ``following`` (a sum pool's Scale)."""
        nir = require_nir()
        handlers: dict[type, Callable[[str, Any], None]] = {
            nir.Conv2d: self._conv,
            nir.Linear: self._linear,
            nir.Affine: self._linear,
            nir.CubaLIF: self._neuron,
            nir.AvgPool2d: self._avg_pool,
            nir.Scale: self._scale,
            nir.Flatten: self._flatten,
        }
        if isinstance(node, nir.SumPool2d):
            return self._sum_pool(name, node, following)
        handler = handlers.get(type(node))
        if handler is None:
            raise NIRError(
                f"node {name!r} is a {type(node).__name__}, which our engine cannot represent; it reads {NODE_TYPES}"
            )
        handler(name, node)
        return False

    def _start_weights(self, name: str, spec: ConvSpec | LinearSpec, weight: np.ndarray) -> None:
        if self.pending is not None:
            raise NIRError(
                f"node {name!r} follows the weights of {self.pending.name!r} with no CubaLIF between them; each of "
                "our layers is weights then a neuron"
            )
        self.pending = _PendingWeights(name, spec, weight, self.fold)
        self.fold = 1.0

    def _conv(self, name: str, node: Any) -> None:
        weight = np.asarray(node.weight)
        _zero_bias(name, "Conv2d", node.bias)
        if len(self.shape) != 3:
            raise NIRError(f"node {name!r} (Conv2d) gets an input of shape {self.shape}; it needs (C, H, W)")
        if int(node.groups) != 1 or _pair(name, "dilation", node.dilation) != (1, 1):
            raise NIRError(f"node {name!r} (Conv2d): our convolutions have groups = 1 and dilation = 1")
        if weight.ndim != 4:
            raise NIRError(f"node {name!r} (Conv2d): weight of shape {weight.shape}; it needs (out, in, k, k)")
        out_channels, in_channels, kernel_h, kernel_w = weight.shape
        if in_channels != self.shape[0] or kernel_h != kernel_w:
            raise NIRError(
                f"node {name!r} (Conv2d): weight {weight.shape} does not take {self.shape[0]} channels with a "
                "square kernel"
            )
        stride = _square(name, "stride", _pair(name, "stride", node.stride))
        padding = _square(name, "padding", _padding(name, node.padding, kernel_h, stride))
        height = (self.shape[1] + 2 * padding - kernel_h) // stride + 1
        width = (self.shape[2] + 2 * padding - kernel_w) // stride + 1
        self._start_weights(name, ConvSpec(out_channels, kernel_h, padding, stride), weight)
        self.shape = (out_channels, height, width)

    def _linear(self, name: str, node: Any) -> None:
        kind = type(node).__name__
        weight = np.asarray(node.weight)
        if kind == "Affine":
            _zero_bias(name, kind, node.bias)
        if weight.ndim != 2 or len(self.shape) != 1 or weight.shape[1] != self.shape[0]:
            raise NIRError(
                f"node {name!r} ({kind}): weight {weight.shape} does not take an input of shape {self.shape} "
                "(a feature map needs a Flatten first)"
            )
        self._start_weights(name, LinearSpec(weight.shape[0]), weight)
        self.shape = (weight.shape[0],)

    def _neuron(self, name: str, node: Any) -> None:
        if self.pending is None:
            raise NIRError(
                f"node {name!r} (CubaLIF) has no Conv2d or Linear weights before it; each of our layers is "
                "weights then a neuron"
            )
        imported = neuron_from_cuba_lif(name, node, self.dt)
        self._same_time_constants(name, imported.constants)
        pending, self.pending = self.pending, None
        self.layers.append(pending.spec)
        self.weights.append(fold_into_weights(pending.weight, pending.gain * imported.input_gain))
        self.options.append(WeightedLayerOptions(threshold=imported.constants.threshold))
        self.neurons.append((name, imported.constants))

    def _same_time_constants(self, name: str, constants: NeuronConstants) -> None:
        if not self.neurons:
            return
        first_name, first = self.neurons[0]
        if (constants.tau_m, constants.tau_s) != (first.tau_m, first.tau_s):
            raise NIRError(
                f"node {name!r} (CubaLIF) has tau_mem / dt = {constants.tau_m:g}, tau_syn / dt = "
                f"{constants.tau_s:g} steps but {first_name!r} has {first.tau_m:g}, {first.tau_s:g}; our engine "
                "uses one tau_m and one tau_s per network"
            )

    def _between_layers(self, name: str, kind: str) -> None:
        if self.pending is not None:
            raise NIRError(
                f"node {name!r} ({kind}) sits between the weights of {self.pending.name!r} and their CubaLIF; our "
                "pooling comes after a layer's neuron"
            )

    def _pool_window(self, name: str, kind: str, node: Any) -> int:
        self._between_layers(name, kind)
        if len(self.shape) != 3:
            raise NIRError(f"node {name!r} ({kind}) gets an input of shape {self.shape}; it needs (C, H, W)")
        kernel = _square(name, "kernel_size", _pair(name, "kernel_size", node.kernel_size))
        stride = _square(name, "stride", _pair(name, "stride", node.stride))
        padding = _pair(name, "padding", node.padding)
        if stride != kernel or padding != (0, 0):
            raise NIRError(
                f"node {name!r} ({kind}): our pooling windows do not overlap and are not padded (stride = kernel "
                f"size, padding 0); got kernel {kernel}, stride {stride}, padding {padding}"
            )
        self.layers.append(PoolSpec(kernel))
        self.shape = (self.shape[0], self.shape[1] // kernel, self.shape[2] // kernel)
        return kernel

    def _sum_pool(self, name: str, node: Any, following: Any) -> bool:
        self._pool_window(name, "SumPool2d", node)
        nir = require_nir()
        if isinstance(following, nir.Scale) and np.all(np.asarray(following.scale) == np.float32(POOL_GAIN)):
            return True  # our own pooling, 1.1 x the sum: nothing to fold
        self.fold /= POOL_GAIN  # a plain sum: ours is 1.1 x the sum
        return False

    def _avg_pool(self, name: str, node: Any) -> None:
        self.fold /= avg_pool_fold(self._pool_window(name, "AvgPool2d", node))

    def _scale(self, name: str, node: Any) -> None:
        values = np.unique(np.asarray(node.scale, dtype=np.float64))
        if values.size != 1:
            raise NIRError(f"node {name!r} (Scale) scales neurons differently; our engine folds only a uniform scale")
        if self.pending is not None:
            self.pending.gain *= float(values[0])
        else:
            self.fold *= float(values[0])

    def _flatten(self, name: str, node: Any) -> None:
        self._between_layers(name, "Flatten")
        dims = len(self.shape)
        start, end = int(node.start_dim), int(node.end_dim)
        if start % dims != 0 or end % dims != dims - 1:
            raise NIRError(
                f"node {name!r} (Flatten) flattens dims {start}..{end} of {self.shape}; ours flattens all of them"
            )
        self.shape = (math.prod(self.shape),)

    def finish(self) -> None:
        if self.pending is not None:
            raise NIRError(
                f"node {self.pending.name!r}: its weights reach the Output with no CubaLIF after them; our networks "
                "end in a spiking layer"
            )
        if self.fold != 1.0:
            raise NIRError("the graph ends in pooling or scaling after its last neuron; ours ends in a spiking layer")
        if not self.neurons:
            raise NIRError("the graph has no CubaLIF layer")


def _zero_bias(name: str, kind: str, bias: Any) -> None:
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise NIRError(f"node {name!r} ({kind}) has a nonzero bias; our engine's layers have none")


def _pair(name: str, what: str, value: Any) -> tuple[int, int]:
    values = np.atleast_1d(np.asarray(value)).ravel()
    if values.size == 1:
        values = np.repeat(values, 2)
    if values.size != 2 or not np.all(values == np.round(values)):
        raise NIRError(f"node {name!r}: {what} {value!r} is not one or two whole numbers")
    return int(values[0]), int(values[1])


def _square(name: str, what: str, pair: tuple[int, int]) -> int:
    if pair[0] != pair[1]:
        raise NIRError(f"node {name!r}: {what} {pair} differs between height and width; ours is the same for both")
    return pair[0]


def _padding(name: str, padding: Any, kernel: int, stride: int) -> tuple[int, int]:
    if isinstance(padding, bytes):
        padding = padding.decode()
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same" and stride == 1 and kernel % 2 == 1:
            return (kernel - 1) // 2, (kernel - 1) // 2
        raise NIRError(f"node {name!r} (Conv2d): padding {padding!r} with kernel {kernel}, stride {stride} is not ours")
    return _pair(name, "padding", padding)


def _chain(graph: Any) -> list[tuple[str, Any]]:
    """The graph's nodes from Input to Output, which must form one chain (no branches, cycles or subgraphs)."""
    nir = require_nir()
    inputs = [name for name, node in graph.nodes.items() if isinstance(node, nir.Input)]
    outputs = [name for name, node in graph.nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRError(f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; ours have one of each")
    successors: dict[str, list[str]] = {name: [] for name in graph.nodes}
    predecessors: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for source, target in graph.edges:
        if source not in graph.nodes or target not in graph.nodes:
            raise NIRError(f"edge ({source!r}, {target!r}) names a node the graph does not have")
        successors[source].append(target)
        predecessors[target].append(source)
    order, name = [], inputs[0]
    while True:
        node = graph.nodes[name]
        if isinstance(node, nir.NIRGraph):
            raise NIRError(f"node {name!r} is a subgraph (a recurrent layer?); our engine's layers are feed-forward")
        if len(predecessors[name]) > 1 or len(successors[name]) > 1:
            raise NIRError(f"node {name!r} joins or splits the graph; our engine's networks are one chain")
        order.append((name, node))
        if name == outputs[0]:
            break
        if not successors[name]:
            raise NIRError(f"node {name!r} leads nowhere: the chain from {inputs[0]!r} never reaches the Output")
        name = successors[name][0]
        if any(name == seen for seen, _ in order):
            raise NIRError(f"node {name!r} closes a cycle; our engine's networks are feed-forward")
    if len(order) != len(graph.nodes):
        stray = sorted(set(graph.nodes) - {name for name, _ in order})
        raise NIRError(f"node {stray[0]!r} is not on the chain from Input to Output")
    return order


def _metadata_value(graph: Any, key: str) -> Any:
    value = (getattr(graph, "metadata", None) or {}).get(key)
    return value.item() if isinstance(value, np.generic) else value


def _steps(given: int | None, graph: Any) -> int:
    """T: as given (it is not part of the network: a graph may run for any number of steps), else as stated."""
    steps = given if given is not None else _metadata_value(graph, "steps")
    if steps is None:
        raise NIRError("the graph does not state its number of time steps; pass steps= to load_nir")
    if int(steps) != steps or steps < 1:
        raise NIRError(f"steps must be a whole number >= 1; got {steps!r}")
    return int(steps)


def _dt(given: float | None, graph: Any) -> float:
    """Seconds per step: what the graph states (its time constants mean nothing without it), else as given, else
    snnTorch's 1e-4 s; a given dt that contradicts the stated one is refused."""
    stated = _metadata_value(graph, "dt")
    if given is not None and stated is not None and float(given) != float(stated):
        raise NIRError(f"dt={given!r} was given, but the graph states dt = {stated!r} s")
    dt = next((value for value in (stated, given) if value is not None), DEFAULT_DT)
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds per step; got {dt!r}")
    return float(dt)


def _read_graph(source: str | os.PathLike | Any) -> Any:
    nir = require_nir()
    if isinstance(source, nir.NIRGraph):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise NIRError(f"load_nir takes a .nir path or a nir.NIRGraph, not a {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise NIRError(f"{path}: no such NIR file")
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError, AssertionError) as error:
        raise NIRError(f"{path}: nir {nir.__version__} cannot read it as a NIR graph ({error})") from None


def load_nir(
    source: str | os.PathLike | nir.NIRGraph,
    *,
    steps: int | None = None,
    dt: float | None = None,
    grad: GradRule = "tsslbp",
) -> SpikingNetwork:
    """A network of our engine equal to the NIR graph ``source`` (a ``.nir`` path or a ``nir.NIRGraph``).

    ``steps`` (T, how often a static input is presented) defaults to what the graph's metadata states and must
    be given for a graph that states none; ``dt`` (seconds per step, what the time constants are divided by) is
    the graph's own where it states one, else as given, else 1e-4 s (snnTorch's). ``grad`` is the gradient rule
    to train it with. Raises :class:`NIRError` naming the node for anything our engine cannot represent.
    """
    check_grad_rule(grad)
    graph = _read_graph(source)
    steps, dt = _steps(steps, graph), _dt(dt, graph)
    chain = _chain(graph)
    reader = _GraphReader(_input_shape(chain[0]), dt)
    position = 1
    while position < len(chain) - 1:
        name, node = chain[position]
        following = chain[position + 1][1]
        position += 2 if reader.read(name, node, following) else 1
    reader.finish()
    return _build(reader, _input_shape(chain[0]), steps, grad)


def _input_shape(entry: tuple[str, Any]) -> tuple[int, ...]:
    name, node = entry
    shape = node.input_type.get("input")
    if shape is None or np.size(shape) == 0:
        raise NIRError(f"node {name!r} (Input) states no input shape")
    return tuple(int(size) for size in np.atleast_1d(shape))


def _build(reader: _GraphReader, input_shape: Sequence[int], steps: int, grad: GradRule) -> SpikingNetwork:
    constants = reader.neurons[0][1]
    spec = NetworkSpec(reader.layers, tuple(input_shape), steps, constants.tau_m, constants.tau_s, 0, grad,
                       reader.options)
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
        try:
            network = SpikingNetwork(spec)
        except ArchitectureError as error:
            raise NIRError(f"the graph's layers do not make one of our networks: {error}") from None
    weighted = [m for m in network.layers if isinstance(m, (SpikingConv2d, SpikingLinear))]
    with torch.no_grad():
        for module, weight in zip(weighted, reader.weights, strict=True):
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
    return network
