"""The ``tssl`` command line."""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from tssl import __version__
from tssl.harness import cpu_allocator


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def _seed_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (e.g. 0,1,2); got {text!r}") from None


def _add_run(commands) -> None:
    run = commands.add_parser(
        "run",
        help="run a suite: every task x method x seed, one JSON record per finished run",
        description="Run a suite (a name under suites/ or a YAML path). Finished runs are skipped; an interrupted "
        "run resumes from its last finished epoch. Records go to RESULTS_DIR/<suite>.jsonl.",
    )
    run.add_argument("suite", help="suite name (digits, mnist, fmnist, nmnist, cifar10) or path to a suite YAML")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="override a task key for every task")
    run.add_argument("--only", action="append", metavar="TASK",
                     help="run only this task, or every point of this sweep (repeatable)")
    run.add_argument("--seeds", type=_seed_list, help="comma-separated seeds instead of the suite's")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    run.add_argument("--limit-batches", type=_positive_int, metavar="N",
                     help="smoke run: at most N batches per epoch and per evaluation (labelled as such)")
    run.add_argument("--force", action="store_true", help="rerun runs that already have a record")
    run.add_argument("--retry-diverged", action="store_true",
                     help="train runs that diverged (non-finite training loss) again, from scratch; without it they "
                     "are skipped, and finished runs stay skipped either way")
    run.add_argument("--results-dir", type=Path, default=Path("results"))
    run.add_argument("--runs-dir", type=Path, default=Path("runs"), help="checkpoints (default runs/)")
    cluster = run.add_argument_group(
        "executors", "run each task x method x seed as its own job through submitit (docs/cluster.md); these "
        "override the suite's `cluster:` settings and never change a run's id")
    cluster.add_argument("--executor", choices=("inline", "local", "slurm"), default="inline",
                         help="inline: one run after the other in this process (default; under torchrun, each "
                         "run on every rank); local: local processes, --concurrency at a time, waited for; "
                         "slurm: a Slurm job array, submitted and left to run (see tssl status)")
    cluster.add_argument("--partition", help="Slurm partition")
    cluster.add_argument("--gpus-per-job", type=int, metavar="N",
                         help="GPUs per run (> 1: one DDP process per GPU; 0: a CPU job)")
    cluster.add_argument("--time-limit", type=_positive_int, metavar="MINUTES",
                         help="per job; a timed-out job is requeued and resumes from its checkpoint")
    cluster.add_argument("--concurrency", type=_positive_int, metavar="N", help="runs at once")
    run.set_defaults(handler=_run_suite)


def _cluster_settings(suite, args: argparse.Namespace):
    """The suite's ``cluster:`` settings with the command line's flags on top."""
    from pydantic import ValidationError

    flags = {"partition": args.partition, "gpus_per_job": args.gpus_per_job, "time_limit_min": args.time_limit,
             "concurrency": args.concurrency}
    try:
        return suite.cluster.model_validate({**suite.cluster.model_dump(),
                                             **{k: v for k, v in flags.items() if v is not None}})
    except ValidationError as error:
        first = error.errors()[0]
        flag = {"time_limit_min": "time-limit"}.get(str(first["loc"][0]), str(first["loc"][0]).replace("_", "-"))
        raise UsageError(f"--{flag}: {first['msg']}") from None


def _run_suite(args: argparse.Namespace) -> int:
    from tssl.data.base import DataError
    from tssl.engine.distributed import DistributedError
    from tssl.engine.kernels import BackendError, requested_backend
    from tssl.harness.runner import RunOptions, run_suite
    from tssl.harness.suites import SuiteError, load_suite

    try:
        requested_backend()  # a bad TSSL_NEURON_BACKEND is refused before any run starts
        suite = load_suite(args.suite, args.overrides)
        options = RunOptions(args.results_dir, args.runs_dir, args.device, args.limit_batches, args.force,
                             retry_diverged=args.retry_diverged)
        if args.executor != "inline":
            return _submit_suite(suite, options, args)
        outcome = run_suite(suite, options, args.only, args.seeds)
    except (SuiteError, DataError, DistributedError, BackendError) as error:
        raise UsageError(str(error)) from None
    from tssl.engine.distributed import ranks_from_environment

    if not ranks_from_environment().is_main:
        return 1 if outcome.failed else 0
    print(
        f"suite {suite.name}: {len(outcome.ran)} ran, {len(outcome.skipped)} already done, "
        f"{len(outcome.failed)} failed{_diverged_note(outcome.diverged)}; "
        f"records in {args.results_dir / (suite.name + '.jsonl')}"
    )
    return 1 if outcome.failed else 0


