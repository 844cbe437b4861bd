"""The report's figures, drawn from plain inputs: accuracy, latency, training curves, efficiency, throughput.

The caller (``tssl.records.report``) turns its records into the small dataclasses below; this module knows nothing of
records, stores or torch. Each figure function returns a matplotlib :class:`Figure` drawn on the Agg canvas
directly (no pyplot, no global backend), and :class:`FigureWriter` saves it with a deterministic PNG.

Conventions, so that a reader can judge the figures as a paper's:

* Every interval is the two-sided 95 % Student t-interval of the mean over runs (``tssl.records.stats.t_interval``).
  One run has no interval, and the figures say so ("n = 1, no CI") instead of drawing a zero-width bar.
* Accuracy is drawn as points (mean, interval and every seed), never as bars on a truncated axis; the y range
  holds every seed, interval, the paper's mark and the tolerance band, with a margin.
* A flagged series (a smoke run, generated or unverified data, fewer epochs, an earlier configuration) is drawn
  with hollow markers and dashed lines, and its flag is printed in red beside its name.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, FixedLocator, LogLocator, MaxNLocator, NullFormatter, NullLocator

from tssl.records.stats import t_interval

__all__ = [
    "CI_LEVEL",
    "AccuracyPanel",
    "AccuracySeries",
    "CurveSeries",
    "EfficiencyPoint",
    "FigureWriter",
    "LatencySeries",
    "PaperMark",
    "ParetoPanel",
    "ParetoPoint",
    "SweepAxis",
    "SweepSeries",
    "SweepValues",
    "ThroughputSeries",
    "accuracy_figure",
    "curves_figure",
    "efficiency_figure",
    "flag_text",
    "latency_figure",
    "sweep_accuracy_figure",
    "sweep_latency_figure",
    "sweep_pareto_figure",
    "throughput_figure",
]

CI_LEVEL = 0.95
DPI = 120
PAPER_COLOR = "0.3"
BAND_COLOR = "0.55"
CHANCE_COLOR = "0.45"
WARN_COLOR = "#b00020"
# tab10 without its red (red means a warning here) and its grey (the paper's colour).
_PALETTE = tuple(c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i not in (3, 7))
_MARKERS_ALL_EPOCHS = 30  # beyond this many epochs a curve is drawn without a marker per epoch


# --------------------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class PaperMark:
    """The paper's number for a task: its value, its std over seeds (nan if it gives none) and our tolerance δ."""

    value: float
    std: float = math.nan
    tolerance: float = math.nan  # δ in points: the band value ± δ is drawn when finite
    label: str = "paper"


@dataclass(frozen=True)
class AccuracySeries:
    """One (method, recipe, ...) of a task: the metric per run, with the run's seed."""

    label: str
    values: list[float]
    seeds: list[int]
    flagged: str = ""  # "" for a faithful full run on real data, else a short flag such as "SMOKE"


@dataclass(frozen=True)
class AccuracyPanel:
    task: str
    metric: str  # "best" (the maximum test accuracy over epochs) or "final" (the last epoch's)
    metric_label: str  # the y-axis label, e.g. "best test accuracy over epochs (%)"
    paper: PaperMark | None
    chance: float | None  # 100 / classes, in %
    series: list[AccuracySeries]


@dataclass(frozen=True)
class LatencySeries:
    label: str
    curves: list[list[float]]  # one accuracy-vs-t list per run (t = 1, 2, ...)
    flagged: str = ""


@dataclass(frozen=True)
class CurveSeries:
    label: str
    test_accuracy: list[list[float]]  # one list per run, entry k is epoch k + 1 (nan where not recorded)
    train_loss: list[list[float]]  # likewise
    flagged: str = ""


@dataclass(frozen=True)
class EfficiencyPoint:
    task: str
    label: str
    synops: list[float]  # synaptic operations per sample, one per run
    accuracy: list[float]  # the accuracy of the same runs, in %
    flagged: str = ""


@dataclass(frozen=True)
class ThroughputSeries:
    task: str
    label: str
    samples_per_second: list[float]  # in-run training throughput, one per run (nan where not recorded)
    peak_memory_mib: list[float]  # one per run (nan where not recorded)
    memory_kind: str = ""  # what the peak memory measures, e.g. "peak_rss" or "cuda_max_allocated"
    flagged: str = ""


# --------------------------------------------------------------------------------------------------------------
# Writing


def flag_text(flags: Sequence[str]) -> str:
    return " · ".join(f"⚠ {flag}" for flag in flags)


