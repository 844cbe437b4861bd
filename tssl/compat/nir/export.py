"""A trained network of our engine as a NIR graph (``export_nir``); the mapping is in ``mapping`` and docs/nir.md.

Node by node: conv -> ``Conv2d`` (zero bias), linear -> ``Flatten`` where the input is a feature map, then
``Linear``; each layer's neuron -> ``CubaLIF``; the 1.1 x sum pooling -> ``SumPool2d`` + ``Scale(1.1)``, or with
``pooling="avg"`` -> ``AvgPool2d`` with ``k * k * 1.1`` folded into the next layer's weights (for readers without
``SumPool2d`` or ``Scale``, such as snnTorch 1.0); dropout is the identity at inference and leaves no node.
The input filter is the first CubaLIF's synapse. The graph's output is the last layer's spikes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from torch import nn

from tssl.compat.nir.errors import NIRError, require_nir
from tssl.compat.nir.mapping import (
    DEFAULT_DT,
    NeuronConstants,
    avg_pool_fold,
    cuba_lif_parameters,
    fold_into_weights,
)
from tssl.engine.layers import POOL_GAIN, SpikingConv2d, SpikingLinear, SpikingNeuron, SumPool2d, TimeSharedDropout
from tssl.engine.network import SpikingNetwork

if TYPE_CHECKING:
    import nir

Pooling = Literal["sum", "avg"]
POOLINGS: tuple[str, ...] = ("sum", "avg")
PRODUCER = "tssl-bench"


def _readout(steps: int, tau_s: float) -> str:
    return (
        f"class = argmax over the output neurons of sum_t (1 - (1 - 1/{tau_s:g}) ** ({steps} - t)) s[t], "
        f"t = 0 .. {steps - 1}: the summed PSP trace of the output spikes (tssl.predict)"
    )


def _input_encoding(network: SpikingNetwork) -> str:
    return (
        f"a static input is fed unchanged at each of the {network.steps} steps (a constant current); event "
        "frames one per step; the engine's PSP input filter is the first CubaLIF's synapse"
    )


def _neuron_constants(neuron: SpikingNeuron, network: SpikingNetwork, where: str) -> NeuronConstants:
    # One network-wide tau_s: each layer's trace is the next CubaLIF's synapse and the input filter the first's.
    if (neuron.tau_m, neuron.tau_s) != (network.spec.tau_m, network.spec.tau_s):
        raise NIRError(
            f"{where}: its neuron has tau_m = {neuron.tau_m:g}, tau_s = {neuron.tau_s:g}, the network "
            f"tau_m = {network.spec.tau_m:g}, tau_s = {network.spec.tau_s:g}; the export needs one pair per network"
        )
    return NeuronConstants(neuron.tau_m, neuron.tau_s, neuron.threshold)


def _graph_nodes(network: SpikingNetwork, dt: float, pooling: Pooling) -> tuple[dict[str, Any], tuple[int, ...]]:
    """The nodes in order, Input first, and the shape of the last layer (the graph's output)."""
    nir = require_nir()
    shape = tuple(network.spec.input_shape)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(shape))}
    fold = 1.0  # average pools' k * k * 1.1, waiting for the next conv or linear layer's weights
    for index, layer in enumerate(network.layers, start=1):
        where = f"layer {index} ({type(layer).__name__})"
        if isinstance(layer, SpikingConv2d):
            weight = fold_into_weights(layer.weight.detach().cpu().numpy(), fold)
            fold = 1.0
            conv = nir.Conv2d(
                input_shape=shape[1:],
                weight=weight,
                stride=(layer.stride, layer.stride),
                padding=(layer.padding, layer.padding),
                dilation=(1, 1),
                groups=1,
                bias=np.zeros(weight.shape[0], dtype=weight.dtype),  # our layers have none; readers want one
            )
            shape = tuple(int(size) for size in conv.output_type["output"])
            nodes[f"conv_{index}"] = conv
            constants = _neuron_constants(layer.neuron, network, where)
            nodes[f"lif_{index}"] = nir.CubaLIF(**cuba_lif_parameters(constants, shape, dt))
        elif isinstance(layer, SpikingLinear):
            if len(shape) > 1:  # our linear layer flattens (C, H, W) in that order, as NIR's Flatten does
                nodes[f"flatten_{index}"] = nir.Flatten(input_type=np.array(shape), start_dim=0, end_dim=-1)
            weight = fold_into_weights(layer.weight.detach().cpu().numpy(), fold)
            fold = 1.0
            nodes[f"linear_{index}"] = nir.Linear(weight=weight)
            shape = (weight.shape[0],)
            constants = _neuron_constants(layer.neuron, network, where)
            nodes[f"lif_{index}"] = nir.CubaLIF(**cuba_lif_parameters(constants, shape, dt))
        elif isinstance(layer, SumPool2d):
            k = layer.kernel_size
            window, no_padding = np.array([k, k]), np.zeros(2, dtype=np.int64)  # integers: readers pass them to torch
            shape = (shape[0], shape[1] // k, shape[2] // k)  # floor mode, as ours: a ragged edge is dropped
            if pooling == "sum":
                nodes[f"sumpool_{index}"] = nir.SumPool2d(kernel_size=window, stride=window, padding=no_padding)
                nodes[f"gain_{index}"] = nir.Scale(scale=np.full(shape, POOL_GAIN, dtype=np.float32))
            else:
                nodes[f"avgpool_{index}"] = nir.AvgPool2d(kernel_size=window, stride=window, padding=no_padding)
                fold *= avg_pool_fold(k)
        elif isinstance(layer, TimeSharedDropout):
            continue  # the identity at inference
        else:
            raise NIRError(f"{where} has no NIR counterpart; the export knows conv, linear, sum pooling, dropout")
    if fold != 1.0:  # cannot happen in a built network (it ends in a linear layer); guards a hand-made one
        raise NIRError("an average pool's factor has no later weights to fold into: end the network in a layer")
    return nodes, shape


def export_nir(
    network: nn.Module,
    path: str | os.PathLike | None = None,
    *,
    dt: float = DEFAULT_DT,
    pooling: Pooling = "sum",
    metadata: Mapping[str, Any] | None = None,
) -> nir.NIRGraph:
    """The trained ``network`` (a :class:`~tssl.engine.network.SpikingNetwork`) as a NIR graph, also written to ``path``
    when one is given.

    ``dt`` is the seconds per step the time constants are written at (snnTorch 1.0 reads graphs at 1e-4 s).
    ``pooling="sum"`` writes pooling as ``SumPool2d`` + ``Scale(1.1)`` (exact, and what :func:`load_nir` reads
    back bit for bit); ``"avg"`` as ``AvgPool2d`` with ``k * k * 1.1`` folded into the next layer's weights.
    ``metadata`` is added to the graph's (which states dt, T, tau_m, tau_s, the input encoding and the readout).
    """
    nir = require_nir()
    if not isinstance(network, SpikingNetwork):
        raise NIRError(
            "export_nir takes a network of our engine (tssl.engine.network.SpikingNetwork), "
            f"not a {type(network).__name__}"
        )
    if pooling not in POOLINGS:
        raise NIRError(f"pooling={pooling!r} is not a form; allowed: {', '.join(POOLINGS)}")
    if not (isinstance(dt, (int, float)) and dt > 0):
        raise NIRError(f"dt must be a positive number of seconds per step; got {dt!r}")
    spec = network.spec
    stated = {
        "producer": PRODUCER,
        "dt": float(dt),
        "steps": int(spec.steps),
        "tau_m": float(spec.tau_m),
        "tau_s": float(spec.tau_s),
        "input_encoding": _input_encoding(network),
        "readout": _readout(spec.steps, spec.tau_s),
    }
    clashing = sorted(set(metadata or {}) & set(stated))
    if clashing:  # load_nir reads dt and steps from here: they must describe the graph
        raise NIRError(f"metadata key {clashing[0]!r} is the export's own; pass it as an argument or rename it")
    nodes, output_shape = _graph_nodes(network, float(dt), pooling)
    nodes["output"] = nir.Output(output_type=np.array(output_shape))
    graph = nir.NIRGraph(nodes=nodes, edges=list(pairwise(nodes)), metadata={**stated, **(metadata or {})})
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        nir.write(path, graph)
    return graph
