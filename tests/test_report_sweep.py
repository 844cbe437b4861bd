"""Tests for the report's sweeps section (tssl/records/report_sweep.py) and its caveat (report.py, report_figures.py).

Every record here is SYNTHETIC: made by tests/records.py to be valid under tssl/records/schema.py, with invented
accuracies, SynOps and provenance. None of these numbers come from a real run, and none may be quoted as results.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from records import captions, seeds_of, suite_task, table_after
from scipy import stats as scipy_stats

from tssl.records import stats
from tssl.records.report import REDUCED_EPOCHS_LABEL, build_report
from tssl.records.report_figures import (
    FigureWriter,
    LatencySeries,
    SweepAxis,
    SweepSeries,
    SweepValues,
    sweep_accuracy_figure,
    sweep_latency_figure,
)
from tssl.records.report_sweep import comparison_clause, find_sweeps, pareto_front

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BASE = "digits-cnn"
STEPS = (2, 3, 5)
CAVEAT = "SYNTHETIC: trained 3 epochs instead of the paper's 100"
# Final accuracies per (method, T). T = 2: tssl far above the surrogate; T = 3: the surrogate has one run;
# T = 5: the two overlap. snntorch has one run everywhere.
FINALS = {
    ("tssl", 2): [95.0, 95.4, 95.2], ("tssl-surrogate", 2): [90.1, 90.5, 89.9], ("snntorch", 2): [85.0],
    ("tssl", 3): [96.0, 96.2, 96.1], ("tssl-surrogate", 3): [95.0], ("snntorch", 3): [92.0],
    ("tssl", 5): [96.5, 97.1, 96.2], ("tssl-surrogate", 5): [96.6, 96.4, 97.0], ("snntorch", 5): [97.5],
}  # fmt: skip
SYNOPS_PER_STEP = {"tssl": 1000.0, "tssl-surrogate": 1100.0, "snntorch": 1200.0}


def point(steps: int) -> str:
    return f"{BASE}-steps{steps}"


def sweep_suite(steps: tuple[int, ...] = STEPS, sweep: bool = True) -> dict[str, dict]:
    tasks = {}
    for value in steps:
        spec = suite_task(point(value), steps=value)
        spec["sweep"] = {"task": BASE, "values": {"steps": value}} if sweep else None
        tasks[point(value)] = spec
    return tasks


def sweep_records(efficiency: bool = True) -> list[dict]:
    records = []
    for (method, value), finals in FINALS.items():
        measured = ({"synops_total": SYNOPS_PER_STEP[method] * value,
                     "energy_joules": SYNOPS_PER_STEP[method] * value * 1e-12} if efficiency else None)
        records += seeds_of(finals, task=point(value), method=method, config={"steps": value}, efficiency=measured)
    return records


def section(markdown: str, heading: str) -> str:
    """The text of the section whose ``## `` heading holds ``heading``, up to the next ``## `` heading."""
    part = markdown.split(heading, 1)[1]
    return part.split("\n## ", 1)[0]


def headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("## ")]


def comparison_lines(markdown: str) -> dict[str, str]:
    text = section(markdown, "Sweeps")
    return {m.group(1): line for line in text.splitlines() if (m := re.match(r"- \*\*(T = \d+)\*\*", line))}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep-report")
    output = build_report("synth", sweep_records(), out, suite_tasks=sweep_suite(), caveat=CAVEAT)
    return output, output.index.read_text()


# --------------------------------------------------------------------------------------------------------------
# The table


