"""``tssl run``: expand a suite into runs (task x method x seed), train each, append one record per run.

Each finished epoch is checkpointed atomically (model, optimiser, RNG states, history), so after a crash or a
kill -9 the next ``tssl run`` resumes from the last finished epoch; runs with a successful record are skipped.

Faults: a run whose training loss turns non-finite ends as a failed record (``"failure": "diverged"``) and the
suite goes on; later ``tssl run``s skip it unless ``--retry-diverged`` (or ``--force``). A checkpoint that cannot
be read is moved aside (``checkpoint.pt.corrupt-<UTC time>``) and the run starts again.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import random
import resource
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from tssl.compat.nir import FINAL_WEIGHTS, SOURCE_GRAPH, NIRError, load_nir, save_final_weights
from tssl.data.base import PreparedData
from tssl.data.registry import load_data
from tssl.engine import distributed
from tssl.engine.distributed import SINGLE, Ranks
from tssl.engine.precision import PrecisionError, autocast, check_precision, math_mode
from tssl.engine.train import DivergenceError, EpochBars, EpochRecord, LossFn, fit, latency_curve
from tssl.harness import cpu_allocator
from tssl.harness.provenance import run_environment
from tssl.harness.suites import NATIVE_ONLY, Suite, SuiteError, TaskConfig
from tssl.measure.metrics import measure_efficiency
from tssl.methods import (
    NATIVE_METHODS,
    Method,
    MethodPluginError,
    ModelConfig,
    Recipe,
    get_method,
    plugin_of,
    training_recipe,
)
from tssl.records.schema import config_hash, task_config_hash, utc_now
from tssl.records.store import SCHEMA_VERSION, append_record, latest_records, read_records, store_path

CHECKPOINT = "checkpoint.pt"
CORRUPT = ".corrupt-"  # checkpoint.pt.corrupt-<UTC time>: an unreadable checkpoint, kept for inspection
LOCK = "lock"  # held (flock) by the process training the run


@dataclass(frozen=True)
class Run:
    suite: str
    task: TaskConfig
    method: str
    seed: int
    world_size: int = 1  # processes the run is spread over (torchrun / gpus_per_job)
    limit_batches: int | None = None  # --limit-batches: a smoke run, a run of its own

    @property
    def config(self) -> dict[str, Any]:
        config = {**self.task.run_config(), "method": self.method, "seed": self.seed}
        if self.task.batch_semantics == "per_rank":  # the global batch, and with it the result, depends on it
            config["world_size"] = self.world_size
        if self.limit_batches is not None:  # only when set: full runs keep the ids of their committed records
            config["limit_batches"] = self.limit_batches
        return config

    @property
    def global_batch(self) -> int:
        """Samples per optimiser step over all ranks (see TaskConfig.batch_semantics)."""
        per_rank = self.task.batch_semantics == "per_rank"
        return self.task.batch_size * self.world_size if per_rank else self.task.batch_size

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def run_id(self) -> str:
        return f"{self.task.name}.{self.method}.s{self.seed}.{self.config_hash.removeprefix('sha256:')[:8]}"


@dataclass
class RunOptions:
    results_dir: Path = Path("results")
    runs_dir: Path = Path("runs")
    device: str = "auto"
    limit_batches: int | None = None
    force: bool = False
    progress: bool | None = None  # None: show progress bars only on a terminal
    # Records finished before this time (UTC, tssl.records.schema.utc_now format) do not count as done: set by --force,
    # so that a forced run resubmitted after a preemption still skips the record it has already written.
    done_after: str | None = None
    retry_diverged: bool = False  # train runs whose latest record says they diverged again (else skipped)


@dataclass
class SuiteOutcome:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # another process was training them
    diverged: list[str] = field(default_factory=list)  # skipped: they diverged before (see retry_diverged)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SuiteError(f"--device {name!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SuiteError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def expand(
    suite: Suite,
    only: list[str] | None = None,
    seeds: list[int] | None = None,
    world_size: int = 1,
    limit_batches: int | None = None,
) -> list[Run]:
    tasks = suite.tasks if not only else suite.select(only)  # a sweep's name selects all its points
    return [
        Run(suite.name, task, method, seed, world_size, limit_batches)
        for task in tasks
        for method in task.methods
        for seed in (seeds if seeds is not None else task.seeds)
    ]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _save_atomically(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak_rss"


def _method_for(run: Run) -> Method:
    # The recipe is passed only away from its default, so that a method from another package needs no options.
    options: dict[str, Any] = {} if run.task.recipe == "matched" else {"recipe": run.task.recipe}
    if run.method == "spikingjelly" and run.task.spikingjelly_implementation is not None:
        options["implementation"] = run.task.spikingjelly_implementation
    return get_method(run.method, **options)


def _implementation(method: Method, model: torch.nn.Module) -> dict[str, Any]:
    """What ran, as the method says, plus, for a method from another package, which package and version (read
    from its metadata, not from the method)."""
    implementation = dict(method.provenance(model))
    plugin = plugin_of(method.name)
    if plugin is not None:
        implementation["plugin"] = plugin.provenance()
    return implementation


def _percent(fraction: float) -> float:
    return round(100.0 * fraction, 4)


def with_options(run: Run, options: RunOptions) -> Run:
    """The run as ``options`` train it: ``--limit-batches`` is part of a run's identity (a smoke run has an id of
    its own), so a run built without the options' limit takes it."""
    return run if run.limit_batches == options.limit_batches else replace(run, limit_batches=options.limit_batches)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _load_checkpoint(
    path: Path, device: torch.device, set_aside: bool, log: Callable[[str], None]
) -> dict[str, Any] | None:
    """The run's checkpoint; None when there is none or it cannot be read. An unreadable one is moved aside to
    ``checkpoint.pt.corrupt-<UTC time>`` (by rank 0: ``set_aside``) and named in one line; the run starts over."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(state, dict):
            raise ValueError(f"holds a {type(state).__name__}, not a checkpoint")
        return state
    except Exception as error:  # UnpicklingError, EOFError, RuntimeError (zip), ...: torch.load names no single one
        if set_aside and path.exists():
            aside = path.with_name(path.name + CORRUPT + utc_now().replace("-", "").replace(":", ""))
            os.replace(path, aside)
            log(f"{path} cannot be read ({type(error).__name__}: {_one_line(error)}); moved it to {aside} and "
                "starting the run from scratch")
        return None


def _data_entry(data: PreparedData) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": data.name, "kind": data.kind, "source": data.source,
                             "fingerprint": data.fingerprint}
    if data.checksums:  # only files that differ from the published ones (data kind "unverified")
        entry["checksums"] = data.checksums
    return entry


def _provenance(run: Run, device: torch.device) -> dict[str, Any]:
    """Where the run's record came from (``tssl.harness.provenance.run_environment``, with the TF32 settings its
    precision trains under), its config and both hashes: the run's own and the seed-free one that groups its seeds."""
    try:
        with math_mode(run.task.precision, device):
            environment = run_environment(device)
    except PrecisionError:  # a precision this device cannot run (the failed record says so): the process's own
        environment = run_environment(device)
    return {**environment, "config": run.config, "config_hash": run.config_hash,
            "task_config_hash": task_config_hash(run.config)}


