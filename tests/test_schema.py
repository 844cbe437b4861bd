"""The record schema (tssl/records/schema.py): what a valid run or bench record is, how schema-1 records are read, that
docs/results-format.md documents every field, and that the committed stores validate.

The records built here are SYNTHETIC (tests/records.py), except the committed stores, which are read as they are.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from records import current_config, suite_yaml, synthetic_record, task_config

from tssl.records.schema import (
    DATA_KINDS,
    FAILURES,
    RUN_SCHEMA_VERSION,
    Accuracy,
    BenchRecord,
    DataInfo,
    Determinism,
    RunProvenance,
    RunRecord,
    bench_record_problem,
    config_hash,
    normalize_run_record,
    run_record_problem,
    task_config_hash,
)
from tssl.records.store import read_records

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results-format.md"


def synthetic_bench_record(**changes) -> dict:
    """A SYNTHETIC tssl bench record (invented numbers, for tests only)."""
    record = {
        "schema": 1, "kind": "bench", "bench_id": "synthetic", "run_id": "bench.synthetic.mnist.tssl",
        "status": "ok", "error": None, "method": "tssl", "batch": 8, "steps": 5, "precision": "fp32",
        "device": "cpu", "threads": 2, "iters": 3, "warmup": 1, "net": {"name": "mnist", "architecture": "400-400"},
        "step_seconds": {"median": 0.1}, "samples_per_second": 80.0, "time_ratio_to_tssl": 1.0,
        "time_ratio_to_floor": 1.25, "provenance": {"git_sha": "feedc0de", "argv": ["bench"]},
    }  # fmt: skip
    record.update(changes)
    return record


# ------------------------------------------------------------------------------------------------------------
# Run records


def test_synthetic_records_are_valid_schema_2_records() -> None:
    for record in (synthetic_record(), synthetic_record(smoke=True), synthetic_record(kind="unverified"),
                   synthetic_record(overrides={"lr": 0.01}), synthetic_record(dirty=True),
                   synthetic_record(status="failed", error="RuntimeError: boom"),
                   synthetic_record(status="failed", error="diverged at epoch 3: non-finite training loss (nan)",
                                    failure="diverged")):
        assert record["schema"] == RUN_SCHEMA_VERSION == 2
        assert run_record_problem(record) is None, record["run_id"]
        RunRecord.model_validate(record)


def test_the_factory_matches_the_suite_loader_and_the_runner(tmp_path: Path) -> None:
    """tests/records.py stands in for the runner: its config is what a suite file's task resolves to, and its run
    ids (full and smoke) are the runner's."""
    from tssl.harness.runner import Run
    from tssl.harness.suites import load_suite

    path = tmp_path / "synth.yaml"
    path.write_text(suite_yaml("synth", lr=0.01))
    task = load_suite(str(path)).task("digits-cnn")
    assert task.run_config() == task_config("digits-cnn", lr=0.01)
    for smoke in (False, True):
        run = Run("synth", task, "tssl", 4, limit_batches=2 if smoke else None)
        record = synthetic_record(seed=4, config={"lr": 0.01}, smoke=smoke)
        assert record["run_id"] == run.run_id and record["provenance"]["config"] == run.config
        assert record["provenance"]["task_config_hash"] == task_config_hash(run.config)
    assert synthetic_record(config={"lr": 0.01})["provenance"]["task_config_hash"] == current_config(lr=0.01)


def test_task_config_hash_leaves_out_seed_and_method_only() -> None:
    a, b = synthetic_record(seed=0), synthetic_record(seed=1, method="snntorch")
    assert a["provenance"]["config_hash"] != b["provenance"]["config_hash"]
    assert a["provenance"]["task_config_hash"] == b["provenance"]["task_config_hash"]
    assert synthetic_record(config={"lr": 0.01})["provenance"]["task_config_hash"] != a["provenance"][
        "task_config_hash"]
    config = {"lr": 0.005, "seed": 3, "method": "tssl"}
    assert task_config_hash(config) == config_hash({"lr": 0.005})
    assert config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})  # canonical: key order does not matter


def _broken(change) -> dict:
    record = synthetic_record()
    change(record)
    return record


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["accuracy"].update(final=float("nan")), "accuracy.final: must be a finite number"),
        (lambda r: r["accuracy"].update(best=float("inf")), "accuracy.best: must be a finite number"),
        (lambda r: r.pop("data"), "an ok run needs accuracy.final and data.kind"),
        (lambda r: r.update(accuracy=None), "an ok run needs accuracy.final and data.kind"),
        (lambda r: r["provenance"]["config"].update(lr=0.5), "provenance.config_hash is not the hash of"),
        (lambda r: r["provenance"].update(task_config_hash="sha256:" + "0" * 64), "seed-free hash"),
        (lambda r: r["provenance"].pop("torch_threads"), "schema-2 record needs provenance.torch_threads"),
        (lambda r: r["provenance"].pop("argv"), "needs provenance.argv"),
        (lambda r: r["provenance"].pop("determinism"), "needs provenance.determinism"),
        (lambda r: r["data"].update(kind="synthetic"), "data.kind"),
        (lambda r: r.update(status="done"), "status"),
        (lambda r: r.update(status="failed", error=None), "a failed run needs its error"),
        (lambda r: r.update(failure="crashed"), "failure"),
        (lambda r: r.update(schema=3), "schema"),
        (lambda r: r.pop("run_id"), "run_id"),
        (lambda r: r.update(task=""), "task"),
    ],
)
def test_invalid_run_records_are_named(change, message: str) -> None:
    problem = run_record_problem(_broken(change))
    assert problem is not None and message in problem, problem


