"""The reproducibility report: ``tssl report SUITE``.

Reads the results store ``results/<suite>.jsonl`` (one JSON record per finished run; see
docs/results-format.md) and writes ``reports/<suite>/``: a Markdown index (``index.md``) and PNG figures.

* Accuracy per (task, method): mean ± sample std of the final test accuracy over seeds, compared with the
  paper's TSSL-BP number and, for the ``tssl`` method only, a verdict by :data:`VERDICT_RULE`.
* Latency (accuracy vs time steps used at inference), training curves, throughput and memory, failed runs,
  and efficiency (synaptic operations, energy) when the records carry it.

Smoke runs and runs on generated or reduced data are never averaged with full runs on real data: each
(task, method, recipe, smoke, data kind) is its own row, and every table and figure that holds such a row is
marked, with a banner at the top of the report. Failed runs are listed with their errors and never enter a
number.

The figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend switch), so the
report can be written from any thread or process, with or without a display. Apart from the generation
timestamp in the index, the output depends only on the records: tasks and methods are sorted.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from tssl.bench_report import SUITE_TIMING_HEADER, suite_timing_rows
from tssl.metrics import CONVENTIONS, ENERGY_LABEL
from tssl.results import ResultsError, is_number, latest_records, read_records
from tssl.suites import describe_deviation

__all__ = [
    "DEFAULT_TOLERANCE",
    "GENERATED_LABEL",
    "REDUCED_LABEL",
    "SMOKE_LABEL",
    "VERDICT_RULE",
    "ReportError",
    "ReportOutput",
    "Verdict",
    "build_report",
    "load_records",
    "t_quantile",
    "verdict",
    "write_report",
]

DEFAULT_TOLERANCE = 0.5
"""Tolerance δ in percentage points when no suite definition gives one."""

SMOKE_LABEL = "SMOKE RUN — not a reproduction"
GENERATED_LABEL = "GENERATED DATA"
REDUCED_LABEL = "REDUCED DATA"
MODIFIED_LABEL = "MODIFIED SETTINGS — not the suite's recipe"
REDUCED_EPOCHS_LABEL = "REDUCED EPOCHS — trained for fewer epochs than the suite's recipe"

# "modified" is not a data kind of the record: the report files a run under it when the run's settings were
# overridden away from its suite file's (record key `deviations`, e.g. fewer epochs), so it is never averaged
# with faithful runs and never gets a verdict.
RECORD_DATA_KINDS = ("real", "generated", "reduced")  # what a record's data.kind may say
DATA_KINDS = (*RECORD_DATA_KINDS, "reduced-epochs", "modified")  # how the report files runs
METHOD_ORDER = ("tssl", "tssl-surrogate", "snntorch", "spikingjelly")
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"

VERDICT_RULE = (
    "Let μ, s, n be our mean, std, count of final test accuracies, P the paper mean, δ the task tolerance in "
    "points; CI = μ ± t(0.975, n\u22121)·s/√n (t from a table for n\u22121 = 1..30, 1.96 beyond); \"reproduced\" if "
    "n ≥ 3 and |μ \u2212 P| ≤ δ; \"not reproduced\" if n ≥ 2 and the whole CI lies outside [P \u2212 δ, P + δ]; "
    "otherwise \"inconclusive\"."
)

# Two-sided 95 % Student t quantiles t(0.975, df) for df = 1..30 (scipy is not a dependency).
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_EPS = 1e-9  # |μ - P| ≤ δ is tested with this slack so that 95.2 - 94.7 counts as 0.5
_DPI = 120
_PAPER_COLOR = "0.55"
_WARN_COLOR = "#b00020"


class ReportError(ValueError):
    """Bad input to the report: an empty or malformed results store, or an invalid record."""


def t_quantile(df: int) -> float:
    """t(0.975, df) from the table for df = 1..30; 1.96 (the normal quantile) beyond."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1; got {df}")
    return _T_975[df - 1] if df <= len(_T_975) else 1.96


@dataclass(frozen=True)
class Verdict:
    """The outcome of :data:`VERDICT_RULE` for one (task, method)."""

    label: str  # reproduced | not reproduced | inconclusive
    reason: str
    n: int
    mean: float
    std: float  # nan for n = 1
    ci: tuple[float, float] | None  # None for n = 1

    def __str__(self) -> str:
        return self.label if self.label == REPRODUCED else f"{self.label} ({self.reason})"


def verdict(values: Sequence[float], paper_mean: float, tolerance: float) -> Verdict:
    """Apply :data:`VERDICT_RULE` to the final test accuracies ``values`` of one (task, method)."""
    n = len(values)
    if n == 0:
        raise ValueError("verdict needs at least one accuracy")
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    std = float(array.std(ddof=1)) if n >= 2 else math.nan
    ci = None
    if n >= 2:
        half = t_quantile(n - 1) * std / math.sqrt(n)
        ci = (mean - half, mean + half)
    low, high = paper_mean - tolerance, paper_mean + tolerance
    gap = abs(mean - paper_mean)
    band = f"[P - δ, P + δ] = [{low:.2f}, {high:.2f}]"
    if n >= 3 and gap <= tolerance + _EPS:
        return Verdict(REPRODUCED, f"n = {n} ≥ 3 and |μ - P| = {gap:.2f} ≤ δ = {tolerance:g}", n, mean, std, ci)
    if ci is not None and (ci[1] < low or ci[0] > high):
        reason = f"the 95% CI [{ci[0]:.2f}, {ci[1]:.2f}] lies outside {band}"
        return Verdict(NOT_REPRODUCED, reason, n, mean, std, ci)
    if n == 1:
        reason = "n = 1 < 3, and one run gives no CI"
    elif n == 2:
        reason = f"n = 2 < 3, and the 95% CI [{ci[0]:.2f}, {ci[1]:.2f}] overlaps {band}"
    else:
        reason = f"|μ - P| = {gap:.2f} > δ = {tolerance:g}, but the 95% CI [{ci[0]:.2f}, {ci[1]:.2f}] overlaps {band}"
    return Verdict(INCONCLUSIVE, reason, n, mean, std, ci)


# --------------------------------------------------------------------------------------------------------------
# Reading and checking records


