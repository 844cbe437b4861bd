"""Suite files: the shipped ones validate; bad files and overrides are refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tssl.harness.suites import SuiteError, load_suite

SUITES = Path(__file__).parents[1] / "suites"
PAPER_ROWS = {
    "mnist": {"mnist-cnn": (5, 99.50)},
    "fmnist": {"fmnist-mlp": (5, 89.75), "fmnist-cnn": (5, 92.69)},
    "nmnist": {"nmnist-t30": (30, 99.23), "nmnist-t100": (100, 99.35)},
    "cifar10": {"cifar10-cnn1": (5, 88.98), "cifar10-cnn2": (5, None)},
}


@pytest.mark.parametrize("name", ["digits", *PAPER_ROWS])
def test_shipped_suites_validate(name):
    suite = load_suite(str(SUITES / f"{name}.yaml"))
    assert suite.name == name
    rows = [t for t in suite.tasks if name == "digits" or t.name in PAPER_ROWS[name]]
    assert rows
    for task in rows:  # every paper row is run by every method, 3 seeds; diagnostic tasks may run fewer
        assert set(task.methods) == {"tssl", "tssl-surrogate", "snntorch", "spikingjelly"}
        assert len(task.seeds) >= 3
    for task_name, (steps, paper_mean) in PAPER_ROWS.get(name, {}).items():
        task = suite.task(task_name)
        assert task.steps == steps
        assert task.paper is not None and task.paper.mean == paper_mean and "Zhang & Li" in task.paper.source


def test_cifar10_settings_follow_the_paper():
    cnn1 = load_suite(str(SUITES / "cifar10.yaml")).task("cifar10-cnn1")
    assert (cnn1.epochs, cnn1.batch_size, cnn1.lr, cnn1.dropout, cnn1.conv_weight_scale) == (150, 50, 2e-4, 0.2, 5)
    assert cnn1.architecture == "96C3-256C3-P2-384C3-P2-384C3-256C3-1024-1024"


def test_overrides_apply_to_every_task():
    suite = load_suite(str(SUITES / "fmnist.yaml"), ["epochs=2", "seeds=[7]", "methods=[tssl]"])
    assert {(t.epochs, tuple(t.seeds), tuple(t.methods)) for t in suite.tasks} == {(2, (7,), ("tssl",))}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return str(path)


GOOD_TASK = """
name: s
tasks:
  - name: t1
    dataset: digits
    architecture: 16C3-P2-64
    steps: 5
    epochs: 2
    batch_size: 32
    lr: 0.005
    loss: kernel
    methods: [tssl]
    seeds: [0]
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("    lr: 0.005\n", "    lr: 0.005\n    learning_rate: 1\n"), "task 't1', key 'learning_rate': unknown key"),
        (("epochs: 2", "epochs: two"), "task 't1', key 'epochs': Input should be a valid integer"),
        (("epochs: 2", "epochs: 0"), "key 'epochs': Input should be greater than or equal to 1"),
        (("steps: 5", "steps: 5\n    kernel_target_fill: middle"),
         "task 't1', key 'kernel_target_fill': Input should be 'last' or 'first'"),
        (("dataset: digits", "dataset: svhn"), "key 'dataset': unknown dataset 'svhn'; allowed: digits"),
        (("methods: [tssl]", "methods: [tssl, brian2]"), "unknown method 'brian2'; allowed: tssl"),
        (("16C3-P2-64", "16C3-P2-6Q"), "bad token '6Q'"),
        (("    lr: 0.005\n", ""), "key 'lr': required key is missing"),
        (("loss: kernel", "loss: count"), "the count loss needs desired_count and undesired_count"),
    ],
)
def test_bad_suite_names_file_task_key_and_reason(tmp_path, change, message):
    path = write(tmp_path, GOOD_TASK.replace(*change))
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert str(error.value).startswith(path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs", "not of the form key=value"),
        ("epoch=3", "override 'epoch': unknown key"),
        ("batch_size=-1", "key 'batch_size': Input should be greater than or equal to 1"),
        ("kernel_target_fill=middle", "key 'kernel_target_fill': Input should be 'last' or 'first'"),
    ],
)
def test_bad_overrides_are_refused(tmp_path, override, message):
    with pytest.raises(SuiteError, match=None) as error:
        load_suite(write(tmp_path, GOOD_TASK), [override])
    assert message in str(error.value)


def test_missing_suite_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SuiteError, match="suite 'nope' not found"):
        load_suite("nope")
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(str(tmp_path / "nope.yaml"))


def test_installed_suites_are_found_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no suites/ folder here
    assert load_suite("fmnist").task("fmnist-mlp").batch_size == 100


def test_overrides_that_change_results_are_recorded_as_deviations():
    suite = load_suite(str(SUITES / "fmnist.yaml"), ["epochs=3", "seeds=[0]", "methods=[tssl]", "lr=0.0005"])
    # seeds and methods pick runs, and lr equals the file's: only epochs changes what a run computes
    assert all(t.deviations == {"epochs": {"suite": 100, "run": 3}} for t in suite.tasks)
    assert all(t.deviations == {} for t in load_suite(str(SUITES / "fmnist.yaml")).tasks)


def test_committed_results_keep_their_run_ids():
    """A new task key must not change the run ids of results already published (they would all rerun)."""
    from tssl.harness.runner import Run
    from tssl.records.store import read_records

    store = Path(__file__).resolve().parents[1] / "results" / "fmnist.jsonl"
    records = read_records(store)
    assert records, "results/fmnist.jsonl holds the published Fashion-MNIST runs"
    for record in records:  # a run with overridden settings (a reduced-epoch run) is rebuilt with its overrides
        overrides = [f"{key}={change['run']}" for key, change in (record.get("deviations") or {}).items()]
        suite = load_suite("fmnist", overrides)
        run = Run("fmnist", suite.task(record["task"]), record["method"], record["seed"])
        assert run.run_id == record["run_id"]
