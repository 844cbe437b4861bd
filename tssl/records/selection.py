"""Which records stand together: the one grouping rule behind the report, ``tssl check`` and ``tssl check --paper``.

A group is every standing record (``tssl.records.store.latest_records``) of one task x method x recipe with the same
seed-free task config hash (``provenance.task_config_hash``), data kind and smoke flag. Runs of different
configurations are never pooled: a suite edit (a new ``lr``) gives new runs a new hash, and the old runs become
an *earlier configuration*, shown apart. Only a faithful group gets a verdict: the suite file's current
configuration, full epochs (not a smoke run), no overrides, and verified real data.

Torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tssl.records.schema import task_config_hash
from tssl.records.store import is_number, latest_records

SMOKE = "SMOKE RUN"
GENERATED = "GENERATED DATA"
REDUCED = "REDUCED DATA"
UNVERIFIED = "UNVERIFIED DATA"
REDUCED_EPOCHS = "REDUCED EPOCHS"
MODIFIED = "MODIFIED SETTINGS"
EARLIER = "EARLIER CONFIGURATION"

FLAG_TEXT = {
    SMOKE: "smoke run (--limit-batches cut its epochs short): not a reproduction",
    GENERATED: "generated stand-in data, not the paper's dataset",
    REDUCED: "a reduced subset of the real dataset",
    UNVERIFIED: "data files whose SHA-256 differs from the published dataset's",
    REDUCED_EPOCHS: "trained for fewer epochs than the suite's recipe",
    MODIFIED: "settings overridden away from the suite file",
    EARLIER: "an earlier configuration of this task (the suite file has changed since)",
}
_KIND_FLAG = {"generated": GENERATED, "reduced": REDUCED, "unverified": UNVERIFIED,
              "reduced-epochs": REDUCED_EPOCHS, "modified": MODIFIED}
METRICS = ("best", "final")


def paper_metric(paper: Mapping[str, Any] | None) -> str:
    """Which of our accuracies is like for like with the paper's number: its ``metric`` (``final`` when unset)."""
    return str((paper or {}).get("metric") or "final")


def run_kind(record: Mapping[str, Any]) -> str:
    """How a record is filed: its data kind (real, generated, reduced, unverified), or ``reduced-epochs`` when its
    only override is fewer epochs, or ``modified`` when its settings were overridden otherwise."""
    deviations = record.get("deviations") or {}
    if deviations:
        epochs = deviations.get("epochs")
        fewer = (set(deviations) == {"epochs"} and isinstance(epochs, dict) and is_number(epochs.get("run"))
                 and is_number(epochs.get("suite")) and epochs["run"] < epochs["suite"])
        return "reduced-epochs" if fewer else "modified"
    data = record.get("data")
    return str(data.get("kind")) if isinstance(data, dict) else "unknown"


def config_of(record: Mapping[str, Any]) -> str:
    return str((record.get("provenance") or {}).get("task_config_hash") or "")


def suite_config_of(record: Mapping[str, Any]) -> str:
    """The suite configuration a record ran: its task config hash, for a smoke run without the ``limit_batches``
    that the runner puts in its config (to give it a run id of its own). A smoke run of the suite file's current
    settings is a smoke run, not an earlier configuration."""
    config = (record.get("provenance") or {}).get("config")
    if record.get("smoke") is True and isinstance(config, dict) and "limit_batches" in config:
        return task_config_hash({key: value for key, value in config.items() if key != "limit_batches"})
    return config_of(record)


@dataclass
class Group:
    """The standing ok records of one task x method x recipe x task config x data kind x smoke flag."""

    task: str
    method: str
    recipe: str
    config: str  # the seed-free task config hash
    kind: str
    smoke: bool
    current: bool | None  # the suite file's configuration (None: no suite to compare with)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        flags = [SMOKE] if self.smoke else []
        if self.kind in _KIND_FLAG:
            flags.append(_KIND_FLAG[self.kind])
        if self.current is False and self.kind not in ("reduced-epochs", "modified"):
            flags.append(EARLIER)
        return flags

    @property
    def faithful(self) -> bool:
        """Whether this group may be given a verdict: current config, full run, no overrides, real data."""
        return not self.flags and self.kind == "real"

    @property
    def seeds(self) -> list[int]:
        return [int(r["seed"]) for r in self.records]

    @property
    def n(self) -> int:
        return len(self.records)

    def values(self, metric: str) -> list[float]:
        """Per-seed values of ``metric`` (``best`` or ``final``), in seed order; runs lacking it are left out."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        values = [(r.get("accuracy") or {}).get(metric) for r in self.records]
        return [float(v) for v in values if is_number(v)]

    def selection_gaps(self) -> list[float]:
        """Per seed, best - final: how much choosing the epoch by test accuracy adds."""
        return [float(a["best"]) - float(a["final"]) for r in self.records
                if is_number((a := r.get("accuracy") or {}).get("best")) and is_number(a.get("final"))]

    @property
    def commits(self) -> list[str]:
        return sorted({str((r.get("provenance") or {}).get("git_sha") or "?")[:7] for r in self.records})

    @property
    def dirty_seeds(self) -> list[int]:
        return [int(r["seed"]) for r in self.records if (r.get("provenance") or {}).get("git_dirty")]

    @property
    def thread_counts(self) -> list[int]:
        return sorted({t for r in self.records if isinstance(t := (r.get("provenance") or {}).get("torch_threads"),
                                                                    int)})

    @property
    def label(self) -> str:
        label = f"{self.method} ({self.recipe})" if self.recipe else self.method
        if self.smoke:
            label += " [SMOKE]"
        if self.kind != "real":
            label += f" [{self.kind.upper()}]"
        if self.current is False:  # one label per configuration: two overrides of one task never share it
            label += f" [config {self.config.removeprefix('sha256:')[:8]}]"
        return label


METHOD_ORDER = ("tssl", "tssl-surrogate", "snntorch", "spikingjelly")
KIND_ORDER = ("real", "unverified", "generated", "reduced", "reduced-epochs", "modified", "unknown")


def method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method), method) if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def standing(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The record that stands for each run (``latest_records``), in store order."""
    records = list(records)
    stands = latest_records(records)
    return [r for r in records if stands.get(r.get("run_id")) is r]


