"""The benchmark report: a Markdown table, one PNG per section and the raw results as JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.results import Figure
from bench.stats import Spread

REPORT_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"


def number(value: float) -> str:
    """Three significant figures or so, without scientific notation."""
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def spread_text(spread: Spread | None, unit: str = "", suffix: str = "") -> str:
    if spread is None:
        return "—"
    unit_text = f" {unit}" if unit else ""
    if spread.rounds == 1 or spread.low == spread.high:
        return f"{number(spread.median)}{suffix}{unit_text}"
    extremes = f"({number(spread.low)} to {number(spread.high)})"
    return f"{number(spread.median)}{suffix}{unit_text} {extremes}"


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: ""}[met]


def table(figures: Sequence[Figure]) -> str:
    lines = [
        "| figure | value | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    section = ""
    for figure in figures:
        if figure.section != section:
            section = figure.section
            lines.append(f"| **{section}** | | | | | |")
        baseline = (
            f"{spread_text(figure.baseline, figure.unit)} {figure.baseline_name}"
            if figure.baseline
            else "—"
        )
        name = figure.name + (f" ({figure.notes})" if figure.notes else "")
        lines.append(
            f"| {name} | {spread_text(figure.value, figure.unit)} | {baseline} | "
            f"{spread_text(figure.ratio, suffix='x')} | "
            f"{figure.target.describe() if figure.target else ''} | {met_text(figure.met)} |"
        )
    return "\n".join(lines)


def slug(section: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", section.lower().split("(")[0]).strip("-")


def plot_section(section: str, figures: Sequence[Figure], path: Path) -> None:
    """One panel per figure: the value and its baseline, medians with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(figures))
    rows = (len(figures) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    for axis in axes.flat[len(figures) :]:
        axis.set_visible(False)
    for axis, figure in zip(axes.flat, figures, strict=False):
        spreads = [("measured", figure.value)]
        if figure.baseline is not None:
            spreads.append(("baseline", figure.baseline))
        labels = [label for label, _ in spreads]
        medians = [spread.median for _, spread in spreads]
        whiskers = [
            [spread.median - spread.low for _, spread in spreads],
            [spread.high - spread.median for _, spread in spreads],
        ]
        colours = ["#3b6ea5", "#b0b0b0"][: len(spreads)]
        axis.bar(labels, medians, yerr=whiskers, color=colours, capsize=4)
        axis.set_title(figure.name, fontsize=9)
        axis.set_ylabel(figure.unit, fontsize=8)
        axis.tick_params(labelsize=8)
        if figure.target is not None and figure.target.measure == "value":
            axis.axhline(figure.target.bound, color="#c0392b", linestyle="--", linewidth=1)
    fig.suptitle(section, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    figures: Sequence[Figure],
    *,
    context: dict[str, Any],
    raw: dict[str, Any],
    directory: Path = REPORT_DIR,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    for figure in figures:
        if figure.section not in sections:
            sections.append(figure.section)
    images = []
    for section in sections:
        name = f"{slug(section)}.png"
        plot_section(section, [f for f in figures if f.section == section], directory / name)
        images.append(f"![{section}]({name})")
    met = [figure.met for figure in figures if figure.met is not None]
    setting_lines = [f"- {key}: {value}" for key, value in context.items()]
    text = "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `make bench` (`python -m bench`); do not edit by hand. Each figure is",
            "the median of its rounds with the lowest and highest round in brackets; its",
            "baseline ran in the same rounds, alternated with it, and the ratio is the median",
            "of the per-round ratios. Targets are checked on the median.",
            "",
            *setting_lines,
            f"- targets met: {sum(met)} of {len(met)}",
            "",
            table(figures),
            "",
            *images,
            "",
            "Raw numbers (every round): [results.json](results.json).",
            "",
        ]
    )
    (directory / "README.md").write_text(text)
    (directory / "results.json").write_text(
        json.dumps(
            {"context": context, "figures": [f.as_json() for f in figures], "raw": raw},
            indent=2,
            default=str,
        )
        + "\n"
    )
    return directory / "README.md"
