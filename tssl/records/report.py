"""The reproducibility report: ``tssl report SUITE``.

Reads the results store ``results/<suite>.jsonl`` (docs/results-format.md) and writes ``reports/<suite>/``: a
Markdown index (``index.md``) and PNG figures.

* Runs are grouped by :mod:`tssl.records.selection`: task x method x recipe x seed-free task config hash x data kind x
  smoke flag. Different configurations are never pooled; runs of an earlier configuration of a task, smoke runs,
  overridden settings and generated, reduced or unverified data are shown apart and marked everywhere.
* The verdict against the paper (:data:`tssl.records.stats.VERDICT_RULE`) is given to each task's faithful ``tssl``
  group on the metric the paper reports (``paper.metric``: ``best`` or ``final``); beside it, always, the
  final-epoch numbers and the test-selection gap (best - final) per run.
* Methods are compared with the ``tssl`` group as a difference with its 95 % CI and Welch's test.
* Latency, training curves, throughput and memory (with what else ran), efficiency, failed runs.

Every number says its n; every interval says its level. Apart from the generation timestamp in the index, the
output depends only on the records. Torch-free.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tssl.records import selection, stats
from tssl.records.bench_report import SUITE_TIMING_HEADER, suite_timing_rows
from tssl.records.metric_definitions import CONVENTIONS, ENERGY_LABEL
from tssl.records.report_figures import (
    AccuracyPanel,
    AccuracySeries,
    CurveSeries,
    EfficiencyPoint,
    FigureWriter,
    LatencySeries,
    PaperMark,
    ThroughputSeries,
    accuracy_figure,
    curves_figure,
    efficiency_figure,
    latency_figure,
    throughput_figure,
)
from tssl.records.report_sweep import sweeps_section
from tssl.records.report_text import (
    EARLIER_LABEL,
    GENERATED_LABEL,
    MODIFIED_LABEL,
    REDUCED_EPOCHS_LABEL,
    REDUCED_LABEL,
    SMOKE_LABEL,
    UNVERIFIED_LABEL,
)
from tssl.records.report_text import FLAG_LABEL as _FLAG_LABEL
from tssl.records.report_text import Document as _Document
from tssl.records.report_text import classes as _classes
from tssl.records.report_text import data_cell as _data_cell
from tssl.records.report_text import efficiency_of as _efficiency_of
from tssl.records.report_text import file_stem as _file_stem
from tssl.records.report_text import flag_labels as _labels
from tssl.records.report_text import flags_of as _flags_of
from tssl.records.report_text import fmt as _fmt
from tssl.records.report_text import interval_text as _interval
from tssl.records.report_text import md as _md
from tssl.records.report_text import mean_std as _mean_std
from tssl.records.report_text import num as _num
from tssl.records.report_text import series_flag as _series_flag
from tssl.records.report_text import series_label as _series_label
from tssl.records.report_text import short as _short
from tssl.records.schema import run_record_problem
from tssl.records.selection import Group, describe_deviation
from tssl.records.stats import INCONCLUSIVE, VERDICT_RULE
from tssl.records.store import ResultsError, is_number, latest_records, read_records

__all__ = [
    "DEFAULT_TOLERANCE",
    "EARLIER_LABEL",
    "GENERATED_LABEL",
    "MODIFIED_LABEL",
    "REDUCED_EPOCHS_LABEL",
    "REDUCED_LABEL",
    "SMOKE_LABEL",
    "UNVERIFIED_LABEL",
    "VERDICT_RULE",
    "ReportError",
    "ReportOutput",
    "build_report",
    "load_records",
    "write_report",
]

DEFAULT_TOLERANCE = 0.5
"""Tolerance δ in percentage points when no suite definition gives one."""

METRIC_TEXT = {
    "best": "best test accuracy over epochs",
    "final": "final-epoch test accuracy",
}


class ReportError(ValueError):
    """Bad input to the report: an empty or malformed results store, or an invalid record."""


# --------------------------------------------------------------------------------------------------------------
# Reading


def load_records(path: Path) -> list[dict]:
    """Read a JSONL results store; :class:`ReportError` naming the file (and line) when it is missing, holds no
    records, or a line is not a valid run record."""
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such results store; run the suite first (tssl run SUITE).")
    try:
        records = read_records(path, run_record_problem)
    except (ResultsError, OSError, UnicodeDecodeError) as error:
        raise ReportError(str(error) if isinstance(error, ResultsError) else
                          f"{path}: cannot read the results store ({error}).") from None
    if not records:
        raise ReportError(f"{path}: the results store holds no records.")
    return records


# --------------------------------------------------------------------------------------------------------------
# What the suite says of each task


@dataclass(frozen=True)
class TaskReference:
    """A task's paper block, tolerance and current configuration, from the suite file (else from the records)."""

    paper: dict | None  # {"metric", "mean", "std", "best", "source"}; nan where the paper gives none
    tolerance: float
    tolerance_is_default: bool
    description: str = ""
    config: str | None = None  # the suite file's seed-free task config hash
    run_config: Mapping[str, Any] | None = None
    seeds: tuple[int, ...] | None = None
    notes: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        return selection.paper_metric(self.paper)

    @property
    def paper_mark(self) -> PaperMark | None:
        if not self.paper or not math.isfinite(self.paper["mean"]):
            return None
        return PaperMark(self.paper["mean"], self.paper["std"], self.tolerance,
                         f"paper TSSL-BP ({self.metric})")


