"""SYNTHETIC run records for the tests of the analysis side (report, check, stats, schema, store).

Every record made here is SYNTHETIC: invented accuracies, timings and provenance, built to be valid under
tssl/records/schema.py (schema 2) the way tssl.harness.runner writes them. None of these numbers come from a
real run, and none may be quoted as results. Imported by the tests as a plain module (pytest puts tests/ on
sys.path), like tiny_suites.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tssl.records.schema import RUN_SCHEMA_VERSION, config_hash, task_config_hash
from tssl.records.store import append_record

SUITE = "synth"
SOURCE = "SYNTHETIC test fixture (invented numbers)"
# The paper's number for a synthetic task: like the real suites, a best-over-epochs number.
PAPER = {"metric": "best", "mean": 97.0, "std": 0.1, "best": 97.2, "source": "SYNTHETIC paper table (test fixture)"}
GIT_SHA = "feedc0de" * 5
FINISHED_AT = "2026-01-01T00:01:00Z"

# A digits task's run config as tssl.harness.suites.TaskConfig.run_config() gives it (every key but methods, seeds,
# paper, tolerance and description); tests/test_schema.py checks that suite_yaml() loads back to it.
_BASE_CONFIG: dict[str, Any] = {
    "dataset": "digits", "architecture": "16C3-P2-64", "padding": 1, "conv_weight_scale": 1.0,
    "linear_weight_scale": 1.0, "dropout": 0.0, "threshold": 1.0, "tau_m": 5.0, "tau_s": 3.0, "steps": 5,
    "epochs": 3, "batch_size": 32, "batch_semantics": "global", "lr": 0.005, "loss": "kernel",
    "kernel_target": "final", "desired_count": None, "undesired_count": None, "recipe": "matched",
    "spikingjelly_implementation": None, "validation_fraction": 0.0,
}  # fmt: skip


def task_config(task: str = "digits-cnn", **changes: Any) -> dict[str, Any]:
    """The SYNTHETIC task's config without seed and method (what a suite file says of the task), with
    ``changes`` (say ``lr=0.01``: a suite edit) applied."""
    unknown = sorted(set(changes) - set(_BASE_CONFIG) - {"limit_batches", "world_size"})
    if unknown:
        raise KeyError(f"not a task config key: {unknown[0]!r}")
    return {"name": task, **_BASE_CONFIG, **changes}


def current_config(task: str = "digits-cnn", **changes: Any) -> str:
    """The seed-free task config hash of :func:`task_config` (what the CLI computes from the suite file)."""
    return task_config_hash(task_config(task, **changes))


def run_id(task: str, method: str, seed: int, config: Mapping[str, Any]) -> str:
    """The runner's run id: ``task.method.s<seed>.<first 8 hex of the config hash>``."""
    return f"{task}.{method}.s{seed}.{config_hash(dict(config)).removeprefix('sha256:')[:8]}"