class FigureWriter:
    """Makes and saves the figures of one report: a colour per series label, the title of every saved file, and
    the report's ``caveat`` (say, "trained 30 of the paper's 100 epochs") drawn on every figure it saves."""

    def __init__(self, out_dir: Path, labels: Sequence[str] = (), caveat: str = "") -> None:
        self.out_dir = Path(out_dir)
        self.caveat = caveat
        self.titles: dict[str, str] = {}
        self.headings: dict[str, str] = {}  # file name -> the heading text drawn on it (title, flags, caveat)
        self.colors: dict[str, tuple[float, ...]] = {}
        for label in labels:
            self.color(label)

    def color(self, label: str) -> tuple[float, ...]:
        """The series' colour: fixed by the order in which labels were first seen, so that it is the same in
        every figure of the report."""
        if label not in self.colors:
            self.colors[label] = _PALETTE[len(self.colors) % len(_PALETTE)]
        return self.colors[label]

    def new(self, width: float, height: float, ncols: int = 1, nrows: int = 1,
            width_ratios: Sequence[float] | None = None) -> tuple[Figure, np.ndarray]:
        figure = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(nrows, ncols, squeeze=False, width_ratios=width_ratios)
        return figure, axes

    def save(self, figure: Figure, name: str, title: str, flags: Sequence[str]) -> str:
        """Save ``figure`` as ``name`` with ``title``, the data flags and the report's caveat on top (in red when
        there is either); return the caption. Every figure of a report passes here, so none can miss them."""
        width_chars = int(figure.get_figwidth() * 72 / (12 * 0.62))  # what fits at 12 pt bold
        lines = [textwrap.fill(title, width_chars)]
        if flags:
            lines.append(textwrap.fill(flag_text(flags), width_chars))
        if self.caveat:
            lines.append(textwrap.fill(f"⚠ {self.caveat}", width_chars))
        heading = "\n".join(lines)
        if flags or self.caveat:
            figure.suptitle(heading, fontsize=12, fontweight="bold", color=WARN_COLOR)
        else:
            figure.suptitle(heading, fontsize=12, fontweight="bold")
        caption = f"{title} — {flag_text(flags)}" if flags else title
        self.out_dir.mkdir(parents=True, exist_ok=True)
        figure.savefig(self.out_dir / name, dpi=DPI, metadata={"Software": None})
        self.titles[name] = caption
        self.headings[name] = heading
        return caption


# --------------------------------------------------------------------------------------------------------------
# Shared pieces


def _grid(count: int, max_cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(count, max_cols))
    return cols, max(1, math.ceil(count / cols))


def _style(axis: Axes) -> None:
    axis.grid(True, alpha=0.3, linewidth=0.6)
    axis.spines[["top", "right"]].set_visible(False)


def _plain_numbers(axis: Axes) -> None:
    """No "+8.9e1" offset on a zoomed accuracy axis: a reader should see the values themselves."""
    axis.ticklabel_format(axis="y", useOffset=False, style="plain")


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def _series_name(label: str, flagged: str) -> str:
    return f"{label} [⚠ {flagged}]" if flagged else label


def _tick_name(label: str) -> str:
    """A series label broken where it has a qualifier, so that tick labels stay narrow."""
    return label.replace(" (", "\n(").replace(" [", "\n[")


def _tick_flag(flagged: str) -> str:
    """The flag under a tick label, wrapped so that neighbouring flags do not run into each other."""
    return "\n" + textwrap.fill(f"⚠ {flagged}", 15) if flagged else ""


def _run_count(n: int, what: str = "CI") -> str:
    return f"n = {n}" if n >= 2 else f"n = {n}, no {what}"


def _matrix(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Ragged per-run lists as a runs x positions array, nan-padded."""
    width = max((len(row) for row in rows), default=0)
    matrix = np.full((len(rows), width), np.nan)
    for position, row in enumerate(rows):
        matrix[position, : len(row)] = np.asarray(row, dtype=float)
    return matrix


def _column_summary(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column: the mean, the 95 % t-interval's bounds (nan where fewer than two runs) and the run count."""
    width = matrix.shape[1]
    mean, low, high, count = (np.full(width, np.nan) for _ in range(4))
    for column in range(width):
        values = _finite(matrix[:, column])
        count[column] = values.size
        if values.size:
            mean[column] = values.mean()
        interval = t_interval(values, level=CI_LEVEL)
        if interval is not None:
            low[column], high[column] = interval
    return mean, low, high, count


def _padded_range(values: Sequence[float], min_span: float, margin: float = 0.1) -> tuple[float, float]:
    """[min, max] of ``values`` widened to ``min_span`` about its centre, plus ``margin`` of the span each side."""
    low, high = float(np.min(values)), float(np.max(values))
    if high - low < min_span:
        centre = (low + high) / 2
        low, high = centre - min_span / 2, centre + min_span / 2
    pad = margin * (high - low)
    return low - pad, high + pad


def _flag_ticks(axis: Axes, flags: Sequence[str]) -> None:
    """Colour the tick label of every flagged category red."""
    for tick, flag in zip(axis.get_xticklabels(), flags, strict=True):
        if flag:
            tick.set_color(WARN_COLOR)


# --------------------------------------------------------------------------------------------------------------
# Accuracy


def accuracy_figure(writer: FigureWriter, panels: Sequence[AccuracyPanel]) -> Figure:
    """One panel per task: each series' mean with its 95 % t-interval and every seed beside it, the paper's value
    with its std, and the tolerance band P ± δ across the panel."""
    if not panels:
        raise ValueError("an accuracy figure needs at least one panel")
    cols, rows = _grid(len(panels))
    categories = [len(panel.series) + (panel.paper is not None) for panel in panels]
    if rows == 1:  # each panel as wide as its categories need
        widths = [max(2.6, 1.2 + 1.1 * count) for count in categories]
        figure, axes = writer.new(max(sum(widths), 6.5), 5.4, cols, rows, width_ratios=widths)
    else:
        width = max(2.6, 1.2 + 1.1 * max(categories))
        figure, axes = writer.new(width * cols, 4.5 * rows + 0.9, cols, rows)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    drew_chance = [_accuracy_panel(writer, axis, panel) for axis, panel in zip(axes.flat, panels, strict=False)]
    handles = _accuracy_legend(panels, any(drew_chance))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=8,
                  frameon=False)
    return figure