def _clean_paper(paper: Any) -> dict | None:
    """The paper's numbers with nan for those it does not give; None without a mean or a best."""
    if not isinstance(paper, Mapping) or not (is_number(paper.get("mean")) or is_number(paper.get("best"))):
        return None
    return {
        "metric": selection.paper_metric(paper),
        "mean": _num(paper.get("mean")),
        "std": _num(paper.get("std")),
        "best": _num(paper.get("best")),
        "source": str(paper.get("source") or ""),
    }


def _references(tasks: Sequence[str], records: Sequence[dict],
                suite_tasks: Mapping[str, Mapping] | None) -> dict[str, TaskReference]:
    references = {}
    for task in tasks:
        record_papers = Counter(json.dumps(_clean_paper(r.get("paper")), sort_keys=True)
                                for r in records if r["task"] == task and r.get("paper"))
        papers = [json.loads(key) for key, _ in sorted(record_papers.items(), key=lambda kv: (-kv[1], kv[0]))]
        papers = [p for p in papers if p is not None]
        if suite_tasks is not None and task in suite_tasks:
            spec = suite_tasks[task] or {}
            paper = _clean_paper(spec.get("paper"))
            tolerance = spec.get("tolerance")
            notes = []
            if papers and paper is not None and any(p["mean"] != paper["mean"] for p in papers):
                notes.append(f"the records of {task!r} carry another paper number "
                             f"({', '.join(_fmt(p['mean']) for p in papers)}); the suite file's "
                             f"({_fmt(paper['mean'])}) is used")
            references[task] = TaskReference(
                paper, float(tolerance) if is_number(tolerance) else DEFAULT_TOLERANCE, not is_number(tolerance),
                str(spec.get("description") or ""), spec.get("config"), spec.get("run_config"),
                tuple(spec["seeds"]) if spec.get("seeds") is not None else None, tuple(notes))
            continue
        notes = []
        if suite_tasks is not None:
            notes.append(f"task {task!r} is not in the suite file; its paper number comes from the records")
        if len(papers) > 1:
            notes.append(f"the records of {task!r} disagree on the paper number; the most common one "
                         f"({_fmt(papers[0]['mean'])}) is used")
        references[task] = TaskReference(papers[0] if papers else None, DEFAULT_TOLERANCE, True, notes=tuple(notes))
    return references


# --------------------------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class ReportOutput:
    """What :func:`build_report` wrote: the index, every figure's file name with its title, and the verdicts."""

    index: Path
    figures: dict[str, str]
    verdicts: dict[tuple[str, str], str]  # (task, group label) -> verdict text, for every tssl group
    headings: dict[str, str] = field(default_factory=dict)  # figure file -> the text drawn on top of it


def write_report(suite: str, records: list[dict], out_dir: Path, *, suite_tasks: dict[str, dict] | None = None,
                 bench_records: Sequence[dict] = (), caveat: str = "") -> Path:
    """Write ``out_dir/index.md`` and its PNG figures for ``suite`` from ``records``; return the index path.

    ``suite_tasks`` maps task name -> {"paper": {...} | None, "tolerance": points, "description": str,
    "config": the seed-free task config hash, "run_config": the task's config, "seeds": the suite file's seeds,
    "sweep": {"task": base task, "values": {key: value}} for a point of a sweep, else None or absent};
    it says which configuration is current and what the paper reports. Without it, each task's latest
    configuration is current, and the records' own ``paper`` and a tolerance of :data:`DEFAULT_TOLERANCE` are
    used (and the report says so). ``bench_records`` (``tssl bench``'s store) add each task's network's step
    time measured alone. ``caveat`` (say, "trained 30 of the paper's 100 epochs"), when given, is stated in bold
    at the top of the index and on every figure.
    """
    return build_report(suite, records, out_dir, suite_tasks=suite_tasks, bench_records=bench_records,
                        caveat=caveat).index


def build_report(suite: str, records: list[dict], out_dir: Path, *, suite_tasks: dict[str, dict] | None = None,
                 bench_records: Sequence[dict] = (), caveat: str = "") -> ReportOutput:
    """As :func:`write_report`, returning the figure titles and verdicts as well (for tests and tools)."""
    out_dir = Path(out_dir)
    standing = _standing_records(suite, records)
    records = standing.records
    tasks = selection.order_tasks({r["task"] for r in records}, suite_tasks)  # the suite file's order first
    references = _references(tasks, records, suite_tasks)
    current = ({t: ref.config for t, ref in references.items() if ref.config} if suite_tasks is not None
               else selection.latest_configs(records))
    groups = selection.group_records(records, current, tasks)  # task by task in that order
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] == "failed"]
    out_dir.mkdir(parents=True, exist_ok=True)
    document = _Document(FigureWriter(out_dir, [_series_label(g) for g in sorted(
        groups, key=lambda g: selection.method_key(g.method))], caveat=caveat))
    _header(document, suite, standing, groups, tasks, references, suite_tasks, caveat)
    verdicts = _accuracy_section(document, groups, references)
    _configurations_section(document, groups, references)
    _latency_section(document, groups, references)
    _curves_section(document, groups, references)
    _throughput_section(document, groups, ok, suite_tasks, bench_records)
    number = 7 if _efficiency_section(document, groups, ok) else 6
    number += sweeps_section(document, groups, suite_tasks, number)  # only when the suite has sweeps
    _failed_section(document, failed, tasks, number=number)
    index = out_dir / "index.md"
    index.write_text("\n".join(document.lines).rstrip("\n") + "\n", encoding="utf-8")
    return ReportOutput(index, dict(document.figures.titles), verdicts, dict(document.figures.headings))


