"""Suites fanned out as submitit jobs (the local executor end to end), the job book, ``tssl status`` and the
suite's ``cluster:`` settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from records import synthetic_record

from tssl.cli import main
from tssl.harness.executors import submit_suite
from tssl.harness.runner import CHECKPOINT, LOCK, RunOptions, claim_run, expand
from tssl.harness.status import suite_status
from tssl.harness.suites import SuiteError, load_suite
from tssl.records.store import append_record, read_records

pytest.importorskip("submitit")

# The digits suite, cut down: three seeds of the native engine, one epoch of two batches each.
OVERRIDES = ["epochs=1", "methods=[tssl]", "seeds=[0,1,2]", "architecture='16'"]


def run_cli(*argv: str) -> int:
    return main(list(argv))


def test_local_executor_runs_every_run_once_two_at_a_time(tmp_path, capsys):
    results, runs = tmp_path / "results", tmp_path / "runs"
    common = ["--results-dir", str(results), "--runs-dir", str(runs)]
    status = run_cli("run", "digits", *OVERRIDES, "--executor", "local", "--concurrency", "2", "--device", "cpu",
                     "--limit-batches", "2", *common)
    assert status == 0, capsys.readouterr()
    records = read_records(results / "digits.jsonl")
    suite = load_suite("digits", OVERRIDES)
    expected = sorted(run.run_id for run in expand(suite, limit_batches=2))  # smoke runs: ids of their own
    assert sorted(r["run_id"] for r in records) == expected  # none lost, none duplicated
    assert all(r["status"] == "ok" and r["smoke"] for r in records)
    spans = sorted((r["provenance"]["started_at"], r["provenance"]["finished_at"]) for r in records)
    assert spans[1][0] <= spans[0][1]  # the first two ran at the same time (timestamps have 1 s resolution)
    assert spans[2][0] >= min(spans[0][1], spans[1][1])  # the third waited for one of them
    book = json.loads((runs / "digits" / "jobs.json").read_text())
    assert sorted(book) == expected and all(entry["executor"] == "local" for entry in book.values())
    assert not any((runs / "digits").glob("*/" + CHECKPOINT)) and not (runs / "digits" / "jobs").exists()

    capsys.readouterr()
    assert run_cli("run", "digits", *OVERRIDES, "--executor", "local", "--device", "cpu", "--limit-batches", "2",
                   *common) == 0  # everything is done: nothing is submitted again
    assert "0 ran in local jobs, 3 already done" in capsys.readouterr().out
    assert len(read_records(results / "digits.jsonl")) == 3

    assert run_cli("status", "digits", *OVERRIDES, *common) == 0
    table = capsys.readouterr().out
    # The smoke runs are done; the suite's full runs are not (a smoke run never counts as one).
    assert "3 done, 3 not started" in table and table.count("[smoke run]") == 3


def test_a_run_held_by_another_process_is_not_trained_twice(tmp_path):
    suite = load_suite("digits", [*OVERRIDES[:2], "seeds=[0]", "architecture='16'"])
    (run,) = expand(suite, limit_batches=1)
    options = RunOptions(tmp_path / "results", tmp_path / "runs", "cpu", 1, progress=False)
    with claim_run(options.runs_dir / "digits" / run.run_id) as claimed:  # as if another job were training it
        assert claimed
        outcome = submit_suite(suite, options, "local", suite.cluster, log=lambda _: None)
    assert outcome.finished == {run.run_id: "busy"}
    assert not (options.results_dir / "digits.jsonl").exists()


def test_status_reports_each_state(tmp_path):
    suite = load_suite("digits", ["methods=[tssl]", "seeds=[0,1,2,3,4,5]"])
    runs = expand(suite)
    results, runs_dir = tmp_path / "results", tmp_path / "runs"
    store = results / "digits.jsonl"

    def record(run, status, **extra):  # a SYNTHETIC record of this run (tests/records.py), valid under the schema
        made = synthetic_record(run.task.name, run.method, run.seed, suite="digits", status=status,
                                base=run.task.run_config(), **extra)
        assert made["run_id"] == run.run_id
        return made

    append_record(store, record(runs[0], "failed", error="RuntimeError: boom\nmore"))
    append_record(store, record(runs[0], "ok", final=90.0))  # a retry succeeded
    append_record(store, record(runs[0], "ok", final=91.5))  # a --force rerun wins
    append_record(store, record(runs[0], "failed", error="killed"))  # a failed rerun undoes nothing
    append_record(store, record(runs[1], "failed", error="ValueError: bad value\ntraceback"))
    (runs_dir / "digits" / runs[2].run_id).mkdir(parents=True)
    (runs_dir / "digits" / runs[2].run_id / CHECKPOINT).write_bytes(b"")
    jobs = {
        runs[3].run_id: {"executor": "local", "job_id": str(os.getpid()), "submitter_pid": os.getpid()},
        runs[4].run_id: {"executor": "local", "job_id": None, "submitter_pid": os.getpid()},
    }
    (runs_dir / "digits" / "jobs.json").write_text(json.dumps(jobs))
    extra = expand(load_suite("digits", ["methods=[tssl]", "seeds=[9]"]))[0]  # run with --seeds 9
    append_record(store, record(extra, "ok", final=88.0))
    rows = suite_status(suite, results, runs_dir)
    states = [(row.state, row.detail) for row in rows]
    assert states[6] == ("done", "final 88.00 % (not in the suite file's seeds or methods)") and rows[6].seed == 9
    assert states[0] == ("done", "final 91.50 %")
    assert states[1] == ("failed", "ValueError: bad value")
    assert states[2] == ("resumable", "checkpoint present")
    assert states[3][0] == "running" and states[4][0] == "queued"
    assert states[5] == ("not started", "")


def test_cluster_settings_are_validated_and_leave_run_ids_alone(tmp_path):
    base = Path("suites/digits.yaml").read_text()
    plain = load_suite("digits")
    path = tmp_path / "digits.yaml"
    path.write_text(base + "cluster:\n  partition: gpu\n  gpus_per_job: 2\n  time_limit_min: 90\n  concurrency: 4\n")
    clustered = load_suite(str(path))
    assert clustered.cluster.partition == "gpu" and clustered.cluster.ranks_per_job == 2
    assert [r.run_id for r in expand(clustered, world_size=2)] == [r.run_id for r in expand(plain)]

    path.write_text(base + "cluster:\n  gpus_per_job: -1\n")
    with pytest.raises(SuiteError, match=r"digits.yaml: key 'cluster.gpus_per_job': .*greater than or equal to 0"):
        load_suite(str(path))
    path.write_text(base + "cluster:\n  gpu: 2\n")
    with pytest.raises(SuiteError, match=r"key 'cluster.gpu': unknown key"):
        load_suite(str(path))


def test_bad_executor_flags_are_one_line_errors(capsys):
    assert run_cli("run", "digits", "--executor", "local", "--gpus-per-job", "-1") == 2
    assert "tssl run: error: --gpus-per-job: Input should be greater than or equal to 0" in capsys.readouterr().err


def test_the_lock_is_held_only_while_the_run_is(tmp_path):
    run_dir = tmp_path / "run"
    with claim_run(run_dir) as first, claim_run(run_dir) as second:  # a second open file: flock refuses it
        assert first and not second
    with claim_run(run_dir) as again:
        assert again
    assert (run_dir / LOCK).exists()


def test_an_append_after_a_writer_died_mid_line_starts_its_own_line(tmp_path):
    # Bare lines: this is about whole-line appends, not the schema (tests/test_store.py has the valid-record cases).
    store = tmp_path / "store.jsonl"
    append_record(store, {"run_id": "a", "status": "ok"}, problem=None)
    with open(store, "a") as handle:
        handle.write('{"run_id": "torn", "sta')  # a process killed in the middle of a write (no lock then)
    append_record(store, {"run_id": "b", "status": "ok"}, problem=None)
    lines = store.read_text().splitlines()  # the torn tail is moved to store.jsonl.torn, b starts its own line
    assert [json.loads(line)["run_id"] for line in lines] == ["a", "b"]
    assert (tmp_path / "store.jsonl.torn").read_text() == '{"run_id": "torn", "sta\n'
    assert [r["run_id"] for r in read_records(store, validate=None)] == ["a", "b"]


def test_a_timed_out_job_is_requeued_as_the_same_run():
    import submitit

    from tssl.harness.executors import RunJob

    (run,) = expand(load_suite("digits", ["methods=[tssl]", "seeds=[0]"]))
    job = RunJob(run, RunOptions())
    assert isinstance(job, submitit.helpers.Checkpointable)
    requeued = job.checkpoint()
    assert isinstance(requeued, submitit.helpers.DelayedSubmission) and requeued.function is job


def test_slurm_submission_against_submitits_mocked_slurm(tmp_path):
    """No Slurm here: submitit's own mock stands in for sbatch/sacct, and each job is then run in this process
    the way a Slurm node would run it."""
    test_slurm = pytest.importorskip("submitit.slurm.test_slurm")
    from submitit.core import submission

    suite = load_suite("digits", ["epochs=1", "methods=[tssl]", "seeds=[0,1]", "architecture='16'"])
    cluster = suite.cluster.model_copy(update={"partition": "gpu", "gpus_per_job": 1, "time_limit_min": 90,
                                               "concurrency": 1})
    # Full runs (one epoch of a 16-neuron net): tssl status lists the suite's full runs, not smoke runs.
    options = RunOptions(tmp_path / "results", tmp_path / "runs", "cpu", progress=False)
    with test_slurm.mocked_slurm() as mock:
        outcome = submit_suite(suite, options, "slurm", cluster, log=lambda _: None)
        assert len(outcome.submitted) == 2
        job_ids = list(outcome.submitted.values())
        book = json.loads((options.runs_dir / "digits" / "jobs.json").read_text())
        assert {entry["job_id"] for entry in book.values()} == set(job_ids)
        sbatch = next((options.runs_dir / "digits" / "jobs").rglob("*submission.sh")).read_text()
        for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=90",
                     "#SBATCH --array=0-1%1", "#SBATCH --ntasks-per-node=1"):
            assert line in sbatch
        for job_id in job_ids:
            mock.set_job_state(job_id, "PENDING")
        assert [row.state for row in suite_status(suite, options.results_dir, options.runs_dir)] == ["queued"] * 2
        again = submit_suite(suite, options, "slurm", cluster, log=lambda _: None)  # queued: not submitted twice
        assert not again.submitted and sorted(again.active) == sorted(outcome.submitted)
        for job_id in job_ids:
            mock.set_job_state(job_id, "RUNNING")
            with mock.job_context(job_id):
                (pickled,) = (options.runs_dir / "digits" / "jobs").rglob(f"{job_id}_submitted.pkl")
                submission.process_job(pickled.parent)
    records = read_records(options.results_dir / "digits.jsonl")
    assert sorted(r["run_id"] for r in records) == sorted(outcome.submitted)
