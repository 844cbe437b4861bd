"""`tssl check --paper`: which records count toward the verdict against the paper."""

from __future__ import annotations

from tssl.check import check_against_paper

TASKS = {"row": {"paper": {"mean": 90.0, "std": 0.1}, "tolerance": 0.3}}


def _record(seed: int, final: float, **extra) -> dict:
    return {
        "run_id": f"row.tssl.s{seed}.{extra.get('tag', 'x')}", "status": "ok", "task": "row", "method": "tssl",
        "seed": seed, "accuracy": {"final": final}, "data": {"kind": extra.get("kind", "real")},
        "smoke": extra.get("smoke", False), "deviations": extra.get("deviations", {}),
    }  # fmt: skip


def test_three_faithful_runs_within_tolerance_are_reproduced():
    records = [_record(seed, final) for seed, final in enumerate([89.9, 90.0, 90.1])]
    [line] = check_against_paper(TASKS, records)
    assert line.verdict == "reproduced"


def test_runs_away_from_the_suite_settings_never_count():
    faithful = [_record(seed, final) for seed, final in enumerate([89.9, 90.0])]
    others = [
        _record(2, 90.0, tag="reduced", deviations={"epochs": {"suite": 100, "run": 2}}),
        _record(3, 90.0, tag="smoke", smoke=True),
        _record(4, 90.0, tag="generated", kind="generated"),
    ]
    [line] = check_against_paper(TASKS, faithful + others)
    assert line.verdict == "inconclusive" and "n = 2" in line.reason  # only the two faithful runs


def test_only_modified_runs_leave_the_task_missing():
    records = [_record(seed, 90.0, deviations={"epochs": {"suite": 100, "run": 3}}) for seed in range(3)]
    [line] = check_against_paper(TASKS, records)
    assert line.verdict == "MISSING"