@dataclass(frozen=True)
class _Standing:
    """The suite's records that stand (the latest of each run id), those they superseded, and the other suites
    whose records were given and left out."""

    records: list[dict]
    replaced: list[dict]
    other_suites: list[str]


def _standing_records(suite: str, records: list[dict]) -> _Standing:
    """Validate ``records`` and keep the suite's standing ones; a :class:`ReportError` when none is left."""
    if not records:
        raise ReportError(f"no records for suite {suite!r}: the results store is empty, so there is nothing to report.")
    for position, record in enumerate(records, start=1):
        problem = run_record_problem(record)
        if problem:
            raise ReportError(f"record {position} of suite {suite!r} is not a valid run record ({problem}).")
    other_suites = sorted({str(r["suite"]) for r in records if r.get("suite") not in (None, suite)})
    records = [r for r in records if r.get("suite") in (None, suite)]
    if not records:
        raise ReportError(f"no records for suite {suite!r}: the records given belong to "
                          f"{', '.join(map(repr, other_suites))}.")
    stands = latest_records(records)
    replaced = [r for r in records if stands[r["run_id"]] is not r]
    return _Standing([r for r in records if stands[r["run_id"]] is r], replaced, other_suites)


def _header(document: _Document, suite: str, standing: _Standing, groups: Sequence[Group], tasks: Sequence[str],
            references: Mapping[str, TaskReference], suite_tasks: dict[str, dict] | None, caveat: str = "") -> None:
    """The title, the caveat, the banner of flagged runs, what the report was made from, and the tasks."""
    records, replaced = standing.records, standing.replaced
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] == "failed"]
    document.add(f"# Reproducibility report: suite `{suite}`", "")
    if caveat:
        document.add(f"**⚠ Caveat: {_md(caveat)}**", "")
    document.add(*_banner(groups))
    generated = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    document.add(f"- Generated: {generated}", f"- Runs: {len(ok)} ok, {len(failed)} failed ({len(records)} standing "
                 f"records" + (f"; {len(replaced)} superseded by a later record of the same run, the last ok one "
                               "wins" if replaced else "") + ")")
    document.add(*_superseded_lines(replaced))
    if standing.other_suites:
        document.add(f"- Ignored: records of other suites ({', '.join(map(_md, standing.other_suites))})")
    document.add(*_provenance_lines(ok + failed), *_seed_lines(groups, references), "")
    document.add(*_task_lines(tasks, references, suite_tasks))


def _failed_section(document: _Document, failed: Sequence[dict], tasks: Sequence[str], number: int) -> None:
    document.add(f"## {number}. Failed runs", "")
    if not failed:
        document.add("None.", "")
        return
    document.add("These runs failed; they enter no number in this report.", "")
    document.table("failed runs", [], ["task", "method", "recipe", "seed", "run_id", "failure", "error"],
                   _failed_rows(failed, tasks))


# --------------------------------------------------------------------------------------------------------------
# Header


def _banner(groups: Sequence[Group]) -> list[str]:
    counts: Counter[str] = Counter()
    for group in groups:
        for flag in group.flags:
            counts[flag] += group.n
    total = sum(group.n for group in groups)
    lines = []
    for flag, count in counts.items():
        lines += [f"> **⚠ {_FLAG_LABEL.get(flag, flag)}.** {count} of {total} successful runs: "
                  f"{selection.FLAG_TEXT.get(flag, flag)}. They are shown apart and get no verdict.", ">"]
    return [*lines, "> Rows, tables and figures holding such runs are marked below.", ""] if lines else []


def _superseded_lines(replaced: Sequence[dict]) -> list[str]:
    lines = []
    for record in replaced:  # name what a rerun replaced, so that no measured number silently disappears
        accuracy = record.get("accuracy") or {}
        provenance = record.get("provenance") or {}
        final = f"final {accuracy['final']:.2f} %" if is_number(accuracy.get("final")) else str(record["status"])
        dirty = " (dirty tree)" if provenance.get("git_dirty") else ""
        lines.append(f"- Superseded: `{_md(record['run_id'])}` ({final}, commit "
                     f"`{str(provenance.get('git_sha') or '?')[:7]}`{dirty}, finished "
                     f"{provenance.get('finished_at', '?')}), replaced by a later record of the same run")
    return lines