@dataclass
class Trainee:
    """A run's model and everything that trains it, built afresh and seeded with the run's seed."""

    method: Method
    model: torch.nn.Module
    wrapped: torch.nn.Module  # DistributedDataParallel's wrapper of the model over several ranks, else the model
    recipe: Recipe
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator  # draws each epoch's order of the training set


@dataclass
class RunProgress:
    """What a run has done so far; its checkpoint carries it from one epoch (and process) to the next."""

    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per finished epoch
    train_seconds: float = 0.0
    started_at: str = ""


def execute_run(
    run: Run,
    data: PreparedData,
    options: RunOptions,
    device: torch.device,
    show: bool,
    ranks: Ranks = SINGLE,
    log: Callable[[str], None] = print,
) -> dict | None:
    """Train one run (resuming from its checkpoint) and return its record (None on ranks other than 0).

    Raises :class:`DivergenceError` when an epoch's training loss is not finite."""
    cpu_allocator.tune()  # once per process; workers started without the CLI get it here
    run = with_options(run, options)
    distributed.check_global_batch(run.global_batch, ranks, f"task {run.task.name!r}")
    started_at = utc_now()
    trainee = build_trainee(run, data, device, ranks)
    progress = resume(run, trainee, checkpoint_path(run, options), options, device, ranks, log, started_at)
    if ranks.rank > 0:  # its own dropout masks (the replicas' weights are equal already)
        torch.manual_seed(run.seed * 1_000_003 + ranks.rank * 1_009 + len(progress.history))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_run(run, trainee, progress, data, options, device, show, ranks)
    latency = [_percent(a) for a in latency_curve(trainee.model, _test_batches(run, data, ranks), device,
                                                  trainee.method.reset, run.task.precision, ranks=ranks)]
    if not ranks.is_main:
        return None
    final_weights = _keep_final_weights(run, trainee.model, data, options)
    memory = _peak_memory(device)
    # After the memory peak is read, so that the metrics' own bookkeeping does not count as the run's memory.
    with math_mode(run.task.precision, device), autocast(run.task.precision, device):
        efficiency = measure_efficiency(trainee.model, _test_batches(run, data, ranks, shared=False), device,
                                        trainee.method.reset)
    return run_record(run, data, trainee, progress, latency, efficiency, memory, device, ranks, final_weights)


