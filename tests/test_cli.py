"""The command line end to end on a tiny suite; bad input is one clear line, exit status 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_suites import digits_suite

from tssl.cli import main

SUITE = digits_suite("clitest", epochs=2, methods=("tssl", "tssl-surrogate"), seeds=(0, 1), validation_fraction=0.1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "clitest.yaml").write_text(SUITE)
    return tmp_path


def test_run_report_check(workdir, capsys):
    assert main(["run", "clitest", "--device", "cpu"]) == 0
    assert "4 ran, 0 already done, 0 failed" in capsys.readouterr().out
    records = [json.loads(line) for line in (workdir / "results" / "clitest.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)

    assert main(["run", "clitest", "--device", "cpu"]) == 0  # everything is done: nothing runs twice
    assert "0 ran, 4 already done" in capsys.readouterr().out

    assert main(["report", "clitest"]) == 0
    index = workdir / "reports" / "clitest" / "index.md"
    assert index.exists() and "digits-tiny" in index.read_text()

    assert main(["check", "clitest", "--write-reference"]) == 0
    reference = json.loads((workdir / "results" / "reference" / "clitest.json").read_text())
    assert {(e["task"], e["method"], e["n"]) for e in reference["entries"]} == {
        ("digits-tiny", "tssl", 2), ("digits-tiny", "tssl-surrogate", 2)
    }
    capsys.readouterr()
    assert main(["check", "clitest"]) == 0
    assert capsys.readouterr().out.count(" ok ") == 2

    # A regression: the reference claims 30 points more than the runs reach (with n = 2 a one-sided Welch test at
    # 1 % needs a drop many times the spread: 10 points at these spreads gives p ≈ 0.02, not a regression).
    for entry in reference["entries"]:
        entry["values"] = [value + 30 + 0.1 * position for position, value in enumerate(entry["values"])]
    (workdir / "results" / "reference" / "clitest.json").write_text(json.dumps(reference))
    assert main(["check", "clitest"]) == 1
    assert "REGRESSION" in capsys.readouterr().out

    assert main(["check", "clitest", "--paper"]) == 0  # no paper numbers: nothing to fail on
    assert "no paper mean" in capsys.readouterr().out


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tssl", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "clitest", "epochs=0"], "key 'epochs': Input should be greater than or equal to 1"),
        (["run", "clitest", "--only", "digits-tiny", "epochs=0"], "(after overrides epochs=0)"),
        (["report", "clitest", "epochs=1"], "unrecognized arguments: epochs=1"),
        (["run", "clitest", "architecture=8C3-Q2"], "bad token 'Q2'"),
        (["run", "clitest", "methods=[nope]"], "unknown method 'nope'"),
        (["run", "clitest", "steps=0"], "key 'steps': Input should be greater than or equal to 1"),
        (["run", "clitest", "--only", "nosuch"], "no task 'nosuch'"),
        (["run", "nosuite"], "suite 'nosuite' not found"),
        (["run", "clitest", "--device", "cuda:7"], "cuda"),
        (["run", "clitest", "--seeds", "a,b"], "expected comma-separated integers"),
        (["run", "clitest", "dataset=mnist"], "tssl fetch-data mnist"),
        (["report", "clitest"], "clitest.jsonl"),
        (["check", "clitest"], "clitest.json: cannot read the reference"),
        (["fetch-data", "imagenet"], "dataset 'imagenet' is unknown; allowed: digits"),
    ],
)
def test_bad_input_is_one_line_without_traceback(workdir, args, message):
    if args[-1] == "cuda:7" and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    (workdir / "results").mkdir(exist_ok=True)
    (workdir / "results" / "clitest.jsonl").write_text('{"run_id": "kept", "status": "ok"}\n')
    result = run_cli(*args, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # One error line, last (argparse's own errors print the usage above it).
    assert message.lower() in result.stderr.strip().splitlines()[-1].lower()
    # Nothing already written is lost.
    assert (workdir / "results" / "clitest.jsonl").read_text() == '{"run_id": "kept", "status": "ok"}\n'


@pytest.mark.parametrize("command", [["run", "clitest"], ["bench", "--net", "fmnist-mlp"]])
def test_bad_neuron_backend_setting_is_refused_before_running(workdir, command, monkeypatch):
    monkeypatch.setenv("TSSL_NEURON_BACKEND", "cuda-fast")
    result = run_cli(*command, cwd=workdir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "TSSL_NEURON_BACKEND='cuda-fast' is not a neuron backend; allowed: auto, torch, triton" in result.stderr
    assert not (workdir / "results" / "clitest.jsonl").exists()
