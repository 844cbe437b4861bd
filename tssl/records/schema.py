"""The record schema: what a run record (``results/<suite>.jsonl``) and a bench record (``results/bench/``) hold.

One pydantic model for each, validated when a record is written and when it is read, so that a record that
would mislead a verdict never enters one. docs/results-format.md is checked against these models
(tests/test_schema.py). Torch-free: the analysis side (store, statistics, report, check) imports this module on
machines without torch.

Schema versions: 1 (records before the verdict rework), 2 (adds the seed-free ``task_config_hash``, the torch
thread count, the command line, the diff hash and the determinism settings to ``provenance``). Version-1 records
stay readable: :func:`normalize_run_record` derives what can be derived (the task config hash from the stored
config, the thread count from the hardware line) and leaves the rest ``None``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

RUN_SCHEMA_VERSION = 2
BENCH_SCHEMA_VERSION = 1

# Shared with tssl.harness.bench and tssl.records.bench_report (kept here so that neither imports the other).
BENCH_KIND = "bench"
BENCH_STORE_NAME = "bench.jsonl"
FLOOR = "floor"
BENCH_MEMORY_KINDS = {
    "cuda_state_plus_step_peak": "parameters + optimiser state + the peak of torch.cuda.max_memory_allocated "
    "above the allocation at the start of one training step (activations, gradients, temporaries)",
    "cpu_state_plus_step_rss_peak": "parameters + optimiser state + the peak RSS growth of the process during one "
    "training step (activations, gradients, temporaries), with glibc's mmap threshold fixed at 64 KiB and "
    "malloc_trim before the step so that freed memory leaves the RSS; measured after all timing",
}

# real: the published dataset, checksums verified where constants exist; generated: stand-in data made by the
# code; reduced: a subset of a real dataset; unverified: files that claim to be the real dataset but whose
# SHA-256 differs from the published one (shown as such, never given a verdict).
DATA_KINDS = ("real", "generated", "reduced", "unverified")
RUN_STATUSES = ("ok", "failed")
FAILURES = ("diverged", "error")
# Config keys that identify a run but not its configuration group: the seed (seeds are the samples of a group)
# and the method (methods are compared within one task configuration).
NOT_IN_TASK_CONFIG = ("seed", "method")


def utc_now() -> str:
    """The time now as records write it (``started_at``, ``finished_at``, ``created_at``): UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def config_hash(config: dict[str, Any]) -> str:
    """``sha256:`` of the canonical JSON of ``config`` (sorted keys, no spaces): a run's identity."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def task_config_hash(config: dict[str, Any]) -> str:
    """The hash of a run's config without its seed and method: the key that groups a task's runs. A suite edit
    (say a new ``lr``) or an override changes it, so runs of different configurations are never pooled."""
    return config_hash({key: value for key, value in config.items() if key not in NOT_IN_TASK_CONFIG})


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class _Open(BaseModel):
    """Fields beyond the documented ones are kept (older and newer writers add their own)."""

    model_config = ConfigDict(extra="allow")


class DataInfo(_Open):
    name: str
    kind: Literal["real", "generated", "reduced", "unverified"]
    source: str = ""
    fingerprint: str = ""


class Accuracy(_Open):
    final: float
    best: float | None = None
    best_epoch: int | None = None
    validation_selected: float | None = None
    validation_selected_epoch: int | None = None

    _finite_values = field_validator("final", "best", "validation_selected")(_finite)


class Determinism(_Open):
    deterministic_algorithms: bool | None = None
    cudnn_deterministic: bool | None = None
    cudnn_benchmark: bool | None = None
    cudnn_allow_tf32: bool | None = None
    matmul_allow_tf32: bool | None = None


class RunProvenance(_Open):
    git_sha: str | None = None
    git_dirty: bool | None = None
    git_diff_sha256: str | None = None  # of `git diff HEAD` outside results/ and reports/, when dirty
    packages: dict[str, str] = Field(default_factory=dict)
    device: str | None = None
    hardware: str | None = None
    torch_threads: int | None = None
    argv: list[str] | None = None
    determinism: Determinism | None = None
    config: dict[str, Any]
    config_hash: str
    task_config_hash: str | None = None
    finished_at: str | None = None

    @model_validator(mode="after")
    def _hashes_agree(self) -> RunProvenance:
        if self.config_hash != config_hash(self.config):
            raise ValueError("provenance.config_hash is not the hash of provenance.config")
        if self.task_config_hash is not None and self.task_config_hash != task_config_hash(self.config):
            raise ValueError("provenance.task_config_hash is not the seed-free hash of provenance.config")
        return self


class RunRecord(_Open):
    """One run (task x method x seed) of a suite: ``status`` ok with its measurements, or failed with why."""

    schema_version: int = Field(alias="schema", ge=1, le=RUN_SCHEMA_VERSION)
    suite: str | None = None
    task: str = Field(min_length=1)
    method: str = Field(min_length=1)
    recipe: str | None = None
    seed: int
    run_id: str = Field(min_length=1)
    status: Literal["ok", "failed"]
    error: str | None = None
    failure: Literal["diverged", "error"] | None = None
    smoke: bool = False
    limit_batches: int | None = None
    deviations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    data: DataInfo | None = None
    steps: int | None = None
    epochs: int | None = None
    accuracy: Accuracy | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    latency: list[float] = Field(default_factory=list)
    provenance: RunProvenance

    @model_validator(mode="after")
    def _complete(self) -> RunRecord:
        if self.status == "ok" and (self.accuracy is None or self.data is None):
            raise ValueError("an ok run needs accuracy.final and data.kind")
        if self.status == "failed" and not self.error:
            raise ValueError("a failed run needs its error")
        if self.schema_version >= 2:
            missing = [key for key in ("task_config_hash", "torch_threads", "argv", "determinism")
                       if getattr(self.provenance, key) is None]
            if missing:
                raise ValueError(f"a schema-{self.schema_version} record needs provenance.{missing[0]}")
        return self


class BenchRecord(_Open):
    """One net x method of one ``tssl bench`` invocation."""

    schema_version: int = Field(alias="schema", ge=1, le=BENCH_SCHEMA_VERSION)
    kind: Literal["bench"]
    bench_id: str
    run_id: str
    status: Literal["ok", "failed"]
    error: str | None = None
    net: dict[str, Any]
    method: str = Field(min_length=1)
    batch: int | None = None
    steps: int | None = None
    precision: str | None = None
    device: str | None = None
    threads: int | None = None
    iters: int | None = None
    warmup: int | None = None
    step_seconds: dict[str, Any] | None = None
    samples_per_second: float | None = None
    time_ratio_to_tssl: float | None = None
    time_ratio_to_floor: float | None = None
    provenance: dict[str, Any]

    _finite_values = field_validator("samples_per_second", "time_ratio_to_tssl", "time_ratio_to_floor")(_finite)

    @field_validator("net")
    @classmethod
    def _named(cls, net: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(net.get("name"), str):
            raise ValueError("net.name must be a string")
        return net

    @model_validator(mode="after")
    def _measured(self) -> BenchRecord:
        if self.status == "ok" and self.samples_per_second is None:
            raise ValueError("an ok record needs a finite samples_per_second")
        return self


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def run_record_problem(record: Any) -> str | None:
    """Why ``record`` is not a valid run record, in one phrase, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    if record.get("kind") == BENCH_KIND:
        return "a tssl bench record, not a run record (bench records live in results/bench/)"
    try:
        RunRecord.model_validate(record)
    except ValidationError as error:
        return _first_problem(error)
    return None


def bench_record_problem(record: Any) -> str | None:
    """Why ``record`` is not a valid bench record, in one phrase, or None."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    if record.get("kind") != BENCH_KIND:
        return f"not a tssl bench record (kind {record.get('kind')!r}, expected {BENCH_KIND!r})"
    try:
        BenchRecord.model_validate(record)
    except ValidationError as error:
        return _first_problem(error)
    return None


_THREADS_IN_HARDWARE = re.compile(r"(\d+) torch threads")


def normalize_run_record(record: dict[str, Any]) -> dict[str, Any]:
    """Fill in, on a valid record, what version 1 did not store but can be derived: ``task_config_hash`` from
    the stored config, ``torch_threads`` from the hardware line. Returns the same dict."""
    provenance = record["provenance"]
    if provenance.get("task_config_hash") is None:
        provenance["task_config_hash"] = task_config_hash(provenance["config"])
    if provenance.get("torch_threads") is None:
        match = _THREADS_IN_HARDWARE.search(str(provenance.get("hardware") or ""))
        provenance["torch_threads"] = int(match.group(1)) if match else None
    return record


def data_kind(record: dict[str, Any]) -> str | None:
    data = record.get("data")
    return data.get("kind") if isinstance(data, dict) else None