# A number in a task name: an integer, a decimal or an exponent form, as a sweep writes its values (steps10,
# lr0.0005, lr1e-05).
_NUMBER = re.compile(r"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def natural_key(name: str) -> tuple:
    """``name`` with the numbers in it compared as numbers: ``fmnist-mlp-steps2`` before ``fmnist-mlp-steps10``
    (string order puts them the other way round)."""
    parts = _NUMBER.split(name)  # text, number, text, number, ..., text
    return (tuple(float(part) if position % 2 else part for position, part in enumerate(parts)), name)


def order_tasks(tasks: Iterable[str], listed: Iterable[str] | None = None) -> list[str]:
    """``tasks`` in the order reports show them: those ``listed`` (the suite file's tasks, a sweep's points as the
    sweep lists them) in that order, then the others in natural order (:func:`natural_key`); without ``listed``,
    all of them in natural order. The one place the order of tasks is decided."""
    present = set(tasks)
    first = [task for task in dict.fromkeys(listed or ()) if task in present]
    return first + sorted(present.difference(first), key=natural_key)


def tasks_of(groups: Iterable[Group]) -> list[str]:
    """The tasks of ``groups`` in their order (that of :func:`group_records`: :func:`order_tasks`)."""
    return list(dict.fromkeys(group.task for group in groups))


def group_records(records: Iterable[dict[str, Any]], current_configs: Mapping[str, str] | None = None,
                  listed_tasks: Iterable[str] | None = None) -> list[Group]:
    """Group the standing ok records. ``current_configs`` maps a task to the suite file's task config hash; a
    group with another hash is an earlier configuration (or an override, by its deviations). Groups come task by
    task in :func:`order_tasks` order (``listed_tasks``: the suite file's, else natural order), then by method,
    recipe and flags."""
    groups: dict[tuple, Group] = {}
    for record in standing(records):
        if record.get("status") != "ok":
            continue
        task, config = str(record["task"]), config_of(record)
        current = None if current_configs is None else current_configs.get(task) == suite_config_of(record)
        key = (task, str(record["method"]), str(record.get("recipe") or ""), config, run_kind(record),
               record.get("smoke") is True)
        if key not in groups:
            groups[key] = Group(*key[:6], current=current)
        groups[key].records.append(record)
    for group in groups.values():
        group.records.sort(key=lambda r: int(r["seed"]))
    rank = {task: position for position, task in enumerate(order_tasks({g.task for g in groups.values()},
                                                                       listed_tasks))}
    return sorted(groups.values(), key=lambda g: (rank[g.task], method_key(g.method), g.recipe, g.current is False,
                                                  g.smoke, KIND_ORDER.index(g.kind) if g.kind in KIND_ORDER
                                                  else len(KIND_ORDER), g.config))


def faithful_group(groups: Sequence[Group], task: str, method: str) -> Group | None:
    """The group of ``task`` x ``method`` that a verdict is about, or None. With several recipes, the matched
    recipe (TSSL-BP's, the suite default) is the one."""
    candidates = [g for g in groups if g.task == task and g.method == method and g.faithful]
    candidates.sort(key=lambda g: (g.recipe != "matched", g.recipe))
    return candidates[0] if candidates else None


def describe_missing(groups: Sequence[Group], task: str, method: str) -> str:
    """Why a task x method has no faithful group: what the store holds for it instead."""
    others = [g for g in groups if g.task == task and g.method == method]
    if not others:
        return f"no successful {method} run of {task}"
    held = "; ".join(f"{g.n} run(s) flagged {', '.join(g.flags) or g.kind}" for g in others)
    return (f"no faithful {method} run of {task} (current config, full epochs, real verified data): "
            f"the store holds {held}")


def latest_configs(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Without a suite file to say which configuration is current: per task, that of its last finished ok run
    with the suite's settings (no overrides; a smoke run's only when the task has no full run)."""
    latest: dict[str, tuple[bool, str, str]] = {}
    for record in standing(records):
        if record.get("status") != "ok" or record.get("deviations"):
            continue
        rank = (record.get("smoke") is not True, str((record.get("provenance") or {}).get("finished_at") or ""))
        task = str(record["task"])
        if task not in latest or rank >= latest[task][:2]:
            latest[task] = (*rank, suite_config_of(record))
    return {task: config for task, (_, _, config) in latest.items()}


def describe_deviation(key: str, change: dict[str, Any]) -> str:
    """One recorded override (``TaskConfig.deviations``) as reports and ``tssl status`` print it:
    ``epochs=2 (suite: 100)``."""
    return f"{key}={change.get('run')!r} (suite: {change.get('suite')!r})"
