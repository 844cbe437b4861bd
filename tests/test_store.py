"""The results store under faults (tssl/records/store.py): a torn last line, a bad line in the middle, an invalid
record; and the commands that read a store (report, check, status) with a torn last line.

Every record here is SYNTHETIC (tests/records.py): invented numbers, valid under the schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from records import seeds_of, suite_yaml, synthetic_record, write_store

from tssl.cli import main
from tssl.records.store import TORN_SUFFIX, ResultsError, append_record, read_records

TORN = b'{"run_id": "digits-cnn.tssl.s3.8d86d7c5", "status": "ok", "accur'  # a killed append: half a line


def tear(store: Path) -> None:
    """Simulate a process killed in the middle of an append: half a JSON line, no newline."""
    with open(store, "ab") as handle:
        handle.write(TORN)


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_a_torn_last_line_is_set_aside_with_one_warning(tmp_path: Path, capsys) -> None:
    store = tmp_path / "synth.jsonl"
    records = write_store(store, seeds_of([97.0, 97.1]))
    tear(store)
    assert [r["run_id"] for r in read_records(store)] == [r["run_id"] for r in seeds_of([97.0, 97.1])]
    (warning,) = warnings(capsys.readouterr().err)
    side = tmp_path / f"synth.jsonl{TORN_SUFFIX}"
    assert str(store) in warning and str(side) in warning and "interrupted write" in warning
    assert side.read_bytes() == TORN + b"\n"  # the bytes are kept for inspection
    assert store.read_bytes().endswith(b"}\n") and len(store.read_text().splitlines()) == 2
    assert records == store  # write_store returns the path
    # Once set aside, the store reads cleanly with no further warning.
    assert len(read_records(store)) == 2 and not warnings(capsys.readouterr().err)


def test_an_append_after_a_torn_tail_sets_it_aside_and_appends_cleanly(tmp_path: Path, capsys) -> None:
    store = write_store(tmp_path / "synth.jsonl", seeds_of([97.0]))
    tear(store)
    append_record(store, synthetic_record(seed=1, final=97.2))
    lines = store.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["seed"] == 1
    assert [r["seed"] for r in read_records(store)] == [0, 1]
    assert (tmp_path / "synth.jsonl.torn").read_bytes() == TORN + b"\n"
    assert len(warnings(capsys.readouterr().err)) == 1


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path, capsys) -> None:
    store = write_store(tmp_path / "synth.jsonl", seeds_of([97.0]))
    with open(store, "a") as handle:
        handle.write(json.dumps(synthetic_record(seed=1)))  # whole, only the newline missing
    assert [r["seed"] for r in read_records(store)] == [0, 1]
    append_record(store, synthetic_record(seed=2))
    assert [r["seed"] for r in read_records(store)] == [0, 1, 2]
    assert not (tmp_path / "synth.jsonl.torn").exists() and not warnings(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ('{"run_id": "x", "sta', "not valid JSON"),  # a torn line that is not the last one
        ("[1, 2]", "not a valid run record (not a JSON object)"),
        (json.dumps({"run_id": "x", "status": "ok"}), "not a valid run record"),
        (json.dumps({**synthetic_record(seed=7), "status": "done"}), "not a valid run record (status"),
    ],
)
def test_a_bad_line_in_the_middle_is_an_error_naming_it(tmp_path: Path, bad: str, problem: str) -> None:
    store = tmp_path / "synth.jsonl"
    first, last = seeds_of([97.0, 97.1])
    store.write_text(json.dumps(first) + "\n" + bad + "\n" + json.dumps(last) + "\n")
    before = store.read_bytes()
    with pytest.raises(ResultsError) as caught:
        read_records(store)
    message = str(caught.value)
    assert message.startswith(f"{store}, line 2: {problem}"), message
    assert f"sed -n '2p' {store} >> {store}.rejected && sed -i '2d' {store}" in message  # how to set it aside
    assert store.read_bytes() == before and not (tmp_path / "synth.jsonl.torn").exists()  # nothing moved


def test_an_invalid_record_is_refused_on_write(tmp_path: Path) -> None:
    store = write_store(tmp_path / "synth.jsonl", seeds_of([97.0]))
    before = store.read_bytes()
    bad = synthetic_record(seed=1)
    bad["accuracy"]["final"] = float("nan")
    with pytest.raises(ResultsError, match=r"refusing to write an invalid record \(accuracy\.final: must be a finite"):
        append_record(store, bad)
    with pytest.raises(ResultsError, match="refusing to write an invalid record"):
        append_record(store, {"run_id": "a", "status": "ok"})
    assert store.read_bytes() == before
    append_record(store, {"run_id": "a", "status": "ok"}, problem=None)  # store mechanics only: no schema
    assert read_records(store, validate=None)[-1] == {"run_id": "a", "status": "ok"}


# ------------------------------------------------------------------------------------------------------------
# Every command keeps working with a torn last line


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    """suites/synth.yaml (one task, seeds 0-2, tssl) and its store of three SYNTHETIC runs, a torn line last."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "synth.yaml").write_text(suite_yaml("synth"))
    write_store(tmp_path / "results" / "synth.jsonl", seeds_of([96.8, 96.9, 97.0]))  # best 97.1 ± 0.1
    tear(tmp_path / "results" / "synth.jsonl")
    return tmp_path


def _ran_with_one_warning(capsys, workdir: Path) -> str:
    """The command's stdout, after checking that it warned once about the torn line and set it aside."""
    captured = capsys.readouterr()
    assert len(warnings(captured.err)) == 1 and "Traceback" not in captured.err, captured.err
    assert (workdir / "results" / "synth.jsonl.torn").exists()
    assert len(read_records(workdir / "results" / "synth.jsonl")) == 3
    return captured.out


def test_report_reads_a_store_with_a_torn_last_line(workdir: Path, capsys) -> None:
    assert main(["report", "synth"]) == 0
    assert "report written to" in _ran_with_one_warning(capsys, workdir)
    assert "- Runs: 3 ok, 0 failed" in (workdir / "reports" / "synth" / "index.md").read_text()


def test_check_and_check_paper_read_a_store_with_a_torn_last_line(workdir: Path, capsys) -> None:
    assert main(["check", "synth", "--write-reference"]) == 0
    assert "reference written to" in _ran_with_one_warning(capsys, workdir)
    tear(workdir / "results" / "synth.jsonl")
    assert main(["check", "synth"]) == 0
    assert re.search(r"^  ok +digits-cnn / tssl: ", _ran_with_one_warning(capsys, workdir), re.MULTILINE)
    tear(workdir / "results" / "synth.jsonl")
    assert main(["check", "synth", "--paper"]) == 0
    assert re.search(r"^  reproduced +digits-cnn / tssl: ", _ran_with_one_warning(capsys, workdir), re.MULTILINE)


def test_status_reads_a_store_with_a_torn_last_line(workdir: Path, capsys) -> None:
    assert main(["status", "synth"]) == 0
    assert "suite synth: 3 runs: 3 done" in _ran_with_one_warning(capsys, workdir)
