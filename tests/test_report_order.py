"""The order of tasks in reports (tssl.records.selection.order_tasks): the suite file's order when it is known (a
sweep's points as the sweep lists them), then tasks found only in the records; numbers in names compared as numbers
(steps2 before steps10), never string order.

Every record here is SYNTHETIC (tests/records.py): invented accuracies, none of them results.
"""

from __future__ import annotations

import re
from pathlib import Path

from records import seeds_of, suite_task, synthetic_record, table_after

from tssl.records.report import build_report
from tssl.records.selection import group_records, natural_key, order_tasks

BASE = "digits-mlp"


def point(steps: int) -> str:
    return f"{BASE}-steps{steps}"


def test_numbers_in_names_are_compared_as_numbers():
    names = [point(10), point(2), point(5), point(3)]
    assert sorted(names) == [point(10), point(2), point(3), point(5)]  # what string order did
    assert order_tasks(names) == sorted(names, key=natural_key) == [point(2), point(3), point(5), point(10)]
    assert order_tasks(["g-lr0.001", "g-lr1e-05", "g-lr0.0005", "g-lr0.01"]) == [
        "g-lr1e-05", "g-lr0.0005", "g-lr0.001", "g-lr0.01"]
    assert order_tasks(["cifar10-cnn2", "cifar10-cnn1", "b", "a10", "a9", "a"]) == [
        "a", "a9", "a10", "b", "cifar10-cnn1", "cifar10-cnn2"]
    assert order_tasks(["steps5-lr0.001", "steps10-lr0.0005", "steps5-lr0.0005"]) == [
        "steps5-lr0.0005", "steps5-lr0.001", "steps10-lr0.0005"]


def test_the_suite_files_order_first_then_the_rest_naturally():
    listed = [point(10), point(2), "not-run-yet", point(5)]  # say the sweep lists steps [10, 2, 5]
    tasks = {point(2), point(5), point(10), "old-t10", "old-t9"}
    assert order_tasks(tasks, listed) == [point(10), point(2), point(5), "old-t9", "old-t10"]
    assert order_tasks(tasks, {name: {} for name in listed}) == order_tasks(tasks, listed)  # suite_tasks' keys


def test_groups_come_task_by_task_in_that_order():
    records = [r for s in (10, 2, 5) for r in seeds_of([90.0], task=point(s), config={"steps": s})]
    assert [g.task for g in group_records(records)] == [point(2), point(5), point(10)]
    assert [g.task for g in group_records(records, listed_tasks=[point(5)])] == [point(5), point(2), point(10)]


STEPS = (2, 3, 5, 10)


def sweep_records() -> list[dict]:
    records = []
    for value in reversed(STEPS):  # the store's order must not matter
        for method in ("tssl", "tssl-surrogate"):
            records += seeds_of([90.0 + value / 10, 90.5 + value / 10], task=point(value), method=method,
                                config={"steps": value}, paper=None)
    records += seeds_of([80.0, 81.0], task="extra-t10", paper=None)  # in the records only
    records += seeds_of([80.0, 81.0], task="extra-t9", paper=None)
    records.append(synthetic_record(task=point(10), seed=7, status="failed", error="boom", paper=None))
    records.append(synthetic_record(task=point(2), seed=7, status="failed", error="boom", paper=None))
    return records


def sweep_suite() -> dict[str, dict]:
    tasks = {}
    for value in STEPS:  # the sweep's expansion, in the listed order
        spec = suite_task(point(value), steps=value, paper=None)
        spec["sweep"] = {"task": BASE, "values": {"steps": value}}
        tasks[point(value)] = spec
    return tasks


def task_list(text: str) -> list[str]:
    part = text.split("## Tasks", 1)[1].split("\n## ", 1)[0]
    return [m.group(1).replace("\\", "") for line in part.splitlines() if (m := re.match(r"- \*\*(.+?)\*\*", line))]


def figure_tasks(text: str, kind: str) -> list[str]:
    return [name for name in re.findall(rf"\]\(([\w.-]+)-{kind}\.png\)", text) if "-sweep-" not in name]


def check_order(text: str, expected: list[str]) -> None:
    assert task_list(text) == expected
    groups = table_after(text, "every group of runs")
    assert list(dict.fromkeys(row[0].replace("\\", "") for row in groups)) == expected
    compared = table_after(text, "each method against `tssl`")
    assert [row[0].replace("\\", "") for row in compared] == [t for t in expected if t.startswith(BASE)]
    assert figure_tasks(text, "latency") == figure_tasks(text, "curves") == expected
    failed = table_after(text, "failed runs")
    assert [row[0].replace("\\", "") for row in failed] == [point(2), point(10)]


def test_the_report_lists_tasks_as_the_suite_file_does(tmp_path: Path):
    text = build_report("synth", sweep_records(), tmp_path, suite_tasks=sweep_suite()).index.read_text()
    check_order(text, [point(2), point(3), point(5), point(10), "extra-t9", "extra-t10"])


def test_without_a_suite_file_the_report_sorts_tasks_naturally(tmp_path: Path):
    text = build_report("synth", sweep_records(), tmp_path).index.read_text()
    check_order(text, [f"{BASE}-steps{s}" for s in STEPS] + ["extra-t9", "extra-t10"])