def _provenance_lines(records: Sequence[dict]) -> list[str]:
    shas: dict[str, bool] = {}
    packages: dict[str, set[str]] = {}
    values: dict[str, set[str]] = {"Python": set(), "Device(s)": set(), "Hardware": set()}
    data_sources: dict[tuple, None] = {}
    implementations: dict[str, set[str]] = {}
    threads: Counter[int] = Counter()
    dirty = []
    for record in records:
        provenance = record.get("provenance") or {}
        if provenance.get("git_sha"):
            sha = str(provenance["git_sha"])
            shas[sha] = shas.get(sha, False) or provenance.get("git_dirty") is True
        if provenance.get("git_dirty"):
            dirty.append(str(record["run_id"]))
        for name, version in (provenance.get("packages") or {}).items():
            packages.setdefault(str(name), set()).add(str(version))
        for label, key in (("Python", "python"), ("Device(s)", "device"), ("Hardware", "hardware")):
            if provenance.get(key):
                values[label].add(str(provenance[key]))
        if isinstance(provenance.get("torch_threads"), int):
            threads[provenance["torch_threads"]] += 1
        if isinstance(provenance.get("implementation"), dict):
            text = ", ".join(f"{k}={v}" for k, v in sorted(provenance["implementation"].items()))
            implementations.setdefault(record["method"], set()).add(text)
        if isinstance(record.get("data"), dict):
            data = record["data"]
            data_sources[tuple(str(data.get(k) or "") for k in ("name", "kind", "source", "fingerprint"))] = None
    sha_text = ", ".join(f"`{sha[:12]}`" + (" (dirty)" if is_dirty else "") for sha, is_dirty in sorted(shas.items()))
    lines = [f"- Git commit(s): {sha_text or '— (not recorded)'}"
             + (" — **the runs come from more than one commit**" if len(shas) > 1 else "")]
    if dirty:
        lines.append(f"- **{len(dirty)} run(s) came from a tree with uncommitted changes** (git_dirty): "
                     + ", ".join(f"`{_md(r)}`" for r in dirty))
    versions = "; ".join(f"{_md(name)} {', '.join(sorted(v))}" + (" (**several versions**)" if len(v) > 1 else "")
                         for name, v in sorted(packages.items()))
    lines.append(f"- Packages: {versions or '— (not recorded)'}")
    for label, found in values.items():
        if found:
            lines.append(f"- {label}: {'; '.join(_md(v) for v in sorted(found))}")
    if threads:
        lines.append("- Torch threads per run: " + ", ".join(f"{t} ({n} runs)" for t, n in sorted(threads.items())))
    for method in sorted(implementations, key=selection.method_key):
        lines.append(f"- Implementation of `{method}`: {'; '.join(_md(v) for v in sorted(implementations[method]))}")
    for name, kind, source, fingerprint in sorted(data_sources):
        lines.append(f"- Data: {_md(name)} ({kind})" + (f" — {_md(source)}" if source else "")
                     + (f" — `{fingerprint}`" if fingerprint else ""))
    return lines


def _seed_lines(groups: Sequence[Group], references: Mapping[str, TaskReference]) -> list[str]:
    """Say where a group holds seeds beyond the suite file's list (added with ``tssl run --seeds``)."""
    lines = []
    for group in groups:
        listed = references[group.task].seeds
        if listed is None or not group.faithful:
            continue
        extra = [s for s in group.seeds if s not in listed]
        if extra:
            lines.append(f"- {_md(group.task)} / `{group.method}`: seeds {extra} are beyond the suite file's "
                         f"{list(listed)} (added with `tssl run --seeds`); they count, n = {group.n}")
    return lines


def _task_lines(tasks: Sequence[str], references: Mapping[str, TaskReference],
                suite_tasks: Mapping | None) -> list[str]:
    lines = ["## Tasks", ""]
    for task in tasks:
        ref = references[task]
        paper = ref.paper
        text = f"- **{_md(task)}**" + (f": {_md(ref.description)}" if ref.description else "")
        if paper:
            mean = (f"{paper['mean']:.2f}" + (f" ± {paper['std']:.2f}" if math.isfinite(paper["std"]) else "")
                    if math.isfinite(paper["mean"]) else "(no mean given)")
            text += f" — paper TSSL-BP {mean} ({METRIC_TEXT[ref.metric]})"
            text += f", best {_fmt(paper['best'])}" if math.isfinite(paper["best"]) else ""
            text += f" ({_md(paper['source'])})" if paper["source"] else ""
        else:
            text += " — no paper number"
        text += f"; tolerance δ = {ref.tolerance:g} points" + (" (default)" if ref.tolerance_is_default else "")
        if ref.config:
            text += f"; current config `{_short(ref.config)}`"
        lines.append(text)
    missing = [task for task in suite_tasks or () if task not in tasks]  # in the suite file's order
    if missing:
        lines.append(f"- No records yet for: {', '.join(_md(t) for t in missing)}")
    lines += [f"- Note: {_md(note)}" for task in tasks for note in references[task].notes]
    return [*lines, ""]


