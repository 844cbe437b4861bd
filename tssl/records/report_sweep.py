"""The report's sweeps section: one task trained at several values of one setting.

A suite task with ``sweep: {steps: [2, 3, 5, 10]}`` is expanded into one task per value (``fmnist-mlp-steps2``,
...); ``suite_tasks`` (see :func:`tssl.records.report.write_report`) says of each such task
``"sweep": {"task": "fmnist-mlp", "values": {"steps": 2}}``. For each sweep of one key this section gives a table
value x method, accuracy against the value, TSSL-BP (``tssl``) against its surrogate-gradient twin
(``tssl-surrogate``) at each value with Welch's test, the latency curves of the networks trained at each value,
and accuracy against synaptic operations with its Pareto front. Sweeps that vary several keys at once are named
and left to the per-task sections.

Each point keeps the report's grouping (:mod:`tssl.records.selection`): runs of different configurations are never
pooled, and flagged groups (reduced epochs, overrides, smoke runs, other data) keep their marks. Torch-free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tssl.records import selection, stats
from tssl.records.metric_definitions import ENERGY_LABEL
from tssl.records.report_figures import (
    LatencySeries,
    ParetoPanel,
    ParetoPoint,
    SweepAxis,
    SweepSeries,
    SweepValues,
    sweep_accuracy_figure,
    sweep_latency_figure,
    sweep_pareto_figure,
)
from tssl.records.report_text import (
    Document,
    classes,
    data_cell,
    efficiency_of,
    file_stem,
    flags_of,
    interval_text,
    mark,
    md,
    mean_std,
    method_label,
    num,
    series_flag,
    short,
)
from tssl.records.selection import Group, describe_deviation
from tssl.records.stats import Difference

__all__ = [
    "Sweep",
    "SweepCell",
    "comparison_clause",
    "find_sweeps",
    "pareto_front",
    "sweep_cells",
    "sweeps_section",
]

# How a swept key reads: its symbol beside a value ("T = 2") and its axis label.
KEY_TEXT = {"steps": ("T", "time steps T (training and test)")}
COMPARED = ("tssl", "tssl-surrogate")
METRIC_NAMES = {"final": "final-epoch accuracy", "best": "best-epoch accuracy"}
# The costs accuracy is set against: (efficiency field, name in tables, axis label).
COSTS = (("synops_total", "SynOps / sample", "synaptic operations per sample (log scale)"),
         ("energy_joules", "energy / sample (J)", "energy estimate per sample, J (log scale)"))


@dataclass(frozen=True)
class Sweep:
    """A base task swept over one key: its points as (value, expanded task), in value order."""

    task: str
    key: str
    points: tuple[tuple[Any, str], ...]

    @property
    def numeric(self) -> bool:
        return all(_is_numeric(value) for value, _ in self.points)


@dataclass(frozen=True)
class SweepCell:
    """The group of runs that stands for one series (method, recipe, overrides, flags) at one point."""

    value: Any
    task: str
    label: str  # the series' name in figures: method, recipe when not matched, overrides
    group: Group


def _is_numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def value_text(value: Any) -> str:
    if _is_numeric(value):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return value if isinstance(value, str) else json.dumps(value)


def key_symbol(key: str) -> str:
    return KEY_TEXT.get(key, (key, ""))[0]


def point_name(key: str, value: Any, compact: bool = False) -> str:
    """``T = 2`` for the steps key, ``lr = 0.01`` for others; ``T=2`` when ``compact`` (figure labels)."""
    symbol = key_symbol(key)
    return f"{symbol}={value_text(value)}" if compact else f"{symbol} = {value_text(value)}"


def find_sweeps(suite_tasks: Mapping[str, Mapping] | None) -> tuple[list[Sweep], dict[str, list[str]]]:
    """The single-key sweeps of the suite, and the base tasks of those that vary several keys (with their keys).
    Sweeps come in the suite file's order; numeric values are put in order, others keep the suite file's order."""
    entries: dict[str, list[tuple[dict, str]]] = {}
    for name, spec in (suite_tasks or {}).items():
        sweep = (spec or {}).get("sweep")
        if isinstance(sweep, Mapping) and sweep.get("task") and isinstance(sweep.get("values"), Mapping):
            entries.setdefault(str(sweep["task"]), []).append((dict(sweep["values"]), str(name)))
    single, several = [], {}
    for base, points in entries.items():
        keys = sorted({key for values, _ in points for key in values})
        if len(keys) != 1 or any(len(values) != 1 for values, _ in points):
            several[base] = keys
            continue
        sweep = Sweep(base, keys[0], tuple((values[keys[0]], name) for values, name in points))
        if sweep.numeric:
            sweep = Sweep(base, sweep.key, tuple(sorted(sweep.points, key=lambda point: point[0])))
        single.append(sweep)
    return single, several


# --------------------------------------------------------------------------------------------------------------
# Which groups stand at each point


def _series_name(group: Group) -> str:
    """Method, recipe (when not TSSL-BP's) and overrides: the same at every point, unlike the config hash."""
    label = method_label(group)
    deviations = {key: change for r in group.records for key, change in (r.get("deviations") or {}).items()}
    overrides = ", ".join(describe_deviation(key, change) for key, change in sorted(deviations.items()))
    return label + (f" [{overrides}]" if overrides else "")


def _finished(group: Group) -> str:
    return max(str((r.get("provenance") or {}).get("finished_at") or "") for r in group.records)


def _left_out_reason(group: Group, key: str, value: Any) -> str | None:
    if selection.EARLIER in group.flags:
        return "an earlier configuration of this point (the suite file has changed since)"
    config = (group.records[0].get("provenance") or {}).get("config") or {}
    if key in config and config[key] != value:
        return f"its `{key}` is {value_text(config[key])}, not the point's {value_text(value)}"
    return None


def _describe(group: Group, why: str) -> str:
    return f"{md(group.task)} / `{group.method}` (config `{short(group.config)}`, n = {group.n}): {why}"


def sweep_cells(sweep: Sweep, groups: Sequence[Group]) -> tuple[list[SweepCell], list[str]]:
    """One group per series at each point, and what was left out and why: earlier configurations, a config whose
    swept key is not the point's value (an override), an older group of a series that has a later one there."""
    cells: list[SweepCell] = []
    notes: list[str] = []
    for value, task in sweep.points:
        chosen: dict[tuple[str, str], Group] = {}
        for group in sorted((g for g in groups if g.task == task), key=_finished, reverse=True):
            why = _left_out_reason(group, sweep.key, value)
            series = (_series_name(group), series_flag(group))
            if why is None and series in chosen:  # never pool two configurations: the later one stands
                why = f"the later configuration `{short(chosen[series].config)}` of the same series stands here"
            if why is not None:
                notes.append(_describe(group, why))
                continue
            chosen[series] = group
        ordered = sorted(chosen.items(), key=lambda item: (selection.method_key(item[1].method), item[0]))
        cells += [SweepCell(value, task, name, group) for (name, _), group in ordered]
    return cells, notes


# --------------------------------------------------------------------------------------------------------------
# Text: the table and the comparison sentences


_TABLE_HEADER = ["method", "data", "config", "n", "seeds", "final mean ± std", "final 95 % CI",
                 "best mean ± std", "best 95 % CI"]


def _method_cell(cell: SweepCell) -> str:
    return f"`{cell.group.method}`" + md(cell.label.removeprefix(cell.group.method))


def _table_rows(cells: Sequence[SweepCell]) -> list[list[str]]:
    rows = []
    for cell in cells:
        group = cell.group
        finals, bests = group.values("final"), group.values("best")
        rows.append([value_text(cell.value), _method_cell(cell), data_cell(group), f"`{short(group.config)}`",
                     str(group.n), ", ".join(map(str, group.seeds)), mean_std(finals),
                     interval_text(stats.t_interval(finals)), mean_std(bests), interval_text(stats.t_interval(bests))])
    return rows


def comparison_clause(metric: str, test: Difference) -> str:
    """One metric's comparison of ``tssl`` (a) with ``tssl-surrogate`` (b), claiming no more than the interval:
    which is higher only when the 95 % Welch interval of Δ = a - b excludes 0."""
    what, n = METRIC_NAMES[metric], f"n = {test.n_a} vs {test.n_b}"
    if test.ci95 is None:
        return (f"{what}: no interval can be given with {n} (Welch's t-test needs at least two runs of each "
                f"method); the observed means differ by Δ = {test.difference:+.2f} points")
    low, high = test.ci95
    detail = f"95 % Welch CI of Δ [{low:.2f}, {high:.2f}], Welch's t-test p = {test.p_two_sided:.3g}, {n}"
    if low > 0 or high < 0:
        direction = "higher" if low > 0 else "lower"
        return (f"{what}: TSSL-BP (`tssl`) is {direction} than `tssl-surrogate` by {abs(test.difference):.2f} "
                f"points ({detail})")
    return (f"{what}: no difference between `tssl` and `tssl-surrogate` was shown at this n (Δ = "
            f"{test.difference:+.2f} points, {detail}; the interval holds 0)")


def _comparison_lines(name: str, cells: Sequence[SweepCell]) -> list[str]:
    """The sentences for one point: one per pair of ``tssl`` and ``tssl-surrogate`` groups of one configuration."""
    groups = [cell.group for cell in cells]
    missing = [m for m in COMPARED if not any(g.method == m for g in groups)]
    if missing:
        return [f"- **{name}**: no comparison: no successful `{missing[0]}` run at this point."]
    lines = []
    for a in (g for g in groups if g.method == COMPARED[0]):
        for b in (g for g in groups if g.method == COMPARED[1] and (g.config, g.kind, g.smoke) ==
                  (a.config, a.kind, a.smoke)):
            clauses = [comparison_clause(m, stats.welch(a.values(m), b.values(m))) for m in METRIC_NAMES
                       if a.values(m) and b.values(m)]
            flags = f" (**{mark([*a.flags, *b.flags])}**)" if a.flags or b.flags else ""
            lines.append(f"- **{name}**{flags}: " + "; ".join(clauses) + ".")
    return lines or [f"- **{name}**: no comparison: the `tssl` and `tssl-surrogate` runs here differ in "
                     "configuration or data."]


# --------------------------------------------------------------------------------------------------------------
# Figures' inputs


def _sweep_axis(sweep: Sweep) -> SweepAxis:
    label = KEY_TEXT.get(sweep.key, ("", sweep.key))[1]
    positions = ([float(value) for value, _ in sweep.points] if sweep.numeric
                 else [float(i) for i in range(len(sweep.points))])
    return SweepAxis(label, positions, [value_text(value) for value, _ in sweep.points], sweep.numeric)


def _accuracy_series(sweep: Sweep, axis: SweepAxis, cells: Sequence[SweepCell]) -> list[SweepSeries]:
    position = {task: axis.positions[i] for i, (_, task) in enumerate(sweep.points)}
    series: dict[tuple[str, str], list[SweepValues]] = {}
    for cell in cells:
        key = (cell.label, series_flag(cell.group))
        series.setdefault(key, []).append(SweepValues(position[cell.task], cell.group.values("final"),
                                                      cell.group.values("best")))
    return [SweepSeries(label, points, flagged) for (label, flagged), points in series.items()]


def _latency_panels(sweep: Sweep, cells: Sequence[SweepCell]) -> list[tuple[str, list[LatencySeries]]]:
    panels = []
    for value, task in sweep.points:
        series = [LatencySeries(c.label, [[num(v) for v in r.get("latency") or []] for r in c.group.records
                                          if r.get("latency")], series_flag(c.group))
                  for c in cells if c.task == task and any(r.get("latency") for r in c.group.records)]
        if series:
            panels.append((f"trained at {point_name(sweep.key, value)}", series))
    return panels


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, accuracy) points that no other point dominates. A point dominates another when its
    cost is at most, and its accuracy at least, the other's, and it is strictly better in one of them. Points
    with a non-finite coordinate are never on the front."""
    finite = [(i, c, a) for i, (c, a) in enumerate(points) if math.isfinite(c) and math.isfinite(a)]
    return [i for i, cost, accuracy in finite
            if not any(j != i and c <= cost and a >= accuracy and (c < cost or a > accuracy) for j, c, a in finite)]


def _cost_points(cells: Sequence[SweepCell], key: str, field: str) -> list[tuple[SweepCell, int, ParetoPoint]]:
    """Per cell, the means over its runs that measured ``field`` (and a final accuracy): cost and accuracy."""
    points = []
    for cell in cells:
        runs = [r for r in cell.group.records if math.isfinite(num(efficiency_of(r).get(field)))
                and math.isfinite(num((r.get("accuracy") or {}).get("final")))]
        if runs:
            cost = sum(float(efficiency_of(r)[field]) for r in runs) / len(runs)
            accuracy = sum(float(r["accuracy"]["final"]) for r in runs) / len(runs)
            points.append((cell, len(runs), ParetoPoint(cell.label, point_name(key, cell.value, compact=True), cost,
                                                        accuracy, series_flag(cell.group))))
    return points


# --------------------------------------------------------------------------------------------------------------
# The section


def sweeps_section(document: Document, groups: Sequence[Group], suite_tasks: Mapping[str, Mapping] | None,
                   number: int) -> bool:
    """Write the sweeps section numbered ``number``; False (and nothing written) when the suite has no sweep."""
    sweeps, several = find_sweeps(suite_tasks)
    if not sweeps and not several:
        return False
    document.add(f"## {number}. Sweeps", "",
                 "A sweep trains one task at several values of one setting (the suite file's `sweep`); each value is "
                 "a task of its own in the sections above. Here the values are set side by side: groups as in "
                 "section 1 (configurations never pooled, flagged groups marked), means over seeds with 95 % "
                 "t-intervals of the mean (none for n = 1).", "")
    for base, keys in several.items():
        document.add(f"- Sweep `{md(base)}` varies several keys at once ({', '.join(f'`{k}`' for k in keys)}): this "
                     "section compares sweeps of one key only; its points are reported as tasks above.")
    document.add(*([""] if several else []))
    for sweep in sweeps:
        _sweep_part(document, sweep, groups)
    return True


def _sweep_part(document: Document, sweep: Sweep, groups: Sequence[Group]) -> None:
    document.add(f"### {md(sweep.task)}: accuracy against `{md(sweep.key)}`", "",
                 "Points: " + ", ".join(f"{point_name(sweep.key, v)} (`{md(t)}`)" for v, t in sweep.points) + ".", "")
    cells, notes = sweep_cells(sweep, groups)
    empty = [point_name(sweep.key, v) for v, t in sweep.points if not any(c.task == t for c in cells)]
    lines = [f"- Left out: {note}" for note in notes]
    lines += [f"- No successful runs yet at: {', '.join(empty)}"] if empty else []
    document.add(*lines, *([""] if lines else []))
    if not cells:
        return
    stem, flags = f"{file_stem(sweep.task)}-sweep-{file_stem(sweep.key)}", flags_of(c.group for c in cells)
    document.table(f"{md(sweep.task)}: accuracy at each {key_symbol(sweep.key)} (mean ± sample std over seeds)",
                   flags, [f"`{md(sweep.key)}`", *_TABLE_HEADER], _table_rows(cells),
                   "n = 1: the one run's accuracy, with no interval and no test.")
    axis = _sweep_axis(sweep)
    document.figure(f"{stem}-accuracy.png", f"{sweep.task}: test accuracy against {axis.label}", flags,
                    sweep_accuracy_figure(document.figures, axis, _accuracy_series(sweep, axis, cells)),
                    "Line: mean over seeds; bars: 95 % t-intervals (none for n = 1); dots: every run; n at each "
                    "point. Series are shifted sideways a little so that their bars stay apart.")
    _comparison_part(document, sweep, cells)
    _latency_part(document, sweep, cells, stem)
    _efficiency_part(document, sweep, cells, stem)


def _comparison_part(document: Document, sweep: Sweep, cells: Sequence[SweepCell]) -> None:
    document.add("TSSL-BP against its surrogate-gradient twin at each value: Δ = `tssl` - `tssl-surrogate` in "
                 "percentage points, with its 95 % Welch-Satterthwaite interval and the two-sided Welch's "
                 "(unequal-variance) t-test. An interval that holds 0 shows no difference at these n; it does not "
                 "show that the methods are equal.", "")
    lines = [line for value, task in sweep.points if any(c.task == task for c in cells)
             for line in _comparison_lines(point_name(sweep.key, value), [c for c in cells if c.task == task])]
    document.add(*lines, "")


def _latency_part(document: Document, sweep: Sweep, cells: Sequence[SweepCell], stem: str) -> None:
    panels = _latency_panels(sweep, cells)
    if not panels:
        document.add("No latency curves in the sweep's runs.", "")
        return
    drawn = [c.group for c in cells if any(r.get("latency") for r in c.group.records)]
    count = classes(drawn)
    document.figure(f"{stem}-latency.png", f"{sweep.task}: accuracy vs time steps at inference, per training "
                    f"{key_symbol(sweep.key)}", flags_of(drawn),
                    sweep_latency_figure(document.figures, panels, 100.0 / count if count else None),
                    "One panel per swept value: the networks trained there, read out after t = 1 ... steps; "
                    "mean over seeds with its 95 % t-band (none for n = 1); dotted: chance.")


def _efficiency_part(document: Document, sweep: Sweep, cells: Sequence[SweepCell], stem: str) -> None:
    panels, rows, drawn = [], [], []
    for field, name, axis_label in COSTS:
        measured = _cost_points(cells, sweep.key, field)
        if not measured:
            continue
        front = pareto_front([(point.cost, point.accuracy) for _, _, point in measured])
        panels.append(ParetoPanel(axis_label, [point for _, _, point in measured], front))
        drawn += [cell.group for cell, _, _ in measured]
        for cell, n, point in sorted((measured[i] for i in front), key=lambda m: m[2].cost):
            rows.append([name, point_name(sweep.key, cell.value), _method_cell(cell), data_cell(cell.group), str(n),
                         f"{point.cost:.4g}", f"{point.accuracy:.2f}"])
    if not panels:
        document.add("No efficiency measurements (SynOps) in the sweep's runs: no accuracy-cost figure.", "")
        return
    document.add(f"Final-epoch accuracy against cost per sample, every method at every value (means over the runs "
                 f"that measured it). Energy = E_MAC x MACs + E_AC x ACs: {ENERGY_LABEL}. A point is on the Pareto "
                 "front when no other point has at most its cost and at least its accuracy, one of them strictly. "
                 "The front is drawn on the means and is not a test: two points whose accuracies differ by less "
                 "than their intervals (the table above, the sentences) may trade places with more seeds.",
                 "")
    flags = flags_of(_unique(drawn))
    document.figure(f"{stem}-efficiency.png", f"{sweep.task}: final-epoch accuracy vs cost over {sweep.key}", flags,
                    sweep_pareto_figure(document.figures, panels),
                    "Dashed steps: the Pareto front. Hollow markers: flagged runs.")
    header = ["cost", f"`{md(sweep.key)}`", "method", "data", "n", "cost / sample (mean)", "final accuracy (mean)"]
    document.table(f"{md(sweep.task)}: the Pareto front (accuracy against cost)", flags, header, rows)


def _unique(groups: Iterable[Group]) -> list[Group]:
    return list({id(group): group for group in groups}.values())
