"""The report's Markdown pieces, shared by its sections (``tssl.records.report``, ``tssl.records.report_sweep``).

How a flag reads, how a number, an interval or a cell is written, and :class:`Document`, the index being written
with its numbered tables and figures. Kept apart from ``report`` so that a section in a module of its own writes
exactly as the others do. Torch-free.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.figure import Figure

from tssl.records import selection, stats
from tssl.records.report_figures import FigureWriter
from tssl.records.selection import Group
from tssl.records.store import is_number

__all__ = [
    "DATASET_CLASSES",
    "EARLIER_LABEL",
    "FLAG_LABEL",
    "GENERATED_LABEL",
    "MODIFIED_LABEL",
    "REDUCED_EPOCHS_LABEL",
    "REDUCED_LABEL",
    "SMOKE_LABEL",
    "UNVERIFIED_LABEL",
    "Document",
    "classes",
    "data_cell",
    "efficiency_of",
    "file_stem",
    "flag_labels",
    "flags_of",
    "fmt",
    "interval_text",
    "mark",
    "markdown_table",
    "md",
    "mean_std",
    "method_label",
    "num",
    "series_flag",
    "series_label",
    "short",
]

SMOKE_LABEL = "SMOKE RUN — not a reproduction"
GENERATED_LABEL = "GENERATED DATA"
REDUCED_LABEL = "REDUCED DATA"
UNVERIFIED_LABEL = "UNVERIFIED DATA"
REDUCED_EPOCHS_LABEL = "REDUCED EPOCHS — trained for fewer epochs than the suite's recipe"
MODIFIED_LABEL = "MODIFIED SETTINGS — not the suite's recipe"
EARLIER_LABEL = "EARLIER CONFIGURATION — not the suite file's current settings"
# How each selection flag reads in the report's marks.
FLAG_LABEL = {
    selection.SMOKE: SMOKE_LABEL,
    selection.GENERATED: GENERATED_LABEL,
    selection.REDUCED: REDUCED_LABEL,
    selection.UNVERIFIED: UNVERIFIED_LABEL,
    selection.REDUCED_EPOCHS: REDUCED_EPOCHS_LABEL,
    selection.MODIFIED: MODIFIED_LABEL,
    selection.EARLIER: EARLIER_LABEL,
}
# Every dataset the suites use has ten classes; the chance level drawn on latency curves.
DATASET_CLASSES = {"digits": 10, "mnist": 10, "fmnist": 10, "nmnist": 10, "cifar10": 10}

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|<>#])")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def md(text: Any) -> str:
    """Escape free text (task names, errors, sources) for a Markdown table cell or line."""
    text = _MD_SPECIAL.sub(r"\\\1", str(text))
    return text.replace("\r\n", "\n").replace("\n", "<br>")


def num(value: Any) -> float:
    return float(value) if is_number(value) else math.nan


def fmt(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval_text(interval: tuple[float, float] | None) -> str:
    return "—" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return "—"
    summary = stats.summarize(values)
    return f"{summary.mean:.2f} ± {summary.std:.2f}" if summary.n >= 2 else f"{summary.mean:.2f} (n = 1)"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table; a ``|`` inside a cell (say, in |μ - P|) is escaped so that it cannot split the cell."""
    rows = [[_UNESCAPED_PIPE.sub(r"\\|", cell) for cell in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def flag_labels(flags: Iterable[str]) -> list[str]:
    return [FLAG_LABEL.get(flag, flag) for flag in dict.fromkeys(flags)]


def mark(flags: Sequence[str]) -> str:
    return " · ".join(f"⚠ {flag}" for flag in flag_labels(flags))


def flags_of(groups: Iterable[Group]) -> list[str]:
    return list(dict.fromkeys(flag for group in groups for flag in group.flags))


def file_stem(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "task"


def short(config: str) -> str:
    return config.removeprefix("sha256:")[:8] or "?"


def data_cell(group: Group) -> str:
    text = group.kind if group.kind == "real" else f"**{group.kind}**"
    text += ", **smoke**" if group.smoke else ""
    text += ", **earlier config**" if selection.EARLIER in group.flags else ""
    return text


def series_flag(group: Group) -> str:
    return ", ".join(group.flags)


def method_label(group: Group) -> str:
    """The group's method, with its recipe when that is not the matched one."""
    return group.method + (f" ({group.recipe})" if group.recipe and group.recipe != "matched" else "")


def series_label(group: Group) -> str:
    """A group's name in a figure: the flags are drawn apart (``flagged``), so the name leaves them out."""
    return method_label(group) + (f" [config {short(group.config)}]" if group.current is False else "")


def classes(groups: Sequence[Group]) -> int | None:
    """The number of classes of the groups' dataset; None when they use several or an unknown one."""
    names = {str((r.get("data") or {}).get("name")) for g in groups for r in g.records}
    counts = {DATASET_CLASSES.get(name) for name in names}
    return counts.pop() if len(counts) == 1 else None


def efficiency_of(record: dict) -> dict:
    efficiency = record.get("efficiency")
    return efficiency if isinstance(efficiency, dict) else {}


class Document:
    """The index being written: lines, and numbered tables and figures."""

    def __init__(self, figures: FigureWriter) -> None:
        self.lines: list[str] = []
        self.figures = figures
        self.tables = 0
        self.figure_count = 0

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, title: str, flags: Sequence[str], header: Sequence[str], rows: Sequence[Sequence[str]],
              note: str = "") -> None:
        self.tables += 1
        caption = f"**Table {self.tables} — {title}**" + (f" — **{mark(flags)}**" if flags else "")
        self.add(caption, "", *markdown_table(header, rows), "")
        if note:
            self.add(note, "")

    def figure(self, name: str, title: str, flags: Sequence[str], figure: Figure, note: str = "") -> None:
        self.figure_count += 1
        full = self.figures.save(figure, name, title, flag_labels(flags))
        caption = f"*Figure {self.figure_count} — {md(full)}*" + (f" {note}" if note else "")
        self.add(f"![Figure {self.figure_count} — {md(full)}]({name})", "", caption, "")
