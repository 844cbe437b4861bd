"""``tssl bench``: training-step throughput and memory of every method on the paper's networks.

For each network, every contender (``tssl``, ``tssl-surrogate``, ``snntorch``, one ``spikingjelly[<impl>]`` per
SpikingJelly LIF implementation that runs on the device, and the ``floor``: the native network with its neuron
replaced by one multiply, ``tssl.measure.floor``) trains on the same random batch of the network's input shape with
the project's own pieces: the method's model and reset (``tssl.methods``), the task's loss
(``TaskConfig.task_loss``) and the recipe's optimiser step (``tssl.engine.train.train_step``), at the chosen
precision (``tssl.engine.precision``). A timed step is reset + forward + loss + backward + clip + AdamW step + clamp,
as ``tssl.engine.train.train_epoch`` runs it; the gradients are dropped (set to None) after it, outside the clock.

Timing alternates the contenders one step at a time, rotating the order every round, after ``warmup`` untimed
rounds; the reported step time is the median over rounds, and each ratio is the median of the per-round ratios
(a contender's step time over tssl's, or over the floor's, from the same round), so slow spells of a shared
machine hit every contender alike.

Memory per contender (``MEMORY_KINDS``), measured after every timing on a freshly built and warmed-up copy: its
parameters and optimiser state plus the peak allocation above them during one training step; on CUDA from
``torch.cuda.max_memory_allocated``, on CPU from the process's peak RSS with glibc set to give freed memory
back at once (``CpuStepPeak``), so that the number belongs to that contender alone. Saved activations: the
bytes autograd keeps for the backward, per sample (``tssl.measure.memory.saved_activation_bytes``), beside the authors'
layout for the same network (``tssl.measure.memory.authors_layout_bytes``).

Each contender's result is one record in ``RESULTS_DIR/bench.jsonl`` (``kind: "bench"``; docs/results-format.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tssl.engine.architecture import ArchitectureError, parse_architecture
from tssl.engine.neuron_compiled import COMPILE_ENV
from tssl.engine.precision import PrecisionError, autocast, check_precision, describe, math_mode
from tssl.engine.recipe import make_optimizer
from tssl.engine.train import no_reset, train_step
from tssl.harness import cpu_allocator
from tssl.harness.provenance import environment
from tssl.methods import ModelConfig, build_native, get_method, method_names, training_recipe
from tssl.records.schema import BENCH_KIND, BENCH_MEMORY_KINDS, BENCH_SCHEMA_VERSION, BENCH_STORE_NAME, FLOOR, utc_now
from tssl.records.store import append_record

BENCH_SCHEMA = BENCH_SCHEMA_VERSION
STORE_NAME = BENCH_STORE_NAME
METHOD_NAMES = (*method_names(), FLOOR)  # every registered method (tssl.methods.registry), and the floor
DEFAULT_METHODS = ("tssl", "tssl[compiled]", "tssl-surrogate", "snntorch", "spikingjelly", FLOOR)
# tssl[compiled]: TSSL_NEURON_COMPILE=1 (CPU); tssl[recompute]: the task key recompute (tssl.engine.layers);
# tssl[compiled+recompute]: both.
NATIVE_VARIANTS = ("compiled", "recompute")
SPIKINGJELLY_IMPLEMENTATIONS = ("cuda", "triton", "torch")  # SpikingJelly's own order of preference
MEMORY_KINDS = BENCH_MEMORY_KINDS


class BenchError(ValueError):
    """Bad input to ``tssl bench``: reported as one sentence."""


# --------------------------------------------------------------------------------------------------------------
# Networks


@dataclass(frozen=True)
class NetPreset:
    suite: str
    task: str
    input_shape: tuple[int, ...]
    cpu_batch: int | None = None  # a smaller batch on CPU, where the paper's would take minutes per round


# The paper's networks (spec section 4), taken from the suites so that the recipe has one source.
NETS: dict[str, NetPreset] = {
    "mnist": NetPreset("mnist", "mnist-cnn", (1, 28, 28)),
    "fmnist-mlp": NetPreset("fmnist", "fmnist-mlp", (1, 28, 28)),
    "cifar10-cnn1": NetPreset("cifar10", "cifar10-cnn1", (3, 32, 32), cpu_batch=4),
    "fmnist-cnn": NetPreset("fmnist", "fmnist-cnn", (1, 28, 28)),
}
DEFAULT_NETS = ("mnist", "fmnist-mlp", "cifar10-cnn1")  # the three; the other presets on request
CUSTOM_TEMPLATE = "mnist"  # a custom architecture takes this preset's recipe (T, tau, loss, lr)
CLASSES = 10


@dataclass(frozen=True)
class BenchNet:
    """One network to benchmark: its name, the task it comes from (recipe and loss) and its input."""

    name: str
    source: str
    task: Any  # tssl.harness.suites.TaskConfig
    input_shape: tuple[int, ...]
    classes: int
    batch: int

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_task(self.task, self.input_shape, self.classes)

    def as_dict(self) -> dict[str, Any]:
        task = self.task
        return {
            "name": self.name, "source": self.source, "architecture": task.architecture,
            "input_shape": list(self.input_shape), "classes": self.classes, "steps": task.steps,
            "padding": task.padding, "dropout": task.dropout, "loss": task.loss, "tau_m": task.tau_m,
            "tau_s": task.tau_s, "lr": task.lr,
        }


def _suite_task(preset: NetPreset):
    from tssl.harness.suites import SuiteError, load_suite

    try:
        return load_suite(preset.suite).task(preset.task)
    except SuiteError as error:
        raise BenchError(f"cannot read the recipe of net {preset.task!r}: {error}") from None


def parse_input_shape(text: str) -> tuple[int, ...]:
    parts = re.split(r"[,x]", text.strip())
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) not in (1, 3) or any(s < 1 for s in shape):
        raise BenchError(f"--input-shape {text!r} is not C,H,W or a feature count (e.g. 1,28,28 or 784)")
    return shape


def resolve_nets(
    names: Sequence[str], input_shape: str | None, batch: int | None, steps: int | None, device: torch.device
) -> list[BenchNet]:
    """The networks named by ``--net`` (preset names or architecture strings) with batch and T resolved."""
    from pydantic import ValidationError

    from tssl.harness.suites import TaskConfig

    shape = parse_input_shape(input_shape) if input_shape else None
    nets: list[BenchNet] = []
    for name in names:
        if name in NETS:
            preset = NETS[name]
            task, net_shape = _suite_task(preset), preset.input_shape
            source = f"suite {preset.suite}, task {preset.task}"
            default_batch = preset.cpu_batch if device.type == "cpu" and preset.cpu_batch else task.batch_size
        else:
            try:
                parse_architecture(name)
            except ArchitectureError as error:
                raise BenchError(
                    f"--net {name!r} is neither a known net ({', '.join(NETS)}) nor an architecture string: {error}"
                ) from None
            if shape is None:
                raise BenchError(f"--net {name!r} is an architecture string: give its input with --input-shape C,H,W")
            template = _suite_task(NETS[CUSTOM_TEMPLATE])
            task, net_shape = template, shape
            source = f"architecture string, recipe of suite {NETS[CUSTOM_TEMPLATE].suite}"
            default_batch = template.batch_size
        overrides = {"architecture": task.architecture if name in NETS else name}
        if steps is not None:
            overrides["steps"] = steps
        try:
            task = TaskConfig.model_validate({**task.model_dump(), **overrides})
        except ValidationError as error:
            message = error.errors()[0]["msg"].removeprefix("Value error, ")
            raise BenchError(f"--net {name!r}: {message}") from None
        net = BenchNet(name, source, task, net_shape, CLASSES, batch or default_batch)
        try:
            build_native(net.model_config(), "tsslbp")
        except ArchitectureError as error:
            raise BenchError(f"--net {name!r} with input {net_shape}: {error}") from None
        nets.append(net)
    if shape is not None and all(name in NETS for name in names):
        raise BenchError("--input-shape applies to architecture strings only; every --net given is a known net")
    return nets


# --------------------------------------------------------------------------------------------------------------
# Contenders


def spikingjelly_implementations(device: torch.device) -> list[str]:
    """The SpikingJelly LIF implementations that run on ``device`` (on a CPU only SpikingJelly's Torch one)."""
    if device.type != "cuda":
        return ["torch"]
    from tssl_baselines.spikingjelly_backend import SpikingJellyLIF

    available = []
    for implementation in SPIKINGJELLY_IMPLEMENTATIONS:
        try:
            lif = SpikingJellyLIF(5.0, 1.0, implementation=implementation).to(device)
            lif(torch.zeros(2, 4, device=device, requires_grad=True)).sum().backward()
        except Exception:  # BackendUnavailableError, or e.g. a Triton kernel that fails to compile here
            continue
        available.append(implementation)
    return available


def native_variants(label: str) -> tuple[str, list[str]]:
    """``"tssl[compiled+recompute]"`` -> ``("tssl", ["compiled", "recompute"])``; other labels -> (name, [])."""
    name, _, rest = label.partition("[")
    variants = rest.removesuffix("]").split("+") if rest and name in ("tssl", "tssl-surrogate") else []
    return name, variants


def resolve_methods(names: Sequence[str], device: torch.device) -> list[str]:
    """Contender labels: ``spikingjelly`` becomes one ``spikingjelly[<impl>]`` per implementation available on
    ``device``; ``spikingjelly[<impl>]`` asks for one."""
    labels: list[str] = []
    for name in names:
        if name == "spikingjelly":
            labels += [f"spikingjelly[{impl}]" for impl in spikingjelly_implementations(device)]
        elif (match := re.fullmatch(r"spikingjelly\[(\w+)\]", name)) is not None:
            if match.group(1) not in SPIKINGJELLY_IMPLEMENTATIONS:
                raise BenchError(f"--methods {name!r}: SpikingJelly implementations are "
                                 f"{', '.join(SPIKINGJELLY_IMPLEMENTATIONS)}")
            labels.append(name)
        elif name in METHOD_NAMES:
            labels.append(name)
        elif re.fullmatch(r"(tssl|tssl-surrogate)\[([\w+]+)\]", name) is not None:
            method, variants = native_variants(name)
            if any(v not in NATIVE_VARIANTS for v in variants) or len(set(variants)) < len(variants):
                raise BenchError(f"--methods {name!r}: the native engine's variants are "
                                 f"{', '.join(NATIVE_VARIANTS)} (joined by +, e.g. tssl[compiled+recompute])")
            if "compiled" in variants and device.type != "cpu":
                raise BenchError(f"--methods {name!r}: the compiled neuron (TSSL_NEURON_COMPILE) is a CPU path; "
                                 f"on {device.type} use {method!r}")
            labels.append(name)
        else:
            raise BenchError(f"--methods {name!r} is unknown; allowed: {', '.join(METHOD_NAMES)}, "
                             "spikingjelly[cuda|triton|torch], or tssl / tssl-surrogate with [compiled], "
                             "[recompute] or [compiled+recompute]")
    return list(dict.fromkeys(labels))


@dataclass
class Contender:
    """A model with everything one training step needs."""

    label: str
    model: nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    reset: Callable[[nn.Module], None]
    describe_implementation: Callable[[], dict]
    step_seconds: list[float] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)  # variables set while this contender runs

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Set the contender's environment (e.g. TSSL_NEURON_COMPILE=1, read on every neuron call), restore after."""
        saved = {key: os.environ.get(key) for key in self.environment}
        os.environ.update(self.environment)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def step(self, inputs: torch.Tensor, labels: torch.Tensor, precision: str, device: torch.device) -> None:
        """One step of the recipe, the one the epoch loop runs (``tssl.engine.train.train_step``), in the
        contender's environment."""
        with self.active():
            train_step(self.model, self.loss_fn, self.optimizer, self.params, inputs, labels, device, self.reset,
                       precision)