def test_not_a_run_record() -> None:
    assert "expected a JSON object" in run_record_problem([1, 2])
    assert "bench record" in run_record_problem(synthetic_bench_record())


def test_every_data_kind_and_failure_is_accepted() -> None:
    assert set(DATA_KINDS) == {"real", "generated", "reduced", "unverified"}
    for kind in DATA_KINDS:
        assert run_record_problem(synthetic_record(kind=kind)) is None
    for failure in FAILURES:
        assert run_record_problem(synthetic_record(status="failed", error="x", failure=failure)) is None


def schema_1_record() -> dict:
    """A SYNTHETIC record as schema 1 wrote it: no task config hash, thread count, argv, diff hash or determinism."""
    record = synthetic_record(seed=2, threads=2)
    record["schema"] = 1
    for key in ("task_config_hash", "torch_threads", "argv", "git_diff_sha256", "determinism"):
        record["provenance"].pop(key)
    record.pop("failure")
    return record


def test_a_schema_1_record_is_valid_and_normalized() -> None:
    record = schema_1_record()
    assert run_record_problem(record) is None
    expected = task_config_hash(record["provenance"]["config"])
    normalized = normalize_run_record(copy.deepcopy(record))
    assert normalized["provenance"]["task_config_hash"] == expected == current_config()
    assert normalized["provenance"]["torch_threads"] == 2  # from "..., 2 torch threads"
    assert run_record_problem(normalized) is None
    record["provenance"]["hardware"] = "an old machine"
    assert normalize_run_record(record)["provenance"]["torch_threads"] is None
    # Normalizing a schema-2 record changes nothing.
    modern = synthetic_record()
    assert normalize_run_record(copy.deepcopy(modern)) == modern


def test_reading_a_store_normalizes_schema_1_records(tmp_path: Path) -> None:
    store = tmp_path / "synth.jsonl"
    store.write_text(json.dumps(schema_1_record()) + "\n")
    (record,) = read_records(store)
    assert record["provenance"]["task_config_hash"] == current_config()
    assert record["provenance"]["torch_threads"] == 2


# ------------------------------------------------------------------------------------------------------------
# Bench records


def test_bench_records() -> None:
    assert bench_record_problem(synthetic_bench_record()) is None
    BenchRecord.model_validate(synthetic_bench_record())
    assert bench_record_problem(synthetic_bench_record(status="failed", error="no CUDA", samples_per_second=None,
                                                       step_seconds=None)) is None
    cases = [
        (synthetic_bench_record(samples_per_second=None), "an ok record needs a finite samples_per_second"),
        (synthetic_bench_record(samples_per_second=float("nan")), "samples_per_second: must be a finite number"),
        (synthetic_bench_record(time_ratio_to_floor=float("inf")), "time_ratio_to_floor: must be a finite number"),
        (synthetic_bench_record(net={"architecture": "400-400"}), "net.name must be a string"),
        (synthetic_bench_record(kind="run"), "not a tssl bench record"),
        (synthetic_bench_record(method=""), "method"),
        (synthetic_record(), "not a tssl bench record"),
    ]
    for record, message in cases:
        problem = bench_record_problem(record)
        assert problem is not None and message in problem, (message, problem)


# ------------------------------------------------------------------------------------------------------------
# The documentation


def _documented(text: str, name: str) -> bool:
    return re.search(rf'"{re.escape(name)}"\s*:', text) is not None or f"`{name}`" in text


def _field_names(model) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def test_the_format_doc_documents_every_field() -> None:
    text = DOC.read_text()
    runs, bench = text.split("## Bench records", 1)
    for model in (RunRecord, RunProvenance, DataInfo, Accuracy, Determinism):
        missing = [name for name in _field_names(model) if not _documented(runs, name)]
        assert not missing, f"docs/results-format.md does not document {model.__name__} fields {missing}"
    missing = [name for name in _field_names(BenchRecord) if not _documented(bench, name)]
    assert not missing, f"docs/results-format.md does not document BenchRecord fields {missing}"
    assert '"schema": 2' in runs and '"checksums"' in runs and "<store>.torn" in runs
    for value in (*DATA_KINDS, *FAILURES):
        assert re.search(rf"\b{value}\b", runs), value


# ------------------------------------------------------------------------------------------------------------
# The committed stores


@pytest.mark.parametrize("store", ["results/fmnist.jsonl", "results/bench/bench.jsonl"])
def test_every_committed_store_validates(store: str) -> None:
    path = ROOT / store
    if not path.exists():
        pytest.skip(f"{store} is not committed in this checkout")
    assert path.read_bytes().endswith(b"\n")  # no torn tail (read_records would move it out of a committed file)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = read_records(path)  # raises ResultsError naming the line of any invalid record
    assert len(records) == len(lines) > 0
    check = bench_record_problem if "bench" in store else run_record_problem
    assert [check(json.loads(line)) for line in lines] == [None] * len(lines)
