"""Declarative suites: YAML files of tasks, validated before anything runs.

A suite file has ``name``, ``description``, optional ``defaults`` (merged into every task) and ``tasks``.
Each task says what to train (dataset, architecture, neuron constants), how (methods, T, epochs, batch size,
lr, loss, seeds) and what the paper reported. ``key=value`` overrides from the command line apply to every
selected task. Unknown keys, wrong types and impossible combinations are refused with the file, the task,
the key and the reason.
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from tssl.data.registry import DATASETS
from tssl.engine.architecture import ArchitectureError, parse_architecture
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

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
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

    @property
    def deviations(self) -> dict[str, dict[str, Any]]:
        """Overrides that change this task's results (not methods, seeds or the paper's numbers)."""
        return self._deviations

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

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
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
        raise SuiteError(f"{self.source}: no task {name!r}; tasks: {', '.join(t.name for t in self.tasks)}")


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


def load_suite(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """Read, merge defaults, apply ``key=value`` overrides to every task, and validate."""
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
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise SuiteError(f"{source}: key 'tasks' must be a list of task mappings")
    parsed_overrides = [parse_override(o) for o in overrides]
    known = set(TaskConfig.model_fields)
    for key, _ in parsed_overrides:
        if key not in known:
            raise SuiteError(f"override {key!r}: unknown key; task keys: {', '.join(sorted(known))}")
    raw["tasks"] = [{**defaults, **task, **dict(parsed_overrides)} for task in tasks]
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as error:
        message = _format_validation_error(error, source, raw)
        if parsed_overrides:
            message += f" (after overrides {', '.join(overrides)})"
        raise SuiteError(message) from None
    suite.source = source
    from_file = [{**defaults, **task} for task in tasks]
    for task, original in zip(suite.tasks, from_file, strict=True):
        changed = task.run_config()
        task._deviations = {
            key: {"suite": original.get(key, TaskConfig.model_fields[key].default), "run": changed[key]}
            for key, _ in parsed_overrides
            if key in changed and original.get(key, TaskConfig.model_fields[key].default) != changed[key]
        }
    return suite