# --------------------------------------------------------------------------------------------------------------
# 1. Accuracy


_GROUP_HEADER = ["task", "method", "recipe", "data", "config", "n", "seeds", "final mean ± std", "final 95 % CI",
                 "best mean ± std", "best 95 % CI", "best - final (mean [min, max])", "commits", "dirty seeds"]
_VERDICT_HEADER = ["task", "method", "metric", "n", "seeds", "mean ± std", "90 % CI", "95 % CI", "paper mean ± std",
                   "δ", "verdict", "seeds needed", "final-epoch mean ± std (95 % CI)"]
_COMPARE_HEADER = ["task", "method", "vs", "metric", "n (tssl / method)", "Δ = method - tssl", "95 % CI (Welch)",
                   "Welch t (df)", "p (two-sided)", "commits (tssl / method)"]


def _gap_cell(group: Group) -> str:
    gaps = group.selection_gaps()
    return "—" if not gaps else f"{np.mean(gaps):.2f} [{min(gaps):.2f}, {max(gaps):.2f}]"


def _group_row(group: Group) -> list[str]:
    finals, bests = group.values("final"), group.values("best")
    return [
        _md(group.task), f"`{group.method}`", _md(group.recipe or "—"), _data_cell(group), f"`{_short(group.config)}`",
        str(group.n), ", ".join(map(str, group.seeds)), _mean_std(finals),
        _interval(stats.t_interval(finals)), _mean_std(bests), _interval(stats.t_interval(bests)), _gap_cell(group),
        ", ".join(f"`{c}`" for c in group.commits), ", ".join(map(str, group.dirty_seeds)) or "—",
    ]  # fmt: skip


def _verdict_row(group: Group, ref: TaskReference) -> tuple[list[str], str]:
    metric, paper = ref.metric, ref.paper or {}
    values = group.values(metric)
    finals = group.values("final")
    outcome = stats.equivalence_verdict(values, paper["mean"], ref.tolerance)
    summary = outcome.summary
    final_text = f"{_mean_std(finals)} ({_interval(stats.t_interval(finals))})"
    paper_text = f"{paper['mean']:.2f}" + (f" ± {paper['std']:.2f}" if math.isfinite(paper["std"]) else "")
    row = [
        _md(group.task), f"`{group.method}`", metric, str(summary.n), ", ".join(map(str, group.seeds)),
        _mean_std(values), _interval(summary.ci90), _interval(summary.ci95), paper_text,
        f"{ref.tolerance:g}" + (" (default)" if ref.tolerance_is_default else ""),
        f"**{outcome.label}** ({outcome.reason})", "—" if outcome.seeds_needed is None else str(outcome.seeds_needed),
        final_text,
    ]  # fmt: skip
    return row, str(outcome)


def _accuracy_section(document: _Document, groups: Sequence[Group],
                      references: Mapping[str, TaskReference]) -> dict[tuple[str, str], str]:
    document.add("## 1. Accuracy", "")
    verdicts: dict[tuple[str, str], str] = {}
    if not groups:
        document.add("No successful runs: nothing to compare.", "")
        return verdicts
    document.add(
        "Verdict rule (for each task's faithful `tssl` group: the suite file's current configuration, full epochs, "
        "no overrides, verified real data):", "", f"> {VERDICT_RULE}", "",
        "Like for like: the metric is the one the paper reports (the task's `paper.metric`). `best` is each run's "
        "maximum test accuracy over epochs, what the authors' code reports (its test() keeps the maximum): "
        "it is selected on the test set and biased upwards. The unbiased final-epoch numbers and the "
        "test-selection gap (best - final) are always shown beside it.", "")
    rows = []
    for task in selection.tasks_of(groups):
        ref = references[task]
        tssl_groups = [g for g in groups if g.task == task and g.method == "tssl"]
        for group in tssl_groups:
            if not group.faithful:
                verdicts[(task, group.label)] = f"{INCONCLUSIVE} (no verdict: {'; '.join(_labels(group.flags))})"
        group = selection.faithful_group(groups, task, "tssl")
        if group is None or not ref.paper or not math.isfinite(ref.paper["mean"]):
            continue
        if not group.values(ref.metric):  # valid records may leave accuracy.best out
            verdicts[(task, group.label)] = f"{INCONCLUSIVE} (no verdict: no run records its {ref.metric} accuracy)"
            continue
        row, text = _verdict_row(group, ref)
        rows.append(row)
        verdicts[(task, group.label)] = text
    if rows:
        document.table("TSSL-BP (`tssl`) against the paper's TSSL-BP", [], _VERDICT_HEADER, rows)
    else:
        document.add("No task has both a paper mean and a faithful `tssl` group: no verdict.", "")
    document.table("every group of runs (mean ± sample std over seeds, 95 % t-intervals)", _flags_of(groups),
                   _GROUP_HEADER, [_group_row(g) for g in groups],
                   "A group is one task x method x recipe x configuration (`config`: the seed-free task config "
                   "hash) x data kind; runs of different configurations are never pooled.")
    comparisons = _comparison_rows(groups, references)
    if comparisons:
        document.table("each method against `tssl` on the same task configuration (faithful groups)", [],
                       _COMPARE_HEADER, comparisons,
                       "Δ with its 95 % Welch interval and two-sided Welch test; a difference whose interval holds 0 "
                       "is not shown to exist at these n. Runs from different commits are compared as they are.")
    panels = [_accuracy_panel(task, [g for g in groups if g.task == task], references[task])
              for task in selection.tasks_of(groups)]
    metrics = sorted({p.metric for p in panels})
    document.figure("accuracy.png", "Test accuracy per seed, mean and 95 % CI, against the paper",
                    _flags_of(groups), accuracy_figure(document.figures, panels),
                    f"Metric per panel: the paper's ({', '.join(metrics)}). Points: every seed; bars: 95 % "
                    "t-intervals (none for n = 1); shaded: the paper's value ± δ. Hollow markers: runs that are not "
                    "reproductions (flag in the tick label).")
    document.add(*_export_lines([record for group in groups for record in group.records]))
    return verdicts