def load_records(path: Path) -> list[dict]:
    """Read a JSONL results store: one JSON object per line; blank lines are skipped.

    Raises :class:`ReportError` naming the file (and line) when the file is missing, holds no records, or a
    line is not a valid record.
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"{path}: no such results store; run the suite first (tssl run SUITE).")
    try:
        records = read_records(path, _record_problem)
    except (ResultsError, OSError, UnicodeDecodeError) as error:
        raise ReportError(str(error) if isinstance(error, ResultsError) else
                          f"{path}: cannot read the results store ({error}).") from None
    if not records:
        raise ReportError(f"{path}: the results store holds no records.")
    return records



def _record_problem(record: Any) -> str | None:
    """What makes ``record`` unusable, or None. Failed runs need only their identity."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for key in ("task", "method"):
        if not isinstance(record.get(key), str) or not record[key]:
            return f"{key!r} must be a non-empty string"
    status = record.get("status")
    if status not in ("ok", "failed"):
        return f"'status' must be 'ok' or 'failed', got {status!r}"
    if status == "failed":
        return None
    accuracy = record.get("accuracy")
    if not isinstance(accuracy, dict) or not is_number(accuracy.get("final")):
        return "an ok run needs a finite number in accuracy.final"
    data = record.get("data")
    if not isinstance(data, dict) or data.get("kind") not in RECORD_DATA_KINDS:
        return f"an ok run needs data.kind, one of {', '.join(RECORD_DATA_KINDS)}"
    return None


# --------------------------------------------------------------------------------------------------------------
# Small helpers


def _num(value: Any) -> float:
    return float(value) if is_number(value) else math.nan


def _flags(smoke: bool, kinds: Iterable[str]) -> list[str]:
    kinds = set(kinds)
    flags = [SMOKE_LABEL] if smoke else []
    if "generated" in kinds:
        flags.append(GENERATED_LABEL)
    if "reduced" in kinds:
        flags.append(REDUCED_LABEL)
    if "reduced-epochs" in kinds:
        flags.append(REDUCED_EPOCHS_LABEL)
    if "modified" in kinds:
        flags.append(MODIFIED_LABEL)
    return flags


def _kind(record: dict) -> str | None:
    """The record's data kind; "reduced-epochs" when its only deviation from its suite file is fewer epochs,
    "modified" when its settings deviate otherwise."""
    deviations = record.get("deviations")
    if deviations:
        epochs = deviations.get("epochs") if isinstance(deviations, dict) else None
        if (
            set(deviations) == {"epochs"} and isinstance(epochs, dict)
            and is_number(epochs.get("run")) and is_number(epochs.get("suite")) and epochs["run"] < epochs["suite"]
        ):  # fmt: skip
            return "reduced-epochs"
        return "modified"
    data = record.get("data")
    return data.get("kind") if isinstance(data, dict) else None


def _frame_flags(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    return _flags(bool(frame["smoke"].any()), frame["kind"].dropna())


def _record_flags(records: Iterable[dict]) -> list[str]:
    records = list(records)
    return _flags(any(r.get("smoke") is True for r in records), (_kind(r) for r in records))


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method), method) if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def _variant_label(method: str, recipe: str, smoke: bool, kind: str) -> str:
    label = f"{method} ({recipe})" if recipe else method
    if smoke:
        label += " [SMOKE]"
    if kind and kind != "real":
        label += f" [{kind.upper()}]"
    return label


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>#])")


def _md(text: Any) -> str:
    """Escape free text (task names, errors, sources) for a Markdown table cell or line."""
    text = _MD_SPECIAL.sub(r"\\\1", str(text))
    return text.replace("\r\n", "\n").replace("\n", "<br>")