def synthetic_record(
    task: str = "digits-cnn",
    method: str = "tssl",
    seed: int = 0,
    final: float = 97.0,
    *,
    best: float | None = None,
    suite: str = SUITE,
    recipe: str | None = None,
    status: str = "ok",
    error: str | None = None,
    failure: str | None = None,
    smoke: bool = False,
    kind: str = "real",
    epochs: int | None = None,
    base: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    deviations: Mapping[str, Mapping[str, Any]] | None = None,
    paper: Mapping[str, Any] | None = PAPER,
    efficiency: Mapping[str, Any] | None = None,
    latency: Sequence[float] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    dirty: bool = False,
    git_sha: str = GIT_SHA,
    threads: int = 1,
    finished_at: str = FINISHED_AT,
    samples_per_second: float | None = None,
) -> dict[str, Any]:
    """One SYNTHETIC run record, valid under tssl/records/schema.py (schema 2), shaped as tssl.harness.runner writes it.

    ``base``: the task config to start from (default :func:`task_config` with 3 epochs; pass a loaded suite task's
    ``run_config()`` to make records of that suite). ``epochs`` and ``recipe`` change it when given.
    ``config``: changes to the task config as a suite edit makes them (no deviations: the suite file said so).
    ``overrides``: changes made on the command line (``tssl run SUITE lr=0.01``): they change the config too, and
    the record's ``deviations`` say ``{key: {"suite": old, "run": new}}``. ``deviations`` sets them directly.
    ``smoke``: a ``--limit-batches 2`` run (its own config, hash and run id, as the runner gives it).
    ``best`` defaults to final + 0.3 (the epoch maximum is never below the last epoch)."""
    suite_part = dict(base) if base is not None else task_config(task, epochs=3)
    suite_part.update({key: value for key, value in (("epochs", epochs), ("recipe", recipe)) if value is not None})
    suite_part.update(config or {})
    task_part = {**suite_part, **(overrides or {})}
    recipe = str(task_part.get("recipe", "matched"))
    if smoke:
        task_part["limit_batches"] = 2
    full_config = {**task_part, "method": method, "seed": seed}
    if deviations is None:
        deviations = {key: {"suite": suite_part.get(key), "run": value} for key, value in (overrides or {}).items()
                      if suite_part.get(key) != value}
    sha_dirty = "sha256:" + hashlib.sha256(f"SYNTHETIC diff of {git_sha}".encode()).hexdigest() if dirty else None
    record: dict[str, Any] = {
        "schema": RUN_SCHEMA_VERSION,
        "suite": suite,
        "task": task,
        "method": method,
        "recipe": recipe,
        "precision": "fp32",
        "seed": seed,
        "run_id": run_id(task, method, seed, full_config),
        "status": status,
        "error": error,
        "failure": failure,
        "smoke": smoke,
        "limit_batches": 2 if smoke else None,
        "deviations": {key: dict(value) for key, value in deviations.items()},
        "data": _data(kind),
        "steps": task_part["steps"],
        "epochs": task_part["epochs"],
        "paper": None if paper is None else dict(paper),
        "provenance": {
            "git_sha": git_sha, "git_dirty": dirty, "git_diff_sha256": sha_dirty,
            "packages": {"tssl-bench": "0.1.0", "torch": "2.14.1"},
            "implementation": {"engine": method, "kernel": "torch"},
            "device": "cpu", "hardware": f"synthetic x86_64, 2 cores, {threads} torch threads",
            "torch_threads": threads, "argv": ["tssl", "run", suite],
            "determinism": {"deterministic_algorithms": False, "cudnn_deterministic": False, "cudnn_benchmark": False,
                            "cudnn_allow_tf32": True, "matmul_allow_tf32": False},
            "python": "3.11.7", "config": full_config, "config_hash": config_hash(full_config),
            "task_config_hash": task_config_hash(full_config), "seed": seed,
            "started_at": "2026-01-01T00:00:00Z", "finished_at": finished_at,
        },
    }  # fmt: skip
    if status == "failed":
        record.update(error=error or "RuntimeError: SYNTHETIC failure", failure=failure or "error", accuracy=None,
                      history=[], latency=[], timing=None)
        return record
    best = final + 0.3 if best is None else best
    steps, epoch_count = task_part["steps"], task_part["epochs"]
    record["accuracy"] = {"final": final, "best": best, "best_epoch": max(1, epoch_count - 1),
                          "validation_selected": None, "validation_selected_epoch": None}
    record["history"] = [dict(entry) for entry in history] if history is not None else [
        {"epoch": e, "train_loss": 1.0 / e, "train_accuracy": final - 10 / e, "validation_accuracy": None,
         "test_accuracy": final - 8 * (epoch_count - e) / epoch_count, "seconds": 0.5 + 0.1 * e}
        for e in range(1, epoch_count + 1)
    ]  # fmt: skip
    record["latency"] = list(latency) if latency is not None else [final * t / steps for t in range(1, steps + 1)]
    record["timing"] = {"train_seconds": 1.8,
                        "samples_per_second": 1000.0 + seed if samples_per_second is None else samples_per_second,
                        "peak_memory_bytes": 200 * 2**20, "memory_kind": "peak_rss"}  # fmt: skip
    if efficiency is not None:
        record["efficiency"] = dict(efficiency)
    return record


def _data(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "digits", "kind": kind, "source": SOURCE, "fingerprint": "sha256:0000synthetic"}
    if kind == "unverified":  # the runner names the files whose SHA-256 differs from the published one
        data["checksums"] = {"digits.csv": {"expected": "0" * 64, "actual": "1" * 64}}
    return data


def seeds_of(values: Iterable[float], *, first_seed: int = 0, **kwargs: Any) -> list[dict[str, Any]]:
    """One SYNTHETIC record per value, seeds first_seed, first_seed + 1, ...; ``kwargs`` go to synthetic_record."""
    return [synthetic_record(seed=first_seed + i, final=value, **kwargs) for i, value in enumerate(values)]


def suite_task(task: str = "digits-cnn", *, paper: Mapping[str, Any] | None = PAPER, tolerance: float = 0.5,
               seeds: Sequence[int] = (0, 1, 2), description: str = "a SYNTHETIC task",
               **changes: Any) -> dict[str, Any]:
    """What ``tssl report`` takes of a suite task (cli._suite_tasks): paper, tolerance, current config hash."""
    config = task_config(task, **changes)
    return {"paper": None if paper is None else dict(paper), "tolerance": tolerance, "description": description,
            "run_config": config, "config": task_config_hash(config), "seeds": list(seeds)}


def suite_yaml(name: str = SUITE, tasks: Sequence[str] = ("digits-cnn",), *, methods: Sequence[str] = ("tssl",),
               seeds: Sequence[int] = (0, 1, 2), paper: Mapping[str, Any] | None = PAPER, tolerance: float = 0.5,
               **changes: Any) -> str:
    """A suite file whose tasks' run configs are :func:`task_config` (with ``changes``): records made by
    :func:`synthetic_record` with the same changes are its current configuration."""
    entries = []
    for task in tasks:
        entry: dict[str, Any] = {**task_config(task, **changes), "methods": list(methods), "seeds": list(seeds),
                                 "tolerance": tolerance}
        if paper is not None:
            entry["paper"] = dict(paper)
        entries.append(entry)
    return yaml.safe_dump({"name": name, "description": "SYNTHETIC suite (test fixture)", "tasks": entries},
                          sort_keys=False)


def write_store(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Append ``records`` to the store at ``path`` through tssl.records.store (each validated on write)."""
    for record in records:
        append_record(path, dict(record))
    return path


def captions(markdown: str) -> list[str]:
    """The table captions (**Table n — ...**) and figure captions (*Figure n — ...*) of a report."""
    return [line for line in markdown.splitlines() if line.startswith(("**Table ", "*Figure "))]


def table_after(markdown: str, caption_part: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first table whose caption holds ``caption_part``."""
    caption = next(line for line in captions(markdown) if caption_part in line)
    rows = []
    for line in markdown.split(caption, 1)[1].lstrip("\n").splitlines()[2:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows
