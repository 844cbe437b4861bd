"""suites/latency-digits.yaml, the offline miniature of the latency study (suites/latency.yaml), end to end through
the command line: `tssl run latency-digits` at every T, then `tssl report latency-digits` and its Sweeps section.

The runs here are real (8x8 digits, a small MLP) but restricted to tssl and tssl-surrogate to keep the test short;
they check the code path and that training learns at every T, not the paper's latency claim.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tssl.cli import main
from tssl.harness.suites import load_suite

ROOT = Path(__file__).resolve().parents[1]
SUITE_FILE = ROOT / "suites" / "latency-digits.yaml"
STEPS = [2, 3, 5, 10]
METHODS = ["tssl", "tssl-surrogate"]
SEEDS = [0, 1]
CHANCE = 10.0  # ten balanced classes
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def point(steps: int) -> str:
    return f"digits-mlp-steps{steps}"


def test_the_miniature_mirrors_the_latency_sweep_on_digits():
    mini, real = load_suite(str(SUITE_FILE)), load_suite(str(ROOT / "suites" / "latency.yaml"))
    assert [t.name for t in mini.tasks] == [point(s) for s in STEPS]
    real_points = [t for t in real.tasks if t.sweep_of == "fmnist-mlp"]
    assert [t.swept for t in mini.tasks] == [t.swept for t in real_points] == [{"steps": s} for s in STEPS]
    for task in mini.tasks:
        assert task.dataset == "digits" and task.loss == "kernel" and task.kernel_target_fill == "last"
        assert (task.tau_m, task.tau_s) == (real.tasks[0].tau_m, real.tasks[0].tau_s)
        assert task.methods == ["tssl", "tssl-surrogate", "snntorch", "spikingjelly"] and task.seeds == SEEDS
        assert task.epochs < real.tasks[0].epochs
    assert mini.caveat and "epochs" in mini.caveat and "Fashion-MNIST" in mini.caveat
    assert "suites/latency.yaml" in mini.description and "Fashion-MNIST" in mini.description


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Run the sweep (tssl and tssl-surrogate, both seeds, the suite's own epochs) and write its report, once."""
    import torch

    work = tmp_path_factory.mktemp("latency-digits")
    (work / "suites").mkdir()
    shutil.copy(SUITE_FILE, work / "suites" / SUITE_FILE.name)  # `tssl run latency-digits` finds suites/<name>.yaml
    # One thread: these runs are tiny, and with the cores busy a second torch thread makes them many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(work)
            ran = main(["run", "latency-digits", f"methods=[{','.join(METHODS)}]", "--device", "cpu",
                        "--results-dir", str(work / "results"), "--runs-dir", str(work / "runs")])
            reported = main(["report", "latency-digits", "--results-dir", str(work / "results"),
                             "--out", str(work / "report")])
    finally:
        torch.set_num_threads(threads)
    assert (ran, reported) == (0, 0)
    records = [json.loads(line) for line in (work / "results" / "latency-digits.jsonl").read_text().splitlines()]
    return records, work / "report", (work / "report" / "index.md").read_text()


def test_one_record_per_point_method_and_seed_each_at_its_steps(sweep):
    records, _, _ = sweep
    assert sorted((r["task"], r["method"], r["seed"]) for r in records) == sorted(
        (point(s), m, seed) for s in STEPS for m in METHODS for seed in SEEDS)
    assert all(r["status"] == "ok" for r in records)
    assert len({r["run_id"] for r in records}) == len(records) == len(STEPS) * len(METHODS) * len(SEEDS)
    for record in records:
        steps = int(record["task"].removeprefix("digits-mlp-steps"))
        assert record["provenance"]["config"]["steps"] == record["steps"] == steps
        assert record["run_id"].startswith(f"{record['task']}.{record['method']}.s{record['seed']}.")
        assert record["deviations"] == {}  # the suite's own settings: only the methods were narrowed


def test_tssl_learns_well_above_chance_at_every_steps(sweep):
    records, _, _ = sweep
    for steps in STEPS:
        for method in METHODS:
            finals = [r["accuracy"]["final"] for r in records if r["task"] == point(steps) and r["method"] == method]
            assert len(finals) == len(SEEDS)
            # Chance is 10 %; the suite's recipe reaches about 90 % at every T (5x chance leaves room for noise).
            assert min(finals) > 5 * CHANCE, (steps, method, finals)


def sweeps_section(text: str) -> str:
    match = re.search(r"^## \d+\. Sweeps$", text, flags=re.MULTILINE)
    assert match, "no Sweeps section"
    return text[match.end():].split("\n## ", 1)[0]


def test_the_report_has_the_steps_sweep_with_every_value(sweep):
    _, _, text = sweep
    section = sweeps_section(text)
    assert "### digits-mlp: accuracy against `steps`" in section
    assert "Points: " + ", ".join(f"T = {s} (`{point(s)}`)" for s in STEPS) + "." in section
    caption = next(line for line in section.splitlines() if "digits-mlp: accuracy at each T" in line)
    rows = []
    for line in section.split(caption, 1)[1].lstrip("\n").splitlines()[2:]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert [(row[0], row[1]) for row in rows] == [(str(s), f"`{m}`") for s in STEPS for m in METHODS]
    assert all(row[4] == "2" and row[5] == "0, 1" for row in rows)


def test_one_welch_sentence_per_value_with_two_runs_a_side(sweep):
    _, _, text = sweep
    sentences = [line for line in sweeps_section(text).splitlines() if line.startswith("- **T = ")]
    assert [re.match(r"- \*\*T = (\d+)\*\*", line).group(1) for line in sentences] == [str(s) for s in STEPS]
    for line in sentences:
        assert line.count("n = 2 vs 2") == 2  # final- and best-epoch accuracy, each with a Welch interval
        assert "final-epoch accuracy: " in line and "best-epoch accuracy: " in line and "Welch CI of Δ" in line


def test_the_three_sweep_figures_and_the_caveat(sweep):
    _, report, text = sweep
    for kind in ("accuracy", "latency", "efficiency"):
        name = f"digits-mlp-sweep-steps-{kind}.png"
        assert f"]({name})" in text
        assert (report / name).read_bytes().startswith(PNG_MAGIC)
    caveat = load_suite(str(SUITE_FILE)).caveat
    assert f"**⚠ Caveat: {caveat}**" in text.splitlines()[:4]
