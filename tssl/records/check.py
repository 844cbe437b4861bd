"""``tssl check``: the regression gate against a committed reference, and ``tssl check --paper``.

A reference (``results/reference/<suite>.json``) holds, per task x method, the seed-free task config hash, the
data kind, the metric and the per-seed values of a real run of the suite. ``tssl check`` compares the current
store with it by :data:`tssl.records.stats.REGRESSION_RULE`; the current runs must have the reference's config hash,
data kind and seeds, and anything else is a clear failure, never a pass. ``tssl check --paper`` gives each
task's faithful ``tssl`` group the report's verdict (:data:`tssl.records.stats.VERDICT_RULE`), through the same
selection code as the report (:mod:`tssl.records.selection`).

Torch-free.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tssl.records import stats
from tssl.records.schema import utc_now
from tssl.records.selection import (
    Group,
    describe_missing,
    faithful_group,
    group_records,
    order_tasks,
    paper_metric,
)

REFERENCE_METRIC = "final"  # the gate compares our own runs: the unbiased final-epoch accuracy
MIN_REFERENCE_SEEDS = 2  # Welch's test needs two seeds on each side
RULE = stats.REGRESSION_RULE + f" Metric: {REFERENCE_METRIC}-epoch test accuracy."

OK, REGRESSION, MISSING = "ok", "REGRESSION", "MISSING"
CONFIG_CHANGED, OTHER_DATA, MISSING_SEEDS = "CONFIG CHANGED", "OTHER DATA", "MISSING SEEDS"
PASSING = (OK,)


class CheckError(ValueError):
    """A reference or results file that cannot be compared."""


@dataclass(frozen=True)
class TaskSpec:
    """What the suite file says of a task today: its seed-free config hash, tolerance and paper block."""

    config: str
    tolerance: float
    paper: dict[str, Any] | None = None


@dataclass
class CheckLine:
    """One verdict row, as printed and as ``--json`` emits it."""

    task: str
    method: str
    config_hash: str
    metric: str
    n: int
    mean: float | None
    std: float | None
    ci95: tuple[float, float] | None
    ci90: tuple[float, float] | None
    verdict: str
    seeds_needed: int | None
    reason: str
    seeds: list[int]

    def as_json(self) -> dict[str, Any]:
        row = asdict(self)
        for key in ("mean", "std"):
            if row[key] is not None and not math.isfinite(row[key]):
                row[key] = None
        return row


def _line(task: str, method: str, config: str, metric: str, values: Sequence[float], verdict: str, reason: str,
          seeds: Sequence[int], seeds_needed: int | None = None) -> CheckLine:
    if not values:
        return CheckLine(task, method, config, metric, 0, None, None, None, None, verdict, seeds_needed, reason,
                         list(seeds))
    summary = stats.summarize(values)
    return CheckLine(task, method, config, metric, summary.n, summary.mean,
                     None if math.isnan(summary.std) else summary.std, summary.ci95, summary.ci90, verdict,
                     seeds_needed, reason, list(seeds))


# --------------------------------------------------------------------------------------------------------------
# The reference


def make_reference(suite: str, records: list[dict[str, Any]], source: str,
                   tasks: Mapping[str, TaskSpec]) -> dict[str, Any]:
    """A reference from the faithful groups of the current suite configuration (at least two seeds each)."""
    groups = [g for g in group_records(records, {t: spec.config for t, spec in tasks.items()}) if g.faithful]
    if not groups:
        raise CheckError(f"{source}: no faithful runs to make a reference from (the suite's current "
                         "configuration, full epochs, no overrides, real verified data)")
    entries = []
    for group in groups:
        values = group.values(REFERENCE_METRIC)
        if len(values) < MIN_REFERENCE_SEEDS:
            raise CheckError(f"{source}: {group.task} / {group.method} has {len(values)} seed(s); a reference "
                             f"needs at least {MIN_REFERENCE_SEEDS} per task x method (run more seeds)")
        entries.append({
            "task": group.task, "method": group.method, "recipe": group.recipe, "metric": REFERENCE_METRIC,
            "task_config_hash": group.config, "data_kind": group.kind, "seeds": group.seeds, "values": values,
            "n": len(values), "mean": statistics.fmean(values), "std": statistics.stdev(values),
            "tolerance": tasks[group.task].tolerance, "commits": group.commits,
        })  # fmt: skip
    first = groups[0].records[0]["provenance"]
    return {
        "suite": suite, "created_at": utc_now(), "source": source, "rule": RULE,
        "provenance": {k: first.get(k) for k in ("git_sha", "git_dirty", "packages", "device", "hardware", "python")},
        "entries": entries,
    }  # fmt: skip


_ENTRY_KEYS = ("task", "method", "metric", "task_config_hash", "data_kind", "seeds", "values", "tolerance")


def load_reference(path: Path) -> dict[str, Any]:
    try:
        reference = json.loads(path.read_text())
    except OSError as error:
        raise CheckError(f"{path}: cannot read the reference ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise CheckError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(reference, dict) or not isinstance(reference.get("entries"), list):
        raise CheckError(f"{path}: not a reference file (no 'entries' list)")
    for number, entry in enumerate(reference["entries"], 1):
        missing = [key for key in _ENTRY_KEYS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise CheckError(f"{path}: entry {number} has no {missing[0]!r} (a reference from an older tssl-bench; "
                             "make a new one with tssl check SUITE --write-reference)")
    return reference


# --------------------------------------------------------------------------------------------------------------
# The regression gate


def check(reference: dict[str, Any], records: list[dict[str, Any]], tasks: Mapping[str, TaskSpec]) -> list[CheckLine]:
    """One line per reference entry; see :data:`RULE` and the module's docstring for what fails."""
    groups = group_records(records, {t: spec.config for t, spec in tasks.items()})
    return [_check_entry(entry, groups, tasks) for entry in reference["entries"]]