def _accuracy_panel(writer: FigureWriter, axis: Axes, panel: AccuracyPanel) -> bool:
    """Draw one task's panel; return whether its chance level is on the axis."""
    extent: list[float] = []  # every value the y range must show
    ticks: list[str] = []
    flags: list[str] = []
    paper = panel.paper
    if paper is not None:
        extent += _draw_paper_mark(axis, paper, position=0)
        has_std = math.isfinite(paper.std)
        ticks.append(f"{paper.label}\n{paper.value:.2f}" + (f" ± {paper.std:.2f}" if has_std else "\n(no std given)"))
        flags.append("")
    for position, series in enumerate(panel.series, start=len(ticks)):
        extent += _draw_accuracy_series(axis, series, position, writer.color(series.label))
        n = len(_finite(series.values))
        ticks.append(f"{_tick_name(series.label)}\n{_run_count(n)}{_tick_flag(series.flagged)}")
        flags.append(series.flagged)
    axis.set_xticks(range(len(ticks)), ticks, fontsize=8)
    _flag_ticks(axis, flags)
    axis.set_xlim(-0.6, len(ticks) - 0.4)
    axis.set_ylim(*_accuracy_range(extent))
    drew_chance = _chance_mark(axis, panel.chance)
    axis.set_ylabel(panel.metric_label)
    title = panel.task
    if paper is not None and math.isfinite(paper.tolerance):
        title += f"  (δ = {paper.tolerance:g} points)"
    axis.set_title(title, fontsize=10)
    _plain_numbers(axis)
    _style(axis)
    axis.grid(False, axis="x")
    return drew_chance


def _accuracy_range(extent: Sequence[float]) -> tuple[float, float]:
    """Every value in ``extent`` with a margin, but never beyond [0, 100]: a t-interval of two seeds can reach
    past them, and then its bar runs off the axis instead of stretching it to impossible accuracies."""
    low, high = _padded_range(extent or [0.0, 100.0], min_span=1.0, margin=0.12)
    edge = 0.02 * (min(high, 100.0) - max(low, 0.0))  # room for a marker drawn at 0 or 100
    return max(low, -edge), min(high, 100.0 + edge)


def _draw_paper_mark(axis: Axes, paper: PaperMark, position: float) -> list[float]:
    """The paper's value with its std as an error bar, and the δ band across the panel; return their extent."""
    extent = [paper.value]
    if math.isfinite(paper.tolerance):
        band = axis.axhspan(paper.value - paper.tolerance, paper.value + paper.tolerance, color=BAND_COLOR,
                            alpha=0.22, linewidth=0, zorder=0)
        band.set_gid("delta-band")
        for edge in (paper.value - paper.tolerance, paper.value + paper.tolerance):  # visible when it fills the panel
            axis.axhline(edge, color=BAND_COLOR, linewidth=0.8, linestyle=(0, (4, 3)), zorder=1)
        extent += [paper.value - paper.tolerance, paper.value + paper.tolerance]
    std = paper.std if math.isfinite(paper.std) else None
    if std is not None:
        extent += [paper.value - std, paper.value + std]
    container = axis.errorbar(position, paper.value, yerr=std, fmt="D", markersize=7, color=PAPER_COLOR,
                              capsize=4, elinewidth=1.3, zorder=3, label="paper")
    container.lines[0].set_gid("paper")
    _value_label(axis, position, paper.value)
    return extent


def _draw_accuracy_series(axis: Axes, series: AccuracySeries, position: int, color) -> list[float]:
    values = _finite(series.values)
    if values.size == 0:
        return []
    mean = float(values.mean())
    face = "white" if series.flagged else color
    interval = t_interval(values, level=CI_LEVEL)
    extent = [*values.tolist(), mean]
    if interval is not None:
        low, high = interval
        extent += [low, high]
        container = axis.errorbar(position, mean, yerr=[[mean - low], [high - mean]], fmt="o", markersize=8,
                                  color=color, markerfacecolor=face, markeredgewidth=1.5, capsize=5,
                                  elinewidth=1.5, zorder=3, label=f"95% CI: {series.label}")
        if series.flagged:
            for line in container.lines[2]:
                line.set_linestyle("--")
        mean_marker = container.lines[0]
    else:
        (mean_marker,) = axis.plot([position], [mean], "o", markersize=8, color=color, markerfacecolor=face,
                                   markeredgewidth=1.5, zorder=3)
    mean_marker.set_gid(f"mean:{series.label}")
    if values.size >= 2:  # one run is its own mean: no separate seed dot
        seeds = axis.plot(position + 0.24 + _spread(values.size), values, "o", markersize=3.5, color=color,
                          markerfacecolor=face, markeredgewidth=0.9, alpha=0.85, linestyle="none", zorder=2)[0]
        seeds.set_gid(f"seeds:{series.label}")
    _value_label(axis, position, mean)
    return extent


