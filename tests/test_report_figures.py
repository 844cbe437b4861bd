"""The report's figures (tssl.records.report_figures), checked on the matplotlib objects: honest accuracy ranges, 95 %
t-intervals and none for one run, the δ band, flagged series drawn differently, bands and chance levels on the
curves, log SynOps axes, the throughput caveat, deterministic PNGs, and no torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from matplotlib.colors import to_rgba

import tssl.records.report_figures as report_figures
from tssl.records.report_figures import (
    WARN_COLOR,
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
from tssl.records.stats import t_interval

PAPER = PaperMark(89.75, 0.03, 0.5, "paper TSSL-BP")
FIVE = AccuracySeries("tssl (matched)", [89.62, 89.40, 89.42, 89.43, 88.89], [0, 1, 2, 3, 4])
ONE = AccuracySeries("snntorch (matched)", [89.16], [0])
SMOKE = AccuracySeries("tssl-surrogate (matched)", [80.0, 86.0, 84.0], [0, 1, 2], flagged="SMOKE")
WHITE = to_rgba("white")


@pytest.fixture
def writer(tmp_path: Path) -> FigureWriter:
    return FigureWriter(tmp_path, ["tssl (matched)", "tssl-surrogate (matched)", "snntorch (matched)"])


def _panel(*series: AccuracySeries, paper: PaperMark | None = PAPER, metric: str = "best") -> AccuracyPanel:
    label = "best test accuracy over epochs (%)" if metric == "best" else "final-epoch test accuracy (%)"
    return AccuracyPanel("fmnist-mlp", metric, label, paper, 10.0, list(series))


def _by_gid(axis, gid: str):
    (artist,) = [a for a in [*axis.lines, *axis.patches, *axis.collections] if a.get_gid() == gid]
    return artist


def _ci_container(axis, label: str):
    return [c for c in axis.containers if c.get_label() == f"95% CI: {label}"]


def _ticks(axis) -> list[str]:
    return [tick.get_text() for tick in axis.get_xticklabels()]


# --------------------------------------------------------------------------------------------------------------
# Accuracy


def test_accuracy_range_holds_every_seed_interval_paper_and_band(writer):
    figure = accuracy_figure(writer, [_panel(FIVE, ONE)])
    axis = figure.axes[0]
    low, high = axis.get_ylim()
    interval = t_interval(FIVE.values)
    must_show = [*FIVE.values, *ONE.values, *interval, PAPER.value - PAPER.tolerance, PAPER.value + PAPER.tolerance,
                 PAPER.value - PAPER.std, PAPER.value + PAPER.std]
    assert low < min(must_show) and max(must_show) < high
    # Points, not bars: no bar patch anywhere, and the range is the data's, not a bar's from zero.
    assert not [p for p in axis.patches if p.get_gid() != "delta-band"]
    assert high - low < 5


def test_the_interval_is_the_95_t_interval_and_every_seed_is_drawn(writer):
    axis = accuracy_figure(writer, [_panel(FIVE)]).axes[0]
    (container,) = _ci_container(axis, FIVE.label)
    (segment,) = container.lines[2][0].get_segments()
    assert [y for _, y in segment] == pytest.approx(t_interval(FIVE.values, level=0.95))
    mean = _by_gid(axis, f"mean:{FIVE.label}")
    assert mean.get_ydata()[0] == pytest.approx(sum(FIVE.values) / 5)
    seeds = _by_gid(axis, f"seeds:{FIVE.label}")
    assert sorted(seeds.get_ydata()) == sorted(FIVE.values)
    assert len(set(seeds.get_xdata())) == 5  # spread apart, so equal values cannot hide each other
    assert "n = 5" in _ticks(axis)[1]


def test_a_single_run_has_no_error_bar_and_says_so(writer):
    axis = accuracy_figure(writer, [_panel(FIVE, ONE)]).axes[0]
    assert _ci_container(axis, ONE.label) == []
    assert _by_gid(axis, f"mean:{ONE.label}").get_ydata()[0] == pytest.approx(89.16)
    assert "n = 1, no CI" in _ticks(axis)[2]


def test_the_delta_band_spans_the_paper_value_plus_minus_tolerance(writer):
    axis = accuracy_figure(writer, [_panel(FIVE)]).axes[0]
    band = _by_gid(axis, "delta-band")
    assert band.get_y() == pytest.approx(89.25) and band.get_y() + band.get_height() == pytest.approx(90.25)
    paper = _by_gid(axis, "paper")
    assert paper.get_ydata()[0] == pytest.approx(89.75)
    assert "δ = 0.5" in axis.get_title()
    legend_texts = [text.get_text() for text in axis.figure.legends[0].get_texts()]
    assert any("tolerance band" in text for text in legend_texts)


def test_no_band_without_a_tolerance_or_a_paper(writer):
    no_tolerance = accuracy_figure(writer, [_panel(FIVE, paper=PaperMark(89.75))]).axes[0]
    assert not [p for p in no_tolerance.patches if p.get_gid() == "delta-band"]
    no_paper = accuracy_figure(writer, [_panel(FIVE, paper=None)]).axes[0]
    assert not [a for a in [*no_paper.lines, *no_paper.patches] if a.get_gid() in ("paper", "delta-band")]


def test_flagged_series_are_hollow_with_the_flag_in_red(writer):
    axis = accuracy_figure(writer, [_panel(FIVE, SMOKE)]).axes[0]
    assert to_rgba(_by_gid(axis, f"mean:{SMOKE.label}").get_markerfacecolor()) == WHITE
    assert to_rgba(_by_gid(axis, f"seeds:{SMOKE.label}").get_markerfacecolor()) == WHITE
    assert to_rgba(_by_gid(axis, f"mean:{FIVE.label}").get_markerfacecolor()) != WHITE
    ticks = axis.get_xticklabels()
    assert "SMOKE" in ticks[2].get_text() and to_rgba(ticks[2].get_color()) == to_rgba(WARN_COLOR)
    assert to_rgba(ticks[1].get_color()) != to_rgba(WARN_COLOR)


def test_the_y_label_says_which_metric(writer):
    best = accuracy_figure(writer, [_panel(FIVE, metric="best")]).axes[0]
    final = accuracy_figure(writer, [_panel(FIVE, metric="final")]).axes[0]
    assert best.get_ylabel() == "best test accuracy over epochs (%)"
    assert final.get_ylabel() == "final-epoch test accuracy (%)"


def test_the_range_stays_within_0_and_100_when_an_interval_does_not(writer):
    wide = AccuracySeries("tssl (matched)", [31.0, 45.0], [0, 1], flagged="SMOKE")  # t(0.975, 1) = 12.7
    axis = accuracy_figure(writer, [_panel(wide, paper=None)]).axes[0]
    low, high = axis.get_ylim()
    assert -3 < low <= 31.0 and 45.0 <= high < 103


def test_the_chance_level_is_drawn_when_on_the_axis_and_noted_when_off_it(writer):
    zoomed = accuracy_figure(writer, [_panel(FIVE)]).axes[0]
    assert "chance level (10 %)" in zoomed.get_xlabel()
    wide = AccuracySeries("tssl (matched)", [12.0, 30.0, 20.0], [0, 1, 2])
    reaching = accuracy_figure(writer, [_panel(wide, paper=None)]).axes[0]
    assert _by_gid(reaching, "chance").get_ydata()[0] == 10.0


def test_one_panel_per_task_and_unused_axes_hidden(writer):
    panels = [AccuracyPanel(f"task-{i}", "best", "best (%)", PAPER, 10.0, [FIVE]) for i in range(4)]
    figure = accuracy_figure(writer, panels)
    visible = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_title().split()[0] for axis in visible] == ["task-0", "task-1", "task-2", "task-3"]


# --------------------------------------------------------------------------------------------------------------
# Latency and training curves


def test_latency_band_only_for_two_or_more_runs_with_chance_and_paper_lines(writer):
    two = LatencySeries("tssl (matched)", [[10, 40, 85, 90, 91], [10, 30, 80, 89, 90]])
    one = LatencySeries("snntorch (matched)", [[10, 35, 70, 88, 89]])
    axis = latency_figure(writer, "fmnist-mlp", [two, one], 10.0, PAPER).axes[0]
    band = _by_gid(axis, "band:tssl (matched)")
    assert band.get_paths()  # the 95 % t-band of the two runs
    assert not [c for c in axis.collections if c.get_gid() == "band:snntorch (matched)"]
    assert _by_gid(axis, "chance").get_ydata()[0] == 10.0 and _by_gid(axis, "chance").get_linestyle() == ":"
    assert _by_gid(axis, "paper").get_ydata()[0] == 89.75 and _by_gid(axis, "paper").get_linestyle() == "--"
    labels = [text.get_text() for text in axis.figure.legends[0].get_texts()]
    assert "tssl (matched) (n = 2)" in labels and "snntorch (matched) (n = 1, no band)" in labels
    assert axis.get_xlabel() == "time steps t used at inference"
    assert axis.get_legend() is None  # the legend is under the plot, not over the curves


def test_latency_band_is_the_per_step_95_t_interval(writer):
    runs = [[10.0, 40.0, 85.0], [10.0, 30.0, 80.0], [10.0, 35.0, 81.0]]
    axis = latency_figure(writer, "t", [LatencySeries("tssl (matched)", runs)], None, None).axes[0]
    vertices = _by_gid(axis, "band:tssl (matched)").get_paths()[0].vertices
    at_step_two = sorted({round(float(y), 6) for x, y in vertices if x == 2.0})
    assert at_step_two == pytest.approx(list(t_interval([40.0, 30.0, 35.0])))


def test_curves_mean_band_and_n_in_the_legend(writer):
    accuracy = [[80.0, 85.0, 88.0], [82.0, 86.0, 87.0], [81.0, 85.5, 88.5]]
    loss = [[0.3, 0.2, 0.1], [0.32, 0.21, 0.12], [0.31, 0.19, 0.11]]
    series = [CurveSeries("tssl (matched)", accuracy, loss), CurveSeries("snntorch (matched)", [accuracy[0]],
                                                                         [loss[0]], flagged="REDUCED EPOCHS")]
    figure = curves_figure(writer, "fmnist-mlp", series, PAPER)
    accuracy_axis, loss_axis = figure.axes
    for axis in (accuracy_axis, loss_axis):
        assert [c.get_gid() for c in axis.collections] == ["band:tssl (matched)"]
    mean = _by_gid(accuracy_axis, "mean:tssl (matched)")
    assert list(mean.get_ydata()) == pytest.approx([81.0, 85.5, 87.833333])
    flagged = _by_gid(loss_axis, "mean:snntorch (matched)")
    assert flagged.get_linestyle() == "--" and to_rgba(flagged.get_markerfacecolor()) == WHITE
    assert _by_gid(accuracy_axis, "paper").get_ydata()[0] == 89.75
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "tssl (matched) (n = 3)" in labels


# --------------------------------------------------------------------------------------------------------------
# Efficiency and throughput


def test_efficiency_has_a_log_synops_panel_per_task(writer):
    points = [
        EfficiencyPoint("fmnist-mlp", "tssl (matched)", [1.6e6, 1.62e6, 1.61e6], [89.3, 89.5, 89.1]),
        EfficiencyPoint("fmnist-mlp", "snntorch (matched)", [1.8e6], [89.16]),
        EfficiencyPoint("fmnist-cnn", "tssl (matched)", [1.9e7], [87.2], flagged="REDUCED EPOCHS"),
    ]
    figure = efficiency_figure(writer, points, "best test accuracy over epochs (%)")
    visible = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_title() for axis in visible] == ["fmnist-mlp", "fmnist-cnn"]
    assert all(axis.get_xscale() == "log" for axis in visible)
    mlp, cnn = visible
    low, high = mlp.get_xlim()
    assert low < 1.6e6 and high > 1.8e6 and high < 1.9e7  # the other task's point does not squash this one
    assert mlp.get_ylabel() == "best test accuracy over epochs (%)"
    (container,) = _ci_container_named(mlp, "tssl (matched) (n = 3)")
    (segment,) = container.lines[2][0].get_segments()
    assert [y for _, y in segment] == pytest.approx(t_interval([89.3, 89.5, 89.1]))
    assert to_rgba(_by_gid(cnn, "mean:tssl (matched)").get_markerfacecolor()) == WHITE
    (flagged_entry,) = cnn.get_legend().get_texts()
    assert "REDUCED EPOCHS" in flagged_entry.get_text() and to_rgba(flagged_entry.get_color()) == to_rgba(WARN_COLOR)
    assert all(tick.get_text() for tick in mlp.get_xticklabels())  # a narrow log range still has labels


def _ci_container_named(axis, label: str):
    return [c for c in axis.containers if c.get_label() == label]


def test_throughput_bars_from_zero_with_the_caveat_under_the_figure(writer):
    series = [
        ThroughputSeries("fmnist-mlp", "tssl (matched)", [6000.0, 3000.0], [1200.0, 1300.0], "peak_rss"),
        ThroughputSeries("fmnist-mlp", "snntorch (matched)", [3300.0], [1200.0], "peak_rss"),
        ThroughputSeries("fmnist-cnn", "tssl (matched)", [60.0], [1600.0], "peak_rss", flagged="REDUCED EPOCHS"),
    ]
    caveat = "The runs shared a 2-core machine (1 and 2 torch threads); `tssl bench` gives isolated numbers."
    figure = throughput_figure(writer, series, caveat)
    note = figure.get_supxlabel().replace("\n", " ")
    assert caveat in note
    axes = figure.axes
    assert len(axes) == 4 and all(axis.get_ylim()[0] == 0 for axis in axes)
    tssl_bar = _by_gid(axes[0], "bar:tssl (matched)")
    assert tssl_bar.get_height() == pytest.approx(4500.0)
    assert "peak_rss" in axes[2].get_ylabel()
    flagged_ticks = axes[3].get_xticklabels()
    assert "REDUCED" in flagged_ticks[0].get_text() and to_rgba(flagged_ticks[0].get_color()) == to_rgba(WARN_COLOR)


# --------------------------------------------------------------------------------------------------------------
# Writing


def test_the_writer_saves_deterministic_pngs_and_returns_the_caption(tmp_path):
    def draw(out: Path) -> bytes:
        writer = FigureWriter(out, ["tssl (matched)"])
        caption = writer.save(accuracy_figure(writer, [_panel(FIVE, ONE)]), "accuracy.png", "Accuracy",
                              ["SMOKE RUN — not a reproduction"])
        assert caption == "Accuracy — ⚠ SMOKE RUN — not a reproduction" and writer.titles == {"accuracy.png": caption}
        return (out / "accuracy.png").read_bytes()

    first, second = draw(tmp_path / "a"), draw(tmp_path / "b")
    assert first.startswith(b"\x89PNG") and first == second


def test_colours_follow_the_labels_and_skip_the_warning_red(writer):
    assert writer.color("tssl (matched)") == writer.colors["tssl (matched)"]
    new = writer.color("spikingjelly (matched)")
    assert new not in list(writer.colors.values())[:3]
    assert to_rgba("#d62728") not in [to_rgba(c) for c in writer.colors.values()]


def test_empty_inputs_are_refused(writer):
    for draw in (lambda: accuracy_figure(writer, []), lambda: efficiency_figure(writer, []),
                 lambda: throughput_figure(writer, [], "")):
        with pytest.raises(ValueError):
            draw()


def test_the_module_imports_neither_torch_nor_the_engine():
    tree = ast.parse(Path(report_figures.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    roots = {name.split(".")[0] for name in imported}
    assert roots <= {"__future__", "collections", "dataclasses", "math", "pathlib", "textwrap", "matplotlib",
                     "numpy", "pandas", "tssl"}
    assert {name for name in imported if name.startswith("tssl")} <= {"tssl.records.stats"}