# The native engine's methods, whose runs keep final.pt for `tssl export` (tssl.methods.NATIVE_METHODS; the
# records side imports no torch, so the names are repeated here).
_EXPORTABLE_METHODS = ("tssl", "tssl-surrogate")


def _export_lines(records: Sequence[dict]) -> list[str]:
    """How to take a finished native run to NIR, with a run id of these records as the example."""
    exportable = [r for r in records if r.get("final_weights")] or [
        r for r in records if r.get("method") in _EXPORTABLE_METHODS]
    if not exportable:
        return []
    example = max(exportable, key=lambda r: (r.get("provenance") or {}).get("finished_at") or "")
    run_id = str(example["run_id"]).replace("`", "")  # in a code span: nothing to escape but the backtick
    kept = sum(1 for r in records if r.get("final_weights"))
    note = ("" if kept else " None of these records kept its weights (they were written before runs kept them): "
            "rerun a run with `--force` to export it.")
    return ["**Export.** A finished `tssl` or `tssl-surrogate` run keeps its trained network as "
            "`runs/<suite>/<run id>/final.pt` (the record's `final_weights`) on the machine that ran it; "
            f"`tssl export {run_id} OUT.nir` writes it as a NIR graph for other simulators and neuromorphic "
            f"hardware ([docs/nir.md](../../docs/nir.md)).{note}", ""]


def _comparison_rows(groups: Sequence[Group], references: Mapping[str, TaskReference]) -> list[list[str]]:
    rows = []
    for task in selection.tasks_of(groups):
        base = selection.faithful_group(groups, task, "tssl")
        if base is None:
            continue
        others = [g for g in groups if g.task == task and g.method != "tssl" and g.faithful
                  and g.config == base.config]
        for other in others:
            for metric in dict.fromkeys((references[task].metric, "final")):
                if not other.values(metric) or not base.values(metric):
                    continue
                test = stats.welch(other.values(metric), base.values(metric))
                rows.append([
                    _md(task), f"`{other.method}`", "`tssl`", metric, f"{test.n_b} / {test.n_a}",
                    _fmt(test.difference, signed=True), _interval(test.ci95),
                    "—" if test.ci95 is None else f"{test.t:.2f} ({test.df:.1f})",
                    "—" if test.ci95 is None else f"{test.p_two_sided:.3g}",
                    f"{', '.join(base.commits)} / {', '.join(other.commits)}",
                ])  # fmt: skip
    return rows


def _accuracy_panel(task: str, groups: Sequence[Group], ref: TaskReference) -> AccuracyPanel:
    metric = ref.metric
    series = [AccuracySeries(_series_label(g), g.values(metric), g.seeds, _series_flag(g)) for g in groups
              if g.values(metric)]
    classes = _classes(groups)
    return AccuracyPanel(task, metric, f"{METRIC_TEXT[metric]} (%)", ref.paper_mark,
                         100.0 / classes if classes else None, series)


# --------------------------------------------------------------------------------------------------------------
# 2. Earlier configurations and overrides


def _config_changes(group: Group, ref: TaskReference) -> str:
    """What differs between this group's configuration and the suite file's current one."""
    config = (group.records[0].get("provenance") or {}).get("config") or {}
    config = {k: v for k, v in config.items() if k not in ("seed", "method")}
    current = dict(ref.run_config or {})
    if not current:
        return "—"
    keys = sorted(set(config) | set(current))
    changes = [f"{k}: {json.dumps(config.get(k))} (now {json.dumps(current.get(k))})" for k in keys
               if config.get(k) != current.get(k)]
    return "; ".join(changes) or "— (same settings; the hash differs by keys no longer in the config)"


def _configurations_section(document: _Document, groups: Sequence[Group],
                            references: Mapping[str, TaskReference]) -> None:
    apart = [g for g in groups if g.current is False]
    document.add("## 2. Earlier configurations and overridden settings", "")
    if not apart:
        document.add("None: every successful run used its task's current configuration.", "")
        return
    rows = []
    for group in apart:
        deviations = {k: c for r in group.records for k, c in (r.get("deviations") or {}).items()}
        how = ("override: " + ", ".join(describe_deviation(k, c) for k, c in sorted(deviations.items()))
               if deviations else "earlier suite file")
        rows.append([_md(group.task), f"`{group.method}`", f"`{_short(group.config)}`", how, str(group.n),
                     _md(_config_changes(group, references[group.task])), _mean_std(group.values("final"))])
    document.table("runs shown apart from the current configuration", _flags_of(apart),
                   ["task", "method", "config", "why", "n", "differs from the current config", "final mean ± std"],
                   rows)