def _spread(count: int, half_width: float = 0.07) -> np.ndarray:
    """Deterministic horizontal offsets for ``count`` seed dots, so that equal values do not hide each other."""
    return np.linspace(-half_width, half_width, count) if count > 1 else np.zeros(count)


def _value_label(axis: Axes, position: float, value: float) -> None:
    axis.annotate(f"{value:.2f}", (position, value), xytext=(-9, 0), textcoords="offset points", ha="right",
                  va="center", fontsize=7.5)


def _chance_mark(axis: Axes, chance: float | None) -> bool:
    """The chance level as a dotted line when the axis reaches it (return True); else a note under the panel that
    the axis is zoomed above it."""
    if chance is None or not math.isfinite(chance):
        return False
    low, high = axis.get_ylim()
    if low <= chance <= high:
        axis.axhline(chance, color=CHANCE_COLOR, linestyle=":", linewidth=1.2, gid="chance")
        return True
    axis.set_xlabel(f"axis zoomed: chance level ({chance:g} %) is off the scale", fontsize=7.5, color=CHANCE_COLOR)
    return False


def _accuracy_legend(panels: Sequence[AccuracyPanel], drew_chance: bool) -> list:
    handles: list = [
        Line2D([], [], marker="o", color="0.2", markersize=7, linestyle="-",
               label="mean over seeds; bar: 95 % t-interval (none for n = 1)"),
        Line2D([], [], marker="o", color="0.2", markersize=3.5, linestyle="none", label="one seed"),
    ]
    if any(p.paper is not None for p in panels):
        handles.append(Line2D([], [], marker="D", color=PAPER_COLOR, markersize=6, linestyle="-",
                              label="paper's value; bar: its std over seeds"))
    if any(p.paper is not None and math.isfinite(p.paper.tolerance) for p in panels):
        handles.append(Patch(facecolor=BAND_COLOR, alpha=0.22, label="paper ± δ (the tolerance band)"))
    if any(s.flagged for p in panels for s in p.series):
        handles.append(Line2D([], [], marker="o", color="0.2", markerfacecolor="white", markersize=7,
                              linestyle="--", label="hollow, dashed: flagged runs (flag in red)"))
    if drew_chance:
        handles.append(Line2D([], [], color=CHANCE_COLOR, linestyle=":", label="chance level (100 / classes)"))
    return handles


# --------------------------------------------------------------------------------------------------------------
# Latency


def latency_figure(writer: FigureWriter, task: str, series: Sequence[LatencySeries], chance: float | None,
                   paper: PaperMark | None) -> Figure:
    """Accuracy against the number of time steps used at inference: each series' mean curve over runs with its
    95 % t-band (none for one run), the chance level and the paper's value."""
    figure, axes = writer.new(6.8, 5.0)
    axis = axes[0, 0]
    extent, max_t = _latency_lines(writer, axis, series)
    if chance is not None and math.isfinite(chance):
        axis.axhline(chance, color=CHANCE_COLOR, linestyle=":", linewidth=1.4, gid="chance",
                     label=f"chance level (100 / classes = {chance:g} %)")
        extent.append(chance)
    if paper is not None:
        axis.axhline(paper.value, color=PAPER_COLOR, linestyle="--", linewidth=1.2, gid="paper",
                     label=f"{paper.label}, all {max_t} steps: {paper.value:.2f} %")
        extent.append(paper.value)
    _latency_axes(axis, extent, max_t)
    _figure_legend(figure, axis, ncols=2)
    return figure


def _latency_lines(writer: FigureWriter, axis: Axes, series: Sequence[LatencySeries]) -> tuple[list[float], int]:
    """Each series' mean curve over runs with its 95 % t-band (none for one run), n in its legend name; return
    the accuracies the y range must show and the largest t drawn."""
    extent: list[float] = []
    max_t = 1
    for entry in series:
        matrix = _matrix(entry.curves)
        if matrix.size == 0:
            continue
        mean, low, high, _ = _column_summary(matrix)
        steps = np.arange(1, matrix.shape[1] + 1)
        max_t = max(max_t, int(steps[-1]))
        n = len(entry.curves)
        name = f"{_series_name(entry.label, entry.flagged)} ({_run_count(n, 'band')})"
        _mean_curve(axis, steps, mean, entry, writer.color(entry.label), name, markers=True)
        if np.isfinite(low).any():
            band = axis.fill_between(steps, low, high, color=writer.color(entry.label), alpha=0.2, linewidth=0)
            band.set_gid(f"band:{entry.label}")
            extent += [*low[np.isfinite(low)], *high[np.isfinite(high)]]
        extent += mean[np.isfinite(mean)].tolist()
    return extent, max_t


