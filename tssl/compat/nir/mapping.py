"""Our neuron, PSP synapse, pooling and readout in NIR's terms, both ways (the derivation is in docs/nir.md).

Our layer, in steps (docs/tsslbp-spec.md section 1), with ``as = 1 - 1/tau_s``, ``am = 1 - 1/tau_m``::

    x[t] = W a_prev[t]                  a_prev[t] = as a_prev[t-1] + s_prev[t] / tau_s   (the PSP trace)
    u[t] = am m[t-1] + x[t]             s[t] = u[t] > V           m[t] = u[t] (1 - s[t])

``W`` is linear and the trace filter is the same for every presynaptic neuron, so ``x`` is also the current of
a first-order synapse after ``W``: ``x[t] = as x[t-1] + (W s_prev)[t] / tau_s``. That is NIR's CubaLIF
(``tau_syn I' = -I + w_in S``, ``tau_mem v' = v_leak - v + R I``) stepped by forward Euler at ``dt`` under
``tau_syn = tau_s dt``, ``tau_mem = tau_m dt``, ``R = tau_m``, ``w_in = 1``, ``v_leak = v_reset = 0``,
``v_threshold = V``. Our network's input filter becomes the first CubaLIF's synapse, each layer's trace the
next CubaLIF's synapse, and the last layer's trace is the readout (:func:`output_scores`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tssl.compat.nir.errors import NIRError
from tssl.engine.layers import POOL_GAIN
from tssl.engine.neuron import psp_filter

# Seconds per step written into exported graphs and assumed for graphs that do not state theirs: snnTorch 1.0's
# NIR importer and exporter both fix dt = 1e-4 s, so a graph meant for it must use this dt.
DEFAULT_DT = 1e-4


@dataclass(frozen=True)
class NeuronConstants:
    """One layer's neuron in our engine's units: time constants in steps, the threshold."""

    tau_m: float
    tau_s: float
    threshold: float


@dataclass(frozen=True)
class ImportedNeuron:
    """A CubaLIF node as our neuron, and the factor to multiply its incoming weights by.

    ``input_gain`` is ``w_in R / (tau_mem / dt)``: how much more the NIR node's membrane moves per unit of input
    than ours does (our synapse adds ``input / tau_s``, our membrane adds the current unscaled). It is exactly 1
    for graphs we export and ``tau_s`` for snnTorch's (its synapse adds the input unscaled).
    """

    constants: NeuronConstants
    input_gain: float


def cuba_lif_parameters(constants: NeuronConstants, shape: tuple[int, ...], dt: float) -> dict[str, np.ndarray]:
    """The CubaLIF fields for a layer of ``shape`` neurons with ``constants``, stepped at ``dt`` seconds.

    Float64, so that :func:`steps_from_seconds` gets the time constants back exactly.
    """
    def full(value: float) -> np.ndarray:
        return np.full(shape, value, dtype=np.float64)

    return {
        "tau_syn": full(constants.tau_s * dt),
        "tau_mem": full(constants.tau_m * dt),
        # Forward Euler adds (dt R / tau_mem) I per step; ours adds I unscaled: R = tau_mem / dt = tau_m.
        "r": full(constants.tau_m),
        "v_leak": full(0.0),
        "v_threshold": full(constants.threshold),
        "v_reset": full(0.0),
        # Forward Euler adds (dt w_in / tau_syn) S = w_in S / tau_s per step; ours adds S / tau_s: w_in = 1.
        "w_in": full(1.0),
    }


def steps_from_seconds(tau: float, dt: float) -> float:
    """``tau / dt``, undoing the float64 rounding of ``tau = steps * dt``: of the values within a few ulps of
    the quotient whose product with ``dt`` gives ``tau`` back exactly, the one with the shortest decimal form
    (``3.0``, not ``3.0000000000000004``). Without an exact one, the quotient itself."""
    quotient = tau / dt
    candidates = [quotient]
    below = above = quotient
    for _ in range(4):
        below, above = math.nextafter(below, -math.inf), math.nextafter(above, math.inf)
        candidates += [below, above]
    exact = [value for value in candidates if value * dt == tau]
    if not exact:
        return quotient
    return min(exact, key=lambda value: (len(repr(value)), abs(value - quotient)))


def _uniform(node_name: str, field: str, values: object) -> float:
    """The one value every neuron of the node has for ``field``; our layers have one value per layer."""
    array = np.asarray(values, dtype=np.float64)
    unique = np.unique(array)
    if unique.size != 1:
        raise NIRError(
            f"node {node_name!r} (CubaLIF): {field} differs between neurons ({unique.size} values); our engine "
            "gives every neuron of a layer the same constants"
        )
    value = float(unique[0])
    if not math.isfinite(value):
        raise NIRError(f"node {node_name!r} (CubaLIF): {field} is {value}, not a finite number")
    return value


def neuron_from_cuba_lif(node_name: str, node: object, dt: float) -> ImportedNeuron:
    """Our neuron for the CubaLIF ``node``, read at ``dt`` seconds per step; NIRError names what does not fit."""
    fields = {field: _uniform(node_name, field, getattr(node, field))
              for field in ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")}
    for field in ("v_leak", "v_reset"):
        if fields[field] != 0.0:
            raise NIRError(
                f"node {node_name!r} (CubaLIF): {field} = {fields[field]:g}; our neuron leaks towards 0 and "
                "resets to 0"
            )
    tau_s = steps_from_seconds(fields["tau_syn"], dt)
    tau_m = steps_from_seconds(fields["tau_mem"], dt)
    if tau_s < 1 or tau_m < 1:
        raise NIRError(
            f"node {node_name!r} (CubaLIF): tau_syn / dt = {tau_s:g} and tau_mem / dt = {tau_m:g} steps at dt = "
            f"{dt:g} s; our neuron needs both >= 1 step (pass the graph's dt if it is not {dt:g} s)"
        )
    gain = fields["w_in"] * (fields["r"] / tau_m)
    if gain == 0.0:
        raise NIRError(f"node {node_name!r} (CubaLIF): w_in R = 0, so no input reaches the membrane")
    return ImportedNeuron(NeuronConstants(tau_m, tau_s, fields["v_threshold"]), gain)


def avg_pool_fold(kernel_size: int) -> float:
    """What the weights after an average pool are multiplied by so that it pools as ours: ``k * k * 1.1``."""
    return kernel_size * kernel_size * POOL_GAIN


def fold_into_weights(weight: np.ndarray, factor: float) -> np.ndarray:
    """``weight`` times ``factor`` as float32, rounded once; the very same values when ``factor`` is 1, so that
    our own graphs travel bit for bit."""
    if factor == 1.0:
        return weight.astype(np.float32, copy=False)
    return (weight.astype(np.float64) * factor).astype(np.float32)


def output_scores(spikes: torch.Tensor, tau_s: float) -> torch.Tensor:
    """Our readout of output spikes ``[T, B, classes]``: the summed PSP trace (what ``tssl.predict`` ranks),
    ``sum_t (1 - (1 - 1/tau_s) ** (T - t)) s[t]`` for t = 0 .. T-1, computed with the engine's own filter."""
    return psp_filter(spikes, tau_s).sum(0)