def _fmt(value: float, digits: int = 2, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _mean_std(mean: float, std: float, n: int) -> str:
    if not math.isfinite(mean):
        return "—"
    return f"{mean:.2f} ± {std:.2f}" if n >= 2 and math.isfinite(std) else f"{mean:.2f} ± —"


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table; a ``|`` inside a cell (say, in |μ - P|) is escaped so that it cannot split the cell."""
    rows = [[_UNESCAPED_PIPE.sub(r"\\|", cell) for cell in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _mark(flags: Sequence[str]) -> str:
    return " · ".join(f"⚠ {flag}" for flag in flags)


def _file_stem(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "task"


# --------------------------------------------------------------------------------------------------------------
# Flattening records into frames


@dataclass
class _Frames:
    runs: pd.DataFrame  # one row per ok run
    latency: pd.DataFrame  # one row per (ok run, t)
    history: pd.DataFrame  # one row per (ok run, epoch)
    has_efficiency: bool


_RUN_COLUMNS = [
    "task", "method", "recipe", "smoke", "kind", "variant", "seed", "run_id", "final", "best", "val_selected",
    "steps", "samples_per_second", "memory_mib", "memory_kind", "epoch_seconds", "synops", "energy",
    "macs", "acs", "dense_synops", "firing_rate", "spikes_per_sample", "parameters", "footprint_bytes",
    "connection_sparsity", "activation_sparsity",
]  # fmt: skip


def _frames(ok_records: Sequence[dict]) -> _Frames:
    runs, latency, history = [], [], []
    for record in ok_records:
        method, recipe = record["method"], str(record.get("recipe") or "")
        smoke, kind = record.get("smoke") is True, _kind(record)
        variant = _variant_label(method, recipe, smoke, kind)
        key = {"task": record["task"], "variant": variant, "run_id": str(record.get("run_id") or "")}
        accuracy, timing = record["accuracy"], record.get("timing") or {}
        epochs = [h for h in record.get("history") or [] if isinstance(h, dict)]
        seconds = [_num(h.get("seconds")) for h in epochs]
        seconds = [s for s in seconds if math.isfinite(s)]
        efficiency = record.get("efficiency") if isinstance(record.get("efficiency"), dict) else {}
        memory = _num(timing.get("peak_memory_bytes"))
        runs.append({
            **key,
            "method": method, "recipe": recipe, "smoke": smoke, "kind": kind, "seed": record.get("seed"),
            "final": float(accuracy["final"]), "best": _num(accuracy.get("best")),
            "val_selected": _num(accuracy.get("validation_selected")), "steps": _num(record.get("steps")),
            "samples_per_second": _num(timing.get("samples_per_second")),
            "memory_mib": memory / 2**20, "memory_kind": str(timing.get("memory_kind") or ""),
            "epoch_seconds": float(np.mean(seconds)) if seconds else math.nan,
            "synops": _num(efficiency.get("synops_total")), "energy": _num(efficiency.get("energy_joules")),
            **{key: _num(efficiency.get(field)) for key, field in _EFFICIENCY_FIELDS.items()},
        })  # fmt: skip
        for t, value in enumerate(record.get("latency") or [], start=1):
            latency.append({**key, "t": t, "accuracy": _num(value)})
        for position, entry in enumerate(epochs, start=1):
            epoch = entry.get("epoch")
            history.append({
                **key, "epoch": int(epoch) if is_number(epoch) else position,
                "test_accuracy": _num(entry.get("test_accuracy")), "train_loss": _num(entry.get("train_loss")),
            })  # fmt: skip
    runs_frame = pd.DataFrame(runs, columns=_RUN_COLUMNS)
    has_efficiency = bool((runs_frame["synops"].notna() & runs_frame["energy"].notna()).any())
    return _Frames(
        runs_frame,
        pd.DataFrame(latency, columns=["task", "variant", "run_id", "t", "accuracy"]),
        pd.DataFrame(history, columns=["task", "variant", "run_id", "epoch", "test_accuracy", "train_loss"]),
        has_efficiency,
    )


@dataclass(frozen=True)
class _Group:
    task: str
    method: str
    recipe: str
    smoke: bool
    kind: str
    variant: str
    frame: pd.DataFrame = field(compare=False, repr=False)

    @property
    def flags(self) -> list[str]:
        return _flags(self.smoke, [self.kind])


def _groups(runs: pd.DataFrame) -> list[_Group]:
    groups = []
    for (task, method, recipe, smoke, kind), frame in runs.groupby(
        ["task", "method", "recipe", "smoke", "kind"], sort=False
    ):
        groups.append(_Group(task, method, recipe, bool(smoke), kind, frame["variant"].iloc[0], frame))
    groups.sort(key=lambda g: (g.task, _method_key(g.method), g.recipe, g.smoke, DATA_KINDS.index(g.kind)))
    return groups


# --------------------------------------------------------------------------------------------------------------
# Paper numbers and tolerances


@dataclass(frozen=True)
class _Reference:
    paper: dict | None  # {"mean", "std", "best", "source"}
    tolerance: float
    tolerance_is_default: bool
    description: str = ""
    notes: tuple[str, ...] = ()


def _clean_paper(paper: Any) -> dict | None:
    """The paper's numbers with nan for those it does not give; None without a mean or a best."""
    if not isinstance(paper, Mapping) or not (is_number(paper.get("mean")) or is_number(paper.get("best"))):
        return None
    return {
        "mean": _num(paper.get("mean")),
        "std": _num(paper.get("std")),
        "best": _num(paper.get("best")),
        "source": str(paper.get("source") or ""),
    }


def _paper_key(paper: dict | None) -> str:
    return json.dumps(paper, sort_keys=True, default=str)


def _references(
    tasks: Sequence[str], records: Sequence[dict], suite_tasks: Mapping[str, Mapping] | None
) -> dict[str, _Reference]:
    references = {}
    for task in tasks:
        from_records = Counter(
            _paper_key(_clean_paper(r.get("paper"))) for r in records if r["task"] == task and r.get("paper")
        )
        record_papers = [json.loads(key) for key, _ in sorted(from_records.items(), key=lambda kv: (-kv[1], kv[0]))]
        record_papers = [p for p in record_papers if p is not None]
        notes = []
        if suite_tasks is not None and task in suite_tasks:
            spec = suite_tasks[task] or {}
            paper = _clean_paper(spec.get("paper"))
            tolerance = spec.get("tolerance")
            default = not is_number(tolerance)
            if record_papers and paper is not None and any(_paper_key(p) != _paper_key(paper) for p in record_papers):
                notes.append(
                    f"the records of {task!r} carry a different paper number "
                    f"({', '.join(_fmt(p['mean']) for p in record_papers)}); the suite's ({_fmt(paper['mean'])}) "
                    "is used"
                )
            references[task] = _Reference(
                paper,
                DEFAULT_TOLERANCE if default else float(tolerance),
                default,
                str(spec.get("description") or ""),
                tuple(notes),
            )
            continue
        if suite_tasks is not None:
            notes.append(f"task {task!r} is not in the suite definition; its paper number comes from the records")
        if len(record_papers) > 1:
            notes.append(
                f"the records of {task!r} disagree on the paper number; the most common one "
                f"({_fmt(record_papers[0]['mean'])}) is used"
            )
        paper = record_papers[0] if record_papers else None
        references[task] = _Reference(paper, DEFAULT_TOLERANCE, True, "", tuple(notes))
    return references


# --------------------------------------------------------------------------------------------------------------
# Figures


class _Figures:
    """Draws and saves the figures, numbering them and remembering their titles."""

    def __init__(self, out_dir: Path, variants: Sequence[str]) -> None:
        self.out_dir = out_dir
        self.titles: dict[str, str] = {}
        palette = matplotlib.colormaps["tab10"].colors
        self.colors = {v: palette[i % len(palette)] for i, v in enumerate(dict.fromkeys(variants))}

    def new(self, width: float, height: float, ncols: int = 1, nrows: int = 1) -> tuple[Figure, np.ndarray]:
        figure = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(nrows, ncols, squeeze=False)
        return figure, axes

    def save(self, figure: Figure, name: str, title: str, flags: Sequence[str]) -> str:
        """Save ``figure`` as ``name`` with ``title`` (and the data flags, in red) on top; return the caption."""
        if flags:  # the flags on a second line, and the whole title in red
            figure.suptitle(f"{title}\n{_mark(flags)}", fontsize=12, fontweight="bold", color=_WARN_COLOR)
        else:
            figure.suptitle(title, fontsize=12, fontweight="bold")
        full = f"{title} — {_mark(flags)}" if flags else title
        figure.savefig(self.out_dir / name, dpi=_DPI, metadata={"Software": None})
        self.titles[name] = full
        return full


def _paper_line(axis, paper: dict | None, where: str) -> None:
    """A dashed line at the paper's mean (or, failing that, its best) accuracy."""
    if not paper:
        return
    value, what = (paper["mean"], "") if math.isfinite(paper["mean"]) else (paper["best"], " best")
    axis.axhline(value, color=_PAPER_COLOR, linestyle="--", linewidth=1.2,
                 label=f"paper TSSL-BP{what}{where}: {value:.2f}")


def _style(axis) -> None:
    axis.grid(True, alpha=0.3, linewidth=0.6)
    axis.spines[["top", "right"]].set_visible(False)


# --------------------------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class ReportOutput:
    """What :func:`build_report` wrote: the index, and every figure's file name with the title drawn on it."""

    index: Path
    figures: dict[str, str]
    verdicts: dict[tuple[str, str], str]  # (task, variant label) -> verdict text, for the tssl rows


def write_report(
    suite: str,
    records: list[dict],
    out_dir: Path,
    *,
    suite_tasks: dict[str, dict] | None = None,
    bench_records: Sequence[dict] = (),
) -> Path:
    """Write ``out_dir/index.md`` and its PNG figures for ``suite`` from ``records``; return the index path.

    ``suite_tasks`` maps task name -> {"paper": {...} | None, "tolerance": points, "description": str}; when
    given it is the source of paper numbers and tolerances, else the records' ``paper`` and a tolerance of
    :data:`DEFAULT_TOLERANCE` points are used (and the report says so). ``bench_records`` (``tssl bench``'s
    store) add the step time of each task's network measured alone, matched through ``suite_tasks``'
    ``run_config``, and the epoch and full-run times it projects.
    """
    return build_report(suite, records, out_dir, suite_tasks=suite_tasks, bench_records=bench_records).index


def build_report(
    suite: str,
    records: list[dict],
    out_dir: Path,
    *,
    suite_tasks: dict[str, dict] | None = None,
    bench_records: Sequence[dict] = (),
) -> ReportOutput:
    """As :func:`write_report`, returning the figure titles and verdicts as well (for tests and tools)."""
    out_dir = Path(out_dir)
    if not records:
        raise ReportError(f"no records for suite {suite!r}: the results store is empty, so there is nothing to report.")
    for position, record in enumerate(records, start=1):
        problem = _record_problem(record)
        if problem:
            raise ReportError(f"record {position} of suite {suite!r} is not a valid run record ({problem}).")

    other_suites = sorted({str(r["suite"]) for r in records if r.get("suite") not in (None, suite)})
    records = [r for r in records if r.get("suite") in (None, suite)]
    if not records:
        raise ReportError(
            f"no records for suite {suite!r}: the records given belong to {', '.join(map(repr, other_suites))}."
        )
    # A rerun of the same configuration (a failed run retried, or tssl run --force) appends a record with the
    # same run_id: the one that stands is chosen by tssl.results.latest_records, as everywhere else.
    stands = latest_records(records)
    kept = [r for r in records if not r.get("run_id") or stands[r["run_id"]] is r]
    replaced = [r for r in records if r.get("run_id") and stands[r["run_id"]] is not r]
    superseded = len(replaced)
    records = kept

    out_dir.mkdir(parents=True, exist_ok=True)
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] == "failed"]
    frames = _frames(ok)
    groups = _groups(frames.runs)
    tasks = sorted({r["task"] for r in records})
    references = _references(tasks, records, suite_tasks)
    figures = _Figures(out_dir, [g.variant for g in sorted(groups, key=lambda g: (_method_key(g.method), g.variant))])
    lines: list[str] = []
    counter = {"table": 0, "figure": 0}

    def table_caption(title: str, flags: Sequence[str]) -> str:
        counter["table"] += 1
        text = f"**Table {counter['table']} — {title}**"
        return f"{text} — **{_mark(flags)}**" if flags else text

    def figure_block(name: str, title: str, flags: Sequence[str], figure: Figure, note: str = "") -> list[str]:
        counter["figure"] += 1
        full = figures.save(figure, name, title, flags)
        caption = f"*Figure {counter['figure']} — {_md(full)}*" + (f" {note}" if note else "")
        return [f"![Figure {counter['figure']} — {_md(full)}]({name})", "", caption, ""]

    # ---- Header ----------------------------------------------------------------------------------------------
    all_flags = _record_flags(records)
    lines += [f"# Reproducibility report: suite `{suite}`", ""]
    if all_flags:
        lines += _banner(records)
    generated = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    lines += [
        f"- Generated: {generated}",
        f"- Runs: {len(ok)} ok, {len(failed)} failed ({len(records)} records"
        + (f"; {superseded} superseded by a later record of the same run, the last ok one wins" if superseded else "")
        + ")",
    ]
    for record in replaced:  # name what a rerun replaced, so that no measured number silently disappears
        accuracy = record.get("accuracy") if isinstance(record.get("accuracy"), dict) else {}
        provenance = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
        final = f"final {accuracy['final']:.2f} %" if is_number(accuracy.get("final")) else str(record["status"])
        lines.append(
            f"- Superseded: `{_md(record['run_id'])}` ({final}, commit `{str(provenance.get('git_sha') or '?')[:7]}`, "
            f"finished {provenance.get('finished_at', '?')}), replaced by a later record of the same run"
        )
    if other_suites:
        lines.append(f"- Ignored: records of other suites ({', '.join(map(_md, other_suites))})")
    lines += _provenance_lines(records)
    lines.append("")
    lines += _task_lines(tasks, references, frames.runs, suite_tasks)

    # ---- 1. Accuracy -----------------------------------------------------------------------------------------
    lines += ["## 1. Accuracy", ""]
    verdicts: dict[tuple[str, str], str] = {}
    if not groups:
        lines += ["No successful runs: nothing to compare.", ""]
    else:
        lines += [
            "Final test accuracy (%) over seeds: mean ± sample std (ddof = 1; \"—\" for a single run); best = the "
            "mean over runs of each run's best test accuracy over epochs (its maximum in brackets); "
            "val-selected = mean test accuracy at the epoch of best validation accuracy. Δ mean = μ - P; "
            "Δ best = our mean best - the paper's best.",
            "",
            "Verdict rule (for the `tssl` method only):",
            "",
            f"> {VERDICT_RULE}",
            "",
            "Rows from smoke runs, from generated or reduced data, or from runs with fewer epochs or other settings "
            "than the suite file's are not reproductions of the paper: their verdict is always \"inconclusive\", "
            "whatever the rule would say.",
            "",
        ]
        if any(ref.tolerance_is_default for ref in references.values()):
            lines += [
                f"Where the suite gives no tolerance, δ = {DEFAULT_TOLERANCE:g} percentage points (the default) "
                "is used; such rows are marked \"(default)\" in the δ column.",
                "",
            ]
        tssl_groups = [g for g in groups if g.method == "tssl"]
        other_groups = [g for g in groups if g.method != "tssl"]
        if tssl_groups:
            rows = []
            for group in tssl_groups:
                row, text = _accuracy_row(group, references[group.task], with_verdict=True)
                rows.append(row)
                verdicts[(group.task, group.variant)] = text
            lines += [
                table_caption("TSSL-BP (`tssl`) vs the paper's TSSL-BP", _flags_of(tssl_groups)),
                "",
                *_table([*_ACCURACY_HEADER, "95% CI", "verdict"], rows),
                "",
            ]
        if other_groups:
            rows = [_accuracy_row(g, references[g.task], with_verdict=False)[0] for g in other_groups]
            header = [h.replace("Δ mean", "Δ mean vs paper TSSL-BP").replace("Δ best", "Δ best vs paper TSSL-BP")
                      for h in _ACCURACY_HEADER]
            lines += [
                table_caption(
                    "other methods, compared with the paper's TSSL-BP number (context, not reproductions)",
                    _flags_of(other_groups),
                ),
                "",
                *_table(header, rows),
                "",
            ]
        figure = _accuracy_figure(figures, groups, references)
        lines += figure_block(
            "accuracy.png",
            "Final test accuracy: paper TSSL-BP vs this benchmark",
            _flags_of(groups),
            figure,
            "Error bars: sample std over seeds (none for one run; the paper's std where it gives one). "
            "The y-axis does not start at 0.",
        )

    # ---- 2. Latency ------------------------------------------------------------------------------------------
    lines += ["## 2. Latency: accuracy vs time steps at inference", ""]
    latency_tasks = sorted(frames.latency["task"].unique()) if not frames.latency.empty else []
    if not latency_tasks:
        lines += ["No latency data in the successful runs.", ""]
    else:
        lines += ["Test accuracy of the readout summed over the first t time steps, mean over seeds.", ""]
    for task in latency_tasks:
        task_groups = [g for g in groups if g.task == task]
        figure = _latency_figure(figures, task, task_groups, frames.latency, references[task])
        lines += figure_block(f"{_file_stem(task)}-latency.png", f"{task}: accuracy vs time steps",
                              _flags_of(task_groups), figure)

    # ---- 3. Training curves ----------------------------------------------------------------------------------
    lines += ["## 3. Training curves", ""]
    history_tasks = sorted(frames.history["task"].unique()) if not frames.history.empty else []
    if not history_tasks:
        lines += ["No per-epoch history in the successful runs.", ""]
    else:
        lines += ["Per-epoch test accuracy and training loss, mean over seeds (band: ± sample std).", ""]
    for task in history_tasks:
        task_groups = [g for g in groups if g.task == task]
        figure = _curves_figure(figures, task, task_groups, frames.history, references[task])
        lines += figure_block(f"{_file_stem(task)}-curves.png", f"{task}: training curves",
                              _flags_of(task_groups), figure)

    # ---- 4. Throughput and memory ----------------------------------------------------------------------------
    lines += ["## 4. Throughput and memory", ""]
    if not groups:
        lines += ["No successful runs.", ""]
    else:
        lines += [
            "Training throughput (training samples / training seconds), peak memory (as the record's memory "
            "kind: `cuda_max_allocated` = the CUDA allocator's peak, `peak_rss` = the process's peak resident "
            "memory; the two are not comparable), and wall time per epoch (mean of the per-epoch seconds); "
            "means over runs.",
            "",
            table_caption("throughput and memory per task and method", _flags_of(groups)),
            "",
            *_table(
                ["task", "method", "recipe", "data", "n", "samples/s", "peak memory (MiB)", "memory kind",
                 "s / epoch"],
                [_throughput_row(g) for g in groups],
            ),
            "",
        ]
        if frames.runs[["samples_per_second", "memory_mib"]].notna().to_numpy().any():
            figure = _throughput_figure(figures, groups)
            lines += figure_block("throughput.png", "Training throughput and peak memory", _flags_of(groups), figure)
        else:
            lines += ["No timing recorded in the successful runs: no throughput figure.", ""]
        timing_rows = suite_timing_rows(bench_records, suite_tasks or {}, ok)
        if timing_rows:
            lines += [
                "The runs' own times depend on what else the machine ran beside them (their thread count is in "
                "the hardware line above). Measured alone with `tssl bench` (random data of the task's shape; "
                "the step is forward, loss, backward, clip, AdamW and clamp; medians over rounds alternating the "
                "methods), each task's network gives the step times below; the projections multiply them by the "
                "task's training samples per epoch and its epochs, without the evaluation passes. The floor is "
                "the same network with its neuron replaced by one multiply.",
                "",
                table_caption("training step of each task's network, measured alone by `tssl bench`", []),
                "",
                *_table(SUITE_TIMING_HEADER, timing_rows),
                "",
            ]

    # ---- 5. Efficiency (only when the records carry it) ------------------------------------------------------
    if frames.has_efficiency:
        eff_groups = [g for g in groups if (g.frame["synops"].notna() & g.frame["energy"].notna()).any()]
        lines += [
            "## 5. Efficiency",
            "",
            "Synaptic operations and energy per sample, as recorded in each run's `efficiency` "
            "(`synops_total`, `energy_joules`); means over the runs that carry them.",
            "",
            *_efficiency_notes(ok),
            table_caption("efficiency per task and method", _flags_of(eff_groups)),
            "",
            *_table(
                ["task", "method", "recipe", "data", "n", "final accuracy", "SynOps / sample", "MACs", "ACs",
                 "dense SynOps", "energy / sample (J)", "firing rate", "spikes / sample", "activation sparsity",
                 "parameters", "footprint (bytes)", "connection sparsity"],
                [_efficiency_row(g) for g in eff_groups],
            ),
            "",
        ]
        figure = _efficiency_figure(figures, eff_groups)
        lines += figure_block("efficiency.png", "Accuracy vs synaptic operations", _flags_of(eff_groups), figure)

    # ---- 6. Failed runs --------------------------------------------------------------------------------------
    lines += [f"## {6 if frames.has_efficiency else 5}. Failed runs", ""]
    if not failed:
        lines += ["None.", ""]
    else:
        lines += [
            "These runs failed; they enter no number in this report.",
            "",
            table_caption("failed runs", _record_flags(failed)),
            "",
            *_table(["task", "method", "recipe", "seed", "run_id", "data", "error"], _failed_rows(failed)),
            "",
        ]

    index = out_dir / "index.md"
    index.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return ReportOutput(index, dict(figures.titles), verdicts)


