"""Efficiency metrics measured on an inference pass: spikes, synaptic operations, energy, model size.

Definitions follow NeuroBench 2.x (``neurobench`` on PyPI: ``SynapticOperations``, ``ActivationSparsity``,
``MembraneUpdates``, ``ParameterCount``, ``Footprint``, ``ConnectionSparsity``), with one deliberate
convention for what drives a synaptic operation, :data:`CONVENTION` (``docs/metrics.md``):

* A weighted layer's operations are counted from the *events* its input carries. Fed by a spiking layer
  (directly, or through 1.1 x sum pooling, which is linear and maps each presynaptic spike to one pooled
  unit), every presynaptic spike is one event that costs one accumulate (AC) per nonzero synapse it reaches
  (its fan-out): the PSP kernel and the pooling gain are applied at the synapse, as event-driven hardware
  would. TSSL-BP layers pass real-valued PSP traces downstream, but what hardware executes is the spikes.
* The first layer fed by a static image (a constant real-valued current over T steps, PSP-filtered or not)
  costs multiply-accumulates (MACs): nonzero input values x fan-out, at every time step. Fed by event frames
  (N-MNIST), each event costs fan-out ACs.
* The dense equivalent counts every input x every synapse (zero weights included) at every step, as MACs.
* Fan-out is exact, border effects included: the count is the sum of a convolution of the event map with the
  binarised weights (nonzero -> 1), as NeuroBench computes it; a zero weight is no synapse.

The same counting applies to every backend (``tssl``, ``tssl-surrogate``, ``snntorch`` and ``spikingjelly``
in both recipes), from the spikes that backend's own neurons emit: for the native engine the spikes of
:func:`tssl.engine.neuron.neuron_forward` on each :class:`~tssl.engine.layers.SpikingNeuron`'s input current
(the function its forward runs), for the baselines the output of each framework LIF module.

Energy is a theoretical lower bound, E = E_MAC x MACs + E_AC x ACs (45 nm CMOS, Horowitz 2014), that ignores
memory traffic, neuron updates and data movement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tssl.engine.layers import SpikingConv2d, SpikingLinear, SpikingNeuron, SumPool2d, TimeSharedDropout
from tssl.engine.neuron import neuron_forward
from tssl.records.metric_definitions import CONVENTION, E_AC_JOULES, E_MAC_JOULES, ENERGY_LABEL

ResetFn = Callable[[nn.Module], None]
_WEIGHTED = (SpikingConv2d, SpikingLinear)


def _no_reset(_model: nn.Module) -> None:
    """The native engine keeps no state between batches."""


class _LayerProbe:
    """Reads a weighted layer's neuron at every forward: its spikes summed over time and batch (the event map
    the next layer receives), its spike count and membrane updates; nothing of batch size is kept."""

    def __init__(self, layer: nn.Module) -> None:
        neuron = layer.neuron
        if isinstance(neuron, SpikingNeuron):
            self.native, module = True, neuron
        elif isinstance(getattr(neuron, "lif", None), nn.Module):
            self.native, module = False, neuron.lif
        else:
            raise TypeError(f"cannot read spikes from {type(neuron).__name__}: not a TSSL-BP or baseline neuron")
        self.event_map: torch.Tensor | None = None  # [...]: spikes per neuron, summed over T and B (float64)
        self.spikes = self.membrane_updates = 0.0
        self.neuron_states = 0  # neurons x batch
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        current = args[0].detach()
        if self.native:  # the neuron's own forward, which the engine's autograd function runs
            _, membrane, spikes = neuron_forward(current, module.tau_m, module.tau_s, module.threshold)
            updates = _membrane_updates(membrane.masked_fill_(spikes, 0.0))
        else:
            out = output.detach()
            if not bool(((out == 0) | (out == 1)).all()):
                raise ValueError(f"{type(module).__name__} emitted values other than 0 and 1: not spikes")
            spikes = out.bool()
            updates = _membrane_updates(_post_reset_membrane(current, spikes, module.tau_m))
        self.event_map = spikes.sum(dim=(0, 1), dtype=torch.float64)
        self.spikes = float(self.event_map.sum())
        self.membrane_updates = updates
        self.neuron_states = spikes[0].numel()

    def close(self) -> None:
        self.handle.remove()


@torch.no_grad()
def _post_reset_membrane(current: torch.Tensor, spikes: torch.Tensor, tau_m: float) -> torch.Tensor:
    """m[t] = (1 - s[t]) ((1 - 1/tau_m) m[t-1] + x[t]): the LIF membrane after reset, from the backend's spikes."""
    decay = 1.0 - 1.0 / tau_m
    out = torch.empty_like(current)
    mem = torch.zeros_like(current[0])
    for t in range(current.shape[0]):
        mem = torch.add(current[t], mem, alpha=decay).masked_fill(spikes[t], 0.0)
        out[t] = mem
    return out


