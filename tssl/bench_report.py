"""The ``tssl bench`` table and report: ``reports/bench/index.md`` and a PNG per setting from ``bench.jsonl``.

A setting is (device, hardware, precision). For each setting the report keeps the latest record of every
(net, batch, T, method) and shows samples/s, time ratios to tssl and to the floor, peak memory and saved
activations per sample, as a table and as bar charts. Figures are drawn on matplotlib's Agg canvas directly
(no pyplot), as in ``tssl.report``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tssl.bench import BENCH_KIND, FLOOR, MEMORY_KINDS, STORE_NAME
from tssl.results import ResultsError, is_number, read_records

METHOD_ORDER = ("tssl", "tssl[compiled]", "tssl[recompute]", "tssl[compiled+recompute]", "tssl-surrogate",
                "tssl-surrogate[compiled]", "tssl-surrogate[recompute]", "snntorch",
                "spikingjelly[cuda]", "spikingjelly[triton]",
                "spikingjelly[torch]", FLOOR)
NOISE_NOTE = (
    "Step times are medians over alternating rounds on whatever else the machine was running; compare "
    "contenders within one table (the ratios are per-round medians), not numbers across machines or runs."
)
_DPI = 120


class BenchReportError(ValueError):
    """A bench store that is missing, empty or holds something other than bench records."""


# --------------------------------------------------------------------------------------------------------------
# Reading



def bench_record_problem(record: Any) -> str | None:
    """What makes ``record`` unusable as a bench record, or None."""
    if record.get("kind") != BENCH_KIND:
        return f"not a tssl bench record (kind {record.get('kind')!r}, expected {BENCH_KIND!r})"
    net = record.get("net")
    if not isinstance(net, dict) or not isinstance(net.get("name"), str):
        return "no net.name"
    if not isinstance(record.get("method"), str):
        return "no method"
    if record.get("status") not in ("ok", "failed"):
        return f"'status' must be 'ok' or 'failed', got {record.get('status')!r}"
    if record["status"] == "ok" and not is_number(record.get("samples_per_second")):
        return "an ok record needs a finite samples_per_second"
    return None


def load_bench_records(results_dir: Path) -> list[dict[str, Any]]:
    path = Path(results_dir) / STORE_NAME
    if not path.exists():
        raise BenchReportError(f"{path}: no bench store; run `tssl bench` first")
    try:
        records = read_records(path, bench_record_problem)
    except (ResultsError, OSError, UnicodeDecodeError) as error:
        raise BenchReportError(str(error)) from None
    if not records:
        raise BenchReportError(f"{path}: the bench store holds no records")
    return records


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method), method) if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def setting_of(record: dict[str, Any]) -> tuple[str, str, str]:
    return record["device"], record.get("provenance", {}).get("hardware", ""), record["precision"]


def latest_per_row(records: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """setting -> the latest record of each (net, batch, T, method), sorted by net then method."""
    latest: dict[tuple, dict[tuple, dict[str, Any]]] = {}
    for record in records:  # the store is in time order: a later record replaces an earlier one
        row = (record["net"]["name"], record.get("batch"), record.get("steps"), record["method"])
        latest.setdefault(setting_of(record), {})[row] = record
    return {
        setting: sorted(rows.values(), key=lambda r: (r["net"]["name"], r.get("batch"), _method_key(r["method"])))
        for setting, rows in sorted(latest.items())
    }


# --------------------------------------------------------------------------------------------------------------
# The table


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    return format(value / scale, spec) if is_number(value) else "—"


def implementation_label(record: dict[str, Any]) -> str:
    implementation = record.get("implementation") or {}
    engine = implementation.get("engine", "")
    if engine == "snntorch":
        return "snntorch (torch autograd)"
    detail = implementation.get("implementation") or implementation.get("kernel") or ""
    if isinstance(detail, list):
        detail = "/".join(map(str, detail))
    path = implementation.get("path")
    if engine == "spikingjelly" and isinstance(path, str):
        detail = f"{detail} ({'fused op' if path.startswith('fused') else 'Python reference'})"
    return f"{engine} {detail}".strip() if engine != FLOOR else "x * 1.0"


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of bench records: one row per net x method."""
    header = ("net", "batch", "method", "implementation", "samples/s", "time / tssl", "time / floor",
              "peak memory MiB", "saved KiB/sample", "authors' layout KiB/sample")
    rows = []
    for r in records:
        if r.get("status") != "ok":
            error = re.sub(r"\s+", " ", str(r.get("error")))[:160].replace("|", "/")
            rows.append((r["net"]["name"], str(r.get("batch")), r["method"], f"FAILED: {error}", *["—"] * 6))
            continue
        memory = (r.get("memory") or {}).get("peak_bytes")
        rows.append((
            r["net"]["name"], str(r.get("batch")), r["method"], implementation_label(r),
            _fmt(r["samples_per_second"], ".1f"), _fmt(r.get("time_ratio_to_tssl"), ".2f"),
            _fmt(r.get("time_ratio_to_floor"), ".2f"), _fmt(memory, ".1f", 2**20),
            _fmt(r.get("saved_activation_bytes_per_sample"), ".1f", 1024),
            _fmt(r.get("authors_layout_bytes_per_sample"), ".1f", 1024),
        ))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def table_caption(records: Sequence[dict[str, Any]], with_noise_note: bool = True) -> str:
    """One paragraph saying under what conditions ``records`` were measured."""
    first = records[0]
    kinds = sorted({(r.get("memory") or {}).get("kind") or "not measured" for r in records if r["status"] == "ok"})
    return (
        f"Device {first['device']} ({first['provenance'].get('hardware', '')}); precision {first['precision']} "
        f"({first['precision_detail']}); T = {first['steps']}; {first['iters']} timed rounds after "
        f"{first['warmup']} warm-up rounds, medians; time ratios are medians of per-round ratios (> 1: slower); "
        f"peak memory: {', '.join(kinds) or 'not measured'}." + (f" {NOISE_NOTE}" if with_noise_note else "")
    )