# --------------------------------------------------------------------------------------------------------------
# Report sections


def _flags_of(groups: Iterable[_Group]) -> list[str]:
    groups = list(groups)
    return _flags(any(g.smoke for g in groups), (g.kind for g in groups))


def _banner(records: Sequence[dict]) -> list[str]:
    smoke = sum(r.get("smoke") is True for r in records)
    kinds = Counter(_kind(r) for r in records)
    lines = []
    if smoke:
        lines.append(
            f"> **⚠ {SMOKE_LABEL}.** {smoke} of {len(records)} records are smoke runs (`--limit-batches` cut "
            "their epochs short). Their numbers check that the pipeline works; they say nothing about the paper."
        )
    if kinds["generated"]:
        lines.append(
            f"> **⚠ {GENERATED_LABEL}.** {kinds['generated']} of {len(records)} records used generated stand-in "
            "data, not the paper's dataset."
        )
    if kinds["reduced"]:
        lines.append(
            f"> **⚠ {REDUCED_LABEL}.** {kinds['reduced']} of {len(records)} records used a reduced subset of the "
            "real dataset."
        )
    if kinds["reduced-epochs"]:
        lines.append(
            f"> **⚠ {REDUCED_EPOCHS_LABEL}.** {kinds['reduced-epochs']} of {len(records)} records trained for "
            f"{_deviation_changes(records, 'reduced-epochs')}. They are shown apart and get no verdict; their "
            "accuracy is not the paper row's."
        )
    if kinds["modified"]:
        changes = _deviation_changes(records, "modified")
        lines.append(
            f"> **⚠ {MODIFIED_LABEL}.** {kinds['modified']} of {len(records)} records ran with settings overridden "
            f"away from the suite file: {changes}. They are shown apart and get no verdict."
        )
    spaced = []
    for line in lines:
        spaced += [line, ">"]
    return [*spaced, "> Rows, tables and figures holding such runs are marked below.", ""]