# --------------------------------------------------------------------------------------------------------------
# 3. Latency, 4. training curves


def _latency_section(document: _Document, groups: Sequence[Group], references: Mapping[str, TaskReference]) -> None:
    document.add("## 3. Latency: accuracy vs time steps at inference", "")
    tasks = selection.tasks_of(g for g in groups if any(r.get("latency") for r in g.records))
    if not tasks:
        document.add("No latency data in the successful runs.", "")
        return
    document.add("Test accuracy of the readout summed over the first t time steps: mean over seeds with its 95 % "
                 "t-band (none for one run); dotted: chance; dashed: the paper's number at all steps.", "")
    for task in tasks:
        task_groups = [g for g in groups if g.task == task and any(r.get("latency") for r in g.records)]
        series = [LatencySeries(_series_label(g), [[_num(v) for v in r.get("latency") or []] for r in g.records],
                                _series_flag(g)) for g in task_groups]
        classes = _classes(task_groups)
        figure = latency_figure(document.figures, task, series, 100.0 / classes if classes else None,
                                references[task].paper_mark)
        document.figure(f"{_file_stem(task)}-latency.png", f"{task}: accuracy vs time steps",
                        _flags_of(task_groups), figure)


def _curves_section(document: _Document, groups: Sequence[Group], references: Mapping[str, TaskReference]) -> None:
    document.add("## 4. Training curves", "")
    tasks = selection.tasks_of(g for g in groups if any(r.get("history") for r in g.records))
    if not tasks:
        document.add("No per-epoch history in the successful runs.", "")
        return
    document.add("Per-epoch test accuracy and training loss: mean over seeds with its 95 % t-band.", "")
    for task in tasks:
        task_groups = [g for g in groups if g.task == task and any(r.get("history") for r in g.records)]
        series = [CurveSeries(_series_label(g), [_history(r, "test_accuracy") for r in g.records],
                              [_history(r, "train_loss") for r in g.records], _series_flag(g)) for g in task_groups]
        figure = curves_figure(document.figures, task, series, references[task].paper_mark)
        document.figure(f"{_file_stem(task)}-curves.png", f"{task}: training curves", _flags_of(task_groups), figure)


def _history(record: dict, key: str) -> list[float]:
    return [_num(entry.get(key)) for entry in record.get("history") or [] if isinstance(entry, dict)]


# --------------------------------------------------------------------------------------------------------------
# 5. Throughput and memory


def _in_run_caveat(records: Sequence[dict]) -> str:
    threads = sorted({t for r in records if isinstance(t := (r.get("provenance") or {}).get("torch_threads"), int)})
    hardware = sorted({str((r.get("provenance") or {}).get("hardware") or "?") for r in records})
    return ("In-run numbers: each run timed itself while other runs and programs may have shared the machine "
            f"(torch threads per run: {', '.join(map(str, threads)) or 'not recorded'}; hardware: "
            f"{'; '.join(hardware)}). They are not speed measurements: `tssl bench` measures each network alone.")


def _throughput_section(document: _Document, groups: Sequence[Group], ok: Sequence[dict],
                        suite_tasks: Mapping | None, bench_records: Sequence[dict]) -> None:
    document.add("## 5. Throughput and memory", "")
    if not groups:
        document.add("No successful runs.", "")
        return
    caveat = _in_run_caveat(ok)
    rows = []
    series = []
    for group in groups:
        timing = [r.get("timing") or {} for r in group.records]
        sps = [_num(t.get("samples_per_second")) for t in timing]
        memory = [_num(t.get("peak_memory_bytes")) / 2**20 for t in timing]
        kinds = sorted({str(t.get("memory_kind")) for t in timing if t.get("memory_kind")})
        threads = ", ".join(map(str, group.thread_counts)) or "—"
        rows.append([_md(group.task), f"`{group.method}`", _data_cell(group), str(group.n), threads,
                     _fmt(float(np.nanmean(sps)) if any(map(math.isfinite, sps)) else math.nan, 1),
                     _fmt(float(np.nanmean(memory)) if any(map(math.isfinite, memory)) else math.nan, 1),
                     ", ".join(f"`{k}`" for k in kinds) or "—"])
        series.append(ThroughputSeries(group.task, _series_label(group), sps, memory, ", ".join(kinds),
                                       _series_flag(group)))
    document.add(caveat, "")
    document.table("in-run training throughput and peak memory per group (means over runs)", _flags_of(groups),
                   ["task", "method", "data", "n", "torch threads", "samples/s (in-run)", "peak memory (MiB)",
                    "memory kind"], rows,
                   "Peak memory: `cuda_max_allocated` = the CUDA allocator's peak, `peak_rss` = the process's peak "
                   "resident memory; the two are not comparable.")
    if any(math.isfinite(v) for s in series for v in s.samples_per_second + s.peak_memory_mib):
        document.figure("throughput.png", "In-run training throughput and peak memory (not an isolated benchmark)",
                        _flags_of(groups), throughput_figure(document.figures, series, caveat))
    timing_rows = suite_timing_rows(bench_records, dict(suite_tasks or {}), ok)
    if timing_rows:
        document.add(
            "Measured alone with `tssl bench` (random data of the task's shape; the step is forward, loss, backward, "
            "clip, AdamW and clamp; medians over rounds alternating the methods), each task's network gives the step "
            "times below. The projections are projections: step time x the task's training samples per epoch x its "
            "epochs, training steps only (no evaluation passes). The floor is the same network with its neuron "
            "replaced by one multiply.", "")
        document.table("training step of each task's network, measured alone by `tssl bench`", [],
                       SUITE_TIMING_HEADER, timing_rows)


