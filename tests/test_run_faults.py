"""Run identity and faults: smoke runs are runs of their own, a diverged run is a failed record the suite moves
past (and a rerun does not train again unless asked), a corrupt checkpoint is set aside and the run starts again,
and every record says where it came from (threads, command line, diff, determinism settings)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from tiny_suites import digits_suite

from tssl.cli import main
from tssl.harness import runner
from tssl.harness.runner import CHECKPOINT, RunOptions, expand, run_suite
from tssl.harness.suites import load_suite
from tssl.records.schema import config_hash
from tssl.records.store import SCHEMA_VERSION, append_record, read_records


def write_suite(tmp_path: Path, epochs: int = 1, seeds: tuple[int, ...] = (0,)) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(digits_suite("faults", epochs=epochs, seeds=seeds))
    return path


def options(tmp_path: Path, **kwargs) -> RunOptions:
    return RunOptions(tmp_path / "results", tmp_path / "runs", "cpu", progress=False, **kwargs)


def store(tmp_path: Path) -> list[dict]:
    return read_records(tmp_path / "results" / "faults.jsonl")


def poison_first_run(monkeypatch: pytest.MonkeyPatch, after_batches: int, value: float = math.nan) -> None:
    """The first run's loss turns into ``value`` after ``after_batches`` training batches; later runs are
    untouched. Its gradients and weights follow, as they do when a run really diverges."""
    made = []
    real = runner.training_recipe

    def recipe(method, config, task_loss):
        made.append(True)
        honest = real(method, config, task_loss)
        if len(made) > 1:
            return honest
        calls = []

        def loss(output, labels):
            calls.append(True)
            value_now = honest.loss(output, labels)
            return value_now * value if len(calls) > after_batches else value_now

        return dataclasses.replace(honest, loss=loss)

    monkeypatch.setattr(runner, "training_recipe", recipe)


# ---- run identity ----


def test_a_smoke_run_has_its_own_id_and_a_later_plain_run_trains_the_full_run(tmp_path):
    suite = load_suite(str(write_suite(tmp_path)))
    smoke = run_suite(suite, options(tmp_path, limit_batches=2), log=lambda _: None)
    full = run_suite(suite, options(tmp_path), log=lambda _: None)
    assert len(smoke.ran) == 1 and len(full.ran) == 1 and not full.skipped
    assert smoke.ran != full.ran
    smoke_record, full_record = store(tmp_path)
    assert smoke_record["smoke"] is True and smoke_record["provenance"]["config"]["limit_batches"] == 2
    assert full_record["smoke"] is False and "limit_batches" not in full_record["provenance"]["config"]
    # The full run keeps the id it had before smoke runs had ids of their own (committed records keep theirs).
    (plain,) = expand(suite)
    assert full_record["run_id"] == plain.run_id
    assert plain.config_hash == config_hash({**plain.task.run_config(), "method": "tssl", "seed": 0})
    (limited,) = expand(suite, limit_batches=2)
    assert smoke_record["run_id"] == limited.run_id != plain.run_id

    again = run_suite(suite, options(tmp_path, limit_batches=2), log=lambda _: None)  # each is done in its own right
    assert again.skipped == smoke.ran and not again.ran


def test_a_smoke_record_written_under_the_full_runs_id_does_not_count_as_the_full_run(tmp_path):
    """Records written before smoke runs had ids of their own carry the full run's id."""
    suite = load_suite(str(write_suite(tmp_path)))
    (plain,) = expand(suite)
    legacy = {"schema": 1, "run_id": plain.run_id, "status": "ok", "task": plain.task.name, "method": "tssl",
              "seed": 0, "smoke": True, "limit_batches": 2, "accuracy": {"final": 50.0},
              "data": {"name": "digits", "kind": "real"},
              "provenance": {"config": plain.config, "config_hash": plain.config_hash}}
    append_record(tmp_path / "results" / "faults.jsonl", legacy)
    outcome = run_suite(suite, options(tmp_path), log=lambda _: None)
    assert outcome.ran == [plain.run_id]