def _diverged_note(diverged: list[str]) -> str:
    """Runs skipped because they diverged before: recorded outcomes, not failures of this command."""
    return f", {len(diverged)} skipped as diverged (--retry-diverged trains them again)" if diverged else ""


def _add_report(commands) -> None:
    report = commands.add_parser("report", help="write reports/<suite>/ (Markdown + PNG) from the results store")
    report.add_argument("suite")
    report.add_argument("--results-dir", type=Path, default=Path("results"))
    report.add_argument("--out", type=Path, help="output folder (default reports/<suite>)")
    report.set_defaults(handler=_report)


def _suite_tasks(suite) -> dict[str, dict]:
    """What the report and ``tssl check`` need of each task of a loaded suite, the seed-free config hash included;
    ``sweep`` names the sweeping task and the swept values of a point of a sweep (None for an ordinary task)."""
    return {t.name: {"paper": t.paper and t.paper.model_dump(), "tolerance": t.tolerance,
                     "description": t.description, "run_config": t.run_config(),
                     "config": t.task_config_hash(), "seeds": list(t.seeds),
                     "sweep": {"task": t.sweep_of, "values": dict(t.swept)} if t.sweep_of is not None else None}
            for t in suite.tasks}


def _report(args: argparse.Namespace) -> int:
    from tssl.harness.suites import SuiteError, load_suite
    from tssl.records.report import ReportError, load_records, write_report
    from tssl.records.store import ResultsError, read_records

    try:
        suite = load_suite(args.suite)
        records = load_records(args.results_dir / f"{suite.name}.jsonl")
        bench_store = args.results_dir / "bench" / "bench.jsonl"  # tssl bench's default store, if present
        bench = read_records(bench_store) if bench_store.exists() else []
        index = write_report(suite.name, records, args.out or Path("reports") / suite.name,
                             suite_tasks=_suite_tasks(suite), bench_records=bench, caveat=suite.caveat)
    except (SuiteError, ReportError, ResultsError) as error:
        raise UsageError(str(error)) from None
    print(f"report written to {index}")
    return 0


