"""One run on two processes (DDP over gloo, on the CPU) gives the single-process result: the same weights,
optimiser state, history and latency curve within float tolerance, also through ``torchrun``."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tssl.data.registry import load_data
from tssl.engine.distributed import Ranks, init_process_group, ranks_from_environment, shutdown
from tssl.harness.runner import CHECKPOINT, RunOptions, execute_run, expand, run_suite
from tssl.harness.suites import load_suite
from tssl.records.store import read_records

# 1,297 training digits in global batches of 48: the last batch holds one sample, so the second rank's share of
# it is empty and it steps on a zero-weighted stand-in. 500 test digits: the last test batch is split 10 / 10.
SUITE = """
name: ddp
tasks:
  - name: digits-mlp
    dataset: digits
    architecture: "24"
    steps: 5
    epochs: {epochs}
    batch_size: {batch_size}
    batch_semantics: {semantics}
    lr: 0.005
    loss: kernel
    methods: [tssl]
    seeds: [3]
"""


def write_suite(tmp_path: Path, epochs: int = 1, batch_size: int = 48, semantics: str = "global") -> Path:
    path = tmp_path / "ddp.yaml"
    path.write_text(SUITE.format(epochs=epochs, batch_size=batch_size, semantics=semantics))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train(suite_path: str, folder: str, world_size: int, limit: int | None) -> None:
    """Train the suite's one run with execute_run on this process's rank; rank 0 writes the record."""
    torch.set_num_threads(1)
    ranks = ranks_from_environment()
    (run,) = expand(load_suite(suite_path), world_size=world_size)
    device = torch.device("cpu")
    data = load_data(run.task.dataset, steps=run.task.steps, validation_fraction=run.task.validation_fraction)
    options = RunOptions(Path(folder) / "results", Path(folder) / "runs", "cpu", limit, progress=False)
    init_process_group(ranks, device)
    try:
        record = execute_run(run, data, options, device, False, ranks)
    finally:
        shutdown()
    if ranks.is_main:
        (Path(folder) / "record.json").write_text(json.dumps(record))


def _rank_main(rank: int, world_size: int, port: int, suite_path: str, folder: str, limit: int | None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    _train(suite_path, folder, world_size, limit)


def train_on_ranks(suite_path: Path, folder: Path, world_size: int, limit: int | None = None) -> tuple[dict, dict]:
    """(record, final checkpoint) of the run trained on ``world_size`` processes (1: in this process)."""
    if world_size == 1:
        _train(str(suite_path), str(folder), 1, limit)
    else:
        context = multiprocessing.get_context("spawn")
        port = free_port()
        workers = [context.Process(target=_rank_main, args=(r, world_size, port, str(suite_path), str(folder), limit))
                   for r in range(world_size)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=300)
        assert [w.exitcode for w in workers] == [0] * world_size
    (checkpoint,) = (folder / "runs").glob(f"ddp/*/{CHECKPOINT}")
    record = json.loads((folder / "record.json").read_text())
    return record, torch.load(checkpoint, weights_only=False)


def assert_same_training(one: tuple[dict, dict], two: tuple[dict, dict]) -> None:
    (record1, state1), (record2, state2) = one, two
    for name, weight in state1["model"].items():
        torch.testing.assert_close(state2["model"][name], weight, rtol=1e-4, atol=1e-5, msg=name)
    for index, moments in state1["optimizer"]["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state2["optimizer"]["state"][index][key], moments[key], rtol=1e-3, atol=1e-7)
    for epoch1, epoch2 in zip(record1["history"], record2["history"], strict=True):
        assert epoch2["train_loss"] == pytest.approx(epoch1["train_loss"], rel=1e-5)
        for key in ("train_accuracy", "test_accuracy"):
            assert epoch2[key] == pytest.approx(epoch1[key], abs=0.2)  # at most one sample in 500
    assert record2["latency"] == pytest.approx(record1["latency"], abs=0.2)
    assert record2["efficiency"]["spikes_per_sample"] == pytest.approx(
        record1["efficiency"]["spikes_per_sample"], rel=1e-3)


def test_two_gloo_ranks_train_like_one_process(tmp_path):
    suite = write_suite(tmp_path)
    one = train_on_ranks(suite, tmp_path / "one", 1)
    two = train_on_ranks(suite, tmp_path / "two", 2)
    assert_same_training(one, two)
    assert one[0]["batch"] == {"semantics": "global", "size": 48, "global": 48, "per_rank": 48, "world_size": 1,
                               "backend": None}
    assert two[0]["batch"] == {"semantics": "global", "size": 48, "global": 48, "per_rank": 24, "world_size": 2,
                               "backend": "gloo"}
    assert one[0]["run_id"] == two[0]["run_id"]  # global batches: the world size does not change the result


def test_per_rank_batches_are_the_global_batch_of_one_process_and_change_the_run_id(tmp_path):
    per_rank = train_on_ranks(write_suite(tmp_path, epochs=1, batch_size=24, semantics="per_rank"),
                              tmp_path / "two", 2, limit=6)
    (tmp_path / "global").mkdir()
    alone = train_on_ranks(write_suite(tmp_path / "global", epochs=1, batch_size=48), tmp_path / "one", 1, limit=6)
    assert_same_training(alone, per_rank)
    assert per_rank[0]["batch"]["global"] == 48 and per_rank[0]["batch"]["per_rank"] == 24
    assert per_rank[0]["provenance"]["config"]["world_size"] == 2
    assert "world_size" not in alone[0]["provenance"]["config"]


def test_a_global_batch_smaller_than_the_ranks_is_refused():
    from tssl.engine.distributed import DistributedError, check_global_batch

    with pytest.raises(DistributedError, match=r"batch_size 1 .* 2 ranks"):
        check_global_batch(1, Ranks(0, 2), "task 'x'")


def test_torchrun_launches_tssl_run_and_only_rank_0_records(tmp_path):
    suite_path = write_suite(tmp_path, epochs=1)
    alone = RunOptions(tmp_path / "alone" / "results", tmp_path / "alone" / "runs", "cpu", 4, progress=False)
    run_suite(load_suite(str(suite_path)), alone, log=lambda _: None)
    (expected,) = read_records(alone.results_dir / "ddp.jsonl")

    results, runs = tmp_path / "ddp" / "results", tmp_path / "ddp" / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "tssl", "run", str(suite_path), "--device", "cpu", "--limit-batches", "4",
               "--results-dir", str(results), "--runs-dir", str(runs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    (record,) = read_records(results / "ddp.jsonl")  # one record, written by rank 0
    assert record["run_id"] == expected["run_id"] and record["batch"]["world_size"] == 2
    assert record["history"][0]["train_loss"] == pytest.approx(expected["history"][0]["train_loss"], rel=1e-5)
    assert record["accuracy"]["final"] == pytest.approx(expected["accuracy"]["final"], abs=0.2)
    # The finished run's checkpoint and lock are gone; rank 0 kept the trained weights for `tssl export`.
    assert [path.name for path in runs.glob("ddp/*/*")] == ["final.pt"]