def _membrane_updates(membrane: torch.Tensor) -> float:
    """NeuroBench's ``MembraneUpdates`` on a post-reset membrane ``[T, B, ...]``: every neuron at the first step,
    then every neuron-step whose membrane changed."""
    changed = (membrane[1:] != membrane[:-1]).sum() if membrane.shape[0] > 1 else 0
    return float(membrane[0].numel() + changed)


def _encoder(model: nn.Module) -> nn.Module:
    for name in ("input_filter", "encoder"):
        module = getattr(model, name, None)
        if module is not None and hasattr(module, "sample_dims"):
            return module
    raise TypeError(f"{type(model).__name__} has no input encoder (input_filter / encoder with sample_dims)")


def _route_events(events: torch.Tensor, modules: list[nn.Module]) -> torch.Tensor:
    """Carry an event-count map ``[N, ...]`` through the non-weighted layers between two weighted ones: sum
    pooling maps each event to one pooled unit (the 1.1 gain belongs to the synapse), dropout is off."""
    for module in modules:
        if isinstance(module, SumPool2d):
            k = module.kernel_size
            events = F.avg_pool2d(events, k, stride=k, divisor_override=1)
        elif isinstance(module, TimeSharedDropout):
            continue  # identity at inference
        else:
            raise TypeError(f"no event routing through {type(module).__name__}")
    return events


def _route_values(x: torch.Tensor, modules: list[nn.Module]) -> torch.Tensor:
    """A static input ``[B, ...]`` through the non-weighted layers before the first weighted one, as computed."""
    for module in modules:
        if isinstance(module, SumPool2d):
            x = module(x.unsqueeze(0))[0]
        elif not isinstance(module, TimeSharedDropout):
            raise TypeError(f"no routing of a static input through {type(module).__name__}")
    return x


def _fan_out_sum(layer: nn.Module, event_map: torch.Tensor, weights: torch.Tensor) -> float:
    """sum_i events[i] x (synapses of input i), exact at the borders: the convolution (or product) of the
    event map summed over time and batch ``[1, ...]`` with ``weights`` (binarised or all ones), summed."""
    if isinstance(layer, SpikingConv2d):
        out = F.conv2d(event_map, weights, padding=layer.padding, stride=layer.stride)
        return float(out.sum())
    return float(event_map.reshape(-1) @ weights.sum(0))


def _layer_info(name: str, layer: nn.Module) -> dict[str, Any]:
    weight = layer.weight
    if isinstance(layer, SpikingConv2d):
        kind = f"conv {weight.shape[0]}C{weight.shape[-1]} (padding {layer.padding}, stride {layer.stride})"
    else:
        kind = f"linear {weight.shape[1]}->{weight.shape[0]}"
    return {"name": name, "kind": kind}


@torch.no_grad()
def measure_efficiency(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    reset: ResetFn | None = None,
) -> dict[str, Any]:
    """Spikes, synaptic operations, energy and size of ``model`` over ``batches`` (an inference pass).

    ``model`` is a native :class:`~tssl.engine.network.SpikingNetwork` or a baseline network
    (:class:`tssl_baselines.common.BaselineNetwork`); ``reset`` is the method's state reset, called before every
    batch. Returns a JSON-serialisable dict: counts are per sample (means over the samples seen), rates are
    fractions; ``layers`` holds one entry per conv / linear layer in order. See ``docs/metrics.md``.
    """
    reset = reset or _no_reset
    encoder = _encoder(model)
    steps = int(model.steps)
    sequence = list(model.layers)
    weighted = [(i, m) for i, m in enumerate(sequence) if isinstance(m, _WEIGHTED)]
    if not weighted:
        raise TypeError(f"{type(model).__name__} has no conv / linear layers to measure")
    names = {id(m): n for n, m in model.named_modules()}
    probes = [_LayerProbe(layer) for _, layer in weighted]
    # Binarised (nonzero -> 1) and all-ones weights in float64: the counts are integers, exact up to 2**53.
    binary = [(layer.weight.detach() != 0).to(torch.float64) for _, layer in weighted]
    ones = [torch.ones_like(b) for b in binary]
    between = [sequence[(weighted[j - 1][0] + 1 if j else 0) : index] for j, (index, _) in enumerate(weighted)]
    totals = [dict.fromkeys(("macs", "acs", "dense", "spikes", "membrane_updates"), 0.0) for _ in weighted]
    neurons = [0] * len(weighted)
    dense: list[float | None] = [None] * len(weighted)
    input_kind = None
    samples = 0
    was_training = model.training
    model.eval()
    try:
        for inputs, _labels in batches:
            inputs = inputs.to(device)
            reset(model)
            model(inputs)
            static = inputs.dim() == encoder.sample_dims + 1
            batch = inputs.shape[0] if static else inputs.shape[1]
            kind = "static" if static else "events"
            if input_kind not in (None, kind):
                raise ValueError("batches mix static inputs and event frames")
            input_kind = kind
            samples += batch
            for j, ((_, layer), probe) in enumerate(zip(weighted, probes, strict=True)):
                if probe.event_map is None:
                    raise RuntimeError(f"layer {names.get(id(layer))} did not run")
                if j == 0 and static:
                    values = _route_values(inputs.to(torch.float64), between[0])
                    event_map = (values != 0).to(torch.float64).sum(0, keepdim=True)
                    totals[0]["macs"] += steps * _fan_out_sum(layer, event_map, binary[0])
                else:
                    if j == 0:
                        if bool((inputs < 0).any()) or not torch.equal(inputs, inputs.round()):
                            raise ValueError("event frames must hold event counts (non-negative integers)")
                        event_map = inputs.sum(dim=(0, 1), dtype=torch.float64)
                    else:
                        event_map = probes[j - 1].event_map
                    # Sum pooling is linear: routing the summed events equals summing the routed ones.
                    event_map = _route_events(event_map.unsqueeze(0), between[j])
                    totals[j]["acs"] += _fan_out_sum(layer, event_map, binary[j])
                if dense[j] is None:  # every input x every synapse: the same for every sample
                    dense[j] = _fan_out_sum(layer, torch.ones_like(event_map), ones[j])
                totals[j]["dense"] += steps * batch * dense[j]
                totals[j]["spikes"] += probe.spikes
                totals[j]["membrane_updates"] += probe.membrane_updates
                neurons[j] = probe.neuron_states // batch
            for probe in probes:
                probe.event_map = None
    finally:
        for probe in probes:
            probe.close()
        model.train(was_training)
    if samples == 0:
        raise ValueError("no batches: nothing to measure")
    return _summary(model, weighted, names, totals, neurons, steps, samples, input_kind)


