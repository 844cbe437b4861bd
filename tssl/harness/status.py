"""``tssl status SUITE``: where every run (task x method x seed) stands, from the results store, the runs
folder and the executor.

done: a successful record. queued / running: a job for the run that the executor reports as such. failed: the
latest record failed (its error's first line), or its job ended without a record. resumable: a checkpoint and
no live job (``tssl run`` again continues from it). not started: none of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tssl.harness.executors import QUEUED_STATES, RUNNING_STATES, job_state, read_job_book
from tssl.harness.runner import CHECKPOINT, expand
from tssl.harness.suites import Suite
from tssl.records.selection import describe_deviation
from tssl.records.store import latest_records, read_records, store_path

STATES = ("done", "running", "queued", "failed", "resumable", "not started")


@dataclass(frozen=True)
class RunStatus:
    task: str
    method: str
    seed: int
    run_id: str
    state: str  # one of STATES
    detail: str = ""


def suite_status(suite: Suite, results_dir: Path, runs_dir: Path) -> list[RunStatus]:
    latest = latest_records(read_records(store_path(results_dir, suite.name)))
    book = read_job_book(runs_dir, suite.name)
    rows = []
    for run in expand(suite, world_size=suite.cluster.ranks_per_job):
        record, entry = latest.get(run.run_id), book.get(run.run_id)
        checkpoint = runs_dir / suite.name / run.run_id / CHECKPOINT
        state, detail = _state(record, entry, checkpoint)
        rows.append(RunStatus(run.task.name, run.method, run.seed, run.run_id, state, detail))
    # Runs the store holds beyond the suite file's seeds and methods (e.g. `tssl run ... --seeds 3,4`): listed
    # too, so that status shows every run the report will count.
    listed = {row.run_id for row in rows}
    current = {task.name: task.task_config_hash() for task in suite.tasks}
    for run_id, record in latest.items():
        if run_id not in listed and record.get("task") in current:
            state, detail = _state(record, book.get(run_id), runs_dir / suite.name / run_id / CHECKPOINT)
            deviations = record.get("deviations") or {}
            config = str((record.get("provenance") or {}).get("task_config_hash") or "")
            if deviations:
                why = "settings overridden: " + ", ".join(describe_deviation(k, c) for k, c in deviations.items())
            elif record.get("smoke"):
                why = "a smoke run (--limit-batches): never counts as the full run"
            elif config != current[str(record["task"])]:
                why = (f"an earlier configuration of the task (config {config.removeprefix('sha256:')[:8]}): "
                       "the report shows it apart and never pools it with the current one")
            else:
                why = "not in the suite file's seeds or methods"
            rows.append(RunStatus(str(record["task"]), str(record.get("method")), int(record.get("seed", -1)),
                                  run_id, state, f"{detail} ({why})"))
    return rows


def _state(record: dict | None, entry: dict | None, checkpoint: Path) -> tuple[str, str]:
    if record is not None and record.get("status") == "ok":
        return "done", f"final {record['accuracy']['final']:.2f} %" + (" [smoke run]" if record.get("smoke") else "")
    job = ""
    if entry is not None:
        executor_state = job_state(entry)
        job = f"{entry['executor']} job {entry.get('job_id') or '(not started)'}: {executor_state}"
        if executor_state in RUNNING_STATES:
            return "running", job
        if executor_state in QUEUED_STATES:
            return "queued", job
    if record is not None:
        error = (record.get("error") or "").strip().splitlines()
        return "failed", (error[0] if error else "failed") + (f"; {job}" if job else "")
    if checkpoint.exists():
        return "resumable", "checkpoint present" + (f"; {job}" if job else "")
    if entry is not None and job_state(entry) not in ("UNKNOWN", "FINISHED", "COMPLETED"):
        return "failed", f"{job}, no record"  # e.g. TIMEOUT, CANCELLED, OUT_OF_MEMORY before a first epoch
    return "not started", job


def format_table(suite: Suite, rows: list[RunStatus]) -> str:
    header = ("task", "method", "seed", "state", "detail")
    table = [header, *[(r.task, r.method, str(r.seed), r.state, r.detail) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
             for row in table]
    counts = ", ".join(f"{sum(r.state == s for r in rows)} {s}" for s in STATES if any(r.state == s for r in rows))
    return "\n".join([f"suite {suite.name}: {len(rows)} runs: {counts}", *(line.rstrip() for line in lines)])