# --------------------------------------------------------------------------------------------------------------
# 6. Efficiency, failed runs


_EFFICIENCY_COLUMNS = (("synops_total", ".4g"), ("macs", ".4g"), ("acs", ".4g"), ("dense_synops", ".4g"),
                       ("energy_joules", ".4g"), ("firing_rate", ".4f"), ("spikes_per_sample", ".4g"),
                       ("activation_sparsity", ".4f"), ("parameter_count", ".0f"), ("footprint_bytes", ".0f"),
                       ("connection_sparsity", ".4f"))


def _measured(group: Group) -> list[dict]:
    return [r for r in group.records
            if is_number(_efficiency_of(r).get("synops_total")) and is_number(_efficiency_of(r).get("energy_joules"))]


def _efficiency_section(document: _Document, groups: Sequence[Group], ok: Sequence[dict]) -> bool:
    measured = [(g, runs) for g in groups if (runs := _measured(g))]
    if not measured:
        return False
    conventions = sorted({str(_efficiency_of(r).get("convention")) for r in ok
                          if _efficiency_of(r).get("convention") is not None})
    document.add("## 6. Efficiency", "",
                 "Synaptic operations and energy per sample, as recorded in each run's `efficiency`; means over "
                 "the runs that carry them.", "")
    for name in conventions:
        text = CONVENTIONS.get(name, "unknown convention: see the tssl-bench version that wrote the records")
        document.add(f"- SynOps convention `{name}` (docs/metrics.md): {text}")
    if not conventions:
        document.add("- SynOps convention: not recorded in these runs.")
    document.add("- SynOps / sample = accumulates (ACs) + multiply-accumulates (MACs), effective (zero inputs and "
                 "zero weights cost nothing), measured on the test split.",
                 f"- Energy / sample = E_MAC x MACs + E_AC x ACs: {ENERGY_LABEL}.", "")
    rows = []
    for group, runs in measured:
        cells = []
        for key, spec in _EFFICIENCY_COLUMNS:
            numbers = [_num(_efficiency_of(r).get(key)) for r in runs]
            finite = [v for v in numbers if math.isfinite(v)]
            cells.append(format(float(np.mean(finite)), spec) if finite else "—")
        rows.append([_md(group.task), f"`{group.method}`", _data_cell(group), str(len(runs)),
                     _fmt(float(np.mean([r["accuracy"]["final"] for r in runs]))), *cells])
    document.table("efficiency per group", _flags_of(g for g, _ in measured),
                   ["task", "method", "data", "n", "final accuracy", "SynOps / sample", "MACs", "ACs", "dense SynOps",
                    "energy / sample (J)", "firing rate", "spikes / sample", "activation sparsity", "parameters",
                    "footprint (bytes)", "connection sparsity"], rows)
    points = [EfficiencyPoint(g.task, _series_label(g), [float(_efficiency_of(r)["synops_total"]) for r in runs],
                              [float(r["accuracy"]["final"]) for r in runs], _series_flag(g)) for g, runs in measured]
    document.figure("efficiency.png", "Final-epoch accuracy vs synaptic operations per sample",
                    _flags_of(g for g, _ in measured), efficiency_figure(document.figures, points),
                    "One panel per task, logarithmic SynOps axis; bars: 95 % t-intervals over seeds.")
    return True


def _failed_rows(failed: Sequence[dict], tasks: Sequence[str]) -> list[list[str]]:
    rank = {task: position for position, task in enumerate(selection.order_tasks({r["task"] for r in failed}, tasks))}

    def key(record: dict) -> tuple:
        return (rank[record["task"]], selection.method_key(record["method"]), str(record.get("recipe") or ""),
                int(record["seed"]), str(record["run_id"]))

    rows = []
    for record in sorted(failed, key=key):
        error = record.get("error")
        rows.append([
            _md(record["task"]), f"`{record['method']}`", _md(record.get("recipe") or "—"), _md(record["seed"]),
            _md(record["run_id"]) + (" (**smoke**)" if record.get("smoke") is True else ""),
            _md(record.get("failure") or "error"), _md(error) if error else "(no error message recorded)",
        ])  # fmt: skip
    return rows