def _add_check(commands) -> None:
    check = commands.add_parser(
        "check",
        help="exit non-zero on an accuracy regression against the reference (or, with --paper, on 'not reproduced')",
        description="Compare the results store with a reference made from a real run of the suite: same config "
        "hash, data kind and seeds required; a regression is a drop beyond the task tolerance that a one-sided "
        "Welch test confirms at 1 %%.",
    )
    check.add_argument("suite")
    check.add_argument("--reference", type=Path, help="default results/reference/<suite>.json")
    check.add_argument("--results-dir", type=Path, default=Path("results"))
    check.add_argument("--json", action="store_true",
                       help="print the verdict rows as JSON (for CI systems); the exit status is the same")
    mode = check.add_mutually_exclusive_group()
    mode.add_argument("--write-reference", action="store_true",
                      help="make the reference file from the current results instead of checking")
    mode.add_argument("--paper", action="store_true",
                      help="check the tssl runs against the paper's numbers instead: fails on 'not reproduced'")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from tssl.harness.suites import SuiteError, load_suite
    from tssl.records import check
    from tssl.records.store import ResultsError, read_records

    try:
        suite = load_suite(args.suite)
    except SuiteError as error:
        raise UsageError(str(error)) from None
    tasks = {name: check.TaskSpec(spec["config"], spec["tolerance"], spec["paper"])
             for name, spec in _suite_tasks(suite).items()}
    store = args.results_dir / f"{suite.name}.jsonl"
    reference_path = args.reference or Path("results") / "reference" / f"{suite.name}.json"
    try:
        reference = None if args.write_reference or args.paper else check.load_reference(reference_path)
        records = read_records(store)
        if args.write_reference:
            reference = check.make_reference(suite.name, records, str(store), tasks)
            reference_path.parent.mkdir(parents=True, exist_ok=True)
            reference_path.write_text(json.dumps(reference, indent=2) + "\n")
            print(f"reference written to {reference_path} ({len(reference['entries'])} task x method entries)")
            return 0
        if args.paper:
            from tssl.records.stats import VERDICT_RULE

            lines, rule, against = check.check_against_paper(tasks, records), VERDICT_RULE, "the paper"
            failed = any(line.verdict in check.PAPER_FAILING for line in lines)
        else:
            lines = check.check(reference, records, tasks)
            rule, against, failed = check.RULE, str(reference_path), not check.passed(lines)
    except (check.CheckError, ResultsError) as error:
        raise UsageError(str(error)) from None
    if args.json:
        print(json.dumps({"suite": suite.name, "store": str(store), "against": against, "rule": rule,
                          "passed": not failed, "rows": [line.as_json() for line in lines]}, indent=2))
        return 1 if failed else 0
    print(f"{suite.name}: {store} against {against}\n  rule: {rule}")
    for line in lines:
        print(f"  {line.verdict:15s} {line.task} / {line.method}: {_check_summary(line)}; {line.reason}")
    return 1 if failed else 0


def _check_summary(line) -> str:
    if line.n == 0:
        return f"no {line.metric} values"
    spread = "" if line.std is None else f" ± {line.std:.2f}"
    interval = "" if line.ci95 is None else f", 95 % CI [{line.ci95[0]:.2f}, {line.ci95[1]:.2f}]"
    return f"{line.metric} {line.mean:.2f}{spread} % (n = {line.n}, seeds {line.seeds}{interval})"


