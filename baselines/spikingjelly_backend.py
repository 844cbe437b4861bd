"""SpikingJelly 2.0 baseline: every TSSL-BP neuron replaced by ``activation_based.neuron.LIFNode`` in
multi-step mode.

The neuron: ``LIFNode(tau=tau_m, decay_input=False, v_threshold=V, v_reset=0.0, detach_reset=False,
step_mode="m")``. With ``decay_input=False`` LIFNode charges ``h[t] = v[t-1] - v[t-1]/tau + x[t]``, i.e. the
native ``u[t] = (1 - 1/tau_m) m[t-1] + x[t]``; ``v_reset=0.0`` is the hard reset to zero. (The default
``decay_input=True`` would charge ``v + (x - v)/tau``: the input scaled by 1/tau.) Two differences remain:

- SpikingJelly fires on ``h[t] >= V`` (its Heaviside is ``x >= 0``); the native engine on ``u[t] > V``. They
  differ only when the membrane lands exactly on the threshold (pinned in the equivalence tests).
- LIFNode requires ``tau > 1``; the native engine also accepts ``tau_m = 1`` (no leak memory). Asking for
  ``tau_m <= 1`` here is an error.

``detach_reset=False`` keeps the gradient through the reset (``dm/dh = (1 - s) - h * sg``), as the native
``grad="surrogate"`` backward does.

Implementation. SpikingJelly 2.0 chooses it itself: on CPU the ``sj_lif::forward`` custom op with its Torch
reference kernel; on a GPU native CUDA (only in a source build with ``SJ_BUILD_NATIVE_CUDA=1``), then Triton,
then Torch. That "fused" op runs only for float32 inputs with a built-in ``surrogate.*`` function whose
``alpha`` is a number; anything else takes the Python reference (autograd through the surrogate). The
environment variable ``SJ_LIF_CUDA_IMPLEMENTATION`` (``auto``, ``cuda``, ``triton``, ``torch``) forces one;
so does ``get_method("spikingjelly", implementation="triton")``. With ``auto`` a missing path degrades to the
next with one :class:`~tssl_baselines.common.BackendFallbackNotice` warning per device; a forced path that
cannot run is a :class:`~tssl_baselines.common.BackendUnavailableError`. What ran is read back from
``spikingjelly.activation_based.functional.neuron_implementation`` after each forward and reported by
:meth:`SpikingJellyMethod.provenance`.

Recipes (``docs/baselines.md``):

- ``matched``: PSP synapse and ``surrogate.Sigmoid(alpha=5.0)``: the native engine's sigmoid surrogate of
  width 0.2, without its clamp of the argument to [-8, 8] (the two differ where ``|u - V| > 1.6``).
- ``native``: SpikingJelly's examples ``activation_based/examples/conv_fashion_mnist.py`` and
  ``lif_fc_mnist.py`` (tutorial "Convolutional SNN to Classify FMNIST"): ``surrogate.ATan()``, spikes between
  layers, loss ``F.mse_loss(firing rate, one-hot label)``, ``torch.optim.Adam(lr)``. The neuron constants stay
  TSSL-BP's (tau_m, threshold, reset to zero).

State: LIFNode keeps ``v`` between calls; :meth:`SpikingJellyMethod.reset` calls
``spikingjelly.activation_based.functional.reset_net`` before every batch.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate
from torch import nn

from tssl.engine.neuron_base import SURROGATE_WIDTH
from tssl.methods import LossFn, ModelConfig, Recipe, check_recipe, matched_recipe

from .common import (
    RECIPE_SYNAPSE,
    BackendFallbackNotice,
    BackendUnavailableError,
    BaselineNetwork,
    LIFSequences,
    build_baseline_network,
    model_device,
    package_versions,
    sum_over_batch,
)

IMPLEMENTATIONS = ("auto", "cuda", "triton", "torch")
ENVIRONMENT_VARIABLE = "SJ_LIF_CUDA_IMPLEMENTATION"
MATCHED_ALPHA = 1.0 / SURROGATE_WIDTH  # sigmoid(alpha x)' = alpha s (1 - s): the native width 0.2
FUSED_PATH = "fused op sj_lif::forward"
REFERENCE_PATH = "Python reference (autograd through the surrogate)"
NATIVE_SOURCE = (
    "SpikingJelly 2.0 spikingjelly/activation_based/examples/conv_fashion_mnist.py and lif_fc_mnist.py "
    "(https://spikingjelly.readthedocs.io, tutorial 'Convolutional SNN to Classify FMNIST')"
)

_notified: set[tuple] = set()


def check_implementation(value: str, where: str = "implementation") -> str:
    if value not in IMPLEMENTATIONS:
        raise ValueError(
            f"{where}={value!r} is not a SpikingJelly LIF implementation; allowed: {', '.join(IMPLEMENTATIONS)}"
        )
    return value


def requested_implementation(implementation: str | None = None) -> str:
    """The implementation asked for: ``implementation`` if given, else ``$SJ_LIF_CUDA_IMPLEMENTATION``, else auto."""
    if implementation is not None:
        return check_implementation(implementation)
    return check_implementation(os.environ.get(ENVIRONMENT_VARIABLE, "auto"), f"${ENVIRONMENT_VARIABLE}")


def takes_fused_path(x: torch.Tensor, surrogate_function) -> bool:
    """Whether ``functional.lif_multi_step`` runs the ``sj_lif::forward`` op for this input and surrogate
    (its own test: a built-in spiking surrogate with a numeric alpha, and float32 input and state)."""
    from spikingjelly._ops.surrogate import _surrogate_spec

    return _surrogate_spec(surrogate_function) is not None and x.dtype == torch.float32


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _request(requested: str) -> None:
    """Point SpikingJelly's LIF selection at ``requested``, as ``SJ_LIF_CUDA_IMPLEMENTATION`` does when it is
    set before SpikingJelly is imported (SpikingJelly reads it once, at import, into this selection object)."""
    from spikingjelly._ops import lif as lif_ops

    selection = lif_ops._selection
    if selection._requested != requested:
        selection._requested = requested
        selection._selections.clear()
        selection._compiled_selections.clear()


def select_implementation(requested: str, device: torch.device, fused: bool) -> dict:
    """Make SpikingJelly's LIF run ``requested`` on ``device`` and say what will run; raise
    :class:`BackendUnavailableError` if a forced implementation cannot."""
    path = FUSED_PATH if fused else REFERENCE_PATH
    record = {"requested": requested, "device": str(device), "path": path, "unavailable": {}}
    if device.type != "cuda":
        if requested in ("cuda", "triton"):
            raise BackendUnavailableError(
                f"SpikingJelly LIF implementation {requested!r} was asked for, but it runs only on CUDA devices and "
                f"this model runs on {device}; ask for 'auto' or 'torch'"
            )
        info = sj_functional.neuron_implementation("lif", device)
        return {**record, "implementation": info["implementation"]}
    if not fused:
        if requested in ("cuda", "triton"):
            raise BackendUnavailableError(
                f"SpikingJelly LIF implementation {requested!r} was asked for, but this call takes SpikingJelly's "
                "Torch reference (it needs float32 inputs and a built-in spikingjelly surrogate for the fused op)"
            )
        return {**record, "implementation": "torch-reference"}
    _request(requested)
    try:
        info = sj_functional.neuron_implementation("lif", device)
    except RuntimeError as error:
        raise BackendUnavailableError(
            f"SpikingJelly LIF implementation {requested!r} was asked for but is unavailable on {device}: "
            f"{_first_line(error)}"
        ) from None
    unavailable = {name: _first_line(reason) for name, reason in info["unavailable"].items()}
    if unavailable and requested == "auto":
        key = (str(device), info["implementation"], tuple(sorted(unavailable)))
        if key not in _notified:
            _notified.add(key)
            missing = "; ".join(f"{name} unavailable ({reason})" for name, reason in unavailable.items())
            warnings.warn(
                f"SpikingJelly LIF on {device}: {missing}; using {info['implementation']}",
                BackendFallbackNotice,
                stacklevel=2,
            )
    return {**record, "implementation": info["implementation"], "unavailable": unavailable}


class SpikingJellyLIF(nn.Module):
    """``LIFNode`` in multi-step mode over a time-first current ``[T, ...]``; returns spikes ``[T, ...]``.
    ``ran`` holds what the last forward ran."""

    def __init__(
        self,
        tau_m: float,
        threshold: float,
        recipe: str = "matched",
        implementation: str | None = None,
        store_v_seq: bool = False,
    ) -> None:
        super().__init__()
        check_recipe(recipe)
        if not tau_m > 1:
            raise ValueError(
                f"SpikingJelly's LIFNode needs tau > 1; got tau_m={tau_m} (the native engine also takes tau_m = 1)"
            )
        self.tau_m, self.threshold, self.recipe = float(tau_m), float(threshold), recipe
        self.requested = requested_implementation(implementation)
        surrogate = sj_surrogate.Sigmoid(alpha=MATCHED_ALPHA) if recipe == "matched" else sj_surrogate.ATan()
        self.node = sj_neuron.LIFNode(
            tau=self.tau_m,
            decay_input=False,
            v_threshold=self.threshold,
            v_reset=0.0,
            surrogate_function=surrogate,
            detach_reset=False,
            step_mode="m",
            store_v_seq=store_v_seq,
        )
        self.ran: dict | None = None

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        info = select_implementation(
            self.requested, current.device, takes_fused_path(current, self.node.surrogate_function)
        )
        spikes = self.node(current)
        self.ran = info
        return spikes

    def extra_repr(self) -> str:
        return f"recipe={self.recipe}, requested={self.requested}"


class FiringRateMSELoss(nn.Module):
    """SpikingJelly's example loss: ``F.mse_loss(output spikes averaged over time, one-hot label)``, scaled to
    sum over the batch."""

    def forward(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rate = output.mean(0)
        return sum_over_batch(F.mse_loss(rate, F.one_hot(labels, rate.shape[-1]).to(rate.dtype)), output)


def adam(params, lr: float) -> torch.optim.Optimizer:
    """The examples' ``-opt adam`` choice at the task's learning rate."""
    return torch.optim.Adam(params, lr=lr)


@dataclass(frozen=True)
class SpikingJellyMethod:
    name: str = "spikingjelly"
    recipe: str = "matched"
    implementation: str | None = None  # None: $SJ_LIF_CUDA_IMPLEMENTATION, else auto

    def __post_init__(self) -> None:
        check_recipe(self.recipe)
        if self.implementation is not None:
            check_implementation(self.implementation)

    def build(self, config: ModelConfig) -> BaselineNetwork:
        make_lif = partial(SpikingJellyLIF, implementation=self.implementation)
        return build_baseline_network(config, make_lif, framework="spikingjelly", recipe=self.recipe)

    def reset(self, model: nn.Module) -> None:
        sj_functional.reset_net(model)

    def training_recipe(self, config: ModelConfig, task_loss: LossFn) -> Recipe:
        if self.recipe == "matched":
            return matched_recipe(task_loss, surrogate=f"spikingjelly surrogate.Sigmoid(alpha={MATCHED_ALPHA})")
        return Recipe(
            "native",
            FiringRateMSELoss(),
            adam,
            {
                "loss": "F.mse_loss(output firing rate, one-hot label), x batch size",
                "readout": "argmax of the output firing rate",
                "optimizer": "Adam(betas=(0.9, 0.999))",
                "surrogate": "spikingjelly surrogate.ATan(alpha=2.0)",
                "source": NATIVE_SOURCE,
            },
        )

    def provenance(self, model: nn.Module) -> dict:
        recipe = getattr(model, "recipe", self.recipe)
        layers = [m for m in model.modules() if isinstance(m, SpikingJellyLIF)]
        ran = [m.ran for m in layers if m.ran is not None]
        requested = layers[0].requested if layers else requested_implementation(self.implementation)
        record = {
            "engine": "spikingjelly",
            **package_versions("spikingjelly", "torch", "triton"),
            "recipe": recipe,
            "synapse": RECIPE_SYNAPSE[recipe],
            "neuron": "activation_based.neuron.LIFNode(decay_input=False, v_reset=0.0, detach_reset=False, "
            "step_mode='m')",
            "surrogate": f"Sigmoid(alpha={MATCHED_ALPHA})" if recipe == "matched" else "ATan(alpha=2.0)",
            "requested_implementation": requested,
            "device": str(model_device(model)),
        }
        if not ran:
            return {**record, "implementation": None, "path": None, "note": "the model has not run yet"}
        implementations = sorted({r["implementation"] for r in ran})
        paths = sorted({r["path"] for r in ran})
        unavailable: dict[str, str] = {}
        for r in ran:
            unavailable.update(r["unavailable"])
        return {
            **record,
            "implementation": implementations[0] if len(implementations) == 1 else implementations,
            "path": paths[0] if len(paths) == 1 else paths,
            "unavailable": unavailable,
        }


METHOD = SpikingJellyMethod()


@torch.no_grad()
def lif_sequences(current: torch.Tensor, tau_m: float, threshold: float, recipe: str = "matched") -> LIFSequences:
    """Run ``LIFNode`` as the ``recipe``'s network builds it over ``current`` ``[T, ...]``.

    Spikes and the post-reset membrane (``store_v_seq=True``) come from the node; LIFNode does not expose the
    pre-reset membrane, so it is recharged from the post-reset one with SpikingJelly's own charge equation,
    ``functional.lif_charge(x[t], v[t-1])``.
    """
    lif = SpikingJellyLIF(tau_m, threshold, recipe, store_v_seq=True)
    spikes = lif(current)
    after_reset = lif.node.v_seq
    before = torch.cat([torch.zeros_like(after_reset[:1]), after_reset[:-1]])
    membrane = sj_functional.lif_charge(current, before, lif.tau_m, lif.node.decay_input, lif.node.v_reset)
    return LIFSequences(membrane, spikes.bool(), after_reset)
