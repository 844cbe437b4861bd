"""Declarative suites: YAML files of tasks, validated before anything runs.

A suite file has ``name``, ``description``, optional ``defaults`` (merged into every task) and ``tasks``.
Each task says what to train (dataset, architecture, neuron constants), how (methods, T, epochs, batch size,
lr, loss, seeds) and what the paper reported. ``key=value`` overrides from the command line apply to every
selected task. Unknown keys, wrong types and impossible combinations are refused with the file, the task,
the key and the reason.

A task may also ``sweep`` keys over lists of values (``sweep: {steps: [5, 10], lr: [0.001, 0.0005]}``): it
stands for one task per point of their Cartesian product, named ``<task>-steps5-lr0.001``, each validated and run
like any other task (docs/suites.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from tssl.data.registry import DATASETS
from tssl.engine.architecture import ArchitectureError, parse_architecture
from tssl.engine.kernel_target import authors_define
from tssl.records.schema import task_config_hash

if TYPE_CHECKING:
    from torch import nn

SUITES_DIR = Path("suites")


class SuiteError(ValueError):
    """A suite file or override that cannot run; the message names file, task, key and reason."""


class PaperResult(BaseModel):
    """What the paper reported for this task (accuracy in percent) and where.

    ``metric`` says which of our numbers is like for like with the paper's: ``best`` when the paper's number is
    each run's maximum test accuracy over epochs (what the authors' code reports: its test() keeps the maximum),
    ``final`` when it is the accuracy after the last epoch.
    """

    model_config = ConfigDict(extra="forbid")
    metric: Literal["best", "final"] = "final"
    mean: float | None = None
    std: float | None = None
    best: float | None = None
    source: str


# Task keys introduced after the first published results: omitted from a run's config (and hash) at their default.
OMITTED_AT_DEFAULT: tuple[str, ...] = ("precision", "recompute", "nir")
# Task keys only the native engine honours (tssl, tssl-surrogate); a task that sets one refuses other methods.
NATIVE_ONLY: tuple[str, ...] = ("recompute",)
# Task keys that describe the network and so cannot go with ``nir`` (the graph is the network): left at default.
NETWORK_KEYS: tuple[str, ...] = ("padding", "conv_weight_scale", "linear_weight_scale", "dropout", "threshold")
# Keys a task's ``sweep`` cannot vary: they name or describe the task, pick its runs or hold the paper's numbers.
UNSWEEPABLE: tuple[str, ...] = ("name", "description", "methods", "seeds", "paper", "tolerance", "sweep")
# What a task or suite name may hold (a point of a sweep is named after its task).
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


def _engine_available() -> bool:
    """Whether torch (and with it the engine) can be imported. The analysis commands (``tssl report``,
    ``tssl check``) read suite files on machines without torch; there the checks that need the engine (the
    method registry, building the loss) are left to the commands that train."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a finder refused it (how the tests stand for a machine without torch)
        return False


def _engine_method_names() -> tuple[str, ...] | None:
    if not _engine_available():
        return None
    from tssl.methods import method_names

    return method_names()


