"""The ``tssl bench`` table and report: ``reports/bench/index.md`` and a PNG per setting from ``bench.jsonl``.

A setting is (device, hardware, precision). For each setting the report keeps the latest record of every
(net, batch, T, method) and shows samples/s, time ratios to tssl and to the floor, peak memory and saved
activations per sample as a table, and in a figure (``bench-<device>-<threads>t-<precision>.png``) the step time
÷ the floor's with its spread over rounds and the saved activations. Figures are drawn on matplotlib's Agg canvas
directly (no pyplot), as in ``tssl.records.report``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from tssl.records.schema import BENCH_MEMORY_KINDS as MEMORY_KINDS
from tssl.records.schema import BENCH_STORE_NAME as STORE_NAME
from tssl.records.schema import FLOOR, bench_record_problem
from tssl.records.store import ResultsError, is_number, read_records

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


def _step_times(record: dict[str, Any] | None) -> np.ndarray:
    times = ((record or {}).get("step_seconds") or {}).get("all") or []
    array = np.asarray([t for t in times if is_number(t)], dtype=float)
    return array[array > 0]


@dataclass(frozen=True)
class FloorRatio:
    """A method's step time ÷ the floor's over the timed rounds of one bench run."""

    median: float
    quartiles: tuple[float, float] | None  # the interquartile range of the per-round ratios; None when unpaired
    extremes: tuple[float, float] | None  # their min and max; None when unpaired
    rounds: int  # paired rounds; 0 when the ratio is of the two medians


def floor_ratio(record: dict[str, Any], floor: dict[str, Any] | None) -> FloorRatio | None:
    """Per-round ratios when ``floor`` is from the same bench run with as many rounds (the rounds alternate the
    methods, so round i of each saw the same machine); else the ratio of the two medians, without a spread."""
    own, base = _step_times(record), _step_times(floor)
    if floor is not None and own.size and own.size == base.size and record.get("bench_id") == floor.get("bench_id"):
        ratios = own / base
        q1, median, q3 = np.percentile(ratios, [25, 50, 75])
        return FloorRatio(float(median), (float(q1), float(q3)), (float(ratios.min()), float(ratios.max())),
                          int(ratios.size))
    if own.size and base.size:
        return FloorRatio(float(np.median(own) / np.median(base)), None, None, 0)
    stored = record.get("time_ratio_to_floor")  # the record's own median ratio, when its rounds are not stored
    return FloorRatio(float(stored), None, None, 0) if is_number(stored) and stored > 0 else None


def _floor_key(record: dict[str, Any]) -> tuple:
    return record.get("bench_id"), record["net"]["name"], record.get("batch"), record.get("steps")


def _floors(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """(bench run, net, batch, T) -> the floor record timed in that run, and (None, net, batch, T) -> the latest
    floor of any run, for a method whose own run had none (a later record replaces an earlier one)."""
    floors = {}
    for record in records:
        if record["method"] == FLOOR and record.get("status") == "ok":
            floors[_floor_key(record)] = record
            floors[(None, *_floor_key(record)[1:])] = record
    return floors


def _floor_of(record: dict[str, Any], floors: dict[tuple, dict[str, Any]]) -> dict[str, Any] | None:
    key = _floor_key(record)
    return floors.get(key) or floors.get((None, *key[1:]))


def _net_label(record: dict[str, Any]) -> str:
    return f"{record['net']['name']} (B={record['batch']})"


def _ratio_ticks(axis, low: float, high: float) -> None:
    """Plain-number ticks (0.5, 1, 2, 5, ...) on a log ratio axis: a reader should not decode 10^0.3."""
    candidates = [0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 200, 500, 1000]
    ticks = [t for t in candidates if low <= t <= high]
    axis.yaxis.set_major_locator(FixedLocator(ticks))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())


def _plain_log_ticks(axis, low: float, high: float) -> None:
    """Plain numbers (20, 100, 5,000) at 1, 2, 5 x 10^k on a log axis, or at powers of ten only when it spans
    more than two decades, so that the labels neither crowd nor need decoding."""
    multiples = (1,) if high / low > 100 else (1, 2, 5)
    ticks = [m * 10.0**k for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
             for m in multiples if low <= m * 10.0**k <= high]
    axis.yaxis.set_major_locator(FixedLocator(ticks))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())


def _ratio_panel(axis, records: Sequence[dict[str, Any]], slots: dict[tuple[str, str], float],
                 floors: dict[tuple, dict[str, Any]], colors: dict[str, Any]) -> None:
    """Time ÷ floor per (net, method): the median as a marker, the IQR as a thick bar, the full range as a thin one."""
    extent = [1.0]
    for record in records:
        if record["method"] == FLOOR:
            continue
        ratio = floor_ratio(record, _floor_of(record, floors))
        if ratio is None:
            continue
        x, color = slots[(_net_label(record), record["method"])], colors[record["method"]]
        if ratio.extremes is not None and ratio.quartiles is not None:
            axis.vlines(x, *ratio.extremes, color=color, linewidth=1.0, zorder=2)
            axis.vlines(x, *ratio.quartiles, color=color, linewidth=4.5, alpha=0.55, zorder=2)
            extent += ratio.extremes
        paired = ratio.rounds > 0
        axis.plot(x, ratio.median, "o", markersize=5, color=color, markerfacecolor=color if paired else "white",
                  markeredgewidth=1.4, zorder=3, gid=f"ratio:{_net_label(record)}:{record['method']}")
        extent.append(ratio.median)
    axis.axhline(1.0, color="black", linewidth=1.0, linestyle="--", zorder=1, gid="floor")
    low, high = min(extent), max(extent)
    if high / low > 4:
        axis.set_yscale("log")
        low, high = low / 1.15, high * 1.15
        _ratio_ticks(axis, low, high)
    else:
        pad = max(0.08 * (high - low), 0.05)
        low, high = low - pad, high + pad
    axis.set_ylim(low, high)
    axis.set_ylabel("step time ÷ floor step time\n(> 1: slower than the floor)")


def _saved_panel(axis, records: Sequence[dict[str, Any]], slots: dict[tuple[str, str], float],
                 colors: dict[str, Any]) -> None:
    """Saved activations per sample as points on a log axis (bars on a log axis would start nowhere)."""
    for record in records:
        saved = record.get("saved_activation_bytes_per_sample")
        if is_number(saved) and saved > 0:
            axis.plot(slots[(_net_label(record), record["method"])], saved / 1024, "s", markersize=5.5,
                      color=colors[record["method"]], zorder=3)
    axis.set_yscale("log")
    values = [v for line in axis.lines for v in line.get_ydata()]
    if values:
        low, high = min(values) / 1.3, max(values) * 1.3
        axis.set_ylim(low, high)
        _plain_log_ticks(axis, low, high)
    axis.set_ylabel("saved activations\n(KiB / sample, log scale)")


def bench_figure(records: Sequence[dict[str, Any]], title: str, floors: Sequence[dict[str, Any]] = ()) -> Figure:
    """Step time ÷ floor (top) and saved activations per sample (bottom) for one setting's ``records``; the floor of
    a record's own bench run is looked up in ``records`` and ``floors``."""
    ok = [r for r in records if r["status"] == "ok"]
    nets = list(dict.fromkeys(_net_label(r) for r in ok))
    methods = sorted({r["method"] for r in ok}, key=_method_key)
    palette = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7]  # grey is the floor's
    colors = {m: ("0.35" if m == FLOOR else palette[i % len(palette)]) for i, m in enumerate(methods)}
    width = 0.8 / max(len(methods), 1)
    slots = {(net, method): n + width * (position + 0.5) - 0.4
             for n, net in enumerate(nets) for position, method in enumerate(methods)}
    figure = Figure(figsize=(max(7.5, 1.5 + len(nets) * (1.3 + 0.16 * len(methods))), 7.4),
                    layout="constrained")
    FigureCanvasAgg(figure)
    ratio_axis, saved_axis = figure.subplots(2, 1, sharex=True)
    _ratio_panel(ratio_axis, ok, slots, _floors([*floors, *ok]), colors)
    _saved_panel(saved_axis, ok, slots, colors)
    for axis in (ratio_axis, saved_axis):
        for boundary in np.arange(0.5, len(nets) - 0.5):  # separate the nets
            axis.axvline(boundary, color="0.85", linewidth=0.8)
        axis.grid(True, axis="y", alpha=0.3, linewidth=0.6)
        axis.spines[["top", "right"]].set_visible(False)
    saved_axis.set_xticks(range(len(nets)), nets, fontsize=9)
    saved_axis.set_xlim(-0.5, len(nets) - 0.5)
    handles = [Line2D([], [], marker="o" if m != FLOOR else "s", color=colors[m], linestyle="none", label=m)
               for m in methods]
    handles += [
        Line2D([], [], color="black", linestyle="--", label="floor (= 1)"),
        Line2D([], [], color="0.3", linewidth=4.5, alpha=0.55, label="interquartile range over rounds"),
        Line2D([], [], color="0.3", linewidth=1.0, label="minimum to maximum over rounds"),
    ]
    if any(line.get_markerfacecolor() == "white" for line in ratio_axis.lines):
        handles.append(Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none",
                              label="ratio of medians (rounds not paired)"))
    column_inches = 0.55 + 0.062 * max(len(h.get_label()) for h in handles)  # handle + text at 8 pt
    columns = max(1, min(len(handles), int((figure.get_figwidth() - 0.3) / column_inches)))
    figure.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=11, fontweight="bold")
    return figure


