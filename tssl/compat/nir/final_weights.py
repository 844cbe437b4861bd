"""A finished run's trained network kept as ``final.pt`` (``save_final_weights``), rebuilt from it
(``load_final_network``) and exported to NIR (``export_run``). The format is in docs/nir.md.

``final.pt`` holds only what rebuilding needs: the state dict (on the CPU), the run's provenance config (the
record's ``provenance.config``: the task's settings, method and seed), the input shape and the class count;
not the optimiser or RNG states of ``checkpoint.pt``. Saving needs neither nir nor a native method, so the
runner may keep every run's weights; export is for runs of the native engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tssl.compat.nir.errors import NIRError
from tssl.compat.nir.export import Pooling, export_nir
from tssl.compat.nir.load import load_nir
from tssl.compat.nir.mapping import DEFAULT_DT
from tssl.engine.network import SpikingNetwork

if TYPE_CHECKING:
    import nir

FINAL_WEIGHTS = "final.pt"
# Beside final.pt for a run whose task built its network from a NIR graph (the suite key ``nir``): the graph the
# run trained (its config names it by SHA-256), from which the network is rebuilt.
SOURCE_GRAPH = "source.nir"
FORMAT = "tssl-final-weights"
FORMAT_VERSION = 1


def save_final_weights(
    model: nn.Module,
    run_config: Mapping[str, Any],
    input_shape: Sequence[int],
    classes: int,
    path: str | os.PathLike,
) -> Path:
    """Write ``model``'s trained weights and what rebuilds it to ``path``: a ``.pt`` file, or else a run folder
    (created if missing) to put ``final.pt`` in; returns the file written. Written to a temporary name first, so
    a crash leaves no half-written file."""
    path = _final_weights_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, nn.parallel.DistributedDataParallel):  # keep the network, not the wrapper's key prefix
        model = model.module
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {key: value.detach().cpu() if isinstance(value, torch.Tensor) else value
                  for key, value in model.state_dict().items()},
        "config": dict(run_config),
        "input_shape": [int(size) for size in input_shape],
        "classes": int(classes),
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def _final_weights_path(path: str | os.PathLike) -> Path:
    """``path`` itself when it names a ``.pt`` file, else ``final.pt`` in the run folder ``path``."""
    path = Path(path)
    return path if path.suffix == ".pt" and not path.is_dir() else path / FINAL_WEIGHTS


def _read_final_weights(source: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    path = _final_weights_path(source)
    if not path.is_file():
        raise NIRError(f"{path}: no final weights here (a finished run keeps them as {FINAL_WEIGHTS})")
    try:
        # Tensors, dicts, lists, strings and numbers only: nothing in the file can run code while it loads.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        raise NIRError(f"{path}: cannot be read as final weights ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise NIRError(f"{path}: not a {FORMAT} file (a checkpoint.pt cannot be exported; {FINAL_WEIGHTS} can)")
    if state.get("format_version") != FORMAT_VERSION:
        raise NIRError(f"{path}: format version {state.get('format_version')!r}; this tssl reads {FORMAT_VERSION}")
    return state, path


def _rebuild(state: dict[str, Any], path: Path) -> SpikingNetwork:
    from tssl.methods import METHODS, NATIVE_METHODS, ModelConfig, build_native

    config = state["config"]
    method = config.get("method")
    if method not in NATIVE_METHODS:
        raise NIRError(
            f"{path}: the run's method is {method!r}; NIR export covers the native engine's runs "
            f"({', '.join(NATIVE_METHODS)}); export snnTorch models with snntorch.export_nir"
        )
    if config.get("nir") is not None:
        return _rebuild_from_graph(state, path, METHODS[method].grad)
    missing = [key for key in ("architecture", "steps") if key not in config]
    if missing:
        raise NIRError(f"{path}: the run config lacks {', '.join(missing)}")
    # The run config holds the task's every setting; the model is built from the ModelConfig ones among them.
    fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"input_shape", "classes"}
    model_config = ModelConfig(
        input_shape=tuple(state["input_shape"]),
        classes=int(state["classes"]),
        **{key: value for key, value in config.items() if key in fields},
    )
    network = build_native(model_config, METHODS[method].grad)
    try:
        network.load_state_dict(state["model"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise NIRError(f"{path}: the weights do not fit the network the run config describes ({first})") from None
    return network.eval()


def _rebuild_from_graph(state: dict[str, Any], path: Path, grad: str) -> SpikingNetwork:
    """The network of a run whose task had ``nir``: built from the graph kept beside ``final.pt``, which must be
    the one the run's config names."""
    graph = path.with_name(SOURCE_GRAPH)
    expected = state["config"]["nir"]
    if not graph.is_file():
        raise NIRError(f"{path}: the run built its network from a NIR graph ({expected}); {graph} is missing")
    if f"sha256:{hashlib.sha256(graph.read_bytes()).hexdigest()}" != expected:
        raise NIRError(f"{graph}: not the graph the run trained (its config names {expected})")
    network = load_nir(graph, steps=int(state["config"]["steps"]), grad=grad)
    try:
        network.load_state_dict(state["model"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise NIRError(f"{path}: the weights do not fit the network of {graph} ({first})") from None
    return network.eval()


def load_final_network(source: str | os.PathLike) -> SpikingNetwork:
    """The trained network of a run folder or its ``final.pt``, rebuilt with the run's settings and weights."""
    return _rebuild(*_read_final_weights(source))


def export_run(
    source: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    dt: float = DEFAULT_DT,
    pooling: Pooling = "sum",
) -> nir.NIRGraph:
    """Export the trained network of a run folder or its ``final.pt`` to the NIR file ``out_path``; returns the
    graph. The run's config goes into the graph's metadata as JSON (``tssl_run_config``)."""
    state, path = _read_final_weights(source)
    network = _rebuild(state, path)
    provenance = {"tssl_run_config": json.dumps(state["config"], sort_keys=True, default=str)}
    return export_nir(network, out_path, dt=dt, pooling=pooling, metadata=provenance)