def _add_fetch(commands) -> None:
    from tssl.data.registry import DATASETS

    fetch = commands.add_parser("fetch-data", help="download or copy a dataset into the data root and verify it")
    fetch.add_argument("name", help=f"one of: {', '.join(DATASETS)}")
    fetch.add_argument("--root", type=Path, help="data root (default $TSSL_DATA or ./data)")
    fetch.add_argument("--source", help="a local folder to take the files from instead of downloading")
    fetch.set_defaults(handler=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    from tssl.data.base import DataError
    from tssl.data.registry import fetch_data

    try:
        print(fetch_data(args.name, args.root, args.source))
    except (KeyError, DataError) as error:
        raise UsageError(error.args[0]) from None
    return 0


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {value}")
    return value


def _name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


BENCH_RESULTS_DIR = Path("results") / "bench"


def _add_bench(commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="time a training step of every method on the paper's networks; records go to results/bench/bench.jsonl",
        description="Train --iters steps of each method on random data of each net's shape, alternating methods "
        "in rounds after --warmup rounds; print samples/s, time ratios to tssl and to the floor (the net with its "
        "neuron replaced by one multiply), peak memory and saved activations, and append one record per net x "
        "method to RESULTS_DIR/bench.jsonl. With --report, write reports/bench/ from that store instead.",
    )
    bench.add_argument("--net", action="append", type=_name_list, metavar="NET",
                       help="mnist, fmnist-mlp, cifar10-cnn1, fmnist-cnn, or an architecture string with --input-shape "
                       "(repeatable or comma-separated; default: the three paper nets)")
    bench.add_argument("--input-shape", metavar="C,H,W", help="input of an architecture-string --net")
    bench.add_argument("--methods", type=_name_list, default=None,
                       help="comma-separated: tssl, tssl-surrogate (either with [compiled], [recompute] or "
                       "[compiled+recompute]), snntorch, spikingjelly (every implementation available on the device) "
                       "or spikingjelly[cuda|triton|torch], floor (default: every plain name, and tssl[compiled] on "
                       "a CPU)")
    bench.add_argument("--batch", type=_positive_int, help="batch size for every net (default: the net's; "
                       "cifar10-cnn1 uses 4 on CPU)")
    bench.add_argument("--steps", type=_positive_int, metavar="T", help="time steps T (default: the net's, 5)")
    bench.add_argument("--iters", type=_positive_int, default=10, help="timed rounds (default 10)")
    bench.add_argument("--warmup", type=_non_negative_int, default=2, help="untimed rounds first (default 2)")
    bench.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    bench.add_argument("--precision", default="fp32", help="fp32 (default), tf32 (CUDA only) or bf16")
    bench.add_argument("--threads", type=_positive_int, help="torch CPU threads (default: torch's choice)")
    bench.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    bench.add_argument("--results-dir", type=Path, default=BENCH_RESULTS_DIR,
                       help=f"where bench.jsonl is kept (default {BENCH_RESULTS_DIR}; `tssl report` reads it there)")
    bench.add_argument("--report", action="store_true",
                       help="write the bench report from RESULTS_DIR/bench.jsonl instead of running")
    bench.add_argument("--out", type=Path, help="report folder (default reports/bench)")
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from tssl.engine.kernels import BackendError, requested_backend
    from tssl.harness.bench import DEFAULT_NETS, BenchError, BenchOptions, run_bench
    from tssl.records.bench_report import BenchReportError, load_bench_records, write_bench_report

    try:
        requested_backend()  # a bad TSSL_NEURON_BACKEND is refused before anything runs
        if args.report:
            index = write_bench_report(load_bench_records(args.results_dir), args.out or Path("reports") / "bench")
            print(f"report written to {index}")
            return 0
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        nets = [name for group in args.net for name in group] if args.net else list(DEFAULT_NETS)
        options = BenchOptions(args.iters, args.warmup, args.precision, not args.no_memory)
        run_bench(nets, args.methods, device=args.device, input_shape=args.input_shape, batch=args.batch,
                  steps=args.steps, options=options, results_dir=args.results_dir, argv=sys.argv[1:])
    except (BenchError, BenchReportError, BackendError) as error:
        raise UsageError(str(error)) from None
    return 0


def _submit_suite(suite, options, args: argparse.Namespace) -> int:
    from tssl.harness.executors import submit_suite

    cluster = _cluster_settings(suite, args)
    outcome = submit_suite(suite, options, args.executor, cluster, args.only, args.seeds)
    store = args.results_dir / f"{suite.name}.jsonl"
    if args.executor == "slurm":
        print(f"suite {suite.name}: {len(outcome.submitted)} jobs submitted, {len(outcome.active)} already queued "
              f"or running, {len(outcome.skipped)} already done{_diverged_note(outcome.diverged)}; records go to "
              f"{store}; see tssl status {args.suite}")
        return 0
    results = list(outcome.finished.values())
    failed = results.count("failed")
    print(f"suite {suite.name}: {results.count('ran')} ran in local jobs, {len(outcome.skipped)} already done, "
          f"{len(outcome.active)} already running elsewhere, {failed} failed{_diverged_note(outcome.diverged)}; "
          f"records in {store}")
    return 1 if failed else 0


def _add_status(commands) -> None:
    status = commands.add_parser(
        "status", help="done / running / queued / failed / resumable / not started, per run of a suite",
        description="Where each task x method x seed of the suite stands: from the results store, the runs "
        "folder (checkpoints) and the jobs that tssl run --executor submitted (RUNS_DIR/<suite>/jobs.json).")
    status.add_argument("suite")
    status.add_argument("overrides", nargs="*", metavar="key=value",
                        help="the overrides the suite was run with (they change the run ids)")
    status.add_argument("--results-dir", type=Path, default=Path("results"))
    status.add_argument("--runs-dir", type=Path, default=Path("runs"))
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from tssl.harness.status import format_table, suite_status
    from tssl.harness.suites import SuiteError, load_suite
    from tssl.records.store import ResultsError

    try:
        suite = load_suite(args.suite, args.overrides)
        print(format_table(suite, suite_status(suite, args.results_dir, args.runs_dir)))
    except (SuiteError, ResultsError) as error:
        raise UsageError(str(error)) from None
    return 0


def _add_export(commands) -> None:
    export = commands.add_parser(
        "export", help="write a finished native run's trained network as a NIR graph (docs/nir.md)",
        description="Export the final weights a finished tssl or tssl-surrogate run kept (RUNS_DIR/<suite>/<run "
        "id>/final.pt) as a NIR graph file. Needs the nir extra: pip install 'tssl-bench[nir]'.")
    export.add_argument("run", metavar="RUN_ID_OR_PATH",
                        help="a run id (as in the records), a run folder or a final.pt")
    export.add_argument("out", type=Path, metavar="OUT.nir", help="the NIR file to write")
    export.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="where run ids are looked up (default runs/)")
    export.add_argument("--pooling", choices=("sum", "avg"), default="sum",
                        help="sum: SumPool2d + Scale(1.1) (default); avg: AvgPool2d with the gain folded into the next "
                        "weights, for readers without SumPool2d or Scale (snnTorch 1.0)")
    export.add_argument("--dt", type=float, default=1e-4, help="seconds per time step (default 1e-4, snnTorch's)")
    export.set_defaults(handler=_export)