def bench_figure_caption(records: Sequence[dict[str, Any]]) -> str:
    """What the bench figure's marks mean, for the line under it in the index."""
    rounds = sorted({len(_step_times(r)) for r in records if r["status"] == "ok"} - {0})
    counted = f"{'/'.join(map(str, rounds))} " if rounds else ""
    return (
        "Top: each method's training-step time ÷ the floor's (> 1: slower; the dashed line at 1 is the floor). "
        f"Marker: the median of the per-round ratios over the {counted}alternating timed rounds of one bench run; "
        "thick bar: their interquartile range; thin whisker: their minimum to maximum. A hollow marker is the "
        "ratio of the two medians, without a spread, where the method's rounds cannot be paired with the floor's "
        "(another run or another number of rounds). Bottom: the bytes autograd saves for the backward, per sample "
        "(log scale)."
    )


# --------------------------------------------------------------------------------------------------------------
# The report


def _threads(rows: Sequence[dict[str, Any]]) -> str:
    return "+".join(str(t) for t in sorted({r.get("threads") for r in rows if isinstance(r.get("threads"), int)}))


def _file_stem(setting: tuple[str, str, str], threads: str, taken: set[str]) -> str:
    """bench-<device>-<threads>t-<precision>, e.g. bench-cpu-1t-fp32, so that no two settings share a file; a
    second machine with the same three gets a hash of its hardware line appended."""
    device, hardware, precision = setting
    parts = ["bench", device, f"{threads}t" if threads else "", precision]
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "-", "-".join(p for p in parts if p)).strip("-")
    if stem in taken:
        stem += "-" + hashlib.sha256(hardware.encode()).hexdigest()[:6]
    return stem


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
    stems: set[str] = set()
    for setting, rows in settings.items():
        device, hardware, precision = setting
        threads = _threads(rows)
        stem = _file_stem(setting, threads, stems)
        stems.add(stem)
        title = f"{device}, {precision}"
        thread_text = f"{threads} torch thread{'' if threads == '1' else 's'}, " if threads else ""
        figure_title = f"tssl bench — {device}, {thread_text}{precision}"
        same_setting = [r for r in records if setting_of(r) == setting]  # where each record's own floor is
        figure = bench_figure(rows, f"{figure_title}\n{hardware}", floors=same_setting)
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
            f"![{figure_title}]({stem}.png)",
            "",
            f"*{bench_figure_caption(rows)}*",
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
    # One row per task, method and setting (device, threads, precision): a GPU and a CPU measurement of the same
    # network are different numbers, never one replacing the other.
    latest: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
    for record in bench_records:
        if bench_record_problem(record) is not None or record["status"] != "ok":
            continue
        for task, settings in suite_tasks.items():
            if _matches(record, settings.get("run_config") or {}):
                key = (task, *setting_of(record), record["method"])
                latest[key] = record  # a later record of the same net and setting wins
                break  # tasks sharing a network (e.g. a diagnostic variant) show it once, under the first

    position = {task: number for number, task in enumerate(suite_tasks)}  # the suite file's order of tasks

    def order(key: tuple[str, str, str, str, str]) -> tuple:
        method = key[-1]
        rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
        return (position[key[0]], *key[1:-1], rank, method)

    rows = []
    for key in sorted(latest, key=order):
        task, record = key[0], latest[key]
        method = record["method"]
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
