"""The results store: one JSON line per finished run in ``results/<suite>.jsonl`` (bench records in
``results/bench/bench.jsonl``).

Appends are whole lines written under an exclusive lock, flushed and fsynced, so two runners can append to
the same store at once. Every record is validated against :mod:`tssl.records.schema` when written and when read.

Faults: a process killed in the middle of an append can leave a torn last line (no newline, not valid JSON).
Readers and the next append move it to ``<store>.torn`` with a one-line warning, so every command keeps
working and the bytes are kept for inspection. A bad line anywhere else is not an interrupted append: it is an
error that names the line and says how to set it aside. See docs/results-format.md.

Torch-free: the report and ``tssl check`` read stores through this module on machines without torch.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tssl.records.schema import (
    BENCH_KIND,
    RUN_SCHEMA_VERSION,
    bench_record_problem,
    normalize_run_record,
    run_record_problem,
)

SCHEMA_VERSION = RUN_SCHEMA_VERSION
TORN_SUFFIX = ".torn"

Problem = Callable[[Any], str | None]


class ResultsError(ValueError):
    """A results store that cannot be read, or a record that may not be written."""


def store_path(results_dir: Path, suite: str) -> Path:
    return results_dir / f"{suite}.jsonl"


def record_problem(record: Any) -> str | None:
    """The schema check for either kind of record: bench records by their ``kind``, run records otherwise."""
    if isinstance(record, dict) and record.get("kind") == BENCH_KIND:
        return bench_record_problem(record)
    return run_record_problem(record)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def _set_aside_torn_tail(path: Path, descriptor: int) -> bool:
    """With the store locked exclusively: if its last line is torn (no newline, not JSON), move it to
    ``<store>.torn``, cut it from the store and say so. True when the store now ends with a whole line."""
    size = os.fstat(descriptor).st_size
    if not size or os.pread(descriptor, 1, size - 1) == b"\n":
        return True
    content = os.pread(descriptor, size, 0)
    start = content.rfind(b"\n") + 1
    tail = content[start:]
    if _is_json(tail):
        return False  # a whole record whose newline is missing: keep it, start the next on a line of its own
    side = path.with_name(path.name + TORN_SUFFIX)
    with open(side, "ab") as handle:
        handle.write(tail + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.ftruncate(descriptor, start)
    os.fsync(descriptor)
    _warn(f"{path}: its last line was cut short by an interrupted write ({len(tail)} bytes); moved it to {side}")
    return True


def append_record(path: Path, record: dict[str, Any], problem: Problem | None = record_problem) -> None:
    """Validate ``record`` (``problem``; None skips it) and append it as one line: one ``write`` on an O_APPEND
    descriptor under an exclusive ``flock``, then fsync, so that any number of processes (local jobs, Slurm
    jobs on a shared file system) can append at once."""
    why = problem(record) if problem is not None else None
    if why:
        raise ResultsError(f"{path}: refusing to write an invalid record ({why}).")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        if not _set_aside_torn_tail(path, descriptor):
            data = b"\n" + data
        written = 0
        while written < len(data):  # a single write unless the kernel splits it
            written += os.write(descriptor, data[written:])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)  # releases the lock


def _read_lines(path: Path) -> list[bytes]:
    """The store's lines, a torn last line set aside first (under an exclusive lock, only when there is one)."""
    with open(path, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        content = handle.read()
        fcntl.flock(handle, fcntl.LOCK_UN)
    if content and not content.endswith(b"\n") and not _is_json(content[content.rfind(b"\n") + 1:]):
        try:
            descriptor = os.open(path, os.O_RDWR)
        except OSError:  # a read-only store: leave the file alone and read past its torn line
            _warn(f"{path}: its last line was cut short by an interrupted write; ignoring it (the store is not "
                  "writable, so it stays in the file)")
            return content[:content.rfind(b"\n") + 1].splitlines()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            _set_aside_torn_tail(path, descriptor)
            content = os.pread(descriptor, os.fstat(descriptor).st_size, 0)
        finally:
            os.close(descriptor)
    return content.splitlines()


def set_aside_hint(path: Path, number: int) -> str:
    return (f"to set it aside, move it to another file: sed -n '{number}p' {path} >> {path}.rejected && "
            f"sed -i '{number}d' {path}")


def read_records(path: Path, validate: Problem | None = record_problem) -> list[dict[str, Any]]:
    """Every record in a store ([] when it does not exist), validated by ``validate`` (None: only that each line
    is a JSON object with a run_id). Run records come back normalised
    (:func:`tssl.records.schema.normalize_run_record`). A torn last line is set aside (see the module's docstring);
    any other bad line is a :class:`ResultsError` naming the file and the line."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(_read_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            what = f"{error.msg} at column {error.colno}" if isinstance(error, json.JSONDecodeError) else "not UTF-8"
            raise ResultsError(f"{path}, line {number}: not valid JSON ({what}); "
                               f"{set_aside_hint(path, number)}.") from None
        problem = None if isinstance(record, dict) else "not a JSON object"
        if problem is None and validate is not None:
            problem = validate(record)
        if problem is None and "run_id" not in record:
            problem = "no run_id"
        if problem:
            what = "bench" if isinstance(record, dict) and record.get("kind") == BENCH_KIND else "run"
            raise ResultsError(f"{path}, line {number}: not a valid {what} record ({problem}); "
                               f"{set_aside_hint(path, number)}.")
        if validate is not None and record.get("kind") != BENCH_KIND:
            normalize_run_record(record)
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
