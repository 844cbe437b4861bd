"""Tests for the report generator (tssl/records/report.py).

Every record here is SYNTHETIC: made by tests/records.py to be valid under tssl/records/schema.py, with invented
accuracies, timings and provenance. None of these numbers come from a real run, and none may be quoted as
results. The statistics themselves are tested in tests/test_stats.py; here, what the report selects, says and marks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from records import PAPER, captions, current_config, seeds_of, suite_task, synthetic_record, table_after

from tssl.records import stats
from tssl.records.report import (
    DEFAULT_TOLERANCE,
    EARLIER_LABEL,
    GENERATED_LABEL,
    MODIFIED_LABEL,
    REDUCED_EPOCHS_LABEL,
    REDUCED_LABEL,
    SMOKE_LABEL,
    UNVERIFIED_LABEL,
    VERDICT_RULE,
    ReportError,
    build_report,
    load_records,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASK = "digits-cnn"
TSSL = "tssl (matched)"  # the verdict key's group label of a faithful tssl group


def rows_of(markdown: str, caption_part: str, method: str = "tssl") -> list[list[str]]:
    return [row for row in table_after(markdown, caption_part) if row[1] == f"`{method}`"]


def reproduced_case() -> list[dict]:
    # tssl: best 97.1, 97.2, 97.3 against the paper's 97.0 ± δ 0.5 (best): reproduced. Plus a baseline with n = 2.
    return seeds_of([96.8, 96.9, 97.0]) + seeds_of([95.0, 95.4], method="snntorch")


def verdict_of(output, task: str = TASK, label: str = TSSL) -> str:
    return output.verdicts[(task, label)]


def label_of(output, task: str, prefix: str) -> str:
    (label,) = [label for t, label in output.verdicts if t == task and label.startswith(prefix)]
    return label


# ------------------------------------------------------------------------------------------------------------
# Verdicts


def test_report_verdicts_and_rule_text(tmp_path: Path) -> None:
    records = [
        *seeds_of([96.7, 96.8, 96.9], task="a-within"),  # best 97.0 / 97.1 / 97.2: 90 % CI inside [96.5, 97.5]
        *seeds_of([90.0, 90.2], task="b-far"),
        synthetic_record("c-single", final=97.0),
        synthetic_record("d-nopaper", final=80.0, paper=None),
    ]
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert VERDICT_RULE in text
    assert verdict_of(output, "a-within").startswith("reproduced (n = 3")
    assert verdict_of(output, "b-far").startswith("not reproduced (n = 2")
    assert verdict_of(output, "c-single").startswith("inconclusive (n = 1")
    assert ("d-nopaper", TSSL) not in output.verdicts  # nothing to compare with
    assert re.search(r"\*\*d-nopaper\*\* — no paper number", text)
    # The default tolerance is stated when no suite definition gives one.
    assert f"tolerance δ = {DEFAULT_TOLERANCE:g} points (default)" in text
    rows = {row[0]: row for row in table_after(text, "against the paper's TSSL-BP")}
    assert set(rows) == {"a-within", "b-far", "c-single"}
    assert rows["a-within"][10].startswith("**reproduced**")
    assert rows["b-far"][10].startswith("**not reproduced**")
    assert rows["c-single"][10].startswith("**inconclusive**")


def test_baselines_get_no_verdict(tmp_path: Path) -> None:
    output = build_report("synth", reproduced_case(), tmp_path)
    text = output.index.read_text()
    assert set(output.verdicts) == {(TASK, TSSL)}
    snntorch_rows = [line for line in text.splitlines() if line.startswith("| ") and "`snntorch`" in line]
    assert snntorch_rows and not any("reproduced" in row or "inconclusive" in row for row in snntorch_rows)
    (group,) = rows_of(text, "every group of runs", "snntorch")
    assert group[7] == "95.20 ± 0.28"  # final mean ± std of (95.0, 95.4)


def test_method_comparison_rows_carry_a_welch_interval_and_p(tmp_path: Path) -> None:
    # Issue 13: "TSSL-BP is 0.6 points better than the surrogate" was prose; it is now a difference with its CI
    # and a Welch test (here n = 5 vs 3).
    tssl_finals, surrogate_finals = [89.3, 89.1, 89.6, 89.4, 89.2], [88.5, 88.9, 88.8]
    records = seeds_of(tssl_finals) + seeds_of(surrogate_finals, method="tssl-surrogate")
    text = build_report("synth", records, tmp_path).index.read_text()
    rows = {row[3]: row for row in table_after(text, "each method against `tssl`")}
    assert set(rows) == {"best", "final"}
    row = rows["final"]
    test = stats.welch(surrogate_finals, tssl_finals)
    assert row[:3] == [TASK, "`tssl-surrogate`", "`tssl`"] and row[4] == "5 / 3"
    assert row[5] == f"{test.difference:+.2f}" == "-0.59"
    assert row[6] == f"[{test.ci95[0]:.2f}, {test.ci95[1]:.2f}]"
    assert row[7] == f"{test.t:.2f} ({test.df:.1f})" and row[8] == f"{test.p_two_sided:.3g}"
    assert "feedc0d" in row[9]


def test_suite_tasks_override_paper_and_tolerance(tmp_path: Path) -> None:
    records = seeds_of([95.7, 95.8, 95.9])  # best 96.0, 96.1, 96.2
    suite_tasks = {
        TASK: suite_task(paper={"metric": "best", "mean": 96.5, "std": None, "best": None, "source": "suite source"},
                         tolerance=1.0, description="a synthetic task"),
        "never-run": suite_task("never-run", paper=None),
    }
    output = build_report("synth", records, tmp_path, suite_tasks=suite_tasks)
    text = output.index.read_text()
    assert verdict_of(output).startswith("reproduced")  # 96.1 within 96.5 ± 1.0
    assert "suite source" in text and "a synthetic task" in text
    assert "No records yet for: never-run" in text
    assert "(default)" not in text
    # With the records' paper (97.0) and the default δ = 0.5 it is not reproduced.
    assert not verdict_of(build_report("synth", records, tmp_path / "b")).startswith("reproduced")


def test_paper_with_best_only(tmp_path: Path) -> None:
    paper = {"metric": "best", "mean": None, "std": None, "best": 97.5, "source": "best only"}
    output = build_report("synth", seeds_of([97.0, 97.0, 97.0], paper=paper), tmp_path)
    assert output.verdicts == {}
    text = output.index.read_text()
    assert "(no mean given) (best test accuracy over epochs), best 97.50 (best only)" in text
    assert "No task has both a paper mean and a faithful `tssl` group: no verdict." in text


# ------------------------------------------------------------------------------------------------------------
# Like for like: the paper's metric, with the final-epoch numbers beside it


def test_the_verdict_uses_the_papers_metric_with_final_numbers_and_the_gap_beside_it(tmp_path: Path) -> None:
    # Issue 13: the authors' code reports each run's best epoch; the old verdict used our final epoch.
    finals, bests = [89.2, 89.4, 89.3], [89.8, 89.7, 89.75]
    records = [synthetic_record(seed=s, final=f, best=b) for s, (f, b) in enumerate(zip(finals, bests, strict=True))]
    paper = {"metric": "best", "mean": 89.75, "std": 0.03, "best": 89.8, "source": "SYNTHETIC"}
    output = build_report("synth", records, tmp_path / "best", suite_tasks={TASK: suite_task(paper=paper,
                                                                                               tolerance=0.3)})
    text = output.index.read_text()
    assert verdict_of(output) == str(stats.equivalence_verdict(bests, 89.75, 0.3))
    assert verdict_of(output).startswith("reproduced")
    (row,) = rows_of(text, "against the paper's TSSL-BP")
    assert row[2] == "best" and row[5] == "89.75 ± 0.05"
    assert row[12] == "89.30 ± 0.10 ([89.05, 89.55])"  # the final-epoch numbers, always beside it
    (group,) = rows_of(text, "every group of runs")
    assert group[7] == "89.30 ± 0.10" and group[9] == "89.75 ± 0.05"
    assert group[11] == "0.45 [0.30, 0.60]"  # best - final per run: mean [min, max]
    assert "best test accuracy over epochs" in text
    # The same records against a final-epoch paper number are judged on the final epoch.
    final_paper = {**paper, "metric": "final"}
    other = build_report("synth", records, tmp_path / "final",
                         suite_tasks={TASK: suite_task(paper=final_paper, tolerance=0.3)})
    assert verdict_of(other) == str(stats.equivalence_verdict(finals, 89.75, 0.3))
    assert not verdict_of(other).startswith("reproduced")


def test_runs_without_the_papers_metric_get_no_verdict_and_no_traceback(tmp_path: Path) -> None:
    # accuracy.best is optional in the schema; a paper that reports best cannot be compared with runs without it.
    records = seeds_of([96.8, 96.9, 97.0]) + seeds_of([95.0, 95.4], method="snntorch")
    for record in records:
        record["accuracy"]["best"] = None
    output = build_report("synth", records, tmp_path, suite_tasks={TASK: suite_task()})
    assert verdict_of(output) == "inconclusive (no verdict: no run records its best accuracy)"
    text = output.index.read_text()
    assert {row[3] for row in table_after(text, "each method against `tssl`")} == {"final"}


# ------------------------------------------------------------------------------------------------------------
# Never pool different configurations


def test_an_lr_edit_is_never_pooled(tmp_path: Path) -> None:
    # Issue 13: after a suite edit (lr) old and new runs were pooled: a 60 % and a 99 % cluster came out as
    # "79.50 ± 21.37 … reproduced". Now the old runs are an earlier configuration, shown apart, with no verdict.
    old = seeds_of([59.7, 60.0, 60.3])
    new = seeds_of([99.0, 99.0, 99.1], config={"lr": 0.01})
    paper = {**PAPER, "mean": 99.3}
    suite_tasks = {TASK: suite_task(paper=paper, lr=0.01)}
    output = build_report("synth", old + new, tmp_path, suite_tasks=suite_tasks)
    text = output.index.read_text()
    assert verdict_of(output) == str(stats.equivalence_verdict([99.3, 99.3, 99.4], 99.3, 0.5))
    assert verdict_of(output).startswith("reproduced (n = 3")
    earlier = label_of(output, TASK, "tssl (matched) [config ")
    old_config = old[0]["provenance"]["task_config_hash"].removeprefix("sha256:")[:8]
    assert earlier == f"tssl (matched) [config {old_config}]"
    assert "no verdict" in output.verdicts[(TASK, earlier)] and EARLIER_LABEL in output.verdicts[(TASK, earlier)]
    # Two groups, each with its own three seeds; no pooled mean anywhere.
    groups = {row[4]: row for row in rows_of(text, "every group of runs")}
    new_config = current_config(lr=0.01).removeprefix("sha256:")[:8]
    assert set(groups) == {f"`{old_config}`", f"`{new_config}`"}
    assert groups[f"`{old_config}`"][5] == "3" and groups[f"`{old_config}`"][7] == "60.00 ± 0.30"
    assert "earlier config" in groups[f"`{old_config}`"][3]
    assert groups[f"`{new_config}`"][5] == "3" and groups[f"`{new_config}`"][7].startswith("99.03")
    assert "79.5" not in text
    # The earlier configuration is named, with what changed.
    (apart,) = table_after(text, "runs shown apart from the current configuration")
    assert apart[2] == f"`{old_config}`" and apart[3] == "earlier suite file" and apart[4] == "3"
    assert "lr: 0.005 (now 0.01)" in apart[5]
    assert f"**⚠ {EARLIER_LABEL}" in text.split("## ", 1)[0]


def test_without_a_suite_file_the_latest_configuration_is_current(tmp_path: Path) -> None:
    old = seeds_of([59.7, 60.0, 60.3])
    new = [synthetic_record(seed=s, final=f, config={"lr": 0.01}, finished_at="2026-02-01T00:00:00Z")
           for s, f in enumerate([99.0, 99.0, 99.1])]
    output = build_report("synth", new + old, tmp_path)
    assert verdict_of(output).startswith("not reproduced (n = 3")  # best 99.33 against the records' paper, 97.0
    assert "79.5" not in output.index.read_text()
    assert "no verdict" in output.verdicts[(TASK, label_of(output, TASK, "tssl (matched) [config "))]


# ------------------------------------------------------------------------------------------------------------
# What the header states


def test_seeds_beyond_the_suite_file_are_stated(tmp_path: Path) -> None:
    records = seeds_of([96.8, 96.9, 97.0, 96.9, 97.0])  # seeds 0-4; the suite file lists 0, 1, 2
    text = build_report("synth", records, tmp_path, suite_tasks={TASK: suite_task(seeds=(0, 1, 2))}).index.read_text()
    assert (f"- {TASK} / `tssl`: seeds [3, 4] are beyond the suite file's [0, 1, 2] (added with `tssl run --seeds`); "
            "they count, n = 5") in text
    plain = build_report("synth", records[:3], tmp_path / "b", suite_tasks={TASK: suite_task()}).index.read_text()
    assert "beyond the suite file" not in plain


def test_dirty_runs_are_listed(tmp_path: Path) -> None:
    # Issue 13: seed 0 came from a dirty tree and nothing said so.
    records = [synthetic_record(seed=0, final=96.8, dirty=True), *seeds_of([96.9, 97.0], first_seed=1)]
    text = build_report("synth", records, tmp_path).index.read_text()
    assert f"**1 run(s) came from a tree with uncommitted changes** (git_dirty): `{records[0]['run_id']}`" in text
    assert "`feedc0defeed` (dirty)" in text
    (group,) = rows_of(text, "every group of runs")
    assert group[13] == "0"  # dirty seeds
    clean = build_report("synth", records[1:], tmp_path / "clean").index.read_text()
    assert "uncommitted changes" not in clean and "(dirty)" not in clean


def test_files_exist_and_pngs_are_valid(tmp_path: Path) -> None:
    from PIL import Image

    records = reproduced_case() + seeds_of([90.0, 90.5], task="other-task")
    index = write_report("synth", records, tmp_path / "out")
    assert index == tmp_path / "out" / "index.md"
    text = index.read_text()
    expected = {"accuracy.png", "throughput.png", "digits-cnn-latency.png", "digits-cnn-curves.png",
                "other-task-latency.png", "other-task-curves.png"}  # fmt: skip
    assert {p.name for p in index.parent.glob("*.png")} == expected
    for name in expected:
        data = (index.parent / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        with Image.open(index.parent / name) as image:
            image.verify()
        with Image.open(index.parent / name) as image:
            assert 400 <= image.width <= 3000 and 300 <= image.height <= 2400, (name, image.size)
        assert f"]({name})" in text  # referenced relatively
    assert "efficiency.png" not in text and "SynOps" not in text  # no efficiency data -> no such section
    for heading in ("## 1. Accuracy", "## 2. Earlier configurations", "## 3. Latency", "## 4. Training curves",
                    "## 5. Throughput", "## 6. Failed runs"):
        assert heading in text
    assert "feedc0de" in text and "torch 2.14.1" in text  # provenance
    assert "- Runs: 7 ok, 0 failed" in text
    assert "⚠" not in text  # all real, current, full runs: no banner, no marks


def test_report_is_deterministic_apart_from_timestamp(tmp_path: Path) -> None:
    records = reproduced_case() + seeds_of([60.0, 61.0], config={"lr": 0.02}) + [synthetic_record(seed=7,
                                                                                                 smoke=True)]
    first = write_report("synth", records, tmp_path / "one", suite_tasks={TASK: suite_task()})
    second = write_report("synth", list(reversed(records)), tmp_path / "two", suite_tasks={TASK: suite_task()})

    def strip(text: str) -> str:
        return re.sub(r"- Generated: .*", "", text)

    assert strip(first.read_text()) == strip(second.read_text())
    pngs = sorted(first.parent.glob("*.png"))
    assert pngs
    for png in pngs:
        assert png.read_bytes() == (second.parent / png.name).read_bytes(), png.name


# ------------------------------------------------------------------------------------------------------------
# Smoke / generated / reduced / unverified / earlier: marked everywhere, never given a verdict


def test_smoke_and_generated_marked_everywhere(tmp_path: Path) -> None:
    records = seeds_of([97.0, 97.0, 97.0], smoke=True, kind="generated")
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    head = text.split("## ", 1)[0]
    assert f"**⚠ {SMOKE_LABEL}.**" in head and f"**⚠ {GENERATED_LABEL}.**" in head
    caps = captions(text)
    assert len([c for c in caps if c.startswith("**Table")]) == 2  # every group, throughput
    assert len([c for c in caps if c.startswith("*Figure")]) == 4  # accuracy, latency, curves, throughput
    for caption in caps:
        assert SMOKE_LABEL in caption and GENERATED_LABEL in caption, caption
    assert len(output.figures) == 4
    for name, title in output.figures.items():
        assert SMOKE_LABEL in title and GENERATED_LABEL in title, name
    # A smoke run of the current settings is a smoke run, not an earlier configuration.
    assert EARLIER_LABEL not in text
    # Even with the numbers on target, a smoke run on generated data is never called reproduced.
    verdict = verdict_of(output, label="tssl (matched) [SMOKE] [GENERATED]")
    assert verdict.startswith("inconclusive (no verdict: ") and SMOKE_LABEL in verdict


def test_a_smoke_run_of_the_suite_file_settings_is_not_an_earlier_configuration(tmp_path: Path) -> None:
    records = [*seeds_of([97.0, 97.1, 97.2]), synthetic_record(seed=5, final=10.0, smoke=True)]
    text = build_report("synth", records, tmp_path, suite_tasks={TASK: suite_task()}).index.read_text()
    assert EARLIER_LABEL not in text and "earlier suite file" not in text
    assert f"**⚠ {SMOKE_LABEL}.**" in text.split("## ", 1)[0]


def test_reduced_epoch_runs_are_labelled_reduced_everywhere(tmp_path: Path) -> None:
    records = seeds_of([97.0, 97.1, 97.2], epochs=100, overrides={"epochs": 3})  # on target, but 3 of 100 epochs
    output = build_report("synth", records, tmp_path, suite_tasks={TASK: suite_task(epochs=100)})
    text = output.index.read_text()
    assert f"**⚠ {REDUCED_EPOCHS_LABEL}.**" in text.split("## ", 1)[0] and "epochs=3 (suite: 100)" in text
    assert MODIFIED_LABEL not in text and EARLIER_LABEL not in text
    for caption in captions(text):
        assert REDUCED_EPOCHS_LABEL in caption, caption
    for name, title in output.figures.items():
        assert REDUCED_EPOCHS_LABEL in title, name
    verdict = verdict_of(output, label=label_of(output, TASK, "tssl (matched) [REDUCED-EPOCHS]"))
    assert verdict.startswith("inconclusive (no verdict")
    assert "No task has both a paper mean and a faithful `tssl` group" in text


def test_marks_only_where_affected(tmp_path: Path) -> None:
    records = [*seeds_of([97.0, 97.0, 97.0], task="clean"), *seeds_of([97.0, 97.0, 97.0], task="subset",
                                                                     kind="reduced")]
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert f"**⚠ {REDUCED_LABEL}.**" in text.split("## ", 1)[0]
    assert SMOKE_LABEL not in text and GENERATED_LABEL not in text
    assert REDUCED_LABEL in output.figures["subset-latency.png"]
    assert REDUCED_LABEL in output.figures["subset-curves.png"]
    assert REDUCED_LABEL not in output.figures["clean-latency.png"]
    assert REDUCED_LABEL not in output.figures["clean-curves.png"]
    assert REDUCED_LABEL in output.figures["accuracy.png"]  # holds both tasks
    assert verdict_of(output, "clean").startswith("reproduced")
    assert verdict_of(output, "subset", "tssl (matched) [REDUCED]").startswith("inconclusive (no verdict")


def test_unverified_data_is_flagged_and_gets_no_verdict(tmp_path: Path) -> None:
    # Issue 13: a data file whose SHA-256 differs from the published one still counted as real data.
    records = seeds_of([96.8, 96.9, 97.0], kind="unverified")
    output = build_report("synth", records, tmp_path, suite_tasks={TASK: suite_task()})
    text = output.index.read_text()
    assert f"**⚠ {UNVERIFIED_LABEL}.**" in text.split("## ", 1)[0]
    verdict = verdict_of(output, label="tssl (matched) [UNVERIFIED]")
    assert verdict.startswith("inconclusive (no verdict") and UNVERIFIED_LABEL in verdict
    assert "No task has both a paper mean and a faithful `tssl` group" in text
    (group,) = rows_of(text, "every group of runs")
    assert group[3] == "**unverified**"
    for name, title in output.figures.items():
        assert UNVERIFIED_LABEL in title, name
    # Beside verified real runs (other seeds), only those get the verdict.
    mixed = build_report("synth", records + seeds_of([96.8, 96.9, 97.0], first_seed=3), tmp_path / "mixed",
                         suite_tasks={TASK: suite_task()})
    assert verdict_of(mixed).startswith("reproduced (n = 3")
    assert verdict_of(mixed, label="tssl (matched) [UNVERIFIED]").startswith("inconclusive (no verdict")


def test_smoke_runs_are_not_averaged_with_full_runs(tmp_path: Path) -> None:
    records = [*seeds_of([96.8, 96.9, 97.0]), synthetic_record(seed=3, final=10.0, smoke=True)]
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert verdict_of(output).startswith("reproduced (n = 3")
    finals = {row[3]: row[7] for row in rows_of(text, "every group of runs")}
    assert finals == {"real": "96.90 ± 0.10", "real, **smoke**": "10.00 (n = 1)"}


# ------------------------------------------------------------------------------------------------------------
# Failed and superseded runs


def test_failed_runs_listed_and_excluded(tmp_path: Path) -> None:
    records = [
        *seeds_of([97.0, 97.1, 97.2]),
        synthetic_record(seed=3, status="failed", error="RuntimeError: out of memory while allocating spikes"),
        synthetic_record(seed=4, status="failed", failure="diverged",
                         error="diverged at epoch 2: non-finite training loss (nan)"),
    ]
    text = write_report("synth", records, tmp_path).read_text()
    assert "- Runs: 3 ok, 2 failed" in text
    failed = {row[3]: row for row in table_after(text, "failed runs")}
    assert failed["3"][4] == records[3]["run_id"].replace("_", "\\_") and failed["3"][5] == "error"
    assert failed["3"][6] == "RuntimeError: out of memory while allocating spikes"
    assert failed["4"][5] == "diverged" and failed["4"][6].startswith("diverged at epoch 2")
    (group,) = rows_of(text, "every group of runs")
    assert group[5] == "3" and group[7] == "97.10 ± 0.10"  # n = 3: the failed seeds are not counted


def test_rerun_supersedes_failed_record(tmp_path: Path) -> None:
    failed = synthetic_record(seed=0, status="failed", error="killed")
    records = [failed, synthetic_record(seed=0, final=97.0), synthetic_record(seed=1, final=97.0)]
    text = write_report("synth", records, tmp_path).read_text()
    assert "- Runs: 2 ok, 0 failed (2 standing records; 1 superseded" in text
    # A failed --force rerun does not hide the earlier successful record of the same run (as results.latest_ok).
    records = [synthetic_record(seed=0, final=97.0), synthetic_record(seed=0, status="failed", error="killed")]
    assert "- Runs: 1 ok, 0 failed (1 standing records; 1 superseded" in write_report(
        "synth", records, tmp_path / "b").read_text()


def test_a_rerun_names_the_record_it_replaced(tmp_path: Path) -> None:
    records = [synthetic_record(seed=0, final=96.4), synthetic_record(seed=0, final=97.3)]
    text = write_report("synth", records, tmp_path).read_text()
    line = next(line for line in text.splitlines() if line.startswith("- Superseded:"))
    assert records[0]["run_id"] in line and "final 96.40 %" in line and "commit `feedc0d`" in line
    (group,) = rows_of(text, "every group of runs")
    assert group[7] == "97.30 (n = 1)"  # the later record is the one counted


# ------------------------------------------------------------------------------------------------------------
# Efficiency (present only when the records carry it)


def test_efficiency_shown_when_present(tmp_path: Path) -> None:
    efficiency = {"synops_total": 1.5e6, "energy_joules": 2.0e-6, "firing_rate": 0.1}
    records = seeds_of([97.0, 97.2], efficiency=efficiency)
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert "## 6. Efficiency" in text and "## 7. Failed runs" in text
    assert "SynOps / sample" in text and "1.5e+06" in text and "2e-06" in text
    assert "efficiency.png" in output.figures
    assert (tmp_path / "efficiency.png").read_bytes().startswith(PNG_MAGIC)


# ------------------------------------------------------------------------------------------------------------
# Bad input


def test_load_records_reads_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "synth.jsonl"
    records = reproduced_case()
    path.write_text("\n".join(json.dumps(r) for r in records[:2]) + "\n\n  \n" + json.dumps(records[2]) + "\n")
    assert load_records(path) == records[:3]


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "synth.jsonl"
    path.write_text(json.dumps(synthetic_record()) + "\n\n" + '{"task": "x", "method": \n' + json.dumps(
        synthetic_record(seed=1)) + "\n")
    with pytest.raises(ReportError, match=r"synth\.jsonl, line 3: not valid JSON .*to set it aside"):
        load_records(path)
    path.write_text(json.dumps(synthetic_record()) + "\n" + json.dumps({"task": "x", "method": "tssl"}) + "\n")
    with pytest.raises(ReportError, match=r"synth\.jsonl, line 2: not a valid run record"):
        load_records(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ReportError, match=r"line 1: .*JSON object"):
        load_records(path)
    bench = {"schema": 1, "kind": "bench", "run_id": "bench.x", "status": "ok"}
    path.write_text(json.dumps(bench) + "\n")
    with pytest.raises(ReportError, match=r"line 1: not a valid bench record"):
        load_records(path)


def test_invalid_records_given_directly_are_refused(tmp_path: Path) -> None:
    bad = synthetic_record(seed=1)
    bad["provenance"]["config"]["lr"] = 0.5  # no longer the config its hash names
    with pytest.raises(ReportError, match=r"record 2 of suite 'synth' is not a valid run record \(provenance"):
        build_report("synth", [synthetic_record(), bad], tmp_path)


def test_no_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ReportError, match=r"empty\.jsonl: the results store holds no records"):
        load_records(empty)
    with pytest.raises(ReportError, match=r"missing\.jsonl: no such results store"):
        load_records(tmp_path / "missing.jsonl")
    with pytest.raises(ReportError, match="no records for suite 'synth'"):
        write_report("synth", [], tmp_path / "out")
    with pytest.raises(ReportError, match="belong to 'other'"):
        write_report("synth", [synthetic_record(suite="other")], tmp_path / "out")
    assert issubclass(ReportError, ValueError)


# ------------------------------------------------------------------------------------------------------------
# The bench timing table


def _bench_record(method: str, step_seconds: float, architecture: str = "16C3-P2-64", batch: int = 8) -> dict:
    """A SYNTHETIC tssl bench record (invented numbers, for tests only)."""
    return {
        "schema": 1, "kind": "bench", "bench_id": "synthetic", "run_id": f"bench.synthetic.{method}",
        "status": "ok", "method": method, "batch": batch, "steps": 5, "precision": "fp32", "device": "cpu",
        "threads": 2, "net": {"name": "synthetic", "architecture": architecture, "padding": 1},
        "step_seconds": {"median": step_seconds}, "samples_per_second": batch / step_seconds,
        "time_ratio_to_tssl": step_seconds / 0.1, "time_ratio_to_floor": step_seconds / 0.08,
        "saved_activation_bytes_per_sample": 2048.0, "provenance": {"hardware": "SYNTHETIC"},
    }  # fmt: skip


def test_bench_timing_of_each_task_network_and_its_projection(tmp_path: Path) -> None:
    records = reproduced_case()  # timing: 1000 samples/s x 1.8 s over 3 epochs = 600 samples per epoch
    tasks = {TASK: suite_task(batch_size=8, epochs=50)}
    bench = [
        _bench_record("tssl", 0.1), _bench_record("floor", 0.08),
        _bench_record("tssl", 0.1, architecture="400-400"),  # another network: not this task's
    ]  # fmt: skip
    text = build_report("synth", records, tmp_path, suite_tasks=tasks, bench_records=bench).index.read_text()
    rows = table_after(text, "measured alone by `tssl bench`")
    assert [row[1] for row in rows] == ["`tssl`", "`floor`"] and all(row[0] == TASK for row in rows)
    # 8 samples per 0.1 s step = 80 samples/s; 600 samples per epoch -> 7.5 s; 50 epochs -> 0.10 h.
    assert rows[0][2:8] == ["cpu (2)", "fp32", "100.0", "80", "1.00", "1.25"]
    assert rows[0][8:11] == ["2", "7.5", "0.10"]
    assert "The projections are projections" in text


def test_no_bench_records_no_bench_table(tmp_path: Path) -> None:
    text = build_report("synth", reproduced_case(), tmp_path).index.read_text()
    assert "measured alone by `tssl bench`" not in text
