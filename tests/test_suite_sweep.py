"""Sweeps: a suite task that lists a key's values stands for one task per point, each validated, named and run
like an ordinary task; existing run ids stay as they were."""

from __future__ import annotations

import json
import pickle
import sys
import types
from pathlib import Path

import pytest
from tiny_suites import digits_suite

from tssl.cli import main
from tssl.harness.runner import Run, expand
from tssl.harness.suites import SuiteError, load_suite, point_label

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
name: sw
caveat: one epoch per run, far fewer than the paper's
defaults:
  dataset: digits
  architecture: 8C3-P2-16
  padding: 1
  steps: 5
  epochs: 1
  batch_size: 64
  lr: 0.005
  loss: kernel
  methods: [tssl]
  seeds: [0]
tasks:
  - name: plain
  - name: grid
    steps: 5
    sweep: {steps: [10, 5], lr: [0.001, 0.0005]}
"""
POINTS = ["grid-steps10-lr0.001", "grid-steps10-lr0.0005", "grid-steps5-lr0.001", "grid-steps5-lr0.0005"]


def write(tmp_path: Path, text: str, name: str = "sw.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_sweep_expands_in_order_with_names_and_values(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    assert [t.name for t in suite.tasks] == ["plain", *POINTS]
    points = suite.tasks[1:]
    # The swept values win over the defaults' and the task's own (steps: 5 above).
    assert [(t.steps, t.lr) for t in points] == [(10, 0.001), (10, 0.0005), (5, 0.001), (5, 0.0005)]
    assert all(t.sweep_of == "grid" for t in points)
    assert [t.swept for t in points] == [{"steps": s, "lr": lr} for s in (10, 5) for lr in (0.001, 0.0005)]
    assert list(points[0].swept) == ["steps", "lr"]  # in the order written
    assert suite.tasks[0].sweep_of is None and suite.tasks[0].swept == {}
    copy = pickle.loads(pickle.dumps(points[1]))  # as a job of --executor local|slurm receives it
    assert (copy.sweep_of, copy.swept) == ("grid", {"steps": 10, "lr": 0.0005})
    assert suite.caveat == "one epoch per run, far fewer than the paper's"
    assert isinstance(load_suite(str(ROOT / "suites" / "digits.yaml")).caveat, str)  # optional


def test_point_labels_are_compact():
    assert [point_label(v) for v in (2, 0.0005, 1e-05, 0.1, True, False, "paper", "8C3-P2-16")] == [
        "2", "0.0005", "1e-05", "0.1", "true", "false", "paper", "8C3-P2-16"]


def test_each_point_is_a_configuration_of_its_own(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    runs = expand(suite)
    assert len({r.run_id for r in runs}) == len({r.config_hash for r in runs}) == len(runs) == 5
    assert len({t.task_config_hash() for t in suite.tasks}) == 5
    for run in runs:
        assert run.run_id.startswith(f"{run.task.name}.tssl.s0.")
        assert run.config["name"] == run.task.name
        assert set(run.task.run_config()) == set(suite.tasks[0].run_config())  # no key added for sweeps


def test_a_task_that_does_not_sweep_keeps_its_run_id(tmp_path):
    alone = load_suite(write(tmp_path, SUITE.split("  - name: grid")[0], "alone.yaml"))
    beside = load_suite(write(tmp_path, SUITE))
    assert alone.name == beside.name == "sw"
    assert Run("sw", beside.task("plain"), "tssl", 0).run_id == Run("sw", alone.task("plain"), "tssl", 0).run_id


def test_committed_digits_reference_has_the_suites_task_configs():
    """results/digits.jsonl is not committed (the quickstart writes it); its reference names each task's seed-free
    config hash, which, with the method and seed, is all a run id is made of."""
    import json

    reference = json.loads((ROOT / "results" / "reference" / "digits.json").read_text())
    suite = load_suite(str(ROOT / "suites" / "digits.yaml"))
    assert reference["entries"]
    for entry in reference["entries"]:
        assert suite.task(entry["task"]).task_config_hash() == entry["task_config_hash"]


@pytest.mark.parametrize("store", ["fmnist", "latency"])
def test_committed_run_ids_are_reproduced(store):
    from tssl.records.store import read_records

    records = read_records(ROOT / "results" / f"{store}.jsonl")
    assert records
    checked = 0
    for record in records:
        config = (record.get("provenance") or {}).get("config") or {}
        if record.get("limit_batches") is not None or "limit_batches" in config or "world_size" in config:
            continue
        overrides = [f"{key}={change['run']}" for key, change in (record.get("deviations") or {}).items()]
        suite = load_suite(str(ROOT / "suites" / f"{store}.yaml"), overrides)
        (task,) = suite.select([record["task"]])
        assert Run(store, task, record["method"], record["seed"]).run_id == record["run_id"]
        checked += 1
    assert checked


GRID = SUITE.split("  - name: grid")[0] + "  - name: grid\n    sweep: {sweep}\n"


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("5", "task 'grid', key 'sweep': expected a mapping of task keys to lists of values"),
        ("{}", "task 'grid', key 'sweep': expected a mapping"),
        ("{stepz: [5]}", "task 'grid', key 'sweep.stepz': unknown key; sweepable keys: "),
        ("{seeds: [0, 1]}", "task 'grid', key 'sweep.seeds': seeds cannot be swept"),
        ("{name: [a, b]}", "task 'grid', key 'sweep.name': name cannot be swept"),
        ("{tolerance: [1, 2]}", "task 'grid', key 'sweep.tolerance': tolerance cannot be swept"),
        ("{steps: []}", "task 'grid', key 'sweep.steps': expected a non-empty list of distinct values"),
        ("{steps: 5}", "task 'grid', key 'sweep.steps': expected a non-empty list of distinct values"),
        ("{steps: [5, 10, 5]}", "task 'grid', key 'sweep.steps': value 5 is listed twice in [5, 10, 5]"),
        ("{steps: [[5]]}", "task 'grid', key 'sweep.steps': each value must be a number"),
        ("{architecture: ['8C3 P2']}", "task 'grid', key 'sweep.architecture': value '8C3 P2' cannot go into"),
        ("{steps: [5, 0]}",
         "task 'grid-steps0', key 'steps': Input should be greater than or equal to 1 (the point steps=0 of the "
         "sweep of task 'grid')"),
        ("{lr: [0.001, -1]}", "task 'grid-lr-1', key 'lr': Input should be greater than 0"),
    ],
)
def test_bad_sweeps_name_file_task_and_key(tmp_path, sweep, message):
    path = write(tmp_path, GRID.replace("{sweep}", sweep))
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SUITE.replace("  - name: plain", "  - name: grid-steps5-lr0.001"),
         "task 'grid', key 'sweep': the point 'grid-steps5-lr0.001' has the name of another task"),
        (SUITE.replace("  - name: plain", "  - name: grid"),
         "task 'grid', key 'name': 'grid' names both a sweep (all its points) and another task"),
        (SUITE.replace("  - name: plain", "  - name: grid\n    sweep: {epochs: [1, 2]}"),
         "task 'grid', key 'name': two tasks that sweep are named 'grid'"),
        (SUITE.replace("  seeds: [0]\n", "  seeds: [0]\n  sweep: {epochs: [1, 2]}\n"),
         "key 'defaults.sweep': only a task can sweep"),
    ],
)
def test_collisions_and_sweeps_in_defaults_are_refused(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_overriding_a_swept_key_is_refused(tmp_path):
    path = write(tmp_path, SUITE)
    with pytest.raises(SuiteError) as error:
        load_suite(path, ["lr=0.1"])
    assert str(error.value) == ("override 'lr': task 'grid' sweeps lr over [0.001, 0.0005]; run one point with "
                                "--only grid-steps10-lr0.001")


def test_other_overrides_apply_to_every_point(tmp_path):
    suite = load_suite(write(tmp_path, SUITE), ["epochs=2"])
    assert all(t.epochs == 2 and t.deviations == {"epochs": {"suite": 1, "run": 2}} for t in suite.tasks)
    assert [t.name for t in suite.tasks[1:]] == POINTS and suite.tasks[1].swept == {"steps": 10, "lr": 0.001}
    # A point's own value of the swept key is the suite's: an override equal to it is no deviation.
    same = load_suite(write(tmp_path, SUITE.replace("sweep: {steps: [10, 5], lr", "sweep: {lr")), ["steps=5"])
    assert all(t.deviations == {} for t in same.tasks)


def test_select_takes_points_and_sweeps(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    assert [t.name for t in suite.select(["grid"])] == POINTS
    assert [t.name for t in suite.select([POINTS[2], "grid", "plain"])] == [POINTS[2], *POINTS[:2], POINTS[3],
                                                                          "plain"]
    assert [r.task.name for r in expand(suite, ["grid"])] == POINTS
    with pytest.raises(SuiteError, match=r"no task 'nope'; tasks: plain, grid-steps10-lr0.001, .*; sweeps: grid$"):
        suite.select(["nope"])
    assert suite.task(POINTS[0]).steps == 10
    with pytest.raises(SuiteError, match=r"task 'grid' is a sweep; its points: grid-steps10-lr0\.001, "):
        suite.task("grid")


def test_report_gets_the_sweeps_and_the_caveat(tmp_path, monkeypatch, capsys):
    """`tssl report` hands the report builder each point's sweep and the suite's caveat (builder stood in for)."""
    calls = []

    def write_report(suite, records, out_dir, **kwargs):
        calls.append(kwargs)
        return out_dir / "index.md"

    report = types.ModuleType("tssl.records.report")
    report.ReportError, report.load_records, report.write_report = ValueError, lambda path: [], write_report
    monkeypatch.setitem(sys.modules, "tssl.records.report", report)
    monkeypatch.chdir(tmp_path)
    assert main(["report", write(tmp_path, SUITE)]) == 0
    (kwargs,) = calls
    assert kwargs["caveat"] == "one epoch per run, far fewer than the paper's"
    tasks = kwargs["suite_tasks"]
    assert list(tasks) == ["plain", *POINTS] and tasks["plain"]["sweep"] is None
    assert tasks[POINTS[1]]["sweep"] == {"task": "grid", "values": {"steps": 10, "lr": 0.0005}}


def test_run_and_status_on_a_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    text = digits_suite("sweeptest", task="digits-sweep") + "    sweep: {lr: [0.005, 0.01]}\n"
    (tmp_path / "suites" / "sweeptest.yaml").write_text(text)
    assert main(["run", "sweeptest", "--device", "cpu"]) == 0
    assert "2 ran, 0 already done, 0 failed" in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "results" / "sweeptest.jsonl").read_text().splitlines()]
    assert [r["task"] for r in records] == ["digits-sweep-lr0.005", "digits-sweep-lr0.01"]
    assert all(r["status"] == "ok" for r in records) and len({r["run_id"] for r in records}) == 2
    assert [r["provenance"]["config"]["lr"] for r in records] == [0.005, 0.01]

    assert main(["run", "sweeptest", "--only", "digits-sweep", "--device", "cpu"]) == 0
    assert "0 ran, 2 already done" in capsys.readouterr().out

    assert main(["status", "sweeptest"]) == 0
    out = capsys.readouterr().out
    assert "2 runs: 2 done" in out and "digits-sweep-lr0.005" in out and "digits-sweep-lr0.01" in out

    assert main(["run", "sweeptest", "lr=0.1"]) == 2
    assert "task 'digits-sweep' sweeps lr over [0.005, 0.01]" in capsys.readouterr().err