def build_contender(label: str, net: BenchNet, device: torch.device, seed: int = 0) -> Contender:
    """``label``'s model for ``net`` on ``device`` (the same initial weights for every contender) with the
    task's loss and the method's recipe."""
    config = net.model_config()
    task_loss = net.task.task_loss()
    variants = native_variants(label)[1]
    torch.manual_seed(seed)
    if label == FLOOR:
        from tssl.measure.floor import floor_network

        model = floor_network(build_native(config, "tsslbp"))
        loss_fn: Callable = task_loss
        optimizer = make_optimizer(model.parameters(), net.task.lr)
        reset = no_reset  # the floor keeps no state between batches

        def implementation() -> dict:
            return {"engine": "floor", "neuron": "x * 1.0 (tssl.measure.floor.FloorNeuron)", "torch": torch.__version__}
    else:
        name, _, rest = label.partition("[")
        options = {"implementation": rest.removesuffix("]")} if rest and name == "spikingjelly" else {}
        method = get_method(name, **options)
        if "recompute" in variants:
            config = dataclasses.replace(config, recompute=True)
        model = method.build(config)
        recipe = training_recipe(method, config, task_loss)
        loss_fn, reset = recipe.loss, method.reset
        optimizer = recipe.make_optimizer(model.parameters(), net.task.lr)

        def implementation() -> dict:
            with contender.active():  # the kernel label depends on the contender's environment
                return method.provenance(model)
    model = model.to(device).train()
    if isinstance(loss_fn, nn.Module):
        loss_fn = loss_fn.to(device)
    environment = {COMPILE_ENV: "1"} if "compiled" in variants else {}
    contender = Contender(label, model, loss_fn, optimizer, reset, implementation, environment=environment)
    return contender