def _deviation_changes(records: Sequence[dict], kind: str) -> str:
    """The overrides of the records filed under ``kind``, e.g. "epochs=3 (suite: 100)"."""
    return ", ".join(sorted({
        describe_deviation(key, change)
        for r in records if _kind(r) == kind and isinstance(r.get("deviations"), dict)
        for key, change in r["deviations"].items() if isinstance(change, dict)
    }))  # fmt: skip


def _provenance_lines(records: Sequence[dict]) -> list[str]:
    shas: dict[str, bool] = {}
    packages: dict[str, set[str]] = {}
    devices, hardware, pythons = set(), set(), set()
    data_sources: dict[tuple, None] = {}
    implementations: dict[str, set[str]] = {}
    for record in records:
        provenance = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
        if provenance.get("git_sha"):
            sha = str(provenance["git_sha"])
            shas[sha] = shas.get(sha, False) or provenance.get("git_dirty") is True
        for name, version in (provenance.get("packages") or {}).items():
            packages.setdefault(str(name), set()).add(str(version))
        for key, target in (("device", devices), ("hardware", hardware), ("python", pythons)):
            if provenance.get(key):
                target.add(str(provenance[key]))
        if isinstance(provenance.get("implementation"), dict):
            text = ", ".join(f"{k}={v}" for k, v in sorted(provenance["implementation"].items()))
            implementations.setdefault(record["method"], set()).add(text)
        if isinstance(record.get("data"), dict):
            data = record["data"]
            data_sources[(str(data.get("name") or ""), str(data.get("kind") or ""), str(data.get("source") or ""),
                          str(data.get("fingerprint") or ""))] = None
    sha_text = ", ".join(f"`{sha}`" + (" (dirty)" if dirty else "") for sha, dirty in sorted(shas.items()))
    lines = [f"- Git commit(s): {sha_text or '— (not recorded)'}"]
    if len(shas) > 1:
        lines[-1] += " — **the runs come from more than one commit**"
    if packages:
        versions = "; ".join(
            f"{_md(name)} {', '.join(sorted(v))}" + (" (**several versions**)" if len(v) > 1 else "")
            for name, v in sorted(packages.items())
        )
        lines.append(f"- Packages: {versions}")
    else:
        lines.append("- Packages: — (not recorded)")
    for label, values in (("Python", pythons), ("Device(s)", devices), ("Hardware", hardware)):
        if values:
            lines.append(f"- {label}: {'; '.join(_md(v) for v in sorted(values))}")
    for method in sorted(implementations, key=_method_key):
        lines.append(f"- Implementation of `{method}`: {'; '.join(_md(v) for v in sorted(implementations[method]))}")
    for name, kind, source, fingerprint in sorted(data_sources):
        text = f"- Data: {_md(name)} ({kind})"
        text += f" — {_md(source)}" if source else ""
        text += f" — `{fingerprint}`" if fingerprint else ""
        lines.append(text)
    return lines


