"""The command line: the digits job runs and reports; bad input is one clear line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tssl.cli import main


def test_digits_job_prints_accuracy_per_epoch_and_writes_json(tmp_path, capsys):
    out_file = tmp_path / "run.json"
    assert main(["digits", "--epochs", "2", "--json", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("test acc") == 2
    record = json.loads(out_file.read_text())
    assert [r["epoch"] for r in record["history"]] == [1, 2]
    assert record["history"][-1]["test_accuracy"] > 0.5
    assert record["provenance"]["grad_rule"] == "tsslbp" and "load_digits" in record["data_source"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--architecture", "16C3-Q2"], "bad token 'Q2'"),
        (["--method", "nope"], "method 'nope' is unknown; allowed: tssl"),
        (["-T", "7"], "needs T a multiple of 5"),
        (["--lr", "-1"], "lr must be > 0"),
        (["--batch-size", "0"], "must be >= 1"),
    ],
)
def test_bad_input_is_one_line_without_traceback(args, message):
    result = subprocess.run(
        [sys.executable, "-m", "tssl", "digits", "--epochs", "1", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # One error line, last (argparse's own errors print the usage above it).
    assert message.lower() in result.stderr.strip().splitlines()[-1].lower()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_clear_error(capsys):
    assert main(["digits", "--device", "cuda", "--epochs", "1"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