# ---- divergence ----


def test_a_non_finite_loss_ends_the_run_as_diverged_and_the_suite_goes_on(tmp_path, monkeypatch):
    suite = load_suite(str(write_suite(tmp_path, epochs=2, seeds=(0, 1))))
    first, second = (run.run_id for run in expand(suite, limit_batches=2))
    poison_first_run(monkeypatch, after_batches=2)  # epoch 1 (2 batches) trains, epoch 2 diverges
    said: list[str] = []
    outcome = run_suite(suite, options(tmp_path, limit_batches=2), log=said.append)
    assert outcome.failed == [first] and outcome.ran == [second]
    diverged, ok = store(tmp_path)
    assert diverged["run_id"] == first and diverged["status"] == "failed" and diverged["failure"] == "diverged"
    assert diverged["error"] == "diverged at epoch 2: non-finite training loss (nan)"
    assert ok["status"] == "ok" and ok["failure"] is None
    assert not (tmp_path / "runs" / "faults" / first / CHECKPOINT).exists()  # the epoch-1 checkpoint is gone
    assert any(first in line and "diverged at epoch 2" in line for line in said)

    monkeypatch.undo()  # the same code again: a plain rerun does not train the diverged run again
    said.clear()
    rerun = run_suite(suite, options(tmp_path, limit_batches=2), log=said.append)
    assert rerun.diverged == [first] and rerun.skipped == [second] and not rerun.ran and not rerun.failed
    assert len(store(tmp_path)) == 2
    assert any(first in line and "diverged" in line and "--retry-diverged" in line for line in said)

    retried = run_suite(suite, options(tmp_path, limit_batches=2, retry_diverged=True), log=lambda _: None)
    assert retried.ran == [first] and retried.skipped == [second]
    latest = store(tmp_path)[-1]
    assert latest["run_id"] == first and latest["status"] == "ok"
    assert [h["epoch"] for h in latest["history"]] == [1, 2]  # from scratch


@pytest.mark.parametrize(("value", "word"), [(math.inf, "inf"), (math.nan, "nan")])
def test_divergence_through_the_cli_is_one_line_and_a_rerun_says_how_to_retry(tmp_path, monkeypatch, capsys,
                                                                                value, word):
    suite_path = write_suite(tmp_path)
    monkeypatch.chdir(tmp_path)
    honest = runner.training_recipe
    poison_first_run(monkeypatch, after_batches=0, value=value)
    # One batch per epoch: the epoch's mean loss is that batch's (after an inf step the weights turn nan).
    args = ["run", str(suite_path), "--device", "cpu", "--limit-batches", "1"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert f"FAILED: diverged at epoch 1: non-finite training loss ({word})" in out and "Traceback" not in err
    (record,) = read_records(tmp_path / "results" / "faults.jsonl")
    assert record["failure"] == "diverged"

    monkeypatch.setattr(runner, "training_recipe", honest)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 ran" in out and "1 skipped as diverged" in out and "--retry-diverged" in out
    assert main([*args, "--retry-diverged"]) == 0
    assert "1 ran" in capsys.readouterr().out
    assert read_records(tmp_path / "results" / "faults.jsonl")[-1]["status"] == "ok"


def test_other_failures_are_marked_as_errors(tmp_path, monkeypatch):
    suite = load_suite(str(write_suite(tmp_path)))

    def broken(*_args, **_kwargs):
        raise ValueError("no optimiser today")

    monkeypatch.setattr(runner, "training_recipe", broken)
    outcome = run_suite(suite, options(tmp_path, limit_batches=1), log=lambda _: None)
    assert len(outcome.failed) == 1
    (record,) = store(tmp_path)
    assert record["failure"] == "error" and record["error"] == "ValueError: no optimiser today"


# ---- corrupt checkpoints ----


def _truncated_checkpoint() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.ones(100)}}, buffer)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"", _truncated_checkpoint()],
                         ids=["garbage", "empty", "truncated"])