def _latency_axes(axis: Axes, extent: Sequence[float], max_t: int) -> None:
    axis.set_xlabel("time steps t used at inference")
    axis.set_ylabel("test accuracy (%)")
    axis.set_xlim(0.7, max_t + 0.3)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if extent:
        low, high = _padded_range(extent, min_span=5.0, margin=0.06)
        axis.set_ylim(max(low, 0.0), min(high, 102.0))
    _style(axis)


def _mean_curve(axis: Axes, x: np.ndarray, mean: np.ndarray, series: LatencySeries | CurveSeries, color,
                legend_name: str, markers: bool) -> Line2D:
    """A series' mean curve; a flagged one dashed with hollow markers."""
    flagged = bool(series.flagged)
    (line,) = axis.plot(x, mean, marker="o" if markers else None, markersize=4, linewidth=1.6, color=color,
                        linestyle="--" if flagged else "-", markerfacecolor="white" if flagged else color,
                        label=legend_name)
    line.set_gid(f"mean:{series.label}")
    return line


def _figure_legend(figure: Figure, axis: Axes, ncols: int) -> None:
    """The legend under the plot, never over the data."""
    handles, labels = axis.get_legend_handles_labels()
    if handles:
        if max(len(label) for label in labels) > 40:  # long flagged names: fewer columns, wrapped, never clipped
            ncols = 1 if max(len(label) for label in labels) > 70 else min(ncols, 2)
            labels = [textwrap.fill(label, 90) for label in labels]
        legend = figure.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(labels)),
                               fontsize=8, frameon=False)
        _flag_legend(legend)


def _flag_legend(legend) -> None:
    """Print a flagged series' legend entry in red, as its tick label would be."""
    for text in legend.get_texts():
        if "⚠" in text.get_text():
            text.set_color(WARN_COLOR)


# --------------------------------------------------------------------------------------------------------------
# Training curves


def curves_figure(writer: FigureWriter, task: str, series: Sequence[CurveSeries], paper: PaperMark | None) -> Figure:
    """Per-epoch test accuracy and training loss: each series' mean over runs with its 95 % t-band."""
    figure, axes = writer.new(11.5, 4.8, ncols=2)
    accuracy_axis, loss_axis = axes[0, 0], axes[0, 1]
    for entry in series:
        n = max(len(entry.test_accuracy), len(entry.train_loss))
        name = f"{_series_name(entry.label, entry.flagged)} ({_run_count(n, 'band')})"
        for axis, runs in ((accuracy_axis, entry.test_accuracy), (loss_axis, entry.train_loss)):
            _curve_with_band(axis, runs, entry, writer.color(entry.label), name)
    if paper is not None:
        accuracy_axis.axhline(paper.value, color=PAPER_COLOR, linestyle="--", linewidth=1.2, gid="paper",
                              label=f"{paper.label}: {paper.value:.2f} %")
    accuracy_axis.set_ylabel("test accuracy (%)")
    loss_axis.set_ylabel("training loss")
    accuracy_axis.set_title("test accuracy per epoch", fontsize=10)
    loss_axis.set_title("training loss per epoch", fontsize=10)
    _plain_numbers(accuracy_axis)
    for axis in (accuracy_axis, loss_axis):
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        _style(axis)
    _figure_legend(figure, accuracy_axis, ncols=3)
    return figure


def _curve_with_band(axis: Axes, runs: Sequence[Sequence[float]], series: CurveSeries, color,
                     legend_name: str) -> None:
    matrix = _matrix(runs)
    if matrix.size == 0 or not np.isfinite(matrix).any():
        return
    mean, low, high, _ = _column_summary(matrix)
    epochs = np.arange(1, matrix.shape[1] + 1)
    _mean_curve(axis, epochs, mean, series, color, legend_name, markers=matrix.shape[1] <= _MARKERS_ALL_EPOCHS)
    if np.isfinite(low).any():
        band = axis.fill_between(epochs, low, high, color=color, alpha=0.18, linewidth=0)
        band.set_gid(f"band:{series.label}")


# --------------------------------------------------------------------------------------------------------------
# Efficiency


def efficiency_figure(writer: FigureWriter, points: Sequence[EfficiencyPoint],
                      accuracy_label: str = "final-epoch test accuracy (%)") -> Figure:
    """One panel per task, SynOps on a log axis: each series' mean accuracy with its 95 % t-interval against its
    mean SynOps per sample (with their interval where the runs differ)."""
    tasks = list(dict.fromkeys(point.task for point in points))
    if not tasks:
        raise ValueError("an efficiency figure needs at least one point")
    cols, rows = _grid(len(tasks))
    figure, axes = writer.new(4.8 * cols, 4.6 * rows + 0.3, cols, rows)
    for axis in axes.flat[len(tasks):]:
        axis.set_visible(False)
    for axis, task in zip(axes.flat, tasks, strict=False):
        task_points = [point for point in points if point.task == task]
        extents = [_efficiency_point(writer, axis, point) for point in task_points]
        _log_synops_axis(axis, [value for synops, _ in extents for value in synops])
        accuracy = [value for _, values in extents for value in values]
        if accuracy:
            axis.set_ylim(*_accuracy_range(accuracy))
        axis.set_title(task, fontsize=10)
        axis.set_xlabel("synaptic operations per sample (log scale)")
        axis.set_ylabel(accuracy_label)
        _plain_numbers(axis)
        _style(axis)
        _flag_legend(axis.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False))
    return figure