def _keep_final_weights(run: Run, model: torch.nn.Module, data: PreparedData, options: RunOptions) -> str | None:
    """Keep a native run's trained network as ``<runs dir>/<suite>/<run id>/final.pt`` (with its NIR graph as
    ``source.nir`` when the task has one) for ``tssl export`` (docs/nir.md); returns the path the record names.
    Baselines keep none: NIR export covers the native engine, and snnTorch exports its own models."""
    if run.method not in NATIVE_METHODS:
        return None
    run_dir = checkpoint_path(run, options).parent
    path = save_final_weights(model, run.config, data.input_shape, data.classes, run_dir)
    if run.task.nir is not None:  # export rebuilds the network from the graph; keep the one this run trained
        graph = run_dir / SOURCE_GRAPH
        shutil.copyfile(run.task.nir, graph)
        if f"sha256:{hashlib.sha256(graph.read_bytes()).hexdigest()}" != run.task.nir_sha256:
            raise NIRError(f"{run.task.nir} changed while the run trained; run it again for the new graph")
    return path.as_posix()


def _nir_network(task: TaskConfig, grad: str) -> torch.nn.Module:
    """The network of a task with ``nir``: the graph's, to train with the gradient rule ``grad``. Refused when
    the file changed since the suite was read (the run id names its old content) or when its time constants
    differ from the task's (the loss and the input filter use the task's)."""
    if f"sha256:{hashlib.sha256(Path(task.nir).read_bytes()).hexdigest()}" != task.nir_sha256:
        raise NIRError(f"{task.nir} changed since the suite was read; run the suite again to train the new graph")
    network = load_nir(task.nir, steps=task.steps, grad=grad)
    for key in ("tau_m", "tau_s"):
        graph_value, task_value = getattr(network.spec, key), getattr(task, key)
        if not math.isclose(graph_value, task_value, rel_tol=1e-6):  # snnTorch writes float32 constants
            raise NIRError(f"{task.nir} has {key} = {graph_value:g} steps, the task {task_value:g}; set {key}: "
                           f"{graph_value:g} in the task")
    network.set_recompute(task.recompute)
    return network


def build_trainee(run: Run, data: PreparedData, device: torch.device, ranks: Ranks) -> Trainee:
    """The run's method and its model (initialised after seeding with the run's seed), recipe and optimiser."""
    method = _method_for(run)
    _seed_everything(run.seed)
    config = ModelConfig.from_task(run.task, data.input_shape, data.classes)
    model = (method.build(config) if run.task.nir is None else _nir_network(run.task, method.grad)).to(device)
    wrapped = distributed.wrap_model(model, ranks, device)  # DDP over several ranks, else the model itself
    recipe = training_recipe(method, config, run.task.task_loss())
    loss_fn = recipe.loss.to(device) if isinstance(recipe.loss, torch.nn.Module) else recipe.loss
    optimizer = recipe.make_optimizer(model.parameters(), run.task.lr)
    return Trainee(method, model, wrapped, recipe, loss_fn, optimizer, torch.Generator().manual_seed(run.seed))


def checkpoint_path(run: Run, options: RunOptions) -> Path:
    return options.runs_dir / run.suite / run.run_id / CHECKPOINT