# --------------------------------------------------------------------------------------------------------------
# The figure


def _bar_panel(axis, nets: list[str], methods: list[str], values: dict[tuple[str, str], float], colors: dict,
               label: str, digits: str) -> None:
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(nets))
    for position, method in enumerate(methods):
        heights = [values.get((net, method), math.nan) for net in nets]
        offsets = x - 0.4 + width * (position + 0.5)
        axis.bar(offsets, heights, width=width * 0.95, color=colors[method], label=method, edgecolor="black",
                 linewidth=0.5)
        for xi, value in zip(offsets, heights, strict=True):
            if math.isfinite(value):
                axis.annotate(format(value, digits), (xi, value), xytext=(0, 2), textcoords="offset points",
                              ha="center", va="bottom", fontsize=6, rotation=90)
    axis.set_xticks(x, nets, fontsize=9)
    axis.set_ylabel(label)
    finite = [v for v in values.values() if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 30:
        axis.set_yscale("log")
    axis.margins(y=0.25)
    axis.grid(True, axis="y", alpha=0.3, linewidth=0.6)
    axis.spines[["top", "right"]].set_visible(False)


def bench_figure(records: Sequence[dict[str, Any]], title: str) -> Figure:
    ok = [r for r in records if r["status"] == "ok"]
    nets = list(dict.fromkeys(f"{r['net']['name']} (B={r['batch']})" for r in ok))
    methods = sorted({r["method"] for r in ok}, key=_method_key)
    palette = matplotlib.colormaps["tab10"].colors
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    speed, saved = {}, {}
    for r in ok:
        key = (f"{r['net']['name']} (B={r['batch']})", r["method"])
        speed[key] = float(r["samples_per_second"])
        if is_number(r.get("saved_activation_bytes_per_sample")):
            saved[key] = r["saved_activation_bytes_per_sample"] / 1024
    figure = Figure(figsize=(max(9.0, 2.6 * len(nets) + 5.0), 4.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, squeeze=False)
    _bar_panel(axes[0, 0], nets, methods, speed, colors, "training samples / s (higher is better)", ".0f")
    _bar_panel(axes[0, 1], nets, methods, saved, colors, "saved activations, KiB / sample", ".0f")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(7, len(labels)), fontsize=8,
                  frameon=False)
    figure.suptitle(title, fontsize=11, fontweight="bold")
    return figure


# --------------------------------------------------------------------------------------------------------------
# The report


def _file_stem(setting: tuple[str, str, str]) -> str:
    device, _, precision = setting
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"bench-{device}-{precision}").strip("-")