def _efficiency_point(writer: FigureWriter, axis: Axes, point: EfficiencyPoint
                      ) -> tuple[tuple[float, ...], list[float]]:
    """Draw one series; return the SynOps and the accuracy it needs the axes to show."""
    pairs = [(s, a) for s, a in zip(point.synops, point.accuracy, strict=True) if math.isfinite(s) and
             math.isfinite(a) and s > 0]
    if not pairs:
        return (), []
    synops, accuracy = (np.array(column, dtype=float) for column in zip(*pairs, strict=True))
    x, y = float(synops.mean()), float(accuracy.mean())
    x_interval, y_interval = t_interval(synops, CI_LEVEL), t_interval(accuracy, CI_LEVEL)
    if x_interval is not None and x_interval[0] <= 0:  # a log axis cannot show it; the interval is clipped
        x_interval = (float(synops.min()), x_interval[1])
    xerr = None if x_interval is None else [[x - x_interval[0]], [x_interval[1] - x]]
    yerr = None if y_interval is None else [[y - y_interval[0]], [y_interval[1] - y]]
    color = writer.color(point.label)
    name = f"{_series_name(point.label, point.flagged)} ({_run_count(len(pairs))})"
    if xerr is not None:  # thin and without caps: SynOps barely vary between seeds, caps would hide the marker
        axis.errorbar(x, y, xerr=xerr, fmt="none", color=color, elinewidth=0.9, capsize=0)
    container = axis.errorbar(x, y, yerr=yerr, fmt="o", markersize=7, capsize=4, color=color,
                              markerfacecolor="white" if point.flagged else color, markeredgewidth=1.5,
                              elinewidth=1.3, label=name)
    container.lines[0].set_gid(f"mean:{point.label}")
    extent = (x, *(x_interval if x_interval is not None else ()))
    accuracy_extent = [y, *(y_interval if y_interval is not None else ())]
    return tuple(value for value in extent if value > 0), accuracy_extent


def _log_synops_axis(axis: Axes, values: Sequence[float]) -> None:
    """A log x axis around ``values`` spanning at least a factor 1.5, with ticks that do not collide: decades when
    it spans more than one, else a few plain ticks in engineering notation (1.6M, 1.8M)."""
    axis.set_xscale("log")
    if not values:
        return
    low, high = min(values), max(values)
    centre = math.sqrt(low * high)
    ratio = max(high / low, 1.5) * 1.25  # the points' own spread, widened so that markers clear the frame
    low, high = centre / math.sqrt(ratio), centre * math.sqrt(ratio)
    axis.set_xlim(low, high)
    formatter = EngFormatter(places=None, sep="")
    if high / low >= 10:
        axis.xaxis.set_major_locator(LogLocator(base=10))
        axis.xaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10)))
        axis.xaxis.set_minor_formatter(NullFormatter())
    else:
        ticks = [t for t in MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high) if low <= t <= high]
        axis.xaxis.set_major_locator(FixedLocator(ticks))
        axis.xaxis.set_minor_locator(NullLocator())
    axis.xaxis.set_major_formatter(formatter)


# --------------------------------------------------------------------------------------------------------------
# Throughput


def throughput_figure(writer: FigureWriter, series: Sequence[ThroughputSeries], caveat: str) -> Figure:
    """In-run training throughput (top) and peak memory (bottom), one column per task: the mean over runs as a bar
    from zero with every run as a dot; ``caveat`` (what else shared the machine) is printed under the figure."""
    tasks = list(dict.fromkeys(entry.task for entry in series))
    if not tasks:
        raise ValueError("a throughput figure needs at least one series")
    widths = [max(2.6, 1.1 + 1.05 * sum(entry.task == task for entry in series)) for task in tasks]
    figure, axes = writer.new(max(sum(widths), 7.0), 7.8, ncols=len(tasks), nrows=2, width_ratios=widths)
    for column, task in enumerate(tasks):
        task_series = [entry for entry in series if entry.task == task]
        kinds = sorted({entry.memory_kind for entry in task_series if entry.memory_kind})
        memory_label = f"peak memory (MiB; {', '.join(kinds) or 'kind not recorded'})"
        _throughput_panel(writer, axes[0, column], task_series, "samples_per_second", "training samples / s",
                          show_names=False)
        _throughput_panel(writer, axes[1, column], task_series, "peak_memory_mib", memory_label, show_names=True)
        axes[0, column].set_title(task, fontsize=10)
    note = "Bars: mean over runs, from zero; dots: one run each. " + caveat
    width_chars = int(figure.get_figwidth() * 72 / (8.5 * 0.55))
    figure.supxlabel(textwrap.fill(note, width_chars), fontsize=8.5, x=0.01, ha="left", color="0.2")
    return figure