def _summary(model, weighted, names, totals, neurons, steps, samples, input_kind) -> dict[str, Any]:
    layers = []
    for j, ((_, layer), total, count) in enumerate(zip(weighted, totals, neurons, strict=True)):
        weight = layer.weight.detach()
        per = {key: value / samples for key, value in total.items()}
        source = "static input (MAC)" if input_kind == "static" else "events (AC)"
        layers.append({
            **_layer_info(names.get(id(layer), f"layer{j}"), layer),
            "input": source if j == 0 else "spikes (AC)",
            "neurons": count,
            "synapses": weight.numel(),
            "parameters": weight.numel(),
            "connection_sparsity": float((weight == 0).sum()) / weight.numel(),
            "spikes_per_sample": per["spikes"],
            "firing_rate": per["spikes"] / (count * steps) if count else 0.0,
            "macs": per["macs"],
            "acs": per["acs"],
            "synops": per["macs"] + per["acs"],
            "dense_synops": per["dense"],
            "membrane_updates": per["membrane_updates"],
            "neuron_updates": count * steps,
            "energy_joules": E_MAC_JOULES * per["macs"] + E_AC_JOULES * per["acs"],
        })  # fmt: skip
    macs, acs = sum(lay["macs"] for lay in layers), sum(lay["acs"] for lay in layers)
    spikes, total_neurons = sum(lay["spikes_per_sample"] for lay in layers), sum(neurons)
    dense = sum(lay["dense_synops"] for lay in layers)
    firing_rate = spikes / (total_neurons * steps) if total_neurons else 0.0
    weights = [layer.weight.detach() for _, layer in weighted]
    zeros, count = sum(float((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)
    result = {
        "convention": CONVENTION,
        "split": "test",
        "samples": samples,
        "steps": steps,
        "input": input_kind,
        "layers": layers,
        "neurons": total_neurons,
        "spikes_per_sample": spikes,
        "firing_rate": firing_rate,
        "activation_sparsity": 1.0 - firing_rate,
        "macs": macs,
        "acs": acs,
        "synops_total": macs + acs,
        "dense_synops": dense,
        "membrane_updates": sum(lay["membrane_updates"] for lay in layers),
        "neuron_updates": total_neurons * steps,
        "energy_joules": E_MAC_JOULES * macs + E_AC_JOULES * acs,
        "energy_dense_joules": E_MAC_JOULES * dense,
        "energy_model": {"e_mac_joules": E_MAC_JOULES, "e_ac_joules": E_AC_JOULES, "label": ENERGY_LABEL},
        "parameter_count": parameter_count(model),
        "footprint_bytes": footprint_bytes(model),
        "connection_sparsity": zeros / count if count else 0.0,
    }
    for key, value in result.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"efficiency metric {key} is not finite: {value}")
    return result


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (NeuroBench ``ParameterCount``)."""
    return sum(p.numel() for p in model.parameters())


def footprint_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and persistent buffers (what ``state_dict`` saves). NeuroBench's ``Footprint``
    also counts non-persistent buffers, i.e. run-time state such as snntorch's membrane ``Leaky.mem``, whose
    size depends on the last batch; that is left out here."""
    seen: set[int] = set()
    total = 0
    for tensor in model.state_dict(keep_vars=True).values():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total