class TaskConfig(BaseModel):
    """One row of a reproduction: a dataset, a network and a recipe, run by each method for each seed."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    dataset: str
    # The network: an architecture string, or (``nir``) a NIR graph file, relative to the working directory,
    # built by tssl.compat.nir.load_nir. Exactly one of the two; a graph enters the run config as its SHA-256.
    architecture: str | None = None
    nir: str | None = None
    padding: int = Field(0, ge=0)
    conv_weight_scale: float = Field(1.0, gt=0)
    linear_weight_scale: float = Field(1.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    threshold: float = 1.0
    tau_m: float = Field(5.0, ge=1)
    tau_s: float = Field(3.0, ge=1)
    steps: int = Field(ge=1, description="T, the number of time steps")
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    # What batch_size means when a run is spread over several ranks (torchrun, or gpus_per_job > 1):
    # "global": batch_size samples per optimiser step in all, split across the ranks (each takes its share of
    #   every global batch), so the result does not depend on the number of ranks (up to float rounding);
    # "per_rank": batch_size samples per rank per step, so a step sees batch_size x world size samples; the
    #   world size then changes the result and is part of the run's config (and run id).
    # Alone, the two are the same computation. Every record states both sizes ("batch").
    batch_semantics: Literal["global", "per_rank"] = "global"
    lr: float = Field(gt=0)
    loss: Literal["kernel", "count", "softmax"]
    kernel_target: Literal["final", "paper"] = "final"
    # How the kernel target reaches a T the authors define none for (tssl.engine.losses.kernel_target_trace):
    # at T = 5, 10, 20, ... it is the authors' target whatever this says.
    kernel_target_fill: Literal["last", "first"] = "last"
    desired_count: float | None = None
    undesired_count: float | None = None
    methods: list[str] = Field(min_length=1)
    recipe: Literal["matched", "native"] = "matched"
    # Force SpikingJelly's LIF implementation for this task (None: its automatic choice or
    # $SJ_LIF_CUDA_IMPLEMENTATION); asking for one that cannot run here fails the run with a clear error.
    spikingjelly_implementation: Literal["auto", "cuda", "triton", "torch"] | None = None
    # Precision of the dense kernels (tssl.engine.precision): fp32 (IEEE), tf32 (CUDA only), bf16 (autocast on conv /
    # linear); the neuron state is float32 in every mode.
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    # Native engine: keep only each conv/linear layer's input and recompute its current and membrane in the
    # backward; saved activations about the floor's, one more layer forward per step, the same gradients.
    recompute: bool = False
    seeds: list[int] = Field(min_length=1)
    validation_fraction: float = Field(0.0, ge=0, lt=1)
    tolerance: float = Field(0.5, gt=0, description="percentage points around the paper's mean")
    paper: PaperResult | None = None
    # Settings overridden on the command line away from the suite file's: {key: {"suite": old, "run": new}}.
    _deviations: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)
    _nir_sha256: str | None = PrivateAttr(None)  # "sha256:<hex>" of the nir file, read once when validated
    # A point of a task's sweep: the task's own name, and the swept keys' values at this point (set by load_suite).
    _sweep_of: str | None = PrivateAttr(None)
    _swept: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def deviations(self) -> dict[str, dict[str, Any]]:
        """Overrides that change this task's results (not methods, seeds or the paper's numbers)."""
        return self._deviations

    @property
    def sweep_of(self) -> str | None:
        """The name of the sweeping task this task is a point of (None for an ordinary task)."""
        return self._sweep_of

    @property
    def swept(self) -> dict[str, Any]:
        """The swept keys and their values at this point of a sweep, in the sweep's order ({} for an ordinary task)."""
        return dict(self._swept)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value not in DATASETS:
            raise ValueError(f"unknown dataset {value!r}; allowed: {', '.join(DATASETS)}")
        return value

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value: list[str]) -> list[str]:
        methods = _engine_method_names()
        unknown = [m for m in value if methods is not None and m not in methods]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; allowed: {', '.join(methods)}")
        if len(set(value)) != len(value):
            raise ValueError("a method is listed twice")
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("a seed is listed twice")
        return value

    @field_validator("architecture")
    @classmethod
    def _parsable(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parse_architecture(value)
        except ArchitectureError as error:
            raise ValueError(str(error)) from None
        return value

    @model_validator(mode="after")
    def _one_network(self) -> TaskConfig:
        if self.nir is None:
            if self.architecture is None:
                raise ValueError("give the network: architecture (e.g. 8C3-P2-16) or nir (a NIR graph file)")
            return self
        if self.architecture is not None:
            raise ValueError("architecture and nir both given; a nir task's network is its graph: omit architecture")
        set_keys = [key for key in NETWORK_KEYS if not self.at_default(key)]
        if set_keys:
            raise ValueError(f"{', '.join(set_keys)} cannot be set with nir: the graph's layers, thresholds and "
                             "weights are the network")
        try:
            digest = hashlib.sha256(Path(self.nir).read_bytes()).hexdigest()
        except OSError as error:
            raise ValueError(f"nir: cannot read {self.nir} ({error.strerror or error})") from None
        self._nir_sha256 = f"sha256:{digest}"
        return self

    @property
    def nir_sha256(self) -> str | None:
        """``sha256:<hex>`` of the task's NIR graph file as read when the suite was loaded (None without one)."""
        return self._nir_sha256

    @model_validator(mode="after")
    def _loss_fits(self) -> TaskConfig:
        if not _engine_available():
            return self  # checked where the task can run: training needs the engine, reading a suite does not
        from tssl.engine.losses import LossConfigError

        try:
            self.task_loss()
        except LossConfigError as error:
            raise ValueError(str(error)) from None
        return self

    def task_loss(self) -> nn.Module:
        """The task's loss (TSSL-BP's recipe), summed over the batch."""
        from tssl.engine.losses import make_loss

        return make_loss(
            self.loss,
            self.steps,
            self.tau_s,
            kernel_target=self.kernel_target,
            kernel_target_fill=self.kernel_target_fill,
            desired_count=self.desired_count,
            undesired_count=self.undesired_count,
        )

    def task_config_hash(self) -> str:
        """The seed- and method-free hash of this task's settings: the configuration its runs are grouped by."""
        return task_config_hash(self.run_config())

    def run_config(self) -> dict[str, Any]:
        """The settings that determine a run's result (not the seeds or method list, not the paper's numbers).

        Keys added after results were published are left out while they hold their default, so that the
        config hash, and with it every run id already in a results store, stays the same.
        """
        config = self.model_dump(exclude={"methods", "seeds", "paper", "tolerance", "description"})
        for key in OMITTED_AT_DEFAULT:
            if key in config and self.at_default(key):
                del config[key]
        if self.loss != "kernel" or authors_define(self.steps, self.kernel_target):
            del config["kernel_target_fill"]  # the authors' own target: the fill plays no part
        if self.nir is not None:  # the graph's content, not where it lies: an edited graph is a new configuration
            config["nir"] = self._nir_sha256
            del config["architecture"]
        return config

    def at_default(self, key: str) -> bool:
        """Whether the task key ``key`` holds its schema default."""
        return getattr(self, key) == type(self).model_fields[key].default


class ClusterConfig(BaseModel):
    """Where ``tssl run --executor slurm|local`` sends the suite's runs (one job per task x method x seed).

    None of these settings changes a run's result, so none enters a run's config or id; the command line's
    --partition, --gpus-per-job, --time-limit and --concurrency override them.
    """

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    gpus_per_job: int = Field(1, ge=0, description="GPUs per run; > 1 runs one run on that many ranks (DDP)")
    cpus_per_task: int | None = Field(None, ge=1)
    mem_gb: float | None = Field(None, gt=0)
    time_limit_min: int = Field(24 * 60, ge=1, description="minutes per job; a timed-out job is requeued")
    concurrency: int | None = Field(None, ge=1, description="runs at once (the Slurm job array's %N)")
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = Field(default_factory=list, description="shell lines run before each job")
    max_requeues: int = Field(3, ge=0, description="times a timed-out or preempted job is requeued")

    @property
    def ranks_per_job(self) -> int:
        """Processes per run: one per GPU, and one on a CPU-only job."""
        return max(1, self.gpus_per_job)


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    # A sentence the report shows in its header and on every figure (e.g. that the epochs were cut).
    caveat: str = ""
    tasks: list[TaskConfig] = Field(min_length=1)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    source: str = ""  # where the suite was read from (filled in by load_suite)

    @model_validator(mode="after")
    def _unique_tasks(self) -> Suite:
        names = [t.name for t in self.tasks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"task name {duplicated[0]!r} is used twice")
        return self

    def task(self, name: str) -> TaskConfig:
        for task in self.tasks:
            if task.name == name:
                return task
        points = [t.name for t in self.tasks if t.sweep_of == name]
        if points:
            raise SuiteError(f"{self.source}: task {name!r} is a sweep; its points: {', '.join(points)}")
        raise SuiteError(f"{self.source}: no task {name!r}; tasks: {', '.join(t.name for t in self.tasks)}")

    def sweeps(self) -> dict[str, list[TaskConfig]]:
        """Each sweeping task's name and its points, in the suite's order."""
        sweeps: dict[str, list[TaskConfig]] = {}
        for task in self.tasks:
            if task.sweep_of is not None:
                sweeps.setdefault(task.sweep_of, []).append(task)
        return sweeps

    def select(self, names: list[str] | tuple[str, ...]) -> list[TaskConfig]:
        """The tasks named, in the order named: a task's name, or a sweep's name for all its points; each once."""
        by_name = {task.name: task for task in self.tasks}
        sweeps = self.sweeps()
        selected: list[TaskConfig] = []
        for name in names:
            if name in by_name:
                tasks = [by_name[name]]
            elif name in sweeps:
                tasks = sweeps[name]
            else:
                listed = f"tasks: {', '.join(by_name)}" + (f"; sweeps: {', '.join(sweeps)}" if sweeps else "")
                raise SuiteError(f"{self.source}: no task {name!r}; {listed}")
            selected.extend(task for task in tasks if all(task is not chosen for chosen in selected))
        return selected


def find_suite(name_or_path: str) -> Path:
    """A suite by path, else ``suites/<name>.yaml`` here, else the copy installed with the package."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate
        raise SuiteError(f"{candidate}: suite file not found")
    local = SUITES_DIR / f"{name_or_path}.yaml"
    if local.is_file():
        return local
    try:
        packaged = Path(str(resources.files("tssl_suites").joinpath(f"{name_or_path}.yaml")))
    except (ModuleNotFoundError, OSError):
        packaged = None
    if packaged is not None and packaged.is_file():
        return packaged
    available = sorted(p.stem for p in SUITES_DIR.glob("*.yaml")) if SUITES_DIR.is_dir() else []
    raise SuiteError(
        f"suite {name_or_path!r} not found (looked for {local} and the installed suites)"
        + (f"; available here: {', '.join(available)}" if available else "")
    )


def parse_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SuiteError(f"override {text!r} is not of the form key=value (e.g. epochs=3, seeds=[0,1])")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _format_validation_error(error: ValidationError, source: str, raw: dict[str, Any]) -> str:
    first = error.errors()[0]
    location = list(first["loc"])
    parts = []
    if location[:1] == ["tasks"] and len(location) >= 2 and isinstance(location[1], int):
        index = location[1]
        tasks = raw.get("tasks") or []
        task_name = tasks[index].get("name", f"#{index + 1}") if index < len(tasks) else f"#{index + 1}"
        parts.append(f"task {task_name!r}")
        location = location[2:]
    key = ".".join(str(part) for part in location)
    if key:
        parts.append(f"key {key!r}")
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    return f"{source}: {', '.join(parts) + ': ' if parts else ''}{message}"


def point_label(value: Any) -> str:
    """A swept value as a point's name writes it: ``2``, ``0.0005``, ``1e-05``, ``true``, a string as is."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def _values_text(values: list[Any]) -> str:
    return f"[{', '.join(point_label(value) for value in values)}]"


def _point_name(base: str, swept: dict[str, Any]) -> str:
    return base + "".join(f"-{key}{point_label(value)}" for key, value in swept.items())


def _check_sweep(where: str, sweep: Any) -> dict[str, list[Any]]:
    """A task's ``sweep`` mapping, checked: known, sweepable keys, each with a non-empty list of distinct values."""
    sweepable = ", ".join(key for key in TaskConfig.model_fields if key not in UNSWEEPABLE)
    if not isinstance(sweep, dict) or not sweep:
        raise SuiteError(f"{where}, key 'sweep': expected a mapping of task keys to lists of values (e.g. sweep: "
                         f"{{steps: [5, 10]}}); sweepable keys: {sweepable}")
    for key, values in sweep.items():
        at = f"{where}, key 'sweep.{key}'"
        if key in UNSWEEPABLE:
            raise SuiteError(f"{at}: {key} cannot be swept (it names the task, picks its runs or holds the paper's "
                             f"numbers); sweepable keys: {sweepable}")
        if key not in TaskConfig.model_fields:
            raise SuiteError(f"{at}: unknown key; sweepable keys: {sweepable}")
        if not isinstance(values, list) or not values:
            raise SuiteError(f"{at}: expected a non-empty list of distinct values (e.g. [5, 10]); got {values!r}")
        for position, value in enumerate(values):
            if value is not None and not isinstance(value, str | int | float):
                raise SuiteError(f"{at}: each value must be a number, a string or true/false; got {value!r}")
            if not re.fullmatch(r"[A-Za-z0-9_.-]*", point_label(value)):
                raise SuiteError(f"{at}: value {value!r} cannot go into a task name (allowed: letters, digits, "
                                 "'_', '.', '-')")
            earlier = values[:position]
            if any(value == other or point_label(value) == point_label(other) for other in earlier):
                raise SuiteError(f"{at}: value {point_label(value)} is listed twice in {_values_text(values)}; "
                                 "list each value once")
    return sweep


def _expand_sweeps(
    source: str, defaults: dict[str, Any], tasks: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[str | None, dict[str, Any]]], dict[str, dict[str, list[Any]]]]:
    """The tasks with defaults merged in and each sweep expanded into its points (keys in the order written, values
    in the order listed); beside each task its sweep's name and swept values, and every sweep by name."""
    expanded: list[dict[str, Any]] = []
    origins: list[tuple[str | None, dict[str, Any]]] = []
    sweeps: dict[str, dict[str, list[Any]]] = {}
    for index, task in enumerate(tasks):
        merged = {**defaults, **task}
        if "sweep" not in task:
            expanded.append(merged)
            origins.append((None, {}))
            continue
        base = task.get("name")
        where = f"{source}: task {base!r}" if isinstance(base, str) else f"{source}: task #{index + 1}"
        if not isinstance(base, str) or not re.fullmatch(NAME_PATTERN, base):
            raise SuiteError(f"{where}, key 'name': a task that sweeps needs a name of letters, digits, '_', '.', '-' "
                             "(its points are named after it)")
        sweep = _check_sweep(where, merged.pop("sweep"))
        if base in sweeps:
            raise SuiteError(f"{where}, key 'name': two tasks that sweep are named {base!r}; rename one of them")
        sweeps[base] = sweep
        for point in itertools.product(*sweep.values()):
            swept = dict(zip(sweep, point, strict=True))
            expanded.append({**merged, **swept, "name": _point_name(base, swept)})
            origins.append((base, swept))
    names = [task.get("name") for task in expanded]
    for task, (base, _) in zip(expanded, origins, strict=True):
        if base is not None and (names.count(task["name"]) > 1 or task["name"] in sweeps):
            raise SuiteError(f"{source}: task {base!r}, key 'sweep': the point {task['name']!r} has the name of "
                             "another task; rename one of them")
    for base in sweeps:
        if base in names:
            raise SuiteError(f"{source}: task {base!r}, key 'name': {base!r} names both a sweep (all its points) and "
                             "another task; rename one of them")
    return expanded, origins, sweeps


