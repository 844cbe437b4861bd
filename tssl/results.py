"""The results store: one JSON line per finished run in ``results/<suite>.jsonl``.

Appends are whole lines written under an exclusive lock, flushed and fsynced, so two runners can append to
the same store at once and a crash never leaves half a record. See docs/results-format.md.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class ResultsError(ValueError):
    """A results store that cannot be read."""


def store_path(results_dir: Path, suite: str) -> Path:
    return results_dir / f"{suite}.jsonl"


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line: one ``write`` on an O_APPEND descriptor under an exclusive ``flock``, then
    fsync, so that any number of processes (local jobs, Slurm jobs on a shared file system) can append at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        size = os.fstat(descriptor).st_size
        if size and os.pread(descriptor, 1, size - 1) != b"\n":
            data = b"\n" + data  # a writer died mid-line: start on a line of our own
        written = 0
        while written < len(data):  # a single write unless the kernel splits it
            written += os.write(descriptor, data[written:])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)  # releases the lock


def read_records(path: Path, validate: Callable[[Any], str | None] | None = None) -> list[dict[str, Any]]:
    """Every record in a store ([] when it does not exist). A malformed line, or one that ``validate`` finds a
    problem with, is an error naming the file and the line."""
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        lines = handle.readlines()
        fcntl.flock(handle, fcntl.LOCK_UN)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ResultsError(
                f"{path}, line {number}: not valid JSON ({error.msg} at column {error.colno})."
            ) from None
        problem = None if isinstance(record, dict) else "not a JSON object"
        if problem is None and validate is not None:
            problem = validate(record)
        if problem is None and "run_id" not in record:
            problem = "no run_id"
        if problem:
            raise ResultsError(f"{path}, line {number}: not a valid run record ({problem}).")
        records.append(record)
    return records


def finished_run_ids(records: list[dict[str, Any]]) -> set[str]:
    return {r["run_id"] for r in records if r.get("status") == "ok"}


def latest_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The record that stands for each run id: its last ok record (a --force rerun supersedes an earlier one,
    and a later failure undoes nothing), else its last failed record. The report, ``tssl check`` and
    ``tssl status`` all read a store through this rule."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        run_id = record.get("run_id")
        if run_id and (record.get("status") == "ok" or latest.get(run_id, {}).get("status") != "ok"):
            latest[run_id] = record
    return latest


def latest_ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last successful record of each run (a --force rerun supersedes the earlier one)."""
    return [record for record in latest_records(records).values() if record.get("status") == "ok"]


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a record's numeric fields must hold to be used."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