def _throughput_panel(writer: FigureWriter, axis: Axes, series: Sequence[ThroughputSeries], field: str, label: str,
                      *, show_names: bool) -> None:
    """One task's bars for ``field``; the mean is written in the tick label, where no run's dot can cover it."""
    ticks, flags, tops = [], [], [0.0]
    for position, entry in enumerate(series):
        values = _finite(getattr(entry, field))
        tops += values.tolist()
        color = writer.color(entry.label)
        if values.size:
            bar = axis.bar(position, values.mean(), width=0.6, color="white" if entry.flagged else color,
                           edgecolor=color if entry.flagged else "black", hatch="//" if entry.flagged else None,
                           linewidth=0.8, zorder=2)
            bar.patches[0].set_gid(f"bar:{entry.label}")
            axis.plot(position + _spread(values.size, 0.18), values, "o", markersize=3.2, color="0.15",
                      linestyle="none", zorder=3)
        tick = f"mean {values.mean():.0f}" if values.size else "not recorded"
        if show_names:
            tick += f"\n{_tick_name(entry.label)}\nn = {values.size}{_tick_flag(entry.flagged)}"
        ticks.append(tick)
        flags.append(entry.flagged if show_names else "")
    axis.set_xticks(range(len(ticks)), ticks, fontsize=8)
    _flag_ticks(axis, flags)
    axis.set_xlim(-0.6, len(ticks) - 0.4)
    axis.set_ylim(0, max(tops) * 1.08 or 1.0)  # bars start at zero
    axis.set_ylabel(label)
    _style(axis)
    axis.grid(False, axis="x")


# --------------------------------------------------------------------------------------------------------------
# Sweeps: one task trained at several values of one setting


@dataclass(frozen=True)
class SweepAxis:
    """The swept setting as an x axis: numeric values on a numeric axis (``positions`` are the values), other
    values evenly spaced (``positions`` are 0, 1, ...); either way the ticks are exactly the swept values."""

    label: str  # e.g. "time steps T (training and test)"
    positions: list[float]
    ticks: list[str]
    numeric: bool = True  # False: the values have no order, so means are not joined by a line


@dataclass(frozen=True)
class SweepValues:
    """One series at one swept value: the per-run final and best-epoch accuracies."""

    position: float
    final: list[float]
    best: list[float]


@dataclass(frozen=True)
class SweepSeries:
    label: str
    points: list[SweepValues]
    flagged: str = ""


@dataclass(frozen=True)
class ParetoPoint:
    """One series at one swept value, means over its runs: cost (SynOps or joules per sample) and accuracy."""

    label: str  # the series
    text: str  # the swept value, e.g. "T=2"
    cost: float
    accuracy: float
    flagged: str = ""


@dataclass(frozen=True)
class ParetoPanel:
    cost_label: str  # the x axis, e.g. "synaptic operations per sample (log scale)"
    points: list[ParetoPoint]
    front: list[int]  # indices into ``points`` of the Pareto front (computed by the caller)


_SWEEP_METRICS = (("final", "final-epoch test accuracy (%)"), ("best", "best test accuracy over epochs (%)"))


def sweep_accuracy_figure(writer: FigureWriter, sweep_axis: SweepAxis, series: Sequence[SweepSeries]) -> Figure:
    """Accuracy against the swept value, final-epoch (left) and best-epoch (right): each series' mean joined by a
    line, its 95 % t-interval where n >= 2, every run as a small dot and n written at each point."""
    if not series:
        raise ValueError("a sweep figure needs at least one series")
    figure, axes = writer.new(11.5, 5.0, ncols=2)
    offsets = _sweep_offsets(len(series), sweep_axis)
    for axis, (metric, label) in zip(axes[0], _SWEEP_METRICS, strict=True):
        extent = [value for entry, offset in zip(series, offsets, strict=True)
                  for value in _sweep_series(writer, axis, entry, metric, offset, 0.4 * _sweep_step(sweep_axis),
                                             joined=sweep_axis.numeric)]
        _sweep_ticks(axis, sweep_axis)
        if extent:
            axis.set_ylim(*_accuracy_range(extent))
        axis.set_ylabel(label)
        axis.set_title(f"{label.removesuffix(' (%)')} against {sweep_axis.label}", fontsize=10)
        _plain_numbers(axis)
        _style(axis)
    _figure_legend(figure, axes[0, 0], ncols=3)
    return figure


def _sweep_offsets(count: int, sweep_axis: SweepAxis) -> list[float]:
    """Small horizontal shifts per series, so that the intervals of different series at one value stay apart."""
    return [(i - (count - 1) / 2) * _sweep_step(sweep_axis) for i in range(count)]


def _sweep_step(sweep_axis: SweepAxis) -> float:
    span = max(sweep_axis.positions) - min(sweep_axis.positions) if sweep_axis.positions else 0.0
    return 0.016 * span if span > 0 else 0.08