def write_bench_report(records: Sequence[dict[str, Any]], out_dir: Path) -> Path:
    """Write ``out_dir/index.md`` and one PNG per setting; return the index path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = latest_per_row(records)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# tssl bench: training-step throughput and memory",
        "",
        f"Generated {generated} from {len(records)} records of `{STORE_NAME}`; the latest record of each "
        "(net, batch, T, method) per setting (device, hardware, precision).",
        "",
        "A step is reset + forward + loss + backward + grad-norm clip + AdamW step + weight clamp on one random "
        "batch of the net's input shape, the method's own model and recipe. `floor` is the native network with "
        "every neuron replaced by one multiply: what no engine on these dense kernels can beat. `time / tssl` "
        "and `time / floor` are step-time ratios (> 1: slower). Saved activations: the bytes autograd keeps for "
        "the backward per sample; the authors' layout is what the authors' code would keep for the same net.",
        "",
        f"**{NOISE_NOTE}**",
        "",
        "Peak memory definitions:",
        "",
        *[f"- `{kind}`: {text}." for kind, text in MEMORY_KINDS.items()],
        "",
    ]
    for setting, rows in settings.items():
        device, hardware, precision = setting
        stem = _file_stem(setting)
        title = f"{device}, {precision}"
        figure = bench_figure(rows, f"tssl bench — {title}")
        figure.savefig(out_dir / f"{stem}.png", dpi=_DPI, metadata={"Software": None})
        runs = sorted({r["bench_id"] for r in rows})
        shas = sorted({f"{r['provenance'].get('git_sha') or 'unknown'}"
                       f"{' (dirty)' if r['provenance'].get('git_dirty') else ''}" for r in rows})
        torch_versions = sorted({r["provenance"].get("packages", {}).get("torch", "?") for r in rows})
        lines += [
            f"## {title}",
            "",
            f"Hardware: {hardware}. Runs: {', '.join(runs)}. Code: {', '.join(shas)}. "
            f"torch {', '.join(torch_versions)}.",
            "",
            table_caption(rows, with_noise_note=False),
            "",
            format_table(rows),
            "",
            f"![{title}]({stem}.png)",
            "",
        ]
    index = out_dir / "index.md"
    index.write_text("\n".join(lines))
    return index


# --------------------------------------------------------------------------------------------------------------
# The suite report's timing table: a task's network as measured alone by tssl bench


SUITE_TIMING_HEADER = [
    "task", "method", "device (threads)", "precision", "step (ms, median)", "samples/s", "time ÷ tssl",
    "time ÷ floor", "saved activations / sample (KiB)", "projected s / epoch", "projected full run (h)", "bench id",
]  # fmt: skip


def _matches(record: dict[str, Any], config: dict[str, Any]) -> bool:
    """A bench record timed the task's network: same architecture, padding, batch and T, fp32 or the task's."""
    net = record.get("net") or {}
    return (
        net.get("architecture") == config.get("architecture")
        and net.get("padding", 0) == config.get("padding", 0)
        and record.get("batch") == config.get("batch_size")
        and record.get("steps") == config.get("steps")
        and record.get("precision", "fp32") == config.get("precision", "fp32")
    )


def _samples_per_epoch(task: str, run_records: Sequence[dict[str, Any]]) -> float | None:
    """Training samples in one epoch of ``task``, from its runs' own timing (samples/s x seconds / epochs)."""
    for record in run_records:
        timing, history = record.get("timing") or {}, record.get("history") or []
        if record.get("task") == task and record.get("status") == "ok" and not record.get("smoke") and history:
            sps, seconds = timing.get("samples_per_second"), timing.get("train_seconds")
            if is_number(sps) and is_number(seconds):
                return round(sps * seconds / len(history))
    return None


def suite_timing_rows(
    bench_records: Sequence[dict[str, Any]],
    suite_tasks: dict[str, dict[str, Any]],
    run_records: Sequence[dict[str, Any]],
) -> list[list[str]]:
    """One row per (task, method) whose network ``tssl bench`` timed (the latest such record): the step time
    measured alone, and the epoch and full-run times it projects for the task's own training-set size."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for record in bench_records:
        if bench_record_problem(record) is not None or record["status"] != "ok":
            continue
        for task, settings in suite_tasks.items():
            if _matches(record, settings.get("run_config") or {}):
                latest[(task, record["method"])] = record  # a later record of the same net wins
                break  # tasks sharing a network (e.g. a diagnostic variant) show it once, under the first

    def order(key: tuple[str, str]) -> tuple[str, int, str]:
        method = key[1]
        return key[0], METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method

    rows = []
    for task, method in sorted(latest, key=order):
        record = latest[(task, method)]
        config = suite_tasks[task].get("run_config") or {}
        sps = record["samples_per_second"]
        per_epoch = _samples_per_epoch(task, run_records)
        epoch_seconds = per_epoch / sps if per_epoch else math.nan
        full_hours = epoch_seconds * config.get("epochs", math.nan) / 3600
        saved = record.get("saved_activation_bytes_per_sample")
        rows.append([
            task, f"`{method}`", f"{record.get('device')} ({record.get('threads')})", str(record.get("precision")),
            _fmt(record["step_seconds"]["median"], ".1f", 1e-3), _fmt(sps, ".0f"),
            _fmt(record.get("time_ratio_to_tssl"), ".2f"), _fmt(record.get("time_ratio_to_floor"), ".2f"),
            _fmt(saved, ".0f", 1024), _fmt(epoch_seconds, ".1f"), _fmt(full_hours, ".2f"),
            f"`{record.get('bench_id')}`",
        ])  # fmt: skip
    return rows
