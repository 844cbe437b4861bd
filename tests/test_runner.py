"""The runner: records, skipping finished runs, resuming after kill -9, concurrent appends, the check gate."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tssl.harness.runner import RunOptions, run_suite
from tssl.harness.suites import load_suite
from tssl.records.check import TaskSpec, make_reference
from tssl.records.store import append_record, read_records

SUITE = """
name: tiny
tasks:
  - name: digits-small
    dataset: digits
    architecture: 8C3-P2-32
    padding: 1
    steps: 5
    epochs: {epochs}
    batch_size: 64
    lr: 0.005
    loss: kernel
    methods: [tssl]
    seeds: [0]
    validation_fraction: 0.1
"""


def make_suite(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE.format(epochs=epochs))
    return path


def options(tmp_path: Path, name: str, **kwargs) -> RunOptions:
    return RunOptions(tmp_path / name / "results", tmp_path / name / "runs", "cpu", progress=False, **kwargs)


def test_record_contents_and_skipping(tmp_path):
    suite = load_suite(str(make_suite(tmp_path, 2)))
    opts = options(tmp_path, "a")
    outcome = run_suite(suite, opts, log=lambda _: None)
    assert len(outcome.ran) == 1 and not outcome.failed
    (record,) = read_records(opts.results_dir / "tiny.jsonl")
    assert record["status"] == "ok" and record["smoke"] is False
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["accuracy"]["final"] == record["history"][-1]["test_accuracy"] == record["latency"][-1]
    assert len(record["latency"]) == 5
    assert record["accuracy"]["validation_selected_epoch"] in (1, 2)
    assert record["data"]["kind"] == "real" and record["data"]["fingerprint"].startswith("sha256:")
    provenance = record["provenance"]
    assert provenance["config"]["epochs"] == 2 and provenance["config_hash"].startswith("sha256:")
    assert {"torch", "tssl-bench"} <= set(provenance["packages"])
    assert provenance["implementation"]["grad_rule"] == "tsslbp"
    assert record["timing"]["samples_per_second"] > 0 and record["timing"]["peak_memory_bytes"] > 0
    # The finished run's checkpoint and lock are gone; its final weights stay for `tssl export`.
    run_dir = opts.runs_dir / "tiny" / record["run_id"]
    assert [p.name for p in (opts.runs_dir / "tiny").iterdir()] == [record["run_id"]]
    assert [p.name for p in run_dir.iterdir()] == ["final.pt"]
    assert record["final_weights"] == (run_dir / "final.pt").as_posix()

    again = run_suite(suite, opts, log=lambda _: None)  # finished runs are skipped, nothing is duplicated
    assert again.skipped == outcome.ran and not again.ran
    assert len(read_records(opts.results_dir / "tiny.jsonl")) == 1


def test_smoke_runs_are_labelled_and_refused_by_check(tmp_path):
    suite = load_suite(str(make_suite(tmp_path, 1)))
    opts = options(tmp_path, "smoke", limit_batches=2)
    run_suite(suite, opts, log=lambda _: None)
    (record,) = read_records(opts.results_dir / "tiny.jsonl")
    assert record["smoke"] is True and record["limit_batches"] == 2
    tasks = {t.name: TaskSpec(t.task_config_hash(), t.tolerance) for t in suite.tasks}
    with pytest.raises(ValueError, match="no faithful runs"):  # a smoke run is never a reference
        make_reference("tiny", [record], "x", tasks)


def test_resume_after_kill_9_gives_the_uninterrupted_result(tmp_path):
    epochs = 6
    suite_path = make_suite(tmp_path, epochs)
    straight = options(tmp_path, "straight")
    run_suite(load_suite(str(suite_path)), straight, log=lambda _: None)
    (expected,) = read_records(straight.results_dir / "tiny.jsonl")

    crashed = options(tmp_path, "crashed")
    command = [sys.executable, "-m", "tssl", "run", str(suite_path), "--device", "cpu",
               "--results-dir", str(crashed.results_dir), "--runs-dir", str(crashed.runs_dir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(crashed.runs_dir.glob("tiny/*/checkpoint.pt")):
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (crashed.results_dir / "tiny.jsonl").exists()  # killed before the end: no record yet

    outcome = run_suite(load_suite(str(suite_path)), crashed, log=lambda _: None)
    assert len(outcome.ran) == 1
    (resumed,) = read_records(crashed.results_dir / "tiny.jsonl")
    assert [h["test_accuracy"] for h in resumed["history"]] == [h["test_accuracy"] for h in expected["history"]]
    assert resumed["history"][-1]["train_loss"] == pytest.approx(expected["history"][-1]["train_loss"], rel=1e-6)
    assert resumed["latency"] == expected["latency"]


def _append_many(path: str, writer: int) -> None:
    for number in range(200):
        # Bare lines: this is about the lock and whole-line writes, not the schema (so neither end validates).
        append_record(Path(path), {"run_id": f"w{writer}.{number}", "status": "ok", "padding": "x" * 5000},
                      problem=None)


def test_concurrent_appends_lose_and_mix_nothing(tmp_path):
    store = tmp_path / "store.jsonl"
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_append_many, args=(str(store), w)) for w in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    records = read_records(store, validate=None)
    assert len(records) == 600 and len({r["run_id"] for r in records}) == 600


def test_runs_with_modified_settings_are_recorded_and_reported_apart(tmp_path):
    from tssl.records.report import MODIFIED_LABEL, REDUCED_EPOCHS_LABEL, write_report

    suite_path = make_suite(tmp_path, 2)
    opts = options(tmp_path, "modified", limit_batches=None)
    run_suite(load_suite(str(suite_path)), opts, log=lambda _: None)
    run_suite(load_suite(str(suite_path), ["epochs=1"]), opts, log=lambda _: None)
    run_suite(load_suite(str(suite_path), ["epochs=1", "tau_s=2"]), opts, log=lambda _: None)
    faithful, reduced, modified = read_records(opts.results_dir / "tiny.jsonl")
    assert faithful["deviations"] == {} and reduced["deviations"] == {"epochs": {"suite": 2, "run": 1}}
    assert set(modified["deviations"]) == {"epochs", "tau_s"}
    assert len({faithful["run_id"], reduced["run_id"], modified["run_id"]}) == 3
    index = write_report("tiny", [faithful, reduced, modified], tmp_path / "report")
    text = index.read_text()
    assert REDUCED_EPOCHS_LABEL in text and "epochs=1 (suite: 2)" in text
    assert MODIFIED_LABEL in text and "tau_s=2.0 (suite: 3" in text
    rows = [line for line in text.splitlines() if line.startswith("| digits-small | `tssl`")]
    assert len(rows) >= 3  # faithful, reduced and modified runs are separate rows, never averaged