def test_the_sweep_table_has_a_row_per_value_and_method_with_its_numbers(report):
    _, text = report
    rows = table_after(text, f"{BASE}: accuracy at each T")
    assert [(row[0], row[1]) for row in rows] == [
        (str(value), f"`{method}`") for value in STEPS for method in ("tssl", "tssl-surrogate", "snntorch")]
    by_key = {(row[0], row[1]): row for row in rows}
    tssl2 = by_key[("2", "`tssl`")]
    summary = stats.summarize(FINALS[("tssl", 2)])
    assert tssl2[2] == "real" and tssl2[4:6] == ["3", "0, 1, 2"]
    assert tssl2[6] == f"{summary.mean:.2f} ± {summary.std:.2f}"
    assert tssl2[7] == f"[{summary.ci95[0]:.2f}, {summary.ci95[1]:.2f}]"
    best = stats.summarize([v + 0.3 for v in FINALS[("tssl", 2)]])  # the fixture's best is final + 0.3
    assert tssl2[8] == f"{best.mean:.2f} ± {best.std:.2f}"
    assert tssl2[9] == f"[{best.ci95[0]:.2f}, {best.ci95[1]:.2f}]"
    single = by_key[("3", "`snntorch`")]
    assert single[4] == "1" and single[6] == "92.00 (n = 1)" and single[7] == "—" and single[9] == "—"


# --------------------------------------------------------------------------------------------------------------
# The sentences