def random_batch(net: BenchNet, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random static inputs ``[B, *input_shape]`` in [0, 1) and random labels: the right shape, no dataset."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.rand(net.batch, *net.input_shape, generator=generator)
    labels = torch.randint(net.classes, (net.batch,), generator=generator)
    return inputs.to(device), labels.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_step(contender: Contender, batch, precision: str, device: torch.device) -> None:
    _sync(device)
    start = time.perf_counter()
    contender.step(*batch, precision, device)
    _sync(device)
    contender.step_seconds.append(time.perf_counter() - start)
    contender.optimizer.zero_grad(set_to_none=True)


def run_rounds(contenders: list[Contender], batch, precision: str, device: torch.device, iters: int,
               warmup: int) -> dict[str, str]:
    """``warmup`` untimed then ``iters`` timed rounds; each round runs every contender one step, the order
    rotated by one each round. A contender whose step raises leaves the rounds; returns {label: error}."""
    failed: dict[str, str] = {}
    running = list(contenders)
    for round_index in range(warmup + iters):
        shift = round_index % max(len(running), 1)
        for contender in running[shift:] + running[:shift]:
            try:
                if round_index < warmup:
                    contender.step(*batch, precision, device)
                    contender.optimizer.zero_grad(set_to_none=True)
                else:
                    _timed_step(contender, batch, precision, device)
            except Exception as error:  # one contender's failure is its row's, not the benchmark's
                failed[contender.label] = f"{type(error).__name__}: {error}"
                running.remove(contender)
                contender.optimizer.zero_grad(set_to_none=True)
    return failed


def _median_ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


# --------------------------------------------------------------------------------------------------------------
# Memory


class MemoryUnavailableError(RuntimeError):
    """Peak memory cannot be measured here (CPU: needs Linux with glibc)."""


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise MemoryUnavailableError("no VmHWM in /proc/self/status")


class CpuStepPeak:
    """Peak RSS growth of the process over one call, on Linux with glibc.

    glibc keeps freed blocks for reuse, so that RSS hides a step's allocations; fixing its mmap threshold at
    64 KiB (M_MMAP_THRESHOLD) makes every larger block an mmap that leaves the RSS when freed, and
    ``malloc_trim`` returns the rest before each measurement. This slows allocation down, so it is switched on
    only after every timing is done, and :meth:`close` (or leaving the ``with`` block) sets the thresholds back
    to the process's tuned ones (``tssl.harness.cpu_allocator``), or where it was not tuned to the values glibc's own
    dynamic adjustment ends at for large blocks (mmap 32 MiB, trim 64 MiB: glibc cannot go back to adjusting
    them itself). The peak (VmHWM) is reset to the current RSS through
    /proc/self/clear_refs.
    """

    THRESHOLD_BYTES = 64 * 1024
    RELAXED_MMAP_BYTES, RELAXED_TRIM_BYTES = 32 * 2**20, 64 * 2**20

    def __init__(self) -> None:
        self.libc = cpu_allocator.glibc()
        if self.libc is None:
            raise MemoryUnavailableError("CPU peak memory needs Linux with glibc")
        try:
            self._reset_peak()
            _peak_rss_bytes()
        except OSError as error:
            raise MemoryUnavailableError(f"CPU peak memory needs Linux with glibc ({error})") from None
        if not cpu_allocator.mallopt(cpu_allocator.M_MMAP_THRESHOLD, self.THRESHOLD_BYTES):
            raise MemoryUnavailableError("glibc refused mallopt(M_MMAP_THRESHOLD)")

    @staticmethod
    def _reset_peak() -> None:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # VmHWM := current RSS (Linux >= 4.0)

    def measure(self, step: Callable[[], None]) -> int:
        self.libc.malloc_trim(0)
        self._reset_peak()
        before = _rss_bytes()
        step()
        return max(_peak_rss_bytes() - before, 0)

    def close(self) -> None:
        if cpu_allocator.reapply():  # back to the process's tuned settings (tssl.harness.cpu_allocator)
            return
        cpu_allocator.mallopt(cpu_allocator.M_MMAP_THRESHOLD, self.RELAXED_MMAP_BYTES)
        cpu_allocator.mallopt(cpu_allocator.M_TRIM_THRESHOLD, self.RELAXED_TRIM_BYTES)

    def __enter__(self) -> CpuStepPeak:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def _state_bytes(contender: Contender) -> int:
    """Parameters and optimiser state of one contender."""
    total = sum(p.numel() * p.element_size() for p in contender.model.parameters())
    for state in contender.optimizer.state.values():
        total += sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor))
    return total