def test_a_corrupt_checkpoint_is_moved_aside_and_the_run_starts_again(tmp_path, content):
    suite = load_suite(str(write_suite(tmp_path, epochs=2)))
    (run,) = expand(suite, limit_batches=2)
    folder = tmp_path / "runs" / "faults" / run.run_id
    folder.mkdir(parents=True)
    (folder / CHECKPOINT).write_bytes(content)
    said: list[str] = []
    outcome = run_suite(suite, options(tmp_path, limit_batches=2), log=said.append)
    assert outcome.ran == [run.run_id] and not outcome.failed
    (record,) = store(tmp_path)
    assert record["status"] == "ok" and [h["epoch"] for h in record["history"]] == [1, 2]
    (aside,) = folder.glob(f"{CHECKPOINT}.corrupt-*")
    assert aside.read_bytes() == content and not (folder / CHECKPOINT).exists()
    (line,) = [line for line in said if "corrupt" in line or "cannot be read" in line]
    assert str(folder / CHECKPOINT) in line and str(aside) in line and "\n" not in line


# ---- what every record says about where it came from ----


def test_ok_and_failed_records_carry_their_provenance(tmp_path, monkeypatch):
    suite = load_suite(str(write_suite(tmp_path, seeds=(0, 1))))
    poison_first_run(monkeypatch, after_batches=0)
    run_suite(suite, options(tmp_path, limit_batches=2), log=lambda _: None)
    failed, ok = store(tmp_path)
    assert failed["status"] == "failed" and ok["status"] == "ok"
    for record in (failed, ok):
        assert record["schema"] == SCHEMA_VERSION
        provenance = record["provenance"]
        assert provenance["torch_threads"] == torch.get_num_threads() and provenance["torch_threads"] >= 1
        assert isinstance(provenance["argv"], list) and all(isinstance(a, str) for a in provenance["argv"])
        assert provenance["git_diff_sha256"] is None or provenance["git_diff_sha256"].startswith("sha256:")
        assert (provenance["git_diff_sha256"] is not None) == bool(provenance["git_dirty"])
        assert provenance["determinism"] == {
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        }
        config = provenance["config"]
        seedless = {k: v for k, v in config.items() if k not in ("seed", "method")}
        assert provenance["task_config_hash"] == config_hash(seedless)
        assert record["data"]["kind"] == "real" and "checksums" not in record["data"]
    # Seeds of one task and method share the task config hash; the run's own hash differs.
    assert failed["provenance"]["task_config_hash"] == ok["provenance"]["task_config_hash"]
    assert failed["provenance"]["config_hash"] != ok["provenance"]["config_hash"]


def test_a_smoke_run_never_shares_the_full_runs_task_config_hash(tmp_path):
    suite = load_suite(str(write_suite(tmp_path)))
    run_suite(suite, options(tmp_path, limit_batches=1), log=lambda _: None)
    run_suite(suite, options(tmp_path, limit_batches=2), log=lambda _: None)
    one, two = store(tmp_path)
    assert one["provenance"]["task_config_hash"] != two["provenance"]["task_config_hash"]


def test_data_that_fails_its_checksums_is_recorded_as_unverified(tmp_path, monkeypatch):
    real_load = runner.load_data
    mismatch = {"train-images-idx3-ubyte": {"expected": "a" * 64, "actual": "b" * 64}}

    def load_unverified(*args, **kwargs):
        data = real_load(*args, **kwargs)
        data.kind, data.checksums = "unverified", mismatch
        return data

    monkeypatch.setattr(runner, "load_data", load_unverified)
    run_suite(load_suite(str(write_suite(tmp_path))), options(tmp_path, limit_batches=1), log=lambda _: None)
    (record,) = store(tmp_path)
    assert record["data"]["kind"] == "unverified" and record["data"]["checksums"] == mismatch