def _final_weights_of(run: str, runs_dir: Path) -> Path:
    """The final.pt of a run folder or file path, else of the run id ``run`` under ``runs_dir`` (one match)."""
    from tssl.compat.nir import FINAL_WEIGHTS

    path = Path(run)
    if path.is_file():
        if path.suffix != ".pt":
            raise UsageError(f"{path}: not a {FINAL_WEIGHTS}; give a run id, a run folder or its {FINAL_WEIGHTS}")
        return path
    if path.is_dir():
        if not (path / FINAL_WEIGHTS).is_file():
            raise UsageError(f"{path}: no {FINAL_WEIGHTS} in this folder (finished tssl and tssl-surrogate runs "
                             "keep one)")
        return path / FINAL_WEIGHTS
    matches = sorted(runs_dir.glob(f"*/{glob.escape(run)}/{FINAL_WEIGHTS}")) if "/" not in run else []
    if len(matches) != 1:
        found = "none" if not matches else f"{len(matches)}: {', '.join(str(m) for m in matches)}"
        raise UsageError(f"{run}: not a path, and looking for {runs_dir}/*/{run}/{FINAL_WEIGHTS} found {found} "
                         "(finished tssl and tssl-surrogate runs keep their final weights there; see --runs-dir)")
    return matches[0]


def _export(args: argparse.Namespace) -> int:
    source = _final_weights_of(args.run, args.runs_dir)
    if not (args.dt > 0 and math.isfinite(args.dt)):
        raise UsageError(f"--dt must be a positive number of seconds per step; got {args.dt}")
    from tssl.compat.nir import NIRError, export_run

    try:
        graph = export_run(source, args.out, dt=args.dt, pooling=args.pooling)
    except ImportError as error:
        raise UsageError(str(error)) from None
    except (NIRError, OSError) as error:
        raise UsageError(" ".join(str(error).split())) from None
    print(f"wrote {args.out}: {len(graph.nodes)} NIR nodes, dt {args.dt:g} s, pooling {args.pooling}, from {source}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tssl", description="TSSL-BP engine and spiking-network benchmark")
    parser.add_argument("--version", action="version", version=f"tssl-bench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands)
    _add_report(commands)
    _add_check(commands)
    _add_fetch(commands)
    _add_bench(commands)
    _add_status(commands)
    _add_export(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Overrides (key=value) may come after options too: `tssl run fmnist --only fmnist-mlp epochs=3`.
    args, extra = parser.parse_known_args(argv)
    stray = [item for item in extra if item.startswith("-") or "=" not in item]
    if stray or (extra and args.command not in ("run", "status")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        cpu_allocator.tune()  # before any training allocates: freed activations stay in the heap
        return args.handler(args)
    except cpu_allocator.AllocatorSettingError as error:
        print(f"tssl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except UsageError as error:
        print(f"tssl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