def _sweep_series(writer: FigureWriter, axis: Axes, series: SweepSeries, metric: str, offset: float,
                  seed_shift: float, joined: bool = True) -> list[float]:
    """Draw one series on one panel, its runs' dots ``seed_shift`` to the right of its mean so that the mean's
    marker does not hide them; return the accuracies the y range must show."""
    color, face = writer.color(series.label), "white" if series.flagged else writer.color(series.label)
    xs, means, extent = [], [], []
    for point in series.points:
        values = _finite(getattr(point, metric))
        if values.size == 0:
            continue
        x, mean = point.position + offset, float(values.mean())
        interval = t_interval(values, level=CI_LEVEL)
        if interval is not None:
            axis.errorbar(x, mean, yerr=[[mean - interval[0]], [interval[1] - mean]], fmt="none", color=color,
                          capsize=4, elinewidth=1.3, zorder=3)
            extent += list(interval)
        axis.plot(np.full(values.size, x + seed_shift), values, "o", markersize=3, color=color, markerfacecolor=face,
                  alpha=0.7, linestyle="none", zorder=2, gid=f"seeds:{series.label}")
        axis.annotate(f"n={values.size}", (x, mean), xytext=(5, 4), textcoords="offset points", fontsize=7,
                      color=color)
        xs.append(x)
        means.append(mean)
        extent += [*values.tolist(), mean]
    if xs:
        (line,) = axis.plot(xs, means, marker="o", markersize=6, linewidth=1.6, color=color, markerfacecolor=face,
                            linestyle=("--" if series.flagged else "-") if joined else "none", zorder=4,
                            label=_series_name(series.label, series.flagged))
        line.set_gid(f"mean:{series.label}")
    return extent


def _sweep_ticks(axis: Axes, sweep_axis: SweepAxis) -> None:
    axis.set_xticks(sweep_axis.positions, sweep_axis.ticks)
    axis.xaxis.set_minor_locator(NullLocator())
    span = max(sweep_axis.positions) - min(sweep_axis.positions) if sweep_axis.positions else 0.0
    pad = 0.08 * span if span > 0 else 0.5
    axis.set_xlim(min(sweep_axis.positions) - pad, max(sweep_axis.positions) + pad)
    axis.set_xlabel(sweep_axis.label)


def sweep_latency_figure(writer: FigureWriter, panels: Sequence[tuple[str, Sequence[LatencySeries]]],
                         chance: float | None) -> Figure:
    """One panel per swept value (its title): accuracy against the time steps t used at inference of the networks
    trained at that value, each series' mean over runs with its 95 % t-band; the y axis shared by all panels."""
    if not panels:
        raise ValueError("a sweep latency figure needs at least one panel")
    cols, rows = _grid(len(panels), max_cols=4)
    figure, axes = writer.new(3.9 * cols, 3.8 * rows + 0.4, cols, rows)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    extent: list[float] = [] if chance is None or not math.isfinite(chance) else [chance]
    drawn = []
    for axis, (title, series) in zip(axes.flat, panels, strict=False):
        panel_extent, max_t = _latency_lines(writer, axis, series)
        extent += panel_extent
        drawn.append((axis, max_t))
        axis.set_title(title, fontsize=10)
    for axis, max_t in drawn:
        if chance is not None and math.isfinite(chance):
            axis.axhline(chance, color=CHANCE_COLOR, linestyle=":", linewidth=1.2, gid="chance")
        _latency_axes(axis, extent, max_t)
        _flag_legend(axis.legend(fontsize=7, loc="lower right", frameon=False))
    return figure


def sweep_pareto_figure(writer: FigureWriter, panels: Sequence[ParetoPanel]) -> Figure:
    """Accuracy against cost, one panel per cost measure on a log axis: every (series, swept value) as a point
    labelled with its value, and the Pareto front (``panel.front``: the points no other point dominates) as a
    step line through its points."""
    if not panels:
        raise ValueError("a Pareto figure needs at least one panel")
    figure, axes = writer.new(5.6 * len(panels), 5.0, ncols=len(panels))
    for axis, panel in zip(axes[0], panels, strict=True):
        for point in panel.points:
            color = writer.color(point.label)
            axis.plot(point.cost, point.accuracy, "o", markersize=7, color=color, markeredgewidth=1.5,
                      markerfacecolor="white" if point.flagged else color, linestyle="none",
                      label=_series_name(point.label, point.flagged), gid=f"point:{point.label}:{point.text}")
            axis.annotate(point.text, (point.cost, point.accuracy), xytext=(5, 3), textcoords="offset points",
                          fontsize=7.5)
        front = sorted((panel.points[i] for i in panel.front), key=lambda p: (p.cost, p.accuracy))
        if front:
            axis.step([p.cost for p in front], [p.accuracy for p in front], where="post", color="0.15",
                      linestyle="--", linewidth=1.1, zorder=1, gid="pareto", label="Pareto front")
        _log_synops_axis(axis, [p.cost for p in panel.points if p.cost > 0])
        axis.set_ylim(*_accuracy_range([p.accuracy for p in panel.points] or [0.0, 100.0]))
        axis.set_xlabel(panel.cost_label)
        axis.set_title(f"accuracy against {panel.cost_label.removesuffix(' (log scale)')}", fontsize=10)
        axis.set_ylabel("final-epoch test accuracy (%, mean over runs)")
        _plain_numbers(axis)
        _style(axis)
        handles, labels = axis.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))  # one entry per series, not per point
        _flag_legend(axis.legend(unique.values(), unique.keys(), fontsize=7.5, loc="upper center",
                                 bbox_to_anchor=(0.5, -0.16), frameon=False, ncols=2))
    return figure
