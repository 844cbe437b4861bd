"""The ``tssl`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tssl import __version__


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
    run.add_argument("--only", action="append", metavar="TASK", help="run only this task (repeatable)")
    run.add_argument("--seeds", type=_seed_list, help="comma-separated seeds instead of the suite's")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    run.add_argument("--limit-batches", type=_positive_int, metavar="N",
                     help="smoke run: at most N batches per epoch and per evaluation (labelled as such)")
    run.add_argument("--force", action="store_true", help="rerun runs that already have a record")
    run.add_argument("--results-dir", type=Path, default=Path("results"))
    run.add_argument("--runs-dir", type=Path, default=Path("runs"), help="checkpoints (default runs/)")
    run.set_defaults(handler=_run_suite)


def _run_suite(args: argparse.Namespace) -> int:
    from tssl.data.base import DataError
    from tssl.runner import RunOptions, run_suite
    from tssl.suites import SuiteError, load_suite

    try:
        suite = load_suite(args.suite, args.overrides)
        options = RunOptions(args.results_dir, args.runs_dir, args.device, args.limit_batches, args.force)
        outcome = run_suite(suite, options, args.only, args.seeds)
    except (SuiteError, DataError) as error:
        raise UsageError(str(error)) from None
    print(
        f"suite {suite.name}: {len(outcome.ran)} ran, {len(outcome.skipped)} already done, "
        f"{len(outcome.failed)} failed; records in {args.results_dir / (suite.name + '.jsonl')}"
    )
    return 1 if outcome.failed else 0


def _add_report(commands) -> None:
    report = commands.add_parser("report", help="write reports/<suite>/ (Markdown + PNG) from the results store")
    report.add_argument("suite")
    report.add_argument("--results-dir", type=Path, default=Path("results"))
    report.add_argument("--out", type=Path, help="output folder (default reports/<suite>)")
    report.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from tssl.report import ReportError, load_records, write_report
    from tssl.suites import SuiteError, load_suite

    try:
        suite = load_suite(args.suite)
        tasks = {t.name: {"paper": t.paper and t.paper.model_dump(), "tolerance": t.tolerance,
                          "description": t.description} for t in suite.tasks}
        records = load_records(args.results_dir / f"{suite.name}.jsonl")
        index = write_report(suite.name, records, args.out or Path("reports") / suite.name, suite_tasks=tasks)
    except (SuiteError, ReportError) as error:
        raise UsageError(str(error)) from None
    print(f"report written to {index}")
    return 0


def _add_check(commands) -> None:
    check = commands.add_parser(
        "check",
        help="exit non-zero when accuracy drops below the reference band",
        description="Compare the results store with a reference made from a real run of the suite.",
    )
    check.add_argument("suite")
    check.add_argument("--reference", type=Path, help="default results/reference/<suite>.json")
    check.add_argument("--results-dir", type=Path, default=Path("results"))
    mode = check.add_mutually_exclusive_group()
    mode.add_argument("--write-reference", action="store_true",
                      help="make the reference file from the current results instead of checking")
    mode.add_argument("--paper", action="store_true",
                      help="check the tssl runs against the paper's numbers instead: fails on 'not reproduced'")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from tssl import check
    from tssl.results import ResultsError, read_records

    suite_name = args.suite
    if args.suite.endswith((".yaml", ".yml")):
        from tssl.suites import SuiteError, load_suite

        try:
            suite_name = load_suite(args.suite).name
        except SuiteError as error:
            raise UsageError(str(error)) from None
    store = args.results_dir / f"{suite_name}.jsonl"
    reference_path = args.reference or Path("results") / "reference" / f"{suite_name}.json"
    try:
        records = read_records(store)
        if args.paper:
            return _check_paper(args.suite, records, store)
        if args.write_reference:
            reference = check.make_reference(suite_name, records, str(store))
            reference_path.parent.mkdir(parents=True, exist_ok=True)
            reference_path.write_text(json.dumps(reference, indent=2) + "\n")
            print(f"reference written to {reference_path} ({len(reference['entries'])} task x method entries)")
            return 0
        lines = check.check(check.load_reference(reference_path), records, str(store))
    except (check.CheckError, ResultsError) as error:
        raise UsageError(str(error)) from None
    print(f"{suite_name}: {store} against {reference_path}\n  rule: {check.RULE}")
    for line in lines:
        mean = "—" if line.mean is None else f"{line.mean:.2f}"
        print(f"  {line.status:10s} {line.task} / {line.method}: mean {mean} % over {line.n} seeds, "
              f"band [{line.band[0]:.2f}, {line.band[1]:.2f}]")
    return 0 if check.passed(lines) else 1


def _check_paper(suite_name: str, records: list[dict], store: Path) -> int:
    from tssl import check
    from tssl.report import VERDICT_RULE
    from tssl.suites import SuiteError, load_suite

    try:
        suite = load_suite(suite_name)
    except SuiteError as error:
        raise UsageError(str(error)) from None
    tasks = {t.name: {"paper": t.paper and t.paper.model_dump(), "tolerance": t.tolerance} for t in suite.tasks}
    lines = check.check_against_paper(tasks, records)
    print(f"{suite.name}: {store} against the paper\n  rule: {VERDICT_RULE}")
    for line in lines:
        print(f"  {line.verdict:15s} {line.task}: {line.reason}")
    return 1 if any(line.verdict in ("not reproduced", "MISSING") for line in lines) else 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tssl", description="TSSL-BP engine and spiking-network benchmark")
    parser.add_argument("--version", action="version", version=f"tssl-bench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands)
    _add_report(commands)
    _add_check(commands)
    _add_fetch(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Overrides (key=value) may come after options too: `tssl run fmnist --only fmnist-mlp epochs=3`.
    args, extra = parser.parse_known_args(argv)
    stray = [item for item in extra if item.startswith("-") or "=" not in item]
    if stray or (extra and args.command != "run"):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"tssl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