def _check_entry(entry: dict[str, Any], groups: Sequence[Group], tasks: Mapping[str, TaskSpec]) -> CheckLine:
    task, method, config, metric = entry["task"], entry["method"], entry["task_config_hash"], entry["metric"]
    seeds = [int(s) for s in entry["seeds"]]

    def failing(verdict: str, reason: str, values: Sequence[float] = (), found: Sequence[int] = ()) -> CheckLine:
        return _line(task, method, config, metric, values, verdict, reason, found)

    spec = tasks.get(task)
    if spec is None:
        return failing(MISSING, f"task {task!r} is no longer in the suite file")
    if spec.config != config:
        return failing(CONFIG_CHANGED, f"the suite's configuration of {task} is now {spec.config[:15]}…, the "
                                       f"reference was made with {config[:15]}…: run the suite and write a new "
                                       "reference (tssl check SUITE --write-reference)")
    candidates = [g for g in groups if g.task == task and g.method == method and g.config == config and not g.smoke
                  and g.kind not in ("reduced-epochs", "modified")]
    same_data = [g for g in candidates if g.kind == entry["data_kind"]]
    if not same_data:
        if candidates:
            kinds = ", ".join(sorted({g.kind for g in candidates}))
            return failing(OTHER_DATA, f"the current runs used {kinds} data; the reference used "
                                       f"{entry['data_kind']} data")
        return failing(MISSING, describe_missing(groups, task, method))
    group = same_data[0]
    by_seed = {int(r["seed"]): r for r in group.records}
    absent = [s for s in seeds if s not in by_seed]
    present = [s for s in seeds if s in by_seed]
    values = [float(by_seed[s]["accuracy"][metric]) for s in present]
    if absent:
        return failing(MISSING_SEEDS, f"seeds {absent} of the reference have no current run (the gate compares the "
                                      f"same seeds: {seeds})", values, present)
    outcome = stats.regression_test(values, [float(v) for v in entry["values"]], float(entry["tolerance"]))
    reference_mean = statistics.fmean(entry["values"])
    reason = f"reference mean {reference_mean:.2f} (n = {len(seeds)}): {outcome.reason}"
    return _line(task, method, config, metric, values, REGRESSION if outcome.regressed else OK, reason, present)


def passed(lines: Sequence[CheckLine]) -> bool:
    return all(line.verdict in PASSING for line in lines)


# --------------------------------------------------------------------------------------------------------------
# Against the paper


PAPER_FAILING = (stats.NOT_REPRODUCED, MISSING)


def check_against_paper(tasks: Mapping[str, TaskSpec], records: list[dict[str, Any]],
                        method: str = "tssl") -> list[CheckLine]:
    """The report's verdict for each task's faithful ``method`` group against the paper's number."""
    groups = group_records(records, {t: spec.config for t, spec in tasks.items()})
    lines = []
    for task in order_tasks(tasks, listed=tasks):  # the suite file's order
        spec = tasks[task]
        paper, metric = spec.paper or {}, paper_metric(spec.paper)
        group = faithful_group(groups, task, method)
        if paper.get("mean") is None:  # nothing to judge against: the runs' own numbers, no verdict
            values, seeds = (group.values(metric), group.seeds) if group is not None else ((), ())
            lines.append(_line(task, method, spec.config, metric, values, "no paper mean",
                               "the paper reports no mean for this task", seeds))
            continue
        if group is None:
            lines.append(_line(task, method, spec.config, metric, (), MISSING, describe_missing(groups, task, method),
                               ()))
            continue
        lines.append(paper_line(group, paper, spec.tolerance))
    return lines


def paper_line(group: Group, paper: Mapping[str, Any], tolerance: float) -> CheckLine:
    metric = paper_metric(paper)
    values = group.values(metric)
    if not values:  # valid records may leave accuracy.best out
        return _line(group.task, group.method, group.config, metric, (), MISSING,
                     f"no run of the faithful group records its {metric} accuracy", group.seeds)
    outcome = stats.equivalence_verdict(values, float(paper["mean"]), tolerance)
    reason = f"{metric} mean {outcome.mean:.2f} vs paper {float(paper['mean']):.2f} ± δ {tolerance:g}: {outcome.reason}"
    return _line(group.task, group.method, group.config, metric, values, outcome.label, reason, group.seeds,
                 outcome.seeds_needed)