def load_suite(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """Read, merge defaults, expand sweeps, apply ``key=value`` overrides to every task, and validate."""
    path = find_suite(name_or_path)
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SuiteError(f"{source}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: expected a mapping with keys name, description, defaults, tasks")
    defaults = raw.pop("defaults", None) or {}
    if not isinstance(defaults, dict):
        raise SuiteError(f"{source}: key 'defaults' must be a mapping of task keys")
    if "sweep" in defaults:
        raise SuiteError(f"{source}: key 'defaults.sweep': only a task can sweep; move sweep: into the tasks it "
                         "applies to")
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise SuiteError(f"{source}: key 'tasks' must be a list of task mappings")
    parsed_overrides = [parse_override(o) for o in overrides]
    known = set(TaskConfig.model_fields)
    for key, _ in parsed_overrides:
        if key not in known:
            raise SuiteError(f"override {key!r}: unknown key; task keys: {', '.join(sorted(known))}")
    from_file, origins, sweeps = _expand_sweeps(source, defaults, tasks)
    for key, _ in parsed_overrides:
        for base, sweep in sweeps.items():
            if key in sweep:
                first = _point_name(base, {k: values[0] for k, values in sweep.items()})
                raise SuiteError(f"override {key!r}: task {base!r} sweeps {key} over {_values_text(sweep[key])}; "
                                 f"run one point with --only {first}")
    raw["tasks"] = [{**task, **dict(parsed_overrides)} for task in from_file]
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as error:
        message = _format_validation_error(error, source, raw)
        location = error.errors()[0]["loc"]
        if location[:1] == ("tasks",) and len(location) >= 2 and isinstance(location[1], int):
            base, swept = origins[location[1]] if location[1] < len(origins) else (None, {})
            if base is not None:
                point = ", ".join(f"{key}={point_label(value)}" for key, value in swept.items())
                message += f" (the point {point} of the sweep of task {base!r})"
        if parsed_overrides:
            message += f" (after overrides {', '.join(overrides)})"
        raise SuiteError(message) from None
    suite.source = source
    for task, original, (base, swept) in zip(suite.tasks, from_file, origins, strict=True):
        task._sweep_of, task._swept = base, {key: getattr(task, key) for key in swept}  # as validated
        changed = task.run_config()
        task._deviations = {
            key: {"suite": original.get(key, TaskConfig.model_fields[key].default), "run": changed[key]}
            for key, _ in parsed_overrides
            if key in changed and original.get(key, TaskConfig.model_fields[key].default) != changed[key]
        }
    return suite
