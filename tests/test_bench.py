"""``tssl bench``: every method (baselines and the floor included) on a tiny net on CPU, its records, ratios,
memory, table and report; bad flags are one line and exit status 2."""

from __future__ import annotations

import json
import os
import statistics

import pytest
import torch

from tssl.cli import main
from tssl.harness.bench import BenchOptions, resolve_nets, run_bench
from tssl.records.bench_report import format_table, load_bench_records, write_bench_report
from tssl.records.report import ReportError, load_records

NET = "4C3-P2-16"
SHAPE = "1,8,8"
ALL = ["tssl", "tssl-surrogate", "snntorch", "spikingjelly", "floor"]
LABELS = ["tssl", "tssl-surrogate", "snntorch", "spikingjelly[torch]", "floor"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    results = tmp_path_factory.mktemp("bench")
    records = run_bench([NET], ALL, device="cpu", input_shape=SHAPE, batch=4,
                        options=BenchOptions(iters=2, warmup=1), results_dir=results, log=lambda _: None)
    return results, {r["method"]: r for r in records}


def test_every_method_and_the_floor_has_an_ok_record(bench):
    _, records = bench
    assert list(records) == LABELS
    assert all(r["status"] == "ok" and r["error"] is None for r in records.values())
    for record in records.values():
        assert record["kind"] == "bench" and record["net"]["name"] == NET and record["net"]["input_shape"] == [1, 8, 8]
        assert record["batch"] == 4 and record["steps"] == 5 and record["device"] == "cpu"
        assert record["precision"] == "fp32" and record["iters"] == 2 and record["warmup"] == 1
        assert len(record["step_seconds"]["all"]) == 2
        assert record["samples_per_second"] == pytest.approx(4 / record["step_seconds"]["median"])
        assert record["saved_activation_bytes_per_sample"] > 0 and record["authors_layout_bytes_per_sample"] > 0
        provenance = record["provenance"]
        assert {"git_sha", "git_dirty", "packages", "hardware", "started_at", "finished_at"} <= set(provenance)
    assert len({r["bench_id"] for r in records.values()}) == 1
    assert len({r["run_id"] for r in records.values()}) == len(LABELS)
    assert records["floor"]["implementation"]["engine"] == "floor"
    assert records["spikingjelly[torch]"]["implementation"]["requested_implementation"] == "torch"
    assert records["tssl-surrogate"]["implementation"]["grad_rule"] == "surrogate"
    # The floor's neuron keeps nothing for the backward; the TSSL-BP neuron keeps its membrane and spikes.
    assert records["floor"]["saved_activation_bytes_per_sample"] < records["tssl"]["saved_activation_bytes_per_sample"]


def test_ratios_are_medians_of_per_round_ratios(bench):
    _, records = bench
    tssl, floor = records["tssl"]["step_seconds"]["all"], records["floor"]["step_seconds"]["all"]
    assert records["tssl"]["time_ratio_to_tssl"] == 1.0 and records["floor"]["time_ratio_to_floor"] == 1.0
    def median_ratio(own, other):
        return statistics.median(a / b for a, b in zip(own, other, strict=True))

    for record in records.values():
        own = record["step_seconds"]["all"]
        assert record["time_ratio_to_tssl"] == pytest.approx(median_ratio(own, tssl))
        assert record["time_ratio_to_floor"] == pytest.approx(median_ratio(own, floor))


def test_peak_memory_is_state_plus_step_peak(bench):
    _, records = bench
    for record in records.values():
        memory = record["memory"]
        assert memory["error"] is None and memory["kind"] == "cpu_state_plus_step_rss_peak"
        assert memory["peak_bytes"] == memory["state_bytes"] + memory["step_peak_bytes"]
        # AdamW keeps two moments per weight: the state is at least three times the weights.
        assert memory["state_bytes"] >= 3 * 4 * (4 * 1 * 3 * 3 + 16 * 4 * 3 * 3 + 10 * 16)


def test_store_table_and_report(bench, tmp_path):
    results, _ = bench
    stored = load_bench_records(results)
    assert [r["method"] for r in stored] == LABELS
    table = format_table(stored)
    assert all(f"| {label} |" in table for label in LABELS) and "FAILED" not in table
    index = write_bench_report(stored, tmp_path / "report")
    text = index.read_text()
    assert "| floor |" in text and "cpu, fp32" in text
    (png,) = (tmp_path / "report").glob("*.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    # The training report refuses a bench store with a message instead of misreading it.
    with pytest.raises(ReportError, match="line 1"):
        load_records(results / "bench.jsonl")


def test_a_method_that_cannot_run_here_is_a_failed_row(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    records = run_bench([NET], ["tssl", "spikingjelly[triton]"], device="cpu", input_shape=SHAPE, batch=2,
                        options=BenchOptions(iters=1, warmup=0, memory=False), results_dir=None, log=lambda _: None)
    ok, failed = records
    assert ok["status"] == "ok" and ok["memory"]["peak_bytes"] is None
    assert failed["status"] == "failed" and "CUDA" in failed["error"]
    assert "FAILED" in format_table(records)


def test_presets_take_the_paper_recipe():
    cpu = torch.device("cpu")
    mnist, mlp, cifar = resolve_nets(["mnist", "fmnist-mlp", "cifar10-cnn1"], None, None, None, cpu)
    assert (mnist.task.architecture, mnist.batch, mnist.input_shape) == ("15C5-P2-40C5-P2-300", 50, (1, 28, 28))
    assert (mlp.task.architecture, mlp.batch) == ("400-400", 100)
    assert cifar.task.architecture.startswith("96C3-256C3") and cifar.batch == 4 and cifar.input_shape == (3, 32, 32)
    assert cifar.task.padding == 1 and cifar.task.dropout == 0.2 and mnist.task.loss == "kernel"
    (custom,) = resolve_nets([NET], SHAPE, 3, 10, cpu)
    assert custom.batch == 3 and custom.task.steps == 10 and custom.task.architecture == NET


def test_cli_bench_bf16_then_report(tmp_path, capsys):
    args = ["bench", "--net", NET, "--input-shape", SHAPE, "--methods", "tssl,floor", "--iters", "1", "--warmup",
            "0", "--batch", "2", "--device", "cpu", "--precision", "bf16", "--no-memory", "--threads", "1",
            "--results-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| tssl |" in out and "| floor |" in out and "2 records appended" in out
    records = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    assert [r["precision"] for r in records] == ["bf16", "bf16"]
    assert "autocast" in records[0]["precision_detail"] and records[0]["threads"] == 1
    assert main(["bench", "--report", "--results-dir", str(tmp_path), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--net", "nope"], "--net 'nope' is neither a known net"),
        (["--net", NET], "give its input with --input-shape"),
        (["--net", "mnist", "--input-shape", SHAPE], "--input-shape applies to architecture strings only"),
        (["--net", NET, "--input-shape", "1,x"], "--input-shape '1,x' is not"),
        (["--net", "4C3-P2-P2-P2-16", "--input-shape", SHAPE], "leaves an empty output"),
        (["--methods", "tssl,foo"], "--methods 'foo' is unknown"),
        (["--methods", "spikingjelly[nope]"], "spikingjelly implementations are cuda, triton, torch"),
        (["--precision", "fp16"], "--precision 'fp16' is unknown; allowed: fp32, tf32, bf16"),
        (["--precision", "tf32", "--device", "cpu"], "needs a cuda device"),
        (["--device", "cuda:7"], "cuda"),
        (["--device", "tpu"], "is not a device"),
        (["--report"], "no bench store"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    if "cuda:7" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if "--device" not in args:
        args = [*args, "--device", "cpu"]
    assert main(["bench", *args, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert message.lower() in err.lower()
    assert not (tmp_path / "bench.jsonl").exists()


@pytest.mark.parametrize("args", [["--iters", "0"], ["--warmup", "-1"], ["--batch", "x"]])
def test_bad_numbers_are_refused_by_the_parser(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    assert exit_info.value.code == 2
    assert "argument" in capsys.readouterr().err.strip().splitlines()[-1]


def test_compiled_contenders_run_under_their_own_environment(monkeypatch):
    from tssl.engine.neuron_compiled import COMPILE_ENV
    from tssl.harness.bench import build_contender, resolve_methods

    monkeypatch.delenv(COMPILE_ENV, raising=False)
    cpu = torch.device("cpu")
    assert resolve_methods(["tssl", "tssl[compiled]", "tssl-surrogate[compiled]"], cpu) == [
        "tssl", "tssl[compiled]", "tssl-surrogate[compiled]"
    ]
    net = resolve_nets([NET], SHAPE, 4, None, cpu)[0]
    eager, compiled = build_contender("tssl", net, cpu), build_contender("tssl[compiled]", net, cpu)
    assert eager.describe_implementation()["kernel"] == "torch"
    assert compiled.describe_implementation()["kernel"] == "torch.compile"
    with compiled.active():
        assert os.environ[COMPILE_ENV] == "1"
    assert COMPILE_ENV not in os.environ  # restored: the other contenders in the round run eager


def test_the_compiled_neuron_is_refused_off_the_cpu():
    from tssl.harness.bench import BenchError, resolve_methods

    with pytest.raises(BenchError, match=r"the compiled neuron .* is a CPU path"):
        resolve_methods(["tssl[compiled]"], torch.device("cuda"))


def test_the_fmnist_cnn_preset_takes_its_suite_settings():
    [net] = resolve_nets(["fmnist-cnn"], None, None, None, torch.device("cpu"))
    assert net.task.architecture == "32C5-P2-64C5-P2-1024" and net.task.padding == 2 and net.batch == 50


def test_default_methods_add_the_compiled_engine_on_a_cpu_only():
    from tssl.harness.bench import default_methods

    cpu, cuda = default_methods(torch.device("cpu")), default_methods(torch.device("cuda"))
    assert cpu == ["tssl", "tssl[compiled]", "tssl-surrogate", "snntorch", "spikingjelly", "floor"]
    assert cuda == ["tssl", "tssl-surrogate", "snntorch", "spikingjelly", "floor"]


# --------------------------------------------------------------------------------------------------------------
# The bench figures: time ÷ floor with its spread over rounds, one file per (device, threads, precision)


def _bench_record(method: str, times: list[float], *, threads: int = 1, precision: str = "fp32",
                  bench_id: str = "run-a", hardware: str | None = None) -> dict:
    hardware = hardware or f"x86_64, 2 cores, {threads} torch threads"
    return {
        "kind": "bench", "schema": 1, "status": "ok", "error": None, "method": method, "bench_id": bench_id,
        "run_id": f"bench.{bench_id}.tiny.{method}", "net": {"name": "tiny"}, "batch": 4, "steps": 5,
        "device": "cpu", "threads": threads, "precision": precision, "precision_detail": precision,
        "iters": len(times), "warmup": 1, "samples_per_second": 4 / statistics.median(times),
        "step_seconds": {"all": times, "median": statistics.median(times), "min": min(times), "max": max(times)},
        "memory": None, "saved_activation_bytes_per_sample": 2048.0 if method != "floor" else 1024.0,
        "provenance": {"hardware": hardware, "git_sha": "abc", "git_dirty": False, "packages": {"torch": "2"}},
    }  # fmt: skip


def _setting(threads: int = 1, precision: str = "fp32", hardware: str | None = None) -> list[dict]:
    floor = [0.010, 0.011, 0.010, 0.012]
    return [
        _bench_record("tssl", [0.015, 0.016, 0.018, 0.015], threads=threads, precision=precision, hardware=hardware),
        _bench_record("floor", floor, threads=threads, precision=precision, hardware=hardware),
    ]


def test_each_device_threads_precision_gets_its_own_figure(tmp_path):
    records = [*_setting(1), *_setting(2), *_setting(1, "bf16"),
               *_setting(1, hardware="another machine, 1 torch threads")]
    index = write_bench_report(records, tmp_path)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert {"bench-cpu-1t-fp32.png", "bench-cpu-2t-fp32.png", "bench-cpu-1t-bf16.png"} < set(pngs)
    # The same device, threads and precision on another machine: a fourth file, told apart by its hardware.
    assert len(pngs) == 4 and len([name for name in pngs if name.startswith("bench-cpu-1t-fp32-")]) == 1
    assert len({(tmp_path / name).read_bytes() for name in pngs}) == 4
    text = index.read_text()
    assert all(f"({name})" in text for name in pngs)
    assert "interquartile range" in text and "minimum to maximum" in text


def test_the_floor_ratio_pairs_rounds_of_one_run_else_takes_the_medians():
    from tssl.records.bench_report import floor_ratio

    tssl, floor = _setting()
    paired = floor_ratio(tssl, floor)
    ratios = [a / b for a, b in zip(tssl["step_seconds"]["all"], floor["step_seconds"]["all"], strict=True)]
    assert paired.rounds == 4 and paired.median == pytest.approx(statistics.median(ratios))
    assert paired.extremes == pytest.approx((min(ratios), max(ratios)))
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    assert paired.quartiles == pytest.approx((q1, q3))
    other_run = {**floor, "bench_id": "run-b"}
    fewer_rounds = {**floor, "step_seconds": {"all": [0.010, 0.011]}}
    for unpaired in (other_run, fewer_rounds):
        ratio = floor_ratio(tssl, unpaired)
        assert ratio.rounds == 0 and ratio.quartiles is None and ratio.extremes is None
        expected = statistics.median(tssl["step_seconds"]["all"]) / statistics.median(unpaired["step_seconds"]["all"])
        assert ratio.median == pytest.approx(expected)


def test_the_bench_figure_draws_time_over_floor_with_its_spread_and_the_floor_at_one():
    from matplotlib.colors import to_rgba

    from tssl.records.bench_report import bench_figure, floor_ratio

    tssl, floor = _setting()
    figure = bench_figure([tssl, floor], "tssl bench — cpu, 1 torch thread, fp32")
    ratio_axis, saved_axis = figure.axes[:2]
    (median,) = [line for line in ratio_axis.lines if line.get_gid() == "ratio:tiny (B=4):tssl"]
    expected = floor_ratio(tssl, floor)
    assert median.get_ydata()[0] == pytest.approx(expected.median)
    assert to_rgba(median.get_markerfacecolor()) != to_rgba("white")  # paired rounds: a filled marker
    spans = sorted(float(y) for collection in ratio_axis.collections for segment in collection.get_segments()
                   for y in segment[:, 1])
    assert spans == pytest.approx(sorted([*expected.quartiles, *expected.extremes]))
    (floor_line,) = [line for line in ratio_axis.lines if line.get_gid() == "floor"]
    assert list(floor_line.get_ydata()) == [1, 1]
    assert not [line for line in ratio_axis.lines if (line.get_gid() or "").endswith(":floor")]
    assert "floor" in ratio_axis.get_ylabel()
    assert saved_axis.get_yscale() == "log"
    # The floor of another run cannot be paired round by round: a hollow marker without whiskers.
    unpaired = bench_figure([tssl, {**floor, "bench_id": "run-b"}], "t")
    (hollow,) = [line for line in unpaired.axes[0].lines if line.get_gid() == "ratio:tiny (B=4):tssl"]
    assert to_rgba(hollow.get_markerfacecolor()) == to_rgba("white") and not unpaired.axes[0].collections
