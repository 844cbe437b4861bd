"""``tssl check``: gate on accuracy regressions against a committed reference run.

A reference file (``results/reference/<suite>.json``) holds, per (task, method), the final test accuracies of
a real run's seeds and the band derived from them: mean +- max(3 x sample std, 1 percentage point). A check
fails when the current mean falls below its band, when a reference (task, method) has no successful runs,
or when the current results are smoke runs.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tssl.provenance import utc_now
from tssl.results import latest_ok

BAND_STD_FACTOR = 3.0
BAND_MIN_HALF_WIDTH = 1.0  # percentage points
RULE = (
    f"band = mean +- max({BAND_STD_FACTOR:g} x sample std, {BAND_MIN_HALF_WIDTH:g} point) of the reference seeds' "
    "final test accuracy; the check fails when the current mean over seeds is below the band"
)


class CheckError(ValueError):
    """A reference or results file that cannot be compared."""


@dataclass
class CheckLine:
    task: str
    method: str
    mean: float | None
    band: tuple[float, float]
    n: int
    status: str  # ok | above band | REGRESSION | MISSING


def _group_final(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in latest_ok(records):
        groups[(record["task"], record["method"])].append(record)
    return groups


def band_for(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    half = max(BAND_STD_FACTOR * std, BAND_MIN_HALF_WIDTH)
    return mean - half, mean + half


def make_reference(suite: str, records: list[dict[str, Any]], source: str) -> dict[str, Any]:
    groups = _group_final(records)
    if not groups:
        raise CheckError(f"{source}: no successful runs to make a reference from")
    if any(r.get("smoke") for rs in groups.values() for r in rs):
        raise CheckError(f"{source}: holds smoke runs (--limit-batches); a reference needs full runs")
    entries = []
    for (task, method), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: r["seed"])
        values = [r["accuracy"]["final"] for r in runs]
        low, high = band_for(values)
        entries.append({
            "task": task,
            "method": method,
            "seeds": [r["seed"] for r in runs],
            "values": values,
            "n": len(values),
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "band": [low, high],
            "data": runs[0]["data"],
            "config_hash": runs[0]["provenance"]["config_hash"],
        })
    first = next(iter(groups.values()))[0]["provenance"]
    return {
        "suite": suite,
        "created_at": utc_now(),
        "source": source,
        "rule": RULE,
        "provenance": {k: first.get(k) for k in ("git_sha", "git_dirty", "packages", "device", "hardware", "python")},
        "entries": entries,
    }


def load_reference(path: Path) -> dict[str, Any]:
    try:
        reference = json.loads(path.read_text())
    except OSError as error:
        raise CheckError(f"{path}: cannot read the reference ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise CheckError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(reference, dict) or not isinstance(reference.get("entries"), list):
        raise CheckError(f"{path}: not a reference file (no 'entries' list)")
    return reference


def check(reference: dict[str, Any], records: list[dict[str, Any]], source: str) -> list[CheckLine]:
    groups = _group_final(records)
    if any(r.get("smoke") for rs in groups.values() for r in rs):
        raise CheckError(f"{source}: holds smoke runs (--limit-batches); check full runs only")
    lines = []
    for entry in reference["entries"]:
        low, high = entry["band"]
        runs = groups.get((entry["task"], entry["method"]), [])
        if not runs:
            lines.append(CheckLine(entry["task"], entry["method"], None, (low, high), 0, "MISSING"))
            continue
        mean = statistics.fmean(r["accuracy"]["final"] for r in runs)
        status = "REGRESSION" if mean < low else "above band" if mean > high else "ok"
        lines.append(CheckLine(entry["task"], entry["method"], mean, (low, high), len(runs), status))
    return lines


def passed(lines: list[CheckLine]) -> bool:
    return all(line.status in ("ok", "above band") for line in lines)


@dataclass
class PaperLine:
    task: str
    verdict: str  # reproduced | inconclusive | not reproduced | no paper mean | MISSING
    reason: str


def check_against_paper(tasks: dict[str, dict[str, Any]], records: list[dict[str, Any]]) -> list[PaperLine]:
    """The report's verdict for the ``tssl`` method on every task with a paper mean (full runs, real data)."""
    from tssl.report import verdict

    faithful = [  # the suite's own settings (no overrides), full epochs, real data: what the report gives a verdict
        r for r in records if not r.get("smoke") and not r.get("deviations") and r.get("data", {}).get("kind") == "real"
    ]
    groups = _group_final(faithful)
    lines = []
    for task, settings in sorted(tasks.items()):
        paper = settings.get("paper") or {}
        if paper.get("mean") is None:
            lines.append(PaperLine(task, "no paper mean", "the paper reports no mean for this task"))
            continue
        values = [r["accuracy"]["final"] for r in groups.get((task, "tssl"), [])]
        if not values:
            reason = "no successful full tssl run on real data with the suite's settings"
            lines.append(PaperLine(task, "MISSING", reason))
            continue
        outcome = verdict(values, paper["mean"], settings["tolerance"])
        lines.append(PaperLine(task, outcome.label, f"mean {outcome.mean:.2f} vs paper {paper['mean']:.2f}: "
                                                   f"{outcome.reason}"))
    return lines
