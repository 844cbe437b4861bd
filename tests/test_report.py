"""Tests for the report generator (tssl/report.py).

Every record here is SYNTHETIC: made up by ``synthetic_record`` below to follow docs/results-format.md, with
invented accuracies and timings. None of these numbers come from a real run, and none may be quoted as results.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tssl.report import (
    DEFAULT_TOLERANCE,
    GENERATED_LABEL,
    REDUCED_LABEL,
    SMOKE_LABEL,
    VERDICT_RULE,
    ReportError,
    build_report,
    load_records,
    t_quantile,
    verdict,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PAPER = {"mean": 97.0, "std": 0.1, "best": 97.2, "source": "SYNTHETIC paper table (test fixture)"}


def synthetic_record(
    task: str = "digits-cnn",
    method: str = "tssl",
    seed: int = 0,
    final: float = 97.0,
    *,
    suite: str = "synth",
    recipe: str = "matched",
    status: str = "ok",
    error: str | None = None,
    smoke: bool = False,
    kind: str = "real",
    steps: int = 4,
    epochs: int = 3,
    paper: dict | None = PAPER,
    efficiency: dict | None = None,
) -> dict:
    """A SYNTHETIC run record in the format of docs/results-format.md (invented numbers, for tests only)."""
    run_id = f"{task}.{method}.s{seed}.{'smoke' if smoke else kind}{recipe[:3]}"
    record = {
        "schema": 1,
        "suite": suite,
        "task": task,
        "method": method,
        "recipe": recipe,
        "seed": seed,
        "run_id": run_id,
        "status": status,
        "error": error,
        "smoke": smoke,
        "limit_batches": 2 if smoke else None,
        "data": {"name": "synthetic-digits", "kind": kind, "source": "SYNTHETIC test fixture",
                 "fingerprint": "sha256:0000synthetic"},
        "steps": steps,
        "epochs": epochs,
        "paper": paper,
        "provenance": {
            "git_sha": "feedc0de" * 5, "git_dirty": False,
            "packages": {"tssl-bench": "0.1.0", "torch": "2.14.1"},
            "implementation": {"engine": "tssl", "grad_rule": "tsslbp", "kernel": "torch"},
            "device": "cpu", "hardware": "synthetic", "python": "3.11.7", "config": {},
            "config_hash": "sha256:synthetic",
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z",
        },
    }  # fmt: skip
    if status == "failed":
        record.update(accuracy=None, history=[], latency=[], timing=None)
        return record
    record["accuracy"] = {
        "final": final, "best": final + 0.3, "best_epoch": epochs - 1,
        "validation_selected": final - 0.1, "validation_selected_epoch": epochs - 1,
    }  # fmt: skip
    record["history"] = [
        {"epoch": e, "train_loss": 1.0 / e, "train_accuracy": final - 10 / e, "validation_accuracy": final - 9 / e,
         "test_accuracy": final - 8 * (epochs - e) / epochs, "seconds": 0.5 + 0.1 * e}
        for e in range(1, epochs + 1)
    ]  # fmt: skip
    record["latency"] = [final * t / steps for t in range(1, steps + 1)]
    record["timing"] = {"train_seconds": 1.8, "samples_per_second": 1000.0 + seed,
                        "peak_memory_bytes": 200 * 2**20, "memory_kind": "peak_rss"}  # fmt: skip
    if efficiency is not None:
        record["efficiency"] = efficiency
    return record


def captions(markdown: str) -> list[str]:
    """The table captions (**Table n — ...**) and figure captions (*Figure n — ...*) of a report."""
    return [line for line in markdown.splitlines() if line.startswith(("**Table ", "*Figure "))]


def reproduced_case() -> list[dict]:
    # tssl: n = 3, mean 97.1 vs paper 97.0, within δ = 0.5 -> reproduced. Plus a baseline with n = 2.
    return [synthetic_record(final=f, seed=s) for s, f in enumerate([97.0, 97.1, 97.2])] + [
        synthetic_record(method="snntorch", final=f, seed=s) for s, f in enumerate([95.0, 95.4])
    ]


# ------------------------------------------------------------------------------------------------------------
# The verdict rule


def test_t_table() -> None:
    assert t_quantile(1) == pytest.approx(12.706)
    assert t_quantile(2) == pytest.approx(4.303)
    assert t_quantile(30) == pytest.approx(2.042)
    assert t_quantile(31) == t_quantile(1000) == 1.96


def test_verdict_rule_cases() -> None:
    assert verdict([97.0, 97.1, 97.2], 97.0, 0.5).label == "reproduced"
    assert verdict([96.6, 96.5, 96.5], 97.0, 0.5).label == "reproduced"  # |μ - P| = 0.467 ≤ 0.5
    # n = 2, far below: CI = 90.1 ± 12.706 * 0.1414 / √2 = [88.83, 91.37], all below [96.5, 97.5].
    far = verdict([90.0, 90.2], 97.0, 0.5)
    assert far.label == "not reproduced"
    assert far.ci is not None and far.ci[1] < 96.5
    one = verdict([97.0], 97.0, 0.5)
    assert one.label == "inconclusive" and "n = 1" in one.reason and one.ci is None
    # n = 2 within tolerance: never "reproduced" (needs n ≥ 3).
    assert verdict([97.0, 97.1], 97.0, 0.5).label == "inconclusive"
    # n = 3 outside the band but a wide CI that overlaps it.
    wide = verdict([93.0, 97.0, 95.0], 97.0, 0.5)
    assert wide.label == "inconclusive" and "overlaps" in wide.reason
    # n = 3 and the CI entirely above the band also counts as not reproduced.
    assert verdict([99.0, 99.1, 99.2], 97.0, 0.5).label == "not reproduced"
    # Float slack: 95.2 - 94.7 is 0.5000000000000057 and still counts as within 0.5.
    assert verdict([95.2, 95.2, 95.2], 94.7, 0.5).label == "reproduced"


def test_report_verdicts_and_rule_text(tmp_path: Path) -> None:
    records = [
        *(synthetic_record("a-within", seed=s, final=f) for s, f in enumerate([96.8, 97.0, 97.3])),
        *(synthetic_record("b-far", seed=s, final=f) for s, f in enumerate([90.0, 90.2])),
        synthetic_record("c-single", final=97.0),
        synthetic_record("d-nopaper", final=80.0, paper=None),
    ]
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert VERDICT_RULE in text
    variants = {task: text for (task, _), text in output.verdicts.items()}
    assert variants["a-within"].startswith("reproduced")
    assert variants["b-far"].startswith("not reproduced")
    assert variants["c-single"].startswith("inconclusive") and "n = 1" in variants["c-single"]
    assert "no paper number" in variants["d-nopaper"]
    # The default tolerance is stated when no suite definition gives one.
    assert f"δ = {DEFAULT_TOLERANCE:g} percentage points (the default)" in text
    accuracy_table = text.split("## 2.", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in accuracy_table.splitlines() if line.startswith("| ")}
    assert "**reproduced**" in rows["a-within"]
    assert "**not reproduced**" in rows["b-far"]
    assert "**inconclusive**" in rows["c-single"]


def test_baselines_get_no_verdict_and_a_vs_paper_column(tmp_path: Path) -> None:
    output = build_report("synth", reproduced_case(), tmp_path)
    text = output.index.read_text()
    assert set(output.verdicts) == {("digits-cnn", "tssl (matched)")}
    assert "Δ mean vs paper TSSL-BP" in text
    snntorch_rows = [line for line in text.splitlines() if line.startswith("| ") and "`snntorch`" in line]
    assert len(snntorch_rows) == 2  # accuracy table and throughput table
    assert not any("reproduced" in row or "inconclusive" in row for row in snntorch_rows)
    # snntorch: mean 95.2 vs paper 97.0 -> Δ -1.80, std of (95.0, 95.4) = 0.28.
    assert "95.20 ± 0.28" in snntorch_rows[0] and "-1.80" in snntorch_rows[0]


def test_suite_tasks_override_paper_and_tolerance(tmp_path: Path) -> None:
    records = [synthetic_record(seed=s, final=f) for s, f in enumerate([96.0, 96.1, 96.2])]  # mean 96.1
    suite_tasks = {
        "digits-cnn": {"paper": {"mean": 96.5, "std": None, "best": None, "source": "suite source"},
                       "tolerance": 1.0, "description": "a synthetic task"},
        "never-run": {"paper": None, "tolerance": 0.5, "description": "no records"},
    }  # fmt: skip
    output = build_report("synth", records, tmp_path, suite_tasks=suite_tasks)
    text = output.index.read_text()
    assert output.verdicts[("digits-cnn", "tssl (matched)")].startswith("reproduced")  # |96.1 - 96.5| ≤ 1.0
    assert "suite source" in text and "a synthetic task" in text
    assert "No records yet for: never-run" in text
    assert "(the default)" not in text
    # With the records' paper (97.0) and the default δ = 0.5 it would not be reproduced.
    assert not build_report("synth", records, tmp_path / "b").verdicts[("digits-cnn", "tssl (matched)")].startswith(
        "reproduced"
    )


# ------------------------------------------------------------------------------------------------------------
# Files and figures


def test_files_exist_and_pngs_are_valid(tmp_path: Path) -> None:
    from PIL import Image

    records = reproduced_case() + [synthetic_record("other-task", final=90.0, seed=s) for s in range(2)]
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
            assert 400 <= image.width <= 2400 and 300 <= image.height <= 1600
        assert f"]({name})" in text  # referenced relatively
    assert "efficiency.png" not in text and "SynOps" not in text  # no efficiency data -> no such columns
    for heading in ("## 1. Accuracy", "## 2. Latency", "## 3. Training curves", "## 4. Throughput", "Failed runs"):
        assert heading in text
    assert "feedc0de" in text and "torch 2.14.1" in text  # provenance
    assert "- Runs: 7 ok, 0 failed" in text
    assert "⚠" not in text  # all real, no smoke: no banner, no marks


def test_report_is_deterministic_apart_from_timestamp(tmp_path: Path) -> None:
    records = reproduced_case()
    first = write_report("synth", records, tmp_path / "one")
    second = write_report("synth", list(reversed(records)), tmp_path / "two")

    def strip(text: str) -> str:
        return re.sub(r"- Generated: .*", "", text)

    assert strip(first.read_text()) == strip(second.read_text())
    for png in first.parent.glob("*.png"):
        assert png.read_bytes() == (second.parent / png.name).read_bytes(), png.name


# ------------------------------------------------------------------------------------------------------------
# Smoke / generated / reduced marking


def test_smoke_and_generated_marked_everywhere(tmp_path: Path) -> None:
    records = [synthetic_record(seed=s, final=97.0, smoke=True, kind="generated") for s in range(3)]
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    head = text.split("## ", 1)[0]
    assert f"**⚠ {SMOKE_LABEL}.**" in head and f"**⚠ {GENERATED_LABEL}.**" in head
    caps = captions(text)
    assert len([c for c in caps if c.startswith("**Table")]) == 2  # accuracy, throughput
    assert len([c for c in caps if c.startswith("*Figure")]) == 4  # accuracy, latency, curves, throughput
    for caption in caps:
        assert SMOKE_LABEL in caption and GENERATED_LABEL in caption, caption
    assert len(output.figures) == 4
    for name, title in output.figures.items():
        assert SMOKE_LABEL in title and GENERATED_LABEL in title, name
    # Even with the numbers on target, a smoke run on generated data is never called reproduced.
    assert output.verdicts[("digits-cnn", "tssl (matched) [SMOKE] [GENERATED]")].startswith("inconclusive")


def test_reduced_epoch_runs_are_labelled_reduced_everywhere(tmp_path: Path) -> None:
    from tssl.report import MODIFIED_LABEL, REDUCED_EPOCHS_LABEL

    records = []
    for seed, final in enumerate([97.0, 97.1, 97.2]):  # on target, but 3 of 100 epochs
        record = synthetic_record(seed=seed, final=final)
        record["deviations"] = {"epochs": {"suite": 100, "run": 3}}
        records.append(record)
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert f"**⚠ {REDUCED_EPOCHS_LABEL}.**" in text.split("## ", 1)[0] and "epochs=3 (suite: 100)" in text
    assert MODIFIED_LABEL not in text
    for caption in captions(text):
        assert REDUCED_EPOCHS_LABEL in caption, caption
    for name, title in output.figures.items():
        assert REDUCED_EPOCHS_LABEL in title, name
    assert output.verdicts[("digits-cnn", "tssl (matched) [REDUCED-EPOCHS]")].startswith("inconclusive")


def test_marks_only_where_affected(tmp_path: Path) -> None:
    records = [
        *(synthetic_record("clean", seed=s, final=97.0) for s in range(3)),
        *(synthetic_record("subset", seed=s, final=97.0, kind="reduced") for s in range(3)),
    ]
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert f"**⚠ {REDUCED_LABEL}.**" in text.split("## ", 1)[0]
    assert SMOKE_LABEL not in text and GENERATED_LABEL not in text
    assert REDUCED_LABEL in output.figures["subset-latency.png"]
    assert REDUCED_LABEL in output.figures["subset-curves.png"]
    assert REDUCED_LABEL not in output.figures["clean-latency.png"]
    assert REDUCED_LABEL not in output.figures["clean-curves.png"]
    assert REDUCED_LABEL in output.figures["accuracy.png"]  # holds both tasks
    assert output.verdicts[("clean", "tssl (matched)")].startswith("reproduced")
    assert output.verdicts[("subset", "tssl (matched) [REDUCED]")].startswith("inconclusive")


def test_smoke_runs_are_not_averaged_with_full_runs(tmp_path: Path) -> None:
    records = [synthetic_record(seed=s, final=97.0) for s in range(3)] + [synthetic_record(final=10.0, smoke=True)]
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert output.verdicts[("digits-cnn", "tssl (matched)")].startswith("reproduced")
    assert "97.00 ± 0.00" in text and "10.00 ± —" in text


# ------------------------------------------------------------------------------------------------------------
# Failed runs


def test_failed_runs_listed_and_excluded(tmp_path: Path) -> None:
    records = [
        *(synthetic_record(seed=s, final=f) for s, f in enumerate([97.0, 97.1, 97.2])),
        synthetic_record(seed=3, status="failed", error="RuntimeError: out of memory while allocating spikes"),
    ]
    text = write_report("synth", records, tmp_path).read_text()
    assert "- Runs: 3 ok, 1 failed" in text
    failed_section = text.split("Failed runs", 1)[1]
    assert "RuntimeError: out of memory while allocating spikes" in failed_section
    assert "digits-cnn.tssl.s3" in failed_section
    accuracy_row = next(line for line in text.splitlines() if line.startswith("| digits-cnn | `tssl`"))
    assert "| 3 | 97.10 ± 0.10 |" in accuracy_row  # n = 3: the failed seed is not counted


def test_rerun_supersedes_failed_record(tmp_path: Path) -> None:
    failed = synthetic_record(seed=0, status="failed", error="killed")
    records = [failed, synthetic_record(seed=0, final=97.0), synthetic_record(seed=1, final=97.0)]
    text = write_report("synth", records, tmp_path).read_text()
    assert "- Runs: 2 ok, 0 failed (2 records; 1 superseded" in text
    # A failed --force rerun does not hide the earlier successful record of the same run (as results.latest_ok).
    records = [synthetic_record(seed=0, final=97.0), synthetic_record(seed=0, status="failed", error="killed")]
    assert "- Runs: 1 ok, 0 failed (1 records; 1 superseded" in write_report("synth", records, tmp_path).read_text()


def test_a_rerun_names_the_record_it_replaced(tmp_path: Path) -> None:
    records = [synthetic_record(seed=0, final=96.4), synthetic_record(seed=0, final=97.3)]
    text = write_report("synth", records, tmp_path).read_text()
    line = next(line for line in text.splitlines() if line.startswith("- Superseded:"))
    assert "digits-cnn.tssl.s0" in line and "final 96.40 %" in line and "commit `feedc0d`" in line
    row = next(line for line in text.splitlines() if line.startswith("| digits-cnn | `tssl`"))
    assert "97.30" in row and "96.40" not in row  # the later record is the one counted


def test_paper_with_best_only(tmp_path: Path) -> None:
    paper = {"mean": None, "std": None, "best": 97.5, "source": "best only"}
    records = [synthetic_record(seed=s, final=97.0, paper=paper) for s in range(3)]
    output = build_report("synth", records, tmp_path)
    assert output.verdicts[("digits-cnn", "tssl (matched)")] == "— (the paper gives no mean)"
    assert "(no mean given), best 97.50 (best only)" in output.index.read_text()


# ------------------------------------------------------------------------------------------------------------
# Efficiency (present only when the records carry it)


def test_efficiency_shown_when_present(tmp_path: Path) -> None:
    efficiency = {"synops_total": 1.5e6, "energy_joules": 2.0e-6, "firing_rates": {"layer1": 0.1}}
    records = [synthetic_record(seed=s, final=97.0, efficiency=efficiency) for s in range(2)]
    output = build_report("synth", records, tmp_path)
    text = output.index.read_text()
    assert "## 5. Efficiency" in text and "## 6. Failed runs" in text
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
    path.write_text(json.dumps(synthetic_record()) + "\n\n" + '{"task": "x", "method": \n')
    with pytest.raises(ReportError, match=r"synth\.jsonl, line 3: not valid JSON"):
        load_records(path)
    path.write_text(json.dumps(synthetic_record()) + "\n" + json.dumps({"task": "x", "method": "tssl"}) + "\n")
    with pytest.raises(ReportError, match=r"synth\.jsonl, line 2: not a valid run record .*status"):
        load_records(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ReportError, match=r"line 1: .*JSON object"):
        load_records(path)


def test_no_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ReportError, match=r"empty\.jsonl: the results store holds no records"):
        load_records(empty)
    with pytest.raises(ReportError, match=r"missing\.jsonl: no such results store"):
        load_records(tmp_path / "missing.jsonl")
    with pytest.raises(ReportError, match="no records for suite 'synth'"):
        write_report("synth", [], tmp_path / "out")
    assert issubclass(ReportError, ValueError)


def _bench_record(method: str, step_seconds: float, architecture: str = "16C3-P2-64", batch: int = 8) -> dict:
    """A SYNTHETIC tssl bench record (invented numbers, for tests only)."""
    return {
        "schema": 1, "kind": "bench", "bench_id": "synthetic", "run_id": f"bench.synthetic.{method}",
        "status": "ok", "method": method, "batch": batch, "steps": 4, "precision": "fp32", "device": "cpu",
        "threads": 2, "net": {"name": "synthetic", "architecture": architecture, "padding": 0},
        "step_seconds": {"median": step_seconds}, "samples_per_second": batch / step_seconds,
        "time_ratio_to_tssl": step_seconds / 0.1, "time_ratio_to_floor": step_seconds / 0.08,
        "saved_activation_bytes_per_sample": 2048.0,
    }  # fmt: skip


def test_bench_timing_of_each_task_network_and_its_projection(tmp_path: Path) -> None:
    records = reproduced_case()  # digits-cnn: timing gives 1000 samples/s x 1.8 s over 3 epochs = 600 / epoch
    config = {"architecture": "16C3-P2-64", "padding": 0, "batch_size": 8, "steps": 4, "epochs": 50}
    tasks = {"digits-cnn": {"paper": PAPER, "tolerance": 0.5, "description": "", "run_config": config}}
    bench = [
        _bench_record("tssl", 0.1), _bench_record("floor", 0.08),
        _bench_record("tssl", 0.1, architecture="400-400"),  # another network: not this task's
    ]  # fmt: skip
    text = build_report("synth", records, tmp_path, suite_tasks=tasks, bench_records=bench).index.read_text()
    caption = next(c for c in captions(text) if "measured alone by `tssl bench`" in c)
    rows = [line for line in text.split(caption, 1)[1].splitlines() if line.startswith("| digits-cnn")]
    assert len(rows) == 2 and "`tssl`" in rows[0] and "`floor`" in rows[1]
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    # 8 samples per 0.1 s step = 80 samples/s; 600 samples per epoch -> 7.5 s; 50 epochs -> 0.10 h.
    assert cells[4:7] == ["100.0", "80", "1.00"] and cells[8:11] == ["2", "7.5", "0.10"]


def test_no_bench_records_no_bench_table(tmp_path: Path) -> None:
    text = build_report("synth", reproduced_case(), tmp_path).index.read_text()
    assert "measured alone by `tssl bench`" not in text