def measure_memory(contender: Contender, batch, precision: str, device: torch.device,
                   cpu_peak: CpuStepPeak | None) -> dict[str, Any]:
    """Peak memory of one training step of ``contender``: its parameters and optimiser state plus the largest
    allocation above them during the step (activations, gradients, temporaries)."""

    def step() -> None:
        contender.step(*batch, precision, device)
        _sync(device)

    contender.optimizer.zero_grad(set_to_none=True)
    with math_mode(precision, device):
        if device.type == "cuda":
            _sync(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            step()
            step_peak, kind = torch.cuda.max_memory_allocated(device) - base, "cuda_state_plus_step_peak"
        else:
            if cpu_peak is None:
                raise MemoryUnavailableError("CPU peak memory was not set up")
            step_peak, kind = cpu_peak.measure(step), "cpu_state_plus_step_rss_peak"
    contender.optimizer.zero_grad(set_to_none=True)
    state = _state_bytes(contender)
    return {"peak_bytes": state + step_peak, "state_bytes": state, "step_peak_bytes": step_peak, "kind": kind,
            "definition": MEMORY_KINDS[kind], "error": None}


def saved_bytes_per_sample(contender: Contender, batch, precision: str, device: torch.device) -> float:
    from tssl.measure.memory import saved_activation_bytes

    contender.reset(contender.model)
    with contender.active(), math_mode(precision, device), autocast(precision, device):
        return saved_activation_bytes(contender.model, batch[0], batch[1], contender.loss_fn)


# --------------------------------------------------------------------------------------------------------------
# One benchmark run


@dataclass(frozen=True)
class BenchOptions:
    iters: int = 10
    warmup: int = 2
    precision: str = "fp32"
    memory: bool = True  # measure peak memory (after all timing; see MEMORY_KINDS)


def time_net(net: BenchNet, labels: list[str], device: torch.device, options: BenchOptions,
             context: dict[str, Any]) -> list[dict[str, Any]]:
    """Time every contender on ``net`` and count its saved activations; one record per contender (failed
    contenders included), memory still to be filled in by :func:`add_memory`."""
    started = utc_now()
    batch = random_batch(net, device)
    contenders: list[Contender] = []
    failed: dict[str, str] = {}
    for label in labels:
        try:
            contenders.append(build_contender(label, net, device))
        except Exception as error:  # a method that cannot run here is a failed row, not a failed benchmark
            failed[label] = f"{type(error).__name__}: {error}"
    with math_mode(options.precision, device):
        failed.update(run_rounds(contenders, batch, options.precision, device, options.iters, options.warmup))
    from tssl.measure.memory import authors_layout_bytes

    authors = authors_layout_bytes(build_native(net.model_config(), "tsslbp").to(device), batch[0])  # per sample
    by_label = {c.label: c for c in contenders if c.label not in failed}
    tssl, floor = by_label.get("tssl"), by_label.get(FLOOR)
    records = []
    for label in labels:
        record = _base_record(net, label, device, options, context, started)
        contender = by_label.get(label)
        if contender is None:
            records.append({**record, "status": "failed", "error": failed[label]})
            continue
        seconds = contender.step_seconds
        median = statistics.median(seconds)
        records.append({
            **record,
            "status": "ok",
            "error": None,
            "step_seconds": {"median": median, "min": min(seconds), "max": max(seconds), "all": seconds},
            "samples_per_second": net.batch / median,
            "time_ratio_to_tssl": None if tssl is None else _median_ratio(seconds, tssl.step_seconds),
            "time_ratio_to_floor": None if floor is None else _median_ratio(seconds, floor.step_seconds),
            "memory": {"peak_bytes": None, "kind": None, "definition": None, "error": "not measured"},
            "saved_activation_bytes_per_sample": saved_bytes_per_sample(contender, batch, options.precision, device),
            "authors_layout_bytes_per_sample": authors,
            "implementation": contender.describe_implementation(),
        })
    return records


def add_memory(records: list[dict[str, Any]], net: BenchNet, device: torch.device, options: BenchOptions,
               cpu_peak: CpuStepPeak | None) -> None:
    """Fill in each ok record's peak memory: the contender is built afresh, trained one step to warm up (the
    optimiser state exists from then on), then measured over one more step."""
    batch = random_batch(net, device)
    for record in records:
        if record["status"] != "ok":
            continue
        try:
            contender = build_contender(record["method"], net, device)
            with math_mode(options.precision, device):
                contender.step(*batch, options.precision, device)
            record["memory"] = measure_memory(contender, batch, options.precision, device, cpu_peak)
        except Exception as error:  # memory is one column; a failure there leaves the timing standing
            record["memory"]["error"] = f"{type(error).__name__}: {error}"
        finally:
            contender = None
            if device.type == "cuda":
                torch.cuda.empty_cache()


def measure_all_memory(timed: list[tuple[BenchNet, list[dict[str, Any]]]], device: torch.device,
                       options: BenchOptions, log: Callable[[str], None]) -> None:
    """:func:`add_memory` for every net; on CPU under one :class:`CpuStepPeak`, released at the end."""
    cpu_peak = None
    if device.type == "cpu":
        try:
            cpu_peak = CpuStepPeak()  # changes glibc's allocation policy: only once every timing is done
        except MemoryUnavailableError as error:
            log(f"peak memory not measured: {error}")
            for _, records in timed:
                for record in records:
                    if record["status"] == "ok":
                        record["memory"]["error"] = str(error)
            return
    try:
        for net, records in timed:
            add_memory(records, net, device, options, cpu_peak)
    finally:
        if cpu_peak is not None:
            cpu_peak.close()


def _base_record(net: BenchNet, label: str, device: torch.device, options: BenchOptions,
                 context: dict[str, Any], started: str) -> dict[str, Any]:
    return {
        "schema": BENCH_SCHEMA,
        "kind": BENCH_KIND,
        "bench_id": context["bench_id"],
        "run_id": f"bench.{context['bench_id']}.{net.name}.{label}",
        "status": None,
        "net": net.as_dict(),
        "method": label,
        "batch": net.batch,
        "steps": net.task.steps,
        "precision": options.precision,
        "precision_detail": describe(options.precision, device),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "iters": options.iters,
        "warmup": options.warmup,
        "provenance": {**context["environment"], "argv": context["argv"], "started_at": started},
    }


def new_context(device: torch.device, argv: Sequence[str]) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return {"bench_id": f"{stamp}-{uuid.uuid4().hex[:6]}", "environment": environment(device), "argv": list(argv)}


# --------------------------------------------------------------------------------------------------------------
# Entry point


def resolve_bench_device(name: str) -> torch.device:
    from tssl.harness.runner import resolve_device
    from tssl.harness.suites import SuiteError

    try:
        return resolve_device(name)
    except SuiteError as error:
        raise BenchError(str(error)) from None


def default_methods(device: torch.device) -> list[str]:
    """What ``tssl bench`` runs without --methods: every method and the floor, and on a CPU also the compiled
    engine (the path that meets the CPU targets; ``docs/engine-performance.md``)."""
    return [m for m in DEFAULT_METHODS if device.type == "cpu" or not m.endswith("[compiled]")]


def run_bench(
    nets: Sequence[str],
    methods: Sequence[str] | None,
    *,
    device: str = "auto",
    input_shape: str | None = None,
    batch: int | None = None,
    steps: int | None = None,
    options: BenchOptions = BenchOptions(),
    results_dir: Path | None = Path("results"),
    argv: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Benchmark ``methods`` (None: :func:`default_methods`) on ``nets``: time every net first, then
    (``options.memory``) measure memory, print a table per net, append the records to
    ``results_dir/bench.jsonl`` (unless ``results_dir`` is None) and return them."""
    from tssl.records.bench_report import format_table, table_caption

    resolved = resolve_bench_device(device)
    try:
        check_precision(options.precision, resolved)
    except PrecisionError as error:
        raise BenchError(f"--{error}") from None  # "--precision 'tf32' needs a CUDA device ..."
    labels = resolve_methods(default_methods(resolved) if methods is None else methods, resolved)
    if not labels:
        raise BenchError("--methods: no method to run")
    bench_nets = resolve_nets(nets, input_shape, batch, steps, resolved)
    context = new_context(resolved, argv)
    timed = []
    for net in bench_nets:
        log(f"{net.name}: {net.task.architecture} on {net.input_shape}, batch {net.batch}, T {net.task.steps}: "
            f"timing {', '.join(labels)} ...")
        timed.append((net, time_net(net, labels, resolved, options, context)))
    if options.memory:
        measure_all_memory(timed, resolved, options, log)
    everything = []
    for net, records in timed:
        for record in records:
            record["provenance"]["finished_at"] = utc_now()
            if results_dir is not None:
                append_record(results_dir / STORE_NAME, record)
        log(f"\n{net.name}\n{format_table(records)}")
        everything += records
    log("\n" + table_caption(everything))
    if results_dir is not None:
        log(f"{len(everything)} records appended to {results_dir / STORE_NAME}")
    return everything