def _task_lines(
    tasks: Sequence[str], references: Mapping[str, _Reference], runs: pd.DataFrame, suite_tasks: Mapping | None
) -> list[str]:
    lines = ["## Tasks", ""]
    for task in tasks:
        ref = references[task]
        paper = ref.paper
        text = f"- **{_md(task)}**"
        text += f": {_md(ref.description)}" if ref.description else ""
        if paper:
            text += " — paper TSSL-BP " + (
                _mean_std(paper["mean"], paper["std"], 2) if math.isfinite(paper["mean"]) else "(no mean given)"
            )
            text += f", best {_fmt(paper['best'])}" if math.isfinite(paper["best"]) else ""
            text += f" ({_md(paper['source'])})" if paper["source"] else ""
        else:
            text += " — no paper number"
        text += f"; tolerance δ = {ref.tolerance:g} points" + (" (default)" if ref.tolerance_is_default else "")
        lines.append(text)
    missing = sorted(set(suite_tasks or ()) - set(tasks))
    if missing:
        lines.append(f"- No records yet for: {', '.join(_md(t) for t in missing)}")
    notes = [note for task in tasks for note in references[task].notes]
    lines += [f"- Note: {_md(note)}" for note in notes]
    return [*lines, ""]


_ACCURACY_HEADER = [
    "task", "method", "recipe", "data", "n", "final (mean ± std)", "best (mean [max])", "val-selected (mean)",
    "paper mean ± std", "paper best", "paper source", "δ", "Δ mean", "Δ best",
]  # fmt: skip


def _data_cell(group: _Group) -> str:
    kind = group.kind if group.kind == "real" else f"**{group.kind}**"
    return kind + (", **smoke**" if group.smoke else "")