def resume(
    run: Run,
    trainee: Trainee,
    checkpoint: Path,
    options: RunOptions,
    device: torch.device,
    ranks: Ranks,
    log: Callable[[str], None],
    started_at: str,
) -> RunProgress:
    """The run's progress from its checkpoint, whose model, optimiser and RNG states it restores into
    ``trainee``; a fresh start without a checkpoint of this run (``--force``, another config or limit)."""
    state = None if options.force else _load_checkpoint(checkpoint, device, ranks.is_main, log)
    if state is None or state.get("config_hash") != run.config_hash or state.get("limit_batches") != run.limit_batches:
        return RunProgress(started_at=started_at)
    trainee.model.load_state_dict(state["model"])
    trainee.optimizer.load_state_dict(state["optimizer"])
    trainee.shuffle.set_state(state["shuffle_rng"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return RunProgress(state["history"], state["train_seconds"], state["started_at"])


def save_checkpoint(run: Run, trainee: Trainee, progress: RunProgress, path: Path, device: torch.device) -> None:
    """Everything :func:`resume` needs to go on after the last finished epoch, written atomically."""
    _save_atomically({
        "config_hash": run.config_hash,
        "limit_batches": run.limit_batches,
        "model": trainee.model.state_dict(),
        "optimizer": trainee.optimizer.state_dict(),
        "shuffle_rng": trainee.shuffle.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "history": progress.history,
        "train_seconds": progress.train_seconds,
        "started_at": progress.started_at,
    }, path)


def train_run(
    run: Run,
    trainee: Trainee,
    progress: RunProgress,
    data: PreparedData,
    options: RunOptions,
    device: torch.device,
    show: bool,
    ranks: Ranks,
) -> None:
    """Train the run's remaining epochs with the engine's epoch loop (``tssl.engine.train.fit``), adding each
    finished epoch to ``progress`` and checkpointing it."""
    task, limit, batch = run.task, run.limit_batches, run.global_batch
    checkpoint = checkpoint_path(run, options)

    def finished(epoch: EpochRecord) -> None:
        progress.history.append(_history_entry(epoch))
        progress.train_seconds += epoch.train_seconds
        if ranks.is_main:  # the replicas are equal: one checkpoint, in the single-process format
            save_checkpoint(run, trainee, progress, checkpoint, device)

    def validation_batches():
        return data.batches(data.validation, batch, limit=limit, ranks=ranks)

    fit(trainee.model, trainee.loss_fn, trainee.optimizer,
        lambda: data.batches(data.train, batch, trainee.shuffle, augment=True, limit=limit, ranks=ranks),
        lambda: _test_batches(run, data, ranks), task.epochs, device, trainee.method.reset, show, finished,
        task.precision, validation_batches=None if data.validation is None else validation_batches,
        first_epoch=len(progress.history) + 1, ranks=ranks, wrapped=trainee.wrapped,
        bars=EpochBars(run.run_id, position=1, batches=data.batch_count(data.train, batch, limit)))


def _history_entry(epoch: EpochRecord) -> dict[str, Any]:
    """An epoch as the record's history keeps it: accuracies in percent."""
    validation = epoch.validation_accuracy
    return {
        "epoch": epoch.epoch,
        "train_loss": epoch.train_loss,
        "train_accuracy": _percent(epoch.train_accuracy),
        "validation_accuracy": None if validation is None else _percent(validation),
        "test_accuracy": _percent(epoch.test_accuracy),
        "seconds": epoch.seconds,
    }


def _test_batches(run: Run, data: PreparedData, ranks: Ranks, shared: bool = True):
    batch, limit = run.global_batch, run.limit_batches
    if shared:  # each rank its share of every global batch
        return data.batches(data.test, batch, limit=limit, ranks=ranks)
    # Rank 0 alone, in batches no larger than its share, so that it fits where the training did.
    share = -(-batch // ranks.world_size)
    return data.batches(data.test, share, limit=None if limit is None else limit * ranks.world_size)


def run_record(
    run: Run,
    data: PreparedData,
    trainee: Trainee,
    progress: RunProgress,
    latency: list[float],
    efficiency: dict[str, Any],
    memory: tuple[int, str],
    device: torch.device,
    ranks: Ranks,
    final_weights: str | None = None,
) -> dict[str, Any]:
    """The record of a finished run (docs/results-format.md); ``final_weights``: where its final.pt is kept."""
    task, history = run.task, progress.history
    return {
        "schema": SCHEMA_VERSION,
        "suite": run.suite,
        "task": task.name,
        "method": run.method,
        "recipe": task.recipe,
        "precision": task.precision,
        "seed": run.seed,
        "run_id": run.run_id,
        "status": "ok",
        "error": None,
        "failure": None,
        "smoke": run.limit_batches is not None,
        "limit_batches": run.limit_batches,
        "deviations": task.deviations,
        "data": _data_entry(data),
        "steps": task.steps,
        "batch": _batch_entry(run, ranks),
        "epochs": len(history),
        "accuracy": _accuracy_entry(history, validated=data.validation is not None),
        "history": history,
        "latency": latency,
        "efficiency": efficiency,
        "timing": _timing_entry(run, data, progress, memory),
        "paper": None if task.paper is None else task.paper.model_dump(),
        "final_weights": final_weights,
        "provenance": {
            **_provenance(run, device),
            "implementation": _implementation(trainee.method, trainee.model),
            "recipe": {"name": trainee.recipe.name, **trainee.recipe.details},
            "seed": run.seed,
            "started_at": progress.started_at,
            "finished_at": utc_now(),
        },
    }


def _batch_entry(run: Run, ranks: Ranks) -> dict[str, Any]:
    """Both batch sizes of the run (see TaskConfig.batch_semantics)."""
    return {
        "semantics": run.task.batch_semantics,
        "size": run.task.batch_size,
        "global": run.global_batch,
        "per_rank": -(-run.global_batch // ranks.world_size),  # the largest share (shares differ by at most one)
        "world_size": ranks.world_size,
        "backend": torch.distributed.get_backend() if ranks.active else None,
    }


def _accuracy_entry(history: list[dict[str, Any]], validated: bool) -> dict[str, Any]:
    """Final, best and (with a validation split) validation-selected test accuracy, from the history."""
    tests = [h["test_accuracy"] for h in history]
    best_epoch = int(np.argmax(tests)) + 1
    accuracy: dict[str, Any] = {
        "final": tests[-1],
        "best": tests[best_epoch - 1],
        "best_epoch": best_epoch,
        "validation_selected": None,
        "validation_selected_epoch": None,
    }
    if validated:
        chosen = int(np.argmax([h["validation_accuracy"] for h in history]))
        accuracy["validation_selected"] = tests[chosen]
        accuracy["validation_selected_epoch"] = chosen + 1
    return accuracy


def _timing_entry(run: Run, data: PreparedData, progress: RunProgress, memory: tuple[int, str]) -> dict[str, Any]:
    train_per_epoch = min(len(data.train), (run.limit_batches or sys.maxsize) * run.global_batch)
    seconds, epochs = progress.train_seconds, len(progress.history)
    peak, memory_kind = memory
    return {
        "train_seconds": seconds,
        "samples_per_second": train_per_epoch * epochs / seconds if seconds else None,
        "peak_memory_bytes": peak,
        "memory_kind": memory_kind,
    }


def failed_record(
    run: Run, error: BaseException, options: RunOptions, device: torch.device, data: PreparedData | None = None
) -> dict[str, Any]:
    """The record of a run that failed: why (``failure``: ``diverged`` or ``error``), never made-up numbers."""
    run = with_options(run, options)
    diverged = isinstance(error, DivergenceError)
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "suite": run.suite,
        "task": run.task.name,
        "method": run.method,
        "recipe": run.task.recipe,
        "precision": run.task.precision,
        "seed": run.seed,
        "run_id": run.run_id,
        "status": "failed",
        "error": str(error) if diverged else f"{type(error).__name__}: {error}",
        "failure": "diverged" if diverged else "error",
        "smoke": run.limit_batches is not None,
        "limit_batches": run.limit_batches,
        "deviations": run.task.deviations,
        "provenance": {**_provenance(run, device), "seed": run.seed, "finished_at": utc_now()},
    }
    if data is not None:
        record["data"] = _data_entry(data)
    return record


@dataclass(frozen=True)
class RecordedRuns:
    """What a results store says of each run id."""

    done: set[str]  # a successful record
    diverged: dict[str, str]  # run id -> the error of its latest record, which says it diverged


def _stands_for_its_run_id(record: dict[str, Any]) -> bool:
    """False for a smoke record written before smoke runs had ids of their own: it carries the full run's id."""
    config = (record.get("provenance") or {}).get("config") or {}
    return record.get("limit_batches") == config.get("limit_batches")


def recorded_runs(store: Path, options: RunOptions) -> RecordedRuns:
    """The runs the store holds as done or diverged (only records finished after ``options.done_after``)."""
    records = [record for record in read_records(store) if _stands_for_its_run_id(record)]
    if options.done_after is not None:
        records = [r for r in records if r.get("provenance", {}).get("finished_at", "") >= options.done_after]
    latest = latest_records(records)
    done = {run_id for run_id, record in latest.items() if record.get("status") == "ok"}
    diverged = {run_id: str(record.get("error")) for run_id, record in latest.items()
                if record.get("status") == "failed" and record.get("failure") == "diverged"}
    return RecordedRuns(done, diverged)


def _clear_run_dir(run_dir: Path) -> None:
    """Remove a run's folder once nothing is left to resume, except its final weights (and NIR graph), kept for
    ``tssl export``, and checkpoints set aside as corrupt."""
    if not run_dir.is_dir():
        return
    for entry in run_dir.iterdir():
        if CORRUPT in entry.name or entry.name in (FINAL_WEIGHTS, SOURCE_GRAPH):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    with suppress(OSError):  # not empty: it keeps final weights or a corrupt checkpoint
        run_dir.rmdir()


@contextmanager
def claim_run(run_dir: Path) -> Iterator[bool]:
    """Hold the run's lock while training it: False when another process (another job, another ``tssl run``)
    holds it. The lock is released when the process ends, however it ends."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            claimed = True
        except BlockingIOError:
            claimed = False
        yield claimed


def perform_run(
    run: Run,
    data: PreparedData,
    options: RunOptions,
    device: torch.device,
    ranks: Ranks = SINGLE,
    show: bool = False,
    log: Callable[[str], None] = print,
) -> str:
    """Train one run unless it is done or being trained elsewhere, and append its record (rank 0).

    Returns ``ran``, ``failed``, ``skipped`` (a record exists), ``diverged`` (its latest record says it diverged,
    and ``options`` do not ask to retry it) or ``busy`` (another process holds the run). The store is read after
    the run's lock is taken, so two processes never both train and record a run.
    """
    run = with_options(run, options)
    store = store_path(options.results_dir, run.suite)
    run_dir = options.runs_dir / run.suite / run.run_id
    with ExitStack() as held:
        decision = "run"
        if ranks.is_main:
            if not held.enter_context(claim_run(run_dir)):
                decision = "busy"
            else:
                decision = _decide(run, recorded_runs(store, options), options, log)
            if decision == "skipped":
                _clear_run_dir(run_dir)  # a checkpoint left by a crash after the record
            elif decision == "run" and options.force:
                (run_dir / CHECKPOINT).unlink(missing_ok=True)
        decision = ranks.broadcast(decision)
        if decision != "run":
            return decision
        try:
            record = execute_run(run, data, options, device, show, ranks, log)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # the run failed: record why; keep its checkpoint for a retry unless it diverged
            if ranks.is_main:
                append_record(store, failed_record(run, error, options, device, data))
                if isinstance(error, DivergenceError):  # its checkpoint holds the epochs that led there: start afresh
                    _clear_run_dir(run_dir)
                    log(f"{run.run_id}: FAILED: {error}; its checkpoint is removed")
                else:
                    log(f"{run.run_id}: FAILED: {type(error).__name__}: {error}")
            if os.environ.get("TSSL_DEBUG"):
                traceback.print_exc()
            return "failed"
        if record is not None:
            append_record(store, record)
            _clear_run_dir(run_dir)
            acc = record["accuracy"]
            log(
                f"{run.run_id}: final {acc['final']:.2f} %, best {acc['best']:.2f} % "
                f"(epoch {acc['best_epoch']}), {record['timing']['train_seconds']:.1f} s"
                + ("  [smoke run]" if record["smoke"] else "")
            )
        return "ran"


def _decide(run: Run, recorded: RecordedRuns, options: RunOptions, log: Callable[[str], None]) -> str:
    """``skipped`` (done), ``diverged`` (not retried: a rerun would only diverge again) or ``run``."""
    if run.run_id in recorded.done:
        return "skipped"
    if run.run_id in recorded.diverged and not (options.retry_diverged or options.force):
        log(f"{run.run_id}: skipped as diverged ({recorded.diverged[run.run_id]}); to train it again from scratch: "
            "--retry-diverged (or --force)")
        return "diverged"
    return "run"


def load_datasets(runs: list[Run], device: torch.device) -> dict[tuple, PreparedData]:
    """Every dataset the runs need, loaded once (missing data stops everything with one message)."""
    datasets: dict[tuple, PreparedData] = {}
    for run in runs:
        key = data_key(run)
        if key not in datasets:
            datasets[key] = load_data(
                run.task.dataset, steps=run.task.steps, validation_fraction=run.task.validation_fraction
            ).to(device)
    return datasets


def data_key(run: Run) -> tuple:
    return (run.task.dataset, run.task.steps, run.task.validation_fraction)


def check_runs(runs: list[Run], device: torch.device) -> None:
    """Refuse settings that cannot run here before anything runs."""
    for task in {run.task.name: run.task for run in runs}.values():
        try:
            check_precision(task.precision, device)
        except PrecisionError as error:
            raise SuiteError(f"task {task.name!r}: {error}") from None
    for name in dict.fromkeys(run.method for run in runs):  # a broken plugin is refused before anything trains
        try:
            _method_for(next(run for run in runs if run.method == name))
        except (MethodPluginError, TypeError) as error:
            raise SuiteError(str(error)) from None
    for run in runs:
        if run.task.nir is not None and run.method not in NATIVE_METHODS:
            raise SuiteError(f"task {run.task.name!r}: nir graphs are built by the native engine only "
                             f"({', '.join(NATIVE_METHODS)}); method {run.method!r} cannot run it")
        if run.task.nir is not None:  # a graph our engine cannot build is refused before anything trains
            try:
                _nir_network(run.task, "tsslbp")
            except (NIRError, ImportError, OSError) as error:
                raise SuiteError(f"task {run.task.name!r}: {_one_line(error)}") from None
        native_only = [key for key in NATIVE_ONLY if not run.task.at_default(key)]
        if native_only and run.method not in NATIVE_METHODS:
            raise SuiteError(
                f"task {run.task.name!r}: {', '.join(native_only)} applies to the native engine only "
                f"({', '.join(NATIVE_METHODS)}); method {run.method!r} cannot run it"
            )


def run_suite(
    suite: Suite,
    options: RunOptions,
    only: list[str] | None = None,
    seeds: list[int] | None = None,
    log: Callable[[str], None] = print,
) -> SuiteOutcome:
    """Run the suite's runs one after the other in this process; under ``torchrun``, each run on every rank."""
    ranks = distributed.ranks_from_environment()
    device = resolve_device(distributed.device_for(options.device, ranks))
    runs = expand(suite, only, seeds, ranks.world_size, options.limit_batches)
    check_runs(runs, device)
    if options.force and options.done_after is None:
        options = replace(options, done_after=utc_now())
    datasets = load_datasets(runs, device)
    joined = ranks.active and not torch.distributed.is_initialized()
    distributed.init_process_group(ranks, device)
    outcome = SuiteOutcome()
    show = (sys.stderr.isatty() if options.progress is None else options.progress) and ranks.is_main
    completed = False
    try:
        with tqdm(total=len(runs), desc=f"suite {suite.name}", position=0, disable=not show) as runs_bar:
            for run in runs:
                result = perform_run(run, datasets[data_key(run)], options, device, ranks, show,
                                     log if ranks.is_main else _quiet)
                getattr(outcome, result).append(run.run_id)
                if result == "busy" and ranks.is_main:
                    log(f"{run.run_id}: skipped, another process is training it")
                runs_bar.update(1)
        completed = True
    finally:
        if joined:
            distributed.shutdown(synchronise=completed)
    return outcome


def _quiet(_message: str) -> None:
    """Ranks other than 0 log nothing."""
