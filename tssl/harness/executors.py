"""``tssl run SUITE --executor slurm|local``: one submitit job per run (task x method x seed).

Each job loads its data, trains its run (resuming from the run's checkpoint) and appends its record to the
shared results store under the store's lock; the run's own lock keeps two jobs from training the same run. A job
that times out or is preempted is requeued by submitit (``Checkpointable``) and resumes from its last finished
epoch. Submitted job ids are kept per run in ``RUNS_DIR/<suite>/jobs.json``, which ``tssl status`` reads.

``slurm`` submits a job array (at most ``concurrency`` running at once) and returns; ``local`` runs the same
jobs as local processes through submitit's LocalExecutor, ``concurrency`` at a time, and waits for them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tssl.harness.runner import CHECKPOINT, Run, RunOptions, expand, recorded_runs
from tssl.harness.suites import ClusterConfig, Suite, SuiteError
from tssl.records.schema import utc_now

try:  # the `cluster` extra; without it `tssl run --executor ...` says what to install
    from submitit.helpers import Checkpointable as _JobBase
except ModuleNotFoundError:
    _JobBase = object  # type: ignore[assignment,misc]

EXECUTORS = ("slurm", "local")
JOBS_FILE = "jobs.json"
LOCAL_POLL_SECONDS = 0.5


class RunJob(_JobBase):
    """The callable a job runs: one run, on every rank of the job. Requeued as is after a timeout/preemption
    (submitit's ``Checkpointable``): the run itself resumes from its last per-epoch checkpoint."""

    def __init__(self, run: Run, options: RunOptions) -> None:
        self.run, self.options = run, options

    def __call__(self) -> str:
        from tssl.engine import distributed
        from tssl.harness.runner import check_runs, load_datasets, perform_run, resolve_device

        if self.run.world_size > 1:  # one process per GPU: export RANK, WORLD_SIZE, MASTER_ADDR/PORT for torch
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        ranks = distributed.ranks_from_environment()
        device = resolve_device(distributed.device_for(self.options.device, ranks))
        check_runs([self.run], device)
        data = load_datasets([self.run], device)
        distributed.init_process_group(ranks, device)
        completed = False
        try:
            (dataset,) = data.values()
            result = perform_run(self.run, dataset, self.options, device, ranks, show=False)
            completed = True
            return result
        finally:
            distributed.shutdown(synchronise=completed)

    def checkpoint(self) -> Any:
        """Called by submitit on timeout or preemption: requeue the same job; it resumes from the checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


# ---- the per-suite job book: runs/<suite>/jobs.json ----


@contextmanager
def _locked_book(runs_dir: Path, suite: str) -> Iterator[dict[str, Any]]:
    """Read-modify-write ``jobs.json`` under a lock (several submitters may update it)."""
    folder = runs_dir / suite
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / JOBS_FILE
    with open(folder / (JOBS_FILE + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        book = json.loads(path.read_text()) if path.exists() else {}
        yield book
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(book, indent=1, sort_keys=True) + "\n")
        os.replace(partial, path)


def read_job_book(runs_dir: Path, suite: str) -> dict[str, Any]:
    path = runs_dir / suite / JOBS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def job_state(entry: dict[str, Any]) -> str:
    """The executor's word for a job: Slurm's state (PENDING, RUNNING, TIMEOUT, ...) or, for local jobs,
    QUEUED / RUNNING / FINISHED; UNKNOWN when the executor cannot tell."""
    if entry.get("executor") == "local":
        alive = _process_alive(entry.get("job_id") or entry.get("submitter_pid"))
        if entry.get("job_id") is None:
            return "QUEUED" if alive else "UNKNOWN"
        return "RUNNING" if alive else "FINISHED"
    try:
        import submitit

        job = submitit.SlurmJob(folder=entry["folder"], job_id=str(entry["job_id"]))
        return str(job.get_info(mode="force").get("State") or "UNKNOWN").split()[0]
    except Exception:  # no sacct here, or the cluster forgot the job: the store still says what finished
        return "UNKNOWN"


def _process_alive(pid: Any) -> bool:
    if pid is None:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


QUEUED_STATES = {"PENDING", "REQUEUED", "CONFIGURING", "QUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD",
                 "SUSPENDED", "PREEMPTED"}  # a preempted Checkpointable job is requeued
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}


def is_active(state: str) -> bool:
    return state in QUEUED_STATES or state in RUNNING_STATES


# ---- submission ----


@dataclass
class SubmitOutcome:
    submitted: dict[str, str] = field(default_factory=dict)  # run id -> job id
    skipped: list[str] = field(default_factory=list)  # a record exists
    active: list[str] = field(default_factory=list)  # a job for it is queued or running already
    diverged: list[str] = field(default_factory=list)  # its latest record says it diverged (see --retry-diverged)
    finished: dict[str, str] = field(default_factory=dict)  # local: run id -> ran | failed | skipped | busy


def make_executor(kind: str, folder: Path, cluster: ClusterConfig, max_jobs: int) -> Any:
    """A submitit executor for ``kind`` with the suite's cluster settings."""
    import submitit

    parameters: dict[str, Any] = {
        "timeout_min": cluster.time_limit_min,
        "tasks_per_node": cluster.ranks_per_job,
        "nodes": 1,
        "name": "tssl",
    }
    if kind == "slurm":
        parameters.update(
            gpus_per_node=cluster.gpus_per_job,
            slurm_array_parallelism=cluster.concurrency or max_jobs,
            slurm_setup=cluster.setup,
        )
        optional = {"slurm_partition": cluster.partition, "cpus_per_task": cluster.cpus_per_task,
                    "mem_gb": cluster.mem_gb, "slurm_account": cluster.account, "slurm_qos": cluster.qos,
                    "slurm_constraint": cluster.constraint}
        parameters.update({key: value for key, value in optional.items() if value is not None})
    else:
        import torch

        parameters["gpus_per_node"] = cluster.gpus_per_job if torch.cuda.is_available() else 0
        if cluster.setup:
            parameters["local_setup"] = cluster.setup
    executor = submitit.AutoExecutor(folder=folder, cluster=kind, slurm_max_num_timeout=cluster.max_requeues,
                                     local_max_num_timeout=cluster.max_requeues)
    executor.update_parameters(**parameters)
    return executor


def submit_suite(
    suite: Suite,
    options: RunOptions,
    kind: str,
    cluster: ClusterConfig,
    only: list[str] | None = None,
    seeds: list[int] | None = None,
    log: Callable[[str], None] = print,
) -> SubmitOutcome:
    """Submit one job per run that has no record and no live job; ``local`` also waits for them."""
    if kind not in EXECUTORS:
        raise SuiteError(f"--executor {kind!r}: allowed: inline, {', '.join(EXECUTORS)}")
    try:
        import submitit  # noqa: F401
    except ModuleNotFoundError:
        raise SuiteError(f"--executor {kind} needs submitit: pip install 'tssl-bench[cluster]'") from None
    # Jobs may start elsewhere (another directory, another node): give them absolute paths.
    options = replace(options, results_dir=options.results_dir.resolve(), runs_dir=options.runs_dir.resolve(),
                      progress=False)
    if options.force:
        # Forced runs start afresh now; their jobs must resume (not restart) after a requeue, and skip the
        # record they wrote themselves: so the jobs get done_after instead of force.
        options = replace(options, force=False, done_after=options.done_after or utc_now())
    runs = expand(suite, only, seeds, cluster.ranks_per_job, options.limit_batches)
    recorded = recorded_runs(options.results_dir / f"{suite.name}.jsonl", options)
    book = read_job_book(options.runs_dir, suite.name)
    outcome = SubmitOutcome()
    pending: list[Run] = []
    for run in runs:
        if run.run_id in recorded.done:
            outcome.skipped.append(run.run_id)
        elif run.run_id in recorded.diverged and not options.retry_diverged:
            outcome.diverged.append(run.run_id)
            log(f"{run.run_id}: skipped as diverged ({recorded.diverged[run.run_id]}); to train it again from "
                "scratch: --retry-diverged (or --force)")
        elif run.run_id in book and is_active(job_state(book[run.run_id])):
            outcome.active.append(run.run_id)
        else:
            pending.append(run)
    if not pending:
        return outcome
    if options.done_after is not None:  # --force: start afresh
        for run in pending:
            (options.runs_dir / run.suite / run.run_id / CHECKPOINT).unlink(missing_ok=True)
    folder = options.runs_dir / suite.name / "jobs" / "%j"
    executor = make_executor(kind, folder, cluster, len(pending))
    if kind == "slurm":
        with executor.batch():
            jobs = [executor.submit(RunJob(run, options)) for run in pending]
        _remember(options.runs_dir, suite.name, kind, pending, jobs, folder)
        for run, job in zip(pending, jobs, strict=True):
            outcome.submitted[run.run_id] = str(job.job_id)
            log(f"{run.run_id}: submitted as Slurm job {job.job_id}")
        return outcome
    _run_locally(executor, pending, options, suite.name, cluster.concurrency or 1, folder, outcome, log)
    return outcome


def _remember(runs_dir: Path, suite: str, kind: str, runs: list[Run], jobs: list[Any] | None, folder: Path) -> None:
    with _locked_book(runs_dir, suite) as book:
        for index, run in enumerate(runs):
            book[run.run_id] = {
                "executor": kind,
                "job_id": None if jobs is None else str(jobs[index].job_id),
                "submitter_pid": os.getpid(),
                "folder": str(folder),
                "task": run.task.name,
                "method": run.method,
                "seed": run.seed,
                "submitted_at": utc_now(),
            }


def _run_locally(executor: Any, runs: list[Run], options: RunOptions, suite: str,
                 concurrency: int, folder: Path, outcome: SubmitOutcome, log: Callable[[str], None]) -> None:
    """Run the jobs as local processes, ``concurrency`` at a time, and wait for them all."""
    _remember(options.runs_dir, suite, "local", runs, None, folder)  # queued: not started yet
    waiting, running = list(runs), []
    while waiting or running:
        while waiting and len(running) < concurrency:
            run = waiting.pop(0)
            job = executor.submit(RunJob(run, options))
            _remember(options.runs_dir, suite, "local", [run], [job], folder)
            outcome.submitted[run.run_id] = str(job.job_id)
            running.append((run, job))
        time.sleep(LOCAL_POLL_SECONDS)
        for run, job in [(r, j) for r, j in running if j.done()]:
            running.remove((run, job))
            try:
                result = job.result()
            except Exception as error:  # the job itself died (the run's own failures are records)
                result = "failed"
                log(f"{run.run_id}: job {job.job_id} failed: {str(error).strip().splitlines()[-1]}")
            outcome.finished[run.run_id] = result
            log(f"{run.run_id}: {result} (local job {job.job_id})")
    if all(result == "ran" or result == "skipped" for result in outcome.finished.values()):
        shutil.rmtree(options.runs_dir / suite / "jobs", ignore_errors=True)  # keep the logs only of failures
