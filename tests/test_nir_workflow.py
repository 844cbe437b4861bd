"""NIR in the workflow (issue 16, item 4 and the suite key of item 2): a finished native run keeps final.pt,
`tssl export` writes it as a NIR graph, a suite task with `nir:` trains the graph with TSSL-BP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_suites import digits_suite

from tssl.cli import main
from tssl.compat.nir import load_final_network, load_nir
from tssl.data.registry import load_data
from tssl.engine.train import evaluate
from tssl.harness.runner import expand
from tssl.harness.suites import SuiteError, load_suite

NIR_TASK = """
name: {name}
tasks:
  - name: from-graph
    dataset: digits
    nir: {graph}
    steps: 5
    epochs: 1
    batch_size: 64
    lr: 0.005
    loss: kernel
    methods: [{methods}]
    seeds: [0]
{extra}"""


def nir_suite(workdir: Path, name: str, graph: str = "graph.nir", methods: str = "tssl", extra: str = "") -> Path:
    path = workdir / "suites" / f"{name}.yaml"
    path.write_text(NIR_TASK.format(name=name, graph=graph, methods=methods, extra=extra))
    return path


def records(workdir: Path, suite: str) -> list[dict]:
    return [json.loads(line) for line in (workdir / "results" / f"{suite}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tssl run of a tiny digits suite, run through the command line in its own folder."""
    workdir = tmp_path_factory.mktemp("nirflow")
    (workdir / "suites").mkdir()
    (workdir / "suites" / "nirflow.yaml").write_text(digits_suite("nirflow"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        assert main(["run", "nirflow", "--device", "cpu"]) == 0
    (record,) = records(workdir, "nirflow")
    return workdir, record


@pytest.fixture
def in_finished(finished, monkeypatch):
    workdir, record = finished
    monkeypatch.chdir(workdir)
    return workdir, record


@pytest.fixture(scope="module")
def digits_test():
    return load_data("digits", steps=5).test


def test_a_finished_native_run_keeps_its_trained_weights(in_finished, digits_test):
    workdir, record = in_finished
    final = Path("runs") / "nirflow" / record["run_id"] / "final.pt"
    assert record["final_weights"] == final.as_posix()
    assert sorted(p.name for p in final.parent.iterdir()) == ["final.pt"]  # checkpoint and lock are gone
    network = load_final_network(workdir / final)  # the trained network: it reaches the recorded accuracy
    accuracy = evaluate(network, [(digits_test.inputs[i:i + 64], digits_test.labels[i:i + 64])
                                  for i in range(0, len(digits_test.labels), 64)])
    assert round(100 * accuracy, 4) == record["accuracy"]["final"]


def test_export_by_run_id_reads_back_to_identical_outputs(in_finished, digits_test, capsys):
    workdir, record = in_finished
    capsys.readouterr()
    assert main(["export", record["run_id"], "out.nir"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("wrote out.nir: ") and "NIR nodes, dt 0.0001 s, pooling sum" in line
    original = load_final_network(workdir / record["final_weights"])
    imported = load_nir(workdir / "out.nir")
    inputs = digits_test.inputs[:200]
    with torch.no_grad():
        assert torch.equal(imported(inputs), original(inputs))

    run_dir = workdir / "runs" / "nirflow" / record["run_id"]
    assert main(["export", str(run_dir), "folder.nir", "--pooling", "avg"]) == 0  # a folder, and the other form
    assert "pooling avg" in capsys.readouterr().out and (workdir / "folder.nir").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["export", "no-such-run", "x.nir"], "no-such-run: not a path, and looking for runs/*/no-such-run/final.pt"),
    (["export", "no-such-run", "x.nir", "--runs-dir", "elsewhere"], "looking for elsewhere/*/no-such-run/final.pt"),
    (["export", "suites", "x.nir"], "suites: no final.pt in this folder"),
    (["export", "suites/nirflow.yaml", "x.nir"], "suites/nirflow.yaml: not a final.pt; give a run id"),
    (["export", "junk.pt", "x.nir"], "junk.pt: cannot be read as final weights"),
])
def test_export_refuses_bad_input_in_one_sentence(in_finished, capsys, args, message):
    Path("junk.pt").write_bytes(b"not a torch file")
    assert main(args) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    assert not Path("x.nir").exists()


def test_export_without_nir_says_how_to_install_it(in_finished, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_nir(name, *args, **kwargs):
        if name == "nir" or name.startswith("nir."):
            raise ImportError("No module named 'nir'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_nir)
    assert main(["export", in_finished[1]["run_id"], "x.nir"]) == 2
    error = capsys.readouterr().err
    assert "pip install 'tssl-bench[nir]'" in error and error.count("\n") == 1


def test_a_nir_task_trains_the_graph_and_its_run_id_follows_the_file(in_finished, capsys):
    workdir, record = in_finished
    assert main(["export", record["run_id"], "graph.nir"]) == 0
    suite_path = nir_suite(workdir, "fromgraph")
    (run,) = expand(load_suite(str(suite_path)))
    assert run.config["nir"].startswith("sha256:") and "architecture" not in run.config
    assert main(["run", "fromgraph", "--device", "cpu"]) == 0
    (trained,) = records(workdir, "fromgraph")
    assert trained["status"] == "ok" and trained["run_id"] == run.run_id
    assert trained["provenance"]["implementation"]["grad_rule"] == "tsslbp"
    # One more epoch from the graph's trained weights beats the one epoch from scratch that made the graph.
    assert trained["accuracy"]["final"] > record["accuracy"]["final"]
    run_dir = workdir / "runs" / "fromgraph" / run.run_id
    assert sorted(p.name for p in run_dir.iterdir()) == ["final.pt", "source.nir"]
    assert main(["export", run.run_id, "retrained.nir"]) == 0  # rebuilt from the kept graph
    start, retrained = load_nir(workdir / "graph.nir"), load_nir(workdir / "retrained.nir")
    assert not torch.equal(start.layers[0].weight, retrained.layers[0].weight)  # its weights were trained

    assert expand(load_suite(str(suite_path)))[0].run_id == run.run_id  # the same file: the same run
    assert main(["export", record["run_id"], "graph.nir", "--pooling", "avg"]) == 0  # the same path, new content
    assert expand(load_suite(str(suite_path)))[0].run_id != run.run_id


def test_a_nir_task_refuses_other_methods_and_mismatched_time_constants(in_finished, capsys):
    workdir, record = in_finished
    assert main(["export", record["run_id"], "graph.nir"]) == 0
    capsys.readouterr()
    nir_suite(workdir, "baseline", methods="snntorch")
    assert main(["run", "baseline", "--device", "cpu"]) == 2
    assert "nir graphs are built by the native engine only" in capsys.readouterr().err
    nir_suite(workdir, "slower", extra="    tau_s: 4\n")
    assert main(["run", "slower", "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "graph.nir has tau_s = 3 steps, the task 4; set tau_s: 3" in error and error.count("\n") == 1
    assert not (workdir / "results" / "baseline.jsonl").exists() and not (workdir / "results" / "slower.jsonl").exists()


@pytest.mark.parametrize(("graph", "extra", "message"), [
    ("graph.nir", "    architecture: 8C3-P2-16\n", "architecture and nir both given"),
    ("graph.nir", "    padding: 1\n", "padding cannot be set with nir"),
    ("missing.nir", "", "nir: cannot read missing.nir"),
])
def test_the_nir_key_is_validated_when_the_suite_loads(in_finished, graph, extra, message):
    workdir, record = in_finished
    assert main(["export", record["run_id"], "graph.nir"]) == 0
    with pytest.raises(SuiteError, match=message):
        load_suite(str(nir_suite(workdir, "bad", graph=graph, extra=extra)))


def test_a_task_needs_an_architecture_or_a_graph(tmp_path):
    path = tmp_path / "none.yaml"
    path.write_text(digits_suite("none").replace("    architecture: 8C3-P2-16\n", ""))
    with pytest.raises(SuiteError, match="give the network: architecture"):
        load_suite(str(path))
    path.write_text(digits_suite("none"))
    (task,) = load_suite(str(path)).tasks  # without nir, the config (and run id) is what it was before the key
    assert "nir" not in task.run_config() and task.run_config()["architecture"] == "8C3-P2-16"


def test_the_report_says_how_to_export_a_run(in_finished, capsys):
    workdir, record = in_finished
    assert main(["report", "nirflow"]) == 0
    index = (workdir / "reports" / "nirflow" / "index.md").read_text()
    assert f"`tssl export {record['run_id']} OUT.nir`" in index and "(../../docs/nir.md)" in index