def _accuracy_row(group: _Group, ref: _Reference, *, with_verdict: bool) -> tuple[list[str], str]:
    frame = group.frame
    n = len(frame)
    finals = frame["final"].to_numpy(dtype=float)
    mean, std = float(finals.mean()), float(finals.std(ddof=1)) if n >= 2 else math.nan
    best = frame["best"].dropna()
    best_text = f"{best.mean():.2f} [{best.max():.2f}]" if len(best) else "—"
    val = frame["val_selected"].dropna()
    val_text = "—" if val.empty else f"{val.mean():.2f}" + (f" (n = {len(val)})" if len(val) != n else "")
    paper = ref.paper
    row = [
        _md(group.task), f"`{group.method}`", _md(group.recipe or "—"), _data_cell(group), str(n),
        _mean_std(mean, std, n), best_text, val_text,
    ]  # fmt: skip
    if paper:
        row += [
            _mean_std(paper["mean"], paper["std"], 2),
            _fmt(paper["best"]),
            _md(paper["source"]) or "—",
            f"{ref.tolerance:g}" + (" (default)" if ref.tolerance_is_default else ""),
            _fmt(mean - paper["mean"], signed=True),
            _fmt(best.mean() - paper["best"], signed=True) if len(best) else "—",
        ]
    else:
        row += ["—", "—", "—", f"{ref.tolerance:g}" + (" (default)" if ref.tolerance_is_default else ""), "—", "—"]
    if not with_verdict:
        return row, ""
    if paper is None:
        return [*row, "—", "— (no paper number)"], "— (no paper number)"
    if not math.isfinite(paper["mean"]):
        return [*row, "—", "— (the paper gives no mean)"], "— (the paper gives no mean)"
    result = verdict(finals.tolist(), paper["mean"], ref.tolerance)
    ci = f"[{result.ci[0]:.2f}, {result.ci[1]:.2f}]" if result.ci else "—"
    if group.flags:
        label, reason = INCONCLUSIVE, f"{'; '.join(group.flags)}; the rule alone would say: {result.label}"
    else:
        label, reason = result.label, result.reason
    return [*row, ci, f"**{label}** ({reason})"], f"{label} ({reason})"


def _throughput_row(group: _Group) -> list[str]:
    frame = group.frame
    kinds = sorted({k for k in frame["memory_kind"] if k})
    return [
        _md(group.task), f"`{group.method}`", _md(group.recipe or "—"), _data_cell(group), str(len(frame)),
        _fmt(frame["samples_per_second"].mean(), 1), _fmt(frame["memory_mib"].mean(), 1),
        ", ".join(f"`{k}`" for k in kinds) or "—", _fmt(frame["epoch_seconds"].mean(), 2),
    ]  # fmt: skip


def _efficiency_notes(ok_records: Sequence[dict]) -> list[str]:
    """The counting convention(s) behind the recorded synaptic operations, and what the energy means."""
    conventions = sorted({
        str(e.get("convention")) for r in ok_records
        if isinstance(e := r.get("efficiency"), dict) and e.get("convention") is not None
    })  # fmt: skip
    lines = []
    for name in conventions:
        text = CONVENTIONS.get(name, "unknown convention: see the tssl-bench version that wrote the records")
        lines += [f"- SynOps convention `{name}` (docs/metrics.md): {text}"]
    if not conventions:
        lines += ["- SynOps convention: not recorded in these runs."]
    lines += [
        "- SynOps / sample = accumulates (ACs) + multiply-accumulates (MACs), effective (zero inputs and zero "
        "weights cost nothing), measured on the test split.",
        f"- Energy / sample = E_MAC x MACs + E_AC x ACs: {ENERGY_LABEL}.",
        "",
    ]
    return lines


# run-frame column -> key of the record's `efficiency` (totals per sample, docs/metrics.md)
_EFFICIENCY_FIELDS = {
    "macs": "macs", "acs": "acs", "dense_synops": "dense_synops", "firing_rate": "firing_rate",
    "spikes_per_sample": "spikes_per_sample", "parameters": "parameter_count", "footprint_bytes": "footprint_bytes",
    "connection_sparsity": "connection_sparsity", "activation_sparsity": "activation_sparsity",
}  # fmt: skip


def _efficiency_row(group: _Group) -> list[str]:
    frame = group.frame[group.frame["synops"].notna() & group.frame["energy"].notna()]

    def mean(column: str, digits: str = ".4g") -> str:
        value = frame[column].mean()
        return "—" if not math.isfinite(value) else format(value, digits)

    return [
        _md(group.task), f"`{group.method}`", _md(group.recipe or "—"), _data_cell(group), str(len(frame)),
        _fmt(frame["final"].mean()), mean("synops"), mean("macs"), mean("acs"), mean("dense_synops"),
        mean("energy"), mean("firing_rate", ".4f"), mean("spikes_per_sample"), mean("activation_sparsity", ".4f"),
        mean("parameters", ".0f"), mean("footprint_bytes", ".0f"), mean("connection_sparsity", ".4f"),
    ]  # fmt: skip


def _failed_rows(failed: Sequence[dict]) -> list[list[str]]:
    def key(record: dict) -> tuple:
        return (record["task"], _method_key(record["method"]), str(record.get("recipe") or ""),
                str(record.get("seed")), str(record.get("run_id") or ""))

    rows = []
    for record in sorted(failed, key=key):
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        kind = str(data.get("kind") or "—")
        error = record.get("error")
        rows.append([
            _md(record["task"]), f"`{record['method']}`", _md(record.get("recipe") or "—"),
            _md(record.get("seed", "—")), _md(record.get("run_id") or "—"),
            _md(kind) + (", **smoke**" if record.get("smoke") is True else ""),
            _md(error) if error else "(no error message recorded)",
        ])  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------------------------
# Figure bodies