def _welch_numbers(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    result = scipy_stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(0.95)
    return float(sum(a) / len(a) - sum(b) / len(b)), float(interval.low), float(interval.high), float(result.pvalue)


def test_a_difference_whose_interval_excludes_zero_says_which_is_higher_with_scipys_welch_numbers(report):
    _, text = report
    line = comparison_lines(text)["T = 2"]
    difference, low, high, p = _welch_numbers(FINALS[("tssl", 2)], FINALS[("tssl-surrogate", 2)])
    assert low > 0
    assert (f"final-epoch accuracy: TSSL-BP (`tssl`) is higher than `tssl-surrogate` by {difference:.2f} points "
            f"(95 % Welch CI of Δ [{low:.2f}, {high:.2f}], Welch's t-test p = {p:.3g}, n = 3 vs 3)") in line
    assert "best-epoch accuracy: TSSL-BP (`tssl`) is higher than" in line


def test_an_interval_holding_zero_shows_no_difference_and_never_says_equal(report):
    _, text = report
    line = comparison_lines(text)["T = 5"]
    difference, low, high, p = _welch_numbers(FINALS[("tssl", 5)], FINALS[("tssl-surrogate", 5)])
    assert low < 0 < high
    assert (f"final-epoch accuracy: no difference between `tssl` and `tssl-surrogate` was shown at this n "
            f"(Δ = {difference:+.2f} points, 95 % Welch CI of Δ [{low:.2f}, {high:.2f}], Welch's t-test "
            f"p = {p:.3g}, n = 3 vs 3; the interval holds 0)") in line
    assert "higher" not in line and "lower" not in line and "equal" not in line


def test_one_run_on_a_side_gives_no_interval(report):
    _, text = report
    line = comparison_lines(text)["T = 3"]
    assert "final-epoch accuracy: no interval can be given with n = 3 vs 1" in line
    assert "CI" not in line and "p =" not in line


def test_a_lower_tssl_is_said_to_be_lower():
    test = stats.welch([90.0, 90.2, 90.1], [95.0, 95.3, 95.1])
    clause = comparison_clause("final", test)
    assert clause.startswith(f"final-epoch accuracy: TSSL-BP (`tssl`) is lower than `tssl-surrogate` by "
                             f"{abs(test.difference):.2f} points")


def test_snntorch_with_one_run_is_in_the_table_without_a_test(report):
    _, text = report
    assert not [line for line in comparison_lines(text).values() if "snntorch" in line]


# --------------------------------------------------------------------------------------------------------------
# Pareto front


def test_pareto_front_of_a_handcrafted_set():
    points = [(1.0, 90.0), (2.0, 95.0), (2.0, 94.0), (3.0, 95.0), (0.5, 80.0), (1.0, 90.0), (float("nan"), 99.0),
              (4.0, 96.0)]
    # (2, 94) is beaten by (2, 95) at the same cost, (3, 95) by (2, 95) at the same accuracy; the two (1, 90)
    # dominate neither each other; a point without a cost is never on the front.
    assert pareto_front(points) == [0, 1, 4, 5, 7]
    assert pareto_front([]) == []


def test_the_reports_pareto_table_lists_the_front(report):
    _, text = report
    rows = table_after(text, f"{BASE}: the Pareto front")
    synops = [(row[1], row[2]) for row in rows if row[0] == "SynOps / sample"]
    assert synops == [("T = 2", "`tssl`"), ("T = 3", "`tssl`"), ("T = 5", "`tssl`"), ("T = 5", "`tssl-surrogate`"),
                      ("T = 5", "`snntorch`")]
    energy = [(row[1], row[2]) for row in rows if row[0] == "energy / sample (J)"]
    assert energy == synops
    assert rows[0][3:] == ["real", "3", "2000", "95.20"]


def test_without_efficiency_measurements_one_line_and_no_figure(tmp_path: Path):
    output = build_report("synth", sweep_records(efficiency=False), tmp_path, suite_tasks=sweep_suite())
    text = output.index.read_text()
    assert "No efficiency measurements (SynOps) in the sweep's runs" in text
    assert not [name for name in output.figures if name.endswith("-efficiency.png")]


# --------------------------------------------------------------------------------------------------------------
# Figures and the caveat


def test_the_sweep_figures_are_written(report):
    output, text = report
    stem = f"{BASE}-sweep-steps"
    for name in (f"{stem}-accuracy.png", f"{stem}-latency.png", f"{stem}-efficiency.png"):
        assert name in output.figures and f"]({name})" in text
        assert (output.index.parent / name).read_bytes().startswith(PNG_MAGIC)


def test_the_caveat_is_in_the_header_and_on_every_figure(report):
    output, text = report
    assert f"**⚠ Caveat: {CAVEAT}**" in text.splitlines()[:4]
    assert output.figures and set(output.headings) == set(output.figures)
    for name, heading in output.headings.items():
        assert CAVEAT in " ".join(heading.split()), name


def test_the_writer_draws_the_caveat_in_the_figure_title(tmp_path: Path):
    writer = FigureWriter(tmp_path, caveat=CAVEAT)
    figure, _ = writer.new(4.0, 3.0)
    writer.save(figure, "x.png", "a title", [])
    assert CAVEAT in " ".join(figure.get_suptitle().split()) and "a title" in figure.get_suptitle()
    plain = FigureWriter(tmp_path)
    figure, _ = plain.new(4.0, 3.0)
    plain.save(figure, "y.png", "a title", [])
    assert figure.get_suptitle() == "a title"


def test_no_caveat_no_caveat_line(tmp_path: Path):
    text = build_report("synth", seeds_of([96.8, 96.9, 97.0]), tmp_path).index.read_text()
    assert "Caveat" not in text


def test_the_accuracy_figure_has_the_values_as_ticks_and_n_at_each_point(tmp_path: Path):
    writer = FigureWriter(tmp_path)
    axis_spec = SweepAxis("time steps T", [2.0, 3.0, 5.0, 10.0], ["2", "3", "5", "10"])
    series = [SweepSeries("tssl", [SweepValues(2.0, [90.0, 91.0, 92.0], [91.0, 92.0, 93.0]),
                                   SweepValues(10.0, [95.0], [95.5])])]
    figure = sweep_accuracy_figure(writer, axis_spec, series)
    final_axis, best_axis = figure.axes[:2]
    for axis in (final_axis, best_axis):
        assert [t.get_text() for t in axis.get_xticklabels()] == ["2", "3", "5", "10"]
        assert list(axis.get_xticks()) == [2.0, 3.0, 5.0, 10.0]
        assert sorted(t.get_text() for t in axis.texts) == ["n=1", "n=3"]
        assert len(axis.containers) == 1  # an error bar for n = 3, none for n = 1


def test_the_latency_figure_has_a_panel_per_value(tmp_path: Path):
    writer = FigureWriter(tmp_path)
    panels = [(f"trained at T = {t}", [LatencySeries("tssl", [[50.0 + 10 * s for s in range(t)]] * 2)])
              for t in (2, 3, 5)]
    figure = sweep_latency_figure(writer, panels, 10.0)
    visible = [axis for axis in figure.axes if axis.get_visible() and axis.get_title()]
    assert [axis.get_title() for axis in visible] == ["trained at T = 2", "trained at T = 3", "trained at T = 5"]
    assert all(any(line.get_gid() == "mean:tssl" for line in axis.lines) for axis in visible)


# --------------------------------------------------------------------------------------------------------------
# Flags, left-out groups and reports without sweeps


def test_reduced_epoch_runs_stay_labelled_in_the_sweep(tmp_path: Path):
    records = [record for value in STEPS for record in seeds_of(
        [95.0, 95.2], task=point(value), config={"steps": value}, overrides={"epochs": 2})]
    output = build_report("synth", records, tmp_path, suite_tasks=sweep_suite())
    text = output.index.read_text()
    caption = next(line for line in captions(text) if f"{BASE}: accuracy at each T" in line)
    assert REDUCED_EPOCHS_LABEL in caption
    rows = table_after(text, f"{BASE}: accuracy at each T")
    assert len(rows) == 3 and all(row[2] == "**reduced-epochs**" for row in rows)
    assert all("epochs=2 (suite: 3)" in row[1] for row in rows)
    assert REDUCED_EPOCHS_LABEL in output.figures[f"{BASE}-sweep-steps-accuracy.png"]


def test_an_earlier_configuration_is_left_out_and_named(tmp_path: Path):
    records = sweep_records() + seeds_of([80.0, 81.0], task=point(2), config={"steps": 2, "lr": 0.01})
    text = build_report("synth", records, tmp_path, suite_tasks=sweep_suite()).index.read_text()
    assert re.search(r"- Left out: digits-cnn-steps2 / `tssl` \(config `\w+`, n = 2\): an earlier configuration", text)
    rows = table_after(text, f"{BASE}: accuracy at each T")
    assert len(rows) == 9


def test_a_sweep_of_several_keys_is_named_and_not_analysed():
    tasks = {"a-1": {"sweep": {"task": "a", "values": {"steps": 2, "lr": 0.01}}},
             "b-2": {"sweep": {"task": "b", "values": {"steps": 2}}}, "c": {"sweep": None}, "d": {}}
    single, several = find_sweeps(tasks)
    assert [(s.task, s.key) for s in single] == [("b", "steps")] and several == {"a": ["lr", "steps"]}


def test_values_are_put_in_numeric_order():
    tasks = {f"t{v}": {"sweep": {"task": "t", "values": {"steps": v}}} for v in (10, 2, 5)}
    (sweep,), _ = find_sweeps(tasks)
    assert [value for value, _ in sweep.points] == [2, 5, 10]


def test_a_report_without_sweeps_has_no_sweeps_section(tmp_path: Path):
    records = sweep_records()
    plain = build_report("synth", records, tmp_path / "a", suite_tasks=sweep_suite(sweep=False))
    without = build_report("synth", records, tmp_path / "b")
    swept = build_report("synth", records, tmp_path / "c", suite_tasks=sweep_suite())
    for output in (plain, without):
        text = output.index.read_text()
        assert "Sweeps" not in text and headings(text)[-1] == "## 7. Failed runs"
        assert not [name for name in output.figures if "-sweep-" in name]
    swept_headings = headings(swept.index.read_text())
    assert swept_headings[-2:] == ["## 7. Sweeps", "## 8. Failed runs"]
    assert swept_headings[:-2] == headings(plain.index.read_text())[:-1]