def _grid(count: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(count, max_cols)
    return cols, math.ceil(count / cols)


def _accuracy_figure(figures: _Figures, groups: Sequence[_Group], references: Mapping[str, _Reference]) -> Figure:
    tasks = sorted({g.task for g in groups})
    cols, rows = _grid(len(tasks))
    widest = max(len([g for g in groups if g.task == t]) + 1 for t in tasks)
    figure, axes = figures.new(max(4.5, min(5.5, 1.0 + 0.8 * widest)) * cols, 4.2 * rows + 0.6, cols, rows)
    for axis in axes.flat[len(tasks):]:
        axis.set_visible(False)
    for axis, task in zip(axes.flat, tasks, strict=False):
        task_groups = [g for g in groups if g.task == task]
        labels, means, errors, colors, hatches = [], [], [], [], []
        paper = references[task].paper
        if paper and math.isfinite(paper["mean"]):
            labels.append("paper\nTSSL-BP")
            means.append(paper["mean"])
            errors.append(paper["std"] if math.isfinite(paper["std"]) else 0.0)
            colors.append(_PAPER_COLOR)
            hatches.append("//")
        elif paper:
            labels.append("paper\nTSSL-BP\n(best)")
            means.append(paper["best"])
            errors.append(0.0)
            colors.append(_PAPER_COLOR)
            hatches.append("//")
        for group in task_groups:
            finals = group.frame["final"].to_numpy(dtype=float)
            labels.append(group.variant.replace(" [", "\n[").replace(" (", "\n("))
            means.append(float(finals.mean()))
            errors.append(float(finals.std(ddof=1)) if len(finals) >= 2 else 0.0)
            colors.append(figures.colors[group.variant])
            hatches.append("")
        x = np.arange(len(labels))
        bars = axis.bar(x, means, yerr=errors, color=colors, capsize=4, edgecolor="black", linewidth=0.6,
                        error_kw={"elinewidth": 1.0})
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
        for xi, mean, error in zip(x, means, errors, strict=True):
            axis.annotate(f"{mean:.2f}", (xi, mean + error), xytext=(0, 3), textcoords="offset points",
                          ha="center", va="bottom", fontsize=8)
        low = min(m - e for m, e in zip(means, errors, strict=True))
        high = max(m + e for m, e in zip(means, errors, strict=True))
        span = max(high - low, 1.0)
        axis.set_ylim(max(0.0, low - 0.6 * span), min(100.0, high + 0.35 * span) + 0.05 * span)
        axis.set_xticks(x, labels, fontsize=8)
        axis.set_ylabel("final test accuracy (%)")
        axis.set_title(task, fontsize=10)
        _style(axis)
        axis.grid(False, axis="x")
    return figure


def _latency_figure(figures: _Figures, task: str, groups: Sequence[_Group], latency: pd.DataFrame,
                    ref: _Reference) -> Figure:
    figure, axes = figures.new(6.4, 4.4)
    axis = axes[0, 0]
    frame = latency[latency["task"] == task]
    max_t = 1
    for group in groups:
        curve = frame[frame["variant"] == group.variant].groupby("t")["accuracy"].agg(["mean", "count"])
        if curve.empty:
            continue
        max_t = max(max_t, int(curve.index.max()))
        runs = int(curve["count"].max())
        axis.plot(curve.index, curve["mean"], marker="o", markersize=3.5, linewidth=1.6,
                  color=figures.colors[group.variant], label=f"{group.variant} (n = {runs})")
    _paper_line(axis, ref.paper, " (all steps)")
    axis.set_xlabel("time steps t used at inference")
    axis.set_ylabel("test accuracy (%)")
    axis.set_xlim(0.5, max_t + 0.5)
    axis.xaxis.get_major_locator().set_params(integer=True)
    _style(axis)
    axis.legend(fontsize=8, loc="best")
    return figure


def _curves_figure(figures: _Figures, task: str, groups: Sequence[_Group], history: pd.DataFrame,
                   ref: _Reference) -> Figure:
    figure, axes = figures.new(11.0, 4.2, ncols=2)
    accuracy_axis, loss_axis = axes[0, 0], axes[0, 1]
    frame = history[history["task"] == task]
    for group in groups:
        rows = frame[frame["variant"] == group.variant]
        if rows.empty:
            continue
        color = figures.colors[group.variant]
        runs = rows["run_id"].nunique()
        for axis, column in ((accuracy_axis, "test_accuracy"), (loss_axis, "train_loss")):
            stats = rows.groupby("epoch")[column].agg(["mean", "std"]).dropna(subset=["mean"])
            if stats.empty:
                continue
            axis.plot(stats.index, stats["mean"], marker="o", markersize=3, linewidth=1.6, color=color,
                      label=f"{group.variant} (n = {runs})")
            band = stats["std"].fillna(0.0)
            axis.fill_between(stats.index, stats["mean"] - band, stats["mean"] + band, color=color, alpha=0.15,
                              linewidth=0)
    _paper_line(accuracy_axis, ref.paper, "")
    accuracy_axis.set_ylabel("test accuracy (%)")
    loss_axis.set_ylabel("training loss")
    accuracy_axis.set_title("test accuracy per epoch", fontsize=10)
    loss_axis.set_title("training loss per epoch", fontsize=10)
    for axis in (accuracy_axis, loss_axis):
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
        _style(axis)
    handles, labels = accuracy_axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)), fontsize=8, frameon=False)
    return figure


def _throughput_figure(figures: _Figures, groups: Sequence[_Group]) -> Figure:
    tasks = sorted({g.task for g in groups})
    variants = list(dict.fromkeys(g.variant for g in sorted(groups, key=lambda g: (_method_key(g.method),
                                                                                     g.variant))))
    width = 0.8 / max(len(variants), 1)
    figure, axes = figures.new(max(9.0, 2.2 * len(tasks) + 6.0), 4.4, ncols=2)
    kinds = sorted({k for g in groups for k in g.frame["memory_kind"] if k})
    panels = (
        (axes[0, 0], "samples_per_second", "training samples / s"),
        (axes[0, 1], "memory_mib", f"peak memory (MiB; {', '.join(kinds) or 'kind not recorded'})"),
    )
    x = np.arange(len(tasks))
    for axis, column, label in panels:
        for position, variant in enumerate(variants):
            values = []
            for task in tasks:
                match = [g for g in groups if g.task == task and g.variant == variant]
                values.append(float(match[0].frame[column].mean()) if match else math.nan)
            offsets = x - 0.4 + width * (position + 0.5)
            axis.bar(offsets, values, width=width * 0.95, color=figures.colors[variant], label=variant,
                     edgecolor="black", linewidth=0.5)
            for xi, value in zip(offsets, values, strict=True):
                if math.isfinite(value):
                    axis.annotate(f"{value:.0f}", (xi, value), xytext=(0, 2), textcoords="offset points",
                                  ha="center", va="bottom", fontsize=7)
        axis.set_xticks(x, tasks, fontsize=9)
        axis.set_ylabel(label)
        axis.margins(y=0.12)
        _style(axis)
        axis.grid(False, axis="x")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8, frameon=False)
    return figure


def _efficiency_figure(figures: _Figures, groups: Sequence[_Group]) -> Figure:
    figure, axes = figures.new(6.8, 4.6)
    axis = axes[0, 0]
    tasks = sorted({g.task for g in groups})
    markers = dict(zip(tasks, "osD^vP*X<>", strict=False))
    synops = []
    for group in groups:
        frame = group.frame[group.frame["synops"].notna() & group.frame["energy"].notna()]
        finals = frame["final"].to_numpy(dtype=float)
        std = float(finals.std(ddof=1)) if len(finals) >= 2 else 0.0
        x = float(frame["synops"].mean())
        synops.append(x)
        axis.errorbar(x, float(finals.mean()), yerr=std, fmt=markers.get(group.task, "o"), markersize=7,
                      capsize=3, color=figures.colors[group.variant], label=f"{group.task}: {group.variant}")
    positive = [s for s in synops if s > 0]
    if positive and max(positive) / min(positive) > 20:
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())  # minor labels would collide
    axis.set_xlabel("synaptic operations per sample")
    axis.set_ylabel("final test accuracy (%)")
    _style(axis)
    axis.legend(fontsize=7)
    return figure
