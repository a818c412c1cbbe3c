"""Draw the headline benchmark results in docs/img from the JSON files the benchmarks write.

    uv run --group bench python benchmarks/plots.py [--results benchmarks/results] [--out docs/img]

Each plot reads one file of the results folder, written by a benchmark's `--json PATH` (the
commands are in docs/benchmarks.md, "Plots"). A missing file skips its plots with a message; a
file without a field a plot reads is an error that names the file and the field. Every picture
says in its caption the date, the machine, the load average and the commit of its run.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import results_json

try:
    import matplotlib
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
except ImportError:
    sys.exit(
        "plots.py needs matplotlib, in the bench group: "
        "uv run --group bench python benchmarks/plots.py"
    )

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OUT = ROOT / "docs" / "img"
WIDTH_IN = 8.0
DPI = 100  # 8 in at 100 dpi: 800 px wide, the width the docs are read at
MIB = 1024 * 1024
# How far scale.png extends the fitted lines, in chunks.
SCALE_MAX_CHUNKS = 2e7

# One colour per kind of row, the same in every picture.
ROLE_COLOURS = {
    "athenaeum": "#2f6db5",
    "baseline": "#8d99a6",
    "before": "#c9a227",
    "reference": "#c0504d",
}
# Parts of a cold start, stacked left to right in the order they happen.
PART_COLOURS = ("#c6d4e3", "#2f6db5", "#7fb2e5", "#1b3f6b")


class ResultsError(Exception):
    """A results file that plots.py cannot read; the message names the file and what is wrong."""


def caption(doc: dict[str, Any], note: str = "") -> str:
    machine = doc["machine"]
    cpu = f"{machine['cpus']} CPUs"
    if machine.get("cpu_model"):
        cpu += f" ({machine['cpu_model']})"
    load = doc["load_average"]
    commit = (doc["commit"] or "unknown")[:7] + (" with local changes" if doc["dirty"] else "")
    text = (
        f"{doc['date'][:10]}, {cpu}, load average {load['start'][0]:.2f} at the start and "
        f"{load['end'][0]:.2f} at the end (1 min); commit {commit}. {note}"
    )
    return "\n".join(textwrap.wrap(text.strip(), 120))


def finish(fig: Figure, doc: dict[str, Any], title: str, note: str) -> Figure:
    fig.suptitle(title, fontsize=12, fontweight="bold")
    fig.supxlabel(caption(doc, note), fontsize=8, color="0.3")
    return fig


def runs_note(repeat: int) -> str:
    return (
        f"{repeat} runs per row, interleaved; the number is their median, the bar the run of "
        "median time split into its parts."
    )


def seconds_label(x: float) -> str:
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def plain_log_axis(axis: Axis) -> None:
    """Ticks of a log axis as plain numbers (0.1, 1, 10), not powers of ten; at 1, 2 and 5 times
    them when the data spans less than two decades, so that a narrow range still has labels.
    Call it once the data is drawn."""
    low, high = axis.get_view_interval()
    subs = (1.0, 2.0, 5.0) if high < 100 * low else (1.0,)
    axis.set_major_locator(LogLocator(subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def latency_boxes(ax: Axes, paths: list[dict[str, Any]]) -> None:
    """One horizontal box per path at y = 0, 1, ... (top to bottom) over its `latencies_ms` on a
    log axis; its p50 and p99 as printed, to the right of the axes."""
    boxes = ax.boxplot(
        [p["latencies_ms"] for p in paths],
        positions=range(len(paths)),
        orientation="horizontal",
        whis=(1, 99),
        widths=0.55,
        patch_artist=True,
        manage_ticks=False,
        flierprops={"marker": ".", "markersize": 3, "alpha": 0.5},
        medianprops={"color": "black"},
    )
    for box, path in zip(boxes["boxes"], paths, strict=True):
        box.set_facecolor(ROLE_COLOURS[path["role"]])
        box.set_alpha(0.85)
    for i, path in enumerate(paths):
        ax.annotate(
            f"p50 {path['p50_ms']:.2f} ms\np99 {path['p99_ms']:.2f} ms",
            (1.0, i),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            fontweight="bold" if path["role"] == "athenaeum" else "normal",
        )
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    ax.set_ylim(len(paths) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)


def bold_ours(ax: Axes, roles: Sequence[str]) -> None:
    for label, role in zip(ax.get_yticklabels(), roles, strict=True):
        if role == "athenaeum":
            label.set_fontweight("bold")


def stacked_cold_start(
    ax: Axes,
    rows: list[dict[str, Any]],
    parts: Sequence[tuple[str, str]],
    total: str,
    goal_s: float,
    first_part: str,
) -> None:
    """One horizontal bar per row: the run of median `total` (the lower of the two middle runs
    when their number is even) split into `parts` after what they leave of it (`first_part`);
    each run's total as a dot, the median as a number, the goal as a dashed line. The medians of
    the parts would not add up to the median total, so the bar is one real run."""
    names = [r["name"] for r in rows]
    y = list(range(len(rows)))
    for i, row in enumerate(rows):
        median = row["median"]
        by_total = sorted(row["runs"], key=lambda run: float(run[total]))
        middle = by_total[(len(by_total) - 1) // 2]
        named = [middle[key] for key, _ in parts]
        rest = max(middle[total] - sum(named), 0.0)
        left = 0.0
        for value, colour in zip([rest, *named], PART_COLOURS, strict=False):
            ax.barh(i, value, left=left, color=colour, height=0.6)
            left += value
        runs = [run[total] for run in row["runs"]]
        ax.plot(runs, [i] * len(runs), "o", color="black", markersize=3, alpha=0.7)
        ax.annotate(
            seconds_label(median[total]),
            (max([median[total], *runs]), i),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            fontweight="bold" if row["role"] == "athenaeum" else "normal",
        )
    ax.axvline(goal_s, color="#c0504d", linestyle="--", linewidth=1)
    ax.annotate(
        f"goal {goal_s:g} s",
        (goal_s, -0.6),
        xytext=(3, 0),
        textcoords="offset points",
        fontsize=8,
        color="#c0504d",
        va="top",
    )
    ax.set_yticks(y, ["\n".join(textwrap.wrap(n, 34)) for n in names], fontsize=9)
    bold_ours(ax, [r["role"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, ax.get_xlim()[1] * 1.12)  # room for the labels; bars start at zero
    ax.set_ylim(len(rows) - 0.5, -1.0)
    labels = [first_part, *(label for _, label in parts)]
    handles: list[Any] = [
        Patch(color=c, label=label) for c, label in zip(PART_COLOURS, labels, strict=False)
    ]
    handles.append(Line2D([], [], marker="o", linestyle="none", color="black", markersize=3))
    handles[-1].set_label("each run")
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncols=3,
        frameon=False,
    )
    ax.grid(axis="x", alpha=0.3)


def plot_cold_start(doc: dict[str, Any]) -> Figure:
    res = doc["results"]
    fig = Figure(figsize=(WIDTH_IN, 1.6 + 0.7 * len(res["rows"])), layout="constrained")
    ax = fig.subplots()
    stacked_cold_start(
        ax,
        res["rows"],
        [("imports", "imports"), ("load", "load the bundle"), ("query", "first query")],
        "first_answer",
        res["goal_s"],
        first_part="interpreter start",
    )
    ax.set_xlabel("seconds from the spawn of the interpreter to the first answer")
    note = (
        f"A fresh process imports, loads the SciFact bundle ({res['chunks']:,} chunks) and "
        f"answers one hybrid query. {runs_note(res['repeat'])}"
    )
    return finish(fig, doc, "Cold start to the first answer", note)


def plot_lambda_cold_start(doc: dict[str, Any]) -> Figure:
    res = doc["results"]["cold_start"]
    fig = Figure(figsize=(WIDTH_IN, 1.6 + 0.7 * len(res["rows"])), layout="constrained")
    ax = fig.subplots()
    stacked_cold_start(
        ax,
        res["rows"],
        [
            ("import", "import the handler"),
            ("health", "/health (loads the bundle)"),
            ("first_search", "first /search"),
        ],
        "total",
        res["goal_s"],
        first_part="other",
    )
    ax.set_xlabel("seconds from the start of the import to the first /search answer")
    mount = "read-only, as on Lambda" if res["read_only"] else "writable: record not honoured"
    note = (
        f"The packaged function under python3.12 -I -S with only the layer and the function on "
        f"its path (function folder {mount}). {runs_note(res['repeat'])} Not measured on Lambda "
        "itself."
    )
    return finish(fig, doc, "Lambda artifact: cold start to the first answer", note)


def plot_layer_size(doc: dict[str, Any]) -> Figure:
    sizes = doc["results"]["sizes"]
    packages: dict[str, int] = sizes["packages"]
    shown = list(packages.items())[:12]
    rest = sum(packages.values()) - sum(size for _, size in shown)
    if rest > 0:
        shown.append((f"{len(packages) - 12} others", rest))
    fig = Figure(figsize=(WIDTH_IN, 7.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=(len(shown), 3.2))
    mib = [size / MIB for _, size in shown]
    top.barh(range(len(shown)), mib, color=ROLE_COLOURS["athenaeum"], height=0.65)
    for i, value in enumerate(mib):
        top.annotate(
            f"{value:.1f}",
            (value, i),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    top.set_yticks(range(len(shown)), [name for name, _ in shown], fontsize=9)
    top.invert_yaxis()
    top.set_xlim(0, max(mib) * 1.15)
    top.set_xlabel("MiB, unzipped (file bytes, as Lambda counts them)")
    top.set_title("The layer by package", fontsize=10, loc="left")
    top.grid(axis="x", alpha=0.3)

    parts = [
        ("layer", sizes["layer_bytes"], ROLE_COLOURS["athenaeum"]),
        ("code", sizes["code_bytes"], "#7fb2e5"),
        ("index bundle", sizes["bundle_bytes"], "#c6d4e3"),
    ]
    left = 0.0
    for name, size, colour in parts:
        bottom.barh(0, size / MIB, left=left, color=colour, height=0.5, label=name)
        if size / MIB > 8:
            bottom.text(
                left + size / MIB / 2,
                0,
                f"{name}\n{size / MIB:.1f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if colour == ROLE_COLOURS["athenaeum"] else "black",
            )
        left += size / MIB
    limit, goal = sizes["limit_bytes"] / MIB, sizes["layer_goal_bytes"] / MIB
    bottom.axvline(limit, color="#c0504d", linewidth=1.5)
    bottom.axvline(goal, color="#c0504d", linestyle="--", linewidth=1)
    bottom.annotate(
        f"Lambda limit {limit:g}",
        (limit, 0.42),
        xytext=(-3, 0),
        textcoords="offset points",
        ha="right",
        fontsize=8,
        color="#c0504d",
    )
    bottom.annotate(
        f"layer goal {goal:g}",
        (goal, -0.42),
        xytext=(-3, 0),
        textcoords="offset points",
        ha="right",
        va="top",
        fontsize=8,
        color="#c0504d",
    )
    bottom.set_xlim(0, max(limit, left) * 1.05)
    bottom.set_ylim(-0.6, 0.6)
    bottom.set_yticks([])
    bottom.set_xlabel("MiB, unzipped")
    bottom.set_title(
        f"What Lambda counts against its limit: {left:.1f} of {limit:g} MiB",
        fontsize=10,
        loc="left",
    )
    note = (
        f"Layer as layer/build.sh builds it for x86_64, {sizes['layer_bytes'] / MIB:.1f} MiB "
        f"including {sizes['bytecode_bytes'] / MIB:.1f} MiB of 3.12 bytecode."
    )
    return finish(fig, doc, "Lambda layer size", note)


def plot_query_latency(doc: dict[str, Any]) -> Figure:
    res = doc["results"]
    paths = res["paths"]
    fig = Figure(figsize=(WIDTH_IN, 1.8 + 0.75 * len(paths)), layout="constrained")
    ax = fig.subplots()
    latency_boxes(ax, paths)
    ax.set_yticks(range(len(paths)), [p["name"] for p in paths], fontsize=9)
    bold_ours(ax, [p["role"] for p in paths])
    ax.set_xlabel("milliseconds per query (log scale)")
    note = (
        f"{res['queries']} SciFact test queries per path after a warm-up pass, top "
        f"{res['top_k']}, {res['chunks']:,} chunks. Box: p25 to p75, line: median, whiskers: "
        "p1 to p99, dots: beyond."
    )
    return finish(fig, doc, "Warm query latency per search mode", note)


def plot_load(doc: dict[str, Any]) -> Figure:
    res = doc["results"]
    base = res["baseline"]
    phases = res["phases"]
    load = [p for p in phases if not p["soak"]]
    soak = [p for p in phases if p["soak"]]
    # The baseline first, then each phase; the soak apart from the line through the load phases.
    labels = ["no HTTP\n(baseline)"]
    labels += [str(p["concurrency"]) for p in load]
    labels += [f"{p['concurrency']}\nsoak {p['seconds']:g} s" for p in soak]
    x = list(range(len(labels)))
    colours = [ROLE_COLOURS["baseline"]] + [ROLE_COLOURS["athenaeum"]] * len(phases)
    fig = Figure(figsize=(WIDTH_IN, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    rows = [base, *load, *soak]
    left.bar(x, [r["rps"] for r in rows], color=colours, width=0.6)
    for i, r in enumerate(rows):
        note = f"{r['rps']:.0f}" + (f"\n{r['errors']} errors" if r.get("errors") else "")
        left.annotate(
            note,
            (i, r["rps"]),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    left.set_ylim(0, max(r["rps"] for r in rows) * 1.2)
    left.set_xticks(x, labels, fontsize=8)
    left.set_xlabel("concurrent clients")
    left.set_ylabel("requests per second")
    left.set_title("Throughput", fontsize=10, loc="left")
    left.grid(axis="y", alpha=0.3)

    load_x = list(range(1, len(load) + 1))
    soak_x = list(range(len(load) + 1, len(rows)))
    for key, marker, style in (("p50_ms", "o", "-"), ("p99_ms", "s", "--")):
        colour = ROLE_COLOURS["athenaeum"]
        right.plot(load_x, [p[key] for p in load], marker=marker, linestyle=style, color=colour)
        right.plot(soak_x, [p[key] for p in soak], marker=marker, linestyle="none", color=colour)
        right.plot([0], [base[key]], marker=marker, color=ROLE_COLOURS["baseline"])
    handles = [
        Line2D([], [], color="0.3", marker="o", linestyle="-", label="p50"),
        Line2D([], [], color="0.3", marker="s", linestyle="--", label="p99"),
    ]
    right.legend(handles=handles, fontsize=8, frameon=False, loc="upper left")
    right.set_yscale("log")
    plain_log_axis(right.yaxis)
    right.set_xticks(x, labels, fontsize=8)
    right.set_xlabel("concurrent clients")
    right.set_ylabel("milliseconds per request (log scale)")
    right.set_title("Latency", fontsize=10, loc="left")
    right.grid(axis="y", alpha=0.3)
    first, last = phases[0], phases[-1]
    note = (
        f"POST /search with an API key, top_k {res['top_k']}, SciFact test queries; client and "
        f"server share the machine. Each phase {first['seconds']:g} s, then the soak. Baseline: "
        "engine.search in the benchmark's process, one query at a time. Server RSS "
        f"{first['rss_end_mb']:.0f} MB after the first phase, {last['rss_end_mb']:.0f} MB after "
        f"the soak ({res['rss_growth_pct']:+.1f}%); "
        f"{sum(p['errors'] for p in phases)} errors in all."
    )
    return finish(fig, doc, "athenaeum serve under load", note)


def plot_api(doc: dict[str, Any]) -> Figure:
    res = doc["results"]
    # The rows with every request's latency (wrk's rows have percentiles only: in the table).
    paths = [p for p in res["paths"] if "latencies_ms" in p]
    names = ["\n".join(textwrap.wrap(p["path"], 28)) for p in paths]
    fig = Figure(figsize=(WIDTH_IN, 1.8 + 0.8 * len(paths)), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    y = list(range(len(paths)))
    colours = [ROLE_COLOURS[p["role"]] for p in paths]
    left.barh(y, [p["rps"] for p in paths], color=colours, height=0.6)
    for i, p in enumerate(paths):
        left.annotate(
            f"{p['rps']:.0f}",
            (p["rps"], i),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    left.set_xlim(0, max(p["rps"] for p in paths) * 1.2)
    left.set_xlabel("requests per second")
    left.grid(axis="x", alpha=0.3)
    latency_boxes(right, paths)
    right.set_xlabel("milliseconds per request (log scale)")
    left.set_yticks(y, names, fontsize=8)
    bold_ours(left, [p["role"] for p in paths])
    note = (
        f"{paths[0]['requests']} requests per row, hybrid, top_k {res['top_k']}, "
        f"{res['facts']['chunks']:,} chunks; box p25 to p75, whiskers p1 to p99."
    )
    return finish(fig, doc, "/search through the HTTP layers", note)


def scale_panel(
    ax: Axes,
    sizes: list[dict[str, Any]],
    series: Sequence[tuple[str, Sequence[float], dict[str, float], str]],
    limits: Sequence[tuple[str, float, str]],
    ylabel: str,
) -> None:
    """Measured points and their fitted line per series, extended to SCALE_MAX_CHUNKS; each
    limit a horizontal line, and where a series' line reaches it, a dot and the chunk count (log
    axes, so the straight fitted lines bend at small sizes)."""
    chunks = [float(r["chunks"]) for r in sizes]
    xs = np.geomspace(min(chunks), SCALE_MAX_CHUNKS, 200)
    for label, values, line, colour in series:
        fitted = line["intercept"] + line["per_100k"] * xs / 1e5
        keep = fitted > 0
        ax.plot(xs[keep], fitted[keep], color=colour, linestyle="--", linewidth=1)
        ax.plot(chunks, values, "o", color=colour, markersize=4, label=label)
    for name, value, style in limits:
        ax.axhline(value, color="#c0504d", linestyle=style, linewidth=1)
        ax.annotate(
            name,
            (0.0, value),
            xycoords=("axes fraction", "data"),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=7,
            color="#c0504d",
        )
        for i, (_, _, line, colour) in enumerate(series):
            if line["per_100k"] <= 0:
                continue
            at = (value - line["intercept"]) / line["per_100k"] * 1e5
            if min(chunks) <= at <= SCALE_MAX_CHUNKS:
                ax.plot([at], [value], "o", color=colour, markersize=5, markeredgecolor="black")
                ax.annotate(
                    millions(at),
                    (at, value),
                    xytext=(4, -11 - 9 * i),
                    textcoords="offset points",
                    fontsize=7,
                    fontweight="bold",
                    color=colour,
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min(chunks) / 1.5, SCALE_MAX_CHUNKS)
    ax.set_ylim(top=max(value for _, value, _ in limits) * 12)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: millions(value)))
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("chunks (log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=7, frameon=False, loc="upper left")


def millions(chunks: float) -> str:
    if chunks >= 1e6:
        return f"{chunks / 1e6:.3g}M"
    return f"{chunks / 1e3:.3g}k"


# The earlier layout's run, drawn beside the current one's when its file is there.
SCALE_BEFORE = "scale-v1.json"
BEFORE_COLOUR = "#d08c2a"


def plot_scale(doc: dict[str, Any], before: dict[str, Any] | None = None) -> Figure:
    res = doc["results"]
    sizes, fit, limits = res["sizes"], res["fit"], res["limits"]
    ours, base = ROLE_COLOURS["athenaeum"], ROLE_COLOURS["baseline"]
    fig = Figure(figsize=(WIDTH_IN, 3.9), layout="constrained")
    memory, load, disk = fig.subplots(1, 3)
    old = before["results"] if before is not None else None
    memory_series = [
        (
            "after the timed queries",
            [r["rss_after_queries_mb"] for r in sizes],
            fit["rss_after_queries_mb"],
            ours,
        ),
        (
            "every file hashed",
            [r["full"]["median"]["rss_mb"] for r in sizes],
            fit["rss_full_mb"],
            base,
        ),
    ]
    load_series = [
        (
            "verification record",
            [r["record"]["median"]["first_answer"] for r in sizes],
            fit["first_answer_record_s"],
            ours,
        ),
        (
            "every file hashed",
            [r["full"]["median"]["first_answer"] for r in sizes],
            fit["first_answer_full_s"],
            base,
        ),
    ]
    disk_series = [
        ("bundle", [r["bundle_bytes"] / 1e6 for r in sizes], _per_mb(fit["bundle_bytes"]), ours)
    ]
    if old is not None:
        # Each panel's first series again, as the earlier layout measured it.
        memory_series.append(
            (
                "format 1, after the queries",
                [r["rss_after_queries_mb"] for r in old["sizes"]],
                old["fit"]["rss_after_queries_mb"],
                BEFORE_COLOUR,
            )
        )
        load_series.append(
            (
                "format 1, verification record",
                [r["record"]["median"]["first_answer"] for r in old["sizes"]],
                old["fit"]["first_answer_record_s"],
                BEFORE_COLOUR,
            )
        )
        disk_series.append(
            (
                "format 1 bundle",
                [r["bundle_bytes"] / 1e6 for r in old["sizes"]],
                _per_mb(old["fit"]["bundle_bytes"]),
                BEFORE_COLOUR,
            )
        )
    scale_panel(
        memory,
        sizes,
        memory_series,
        [(f"Lambda maximum {limits['lambda_memory_mb']:,} MB", limits["lambda_memory_mb"], "-")],
        "peak RSS, MiB (log scale)",
    )
    memory.set_title("Memory", fontsize=10, loc="left")
    scale_panel(
        load,
        sizes,
        load_series,
        [
            (
                f"API Gateway {limits['api_gateway_timeout_s']:g} s",
                limits["api_gateway_timeout_s"],
                "-",
            )
        ],
        "seconds (log scale)",
    )
    load.set_title("Spawn to first answer", fontsize=10, loc="left")
    package = limits["package"]["bundle_budget_bytes"] / 1e6
    scale_panel(
        disk,
        sizes,
        disk_series,
        [
            (f"/tmp {limits['tmp_bytes'] / 1e6:,.0f} MB", limits["tmp_bytes"] / 1e6, "-"),
            (f"packaged {package:.0f} MB", package, ":"),
        ],
        "MB on disk (log scale)",
    )
    disk.set_title("Bundle size", fontsize=10, loc="left")
    note = (
        f"Bundles synthesized from the SciFact bundle (docs/scaling.md says how), measured in "
        f"fresh processes, median of {res['repeat']}; dashed: least squares through "
        f"{', '.join(millions(n) for n in res['fit_over'])} chunks, extended; dots on the red "
        "lines: where a fitted line reaches a limit. Page cache warm; this machine, not Lambda."
        + (" Orange: the same sizes in format 1, an earlier run." if old is not None else "")
    )
    return finish(fig, doc, "One bundle, one function: where the line is", note)


def _per_mb(line: dict[str, float]) -> dict[str, float]:
    return {"intercept": line["intercept"] / 1e6, "per_100k": line["per_100k"] / 1e6}


TABLE_GROUPS = (
    ("overall", "all"),
    ("ruled", "ruled"),
    ("partly-ruled", "partly ruled"),
    ("unruled", "unruled"),
)


def plot_tables(doc: dict[str, Any]) -> Figure:
    res = doc["results"]
    converters = res["converters"]
    counts = res["kinds"]
    labels = [
        f"{label}\n({sum(counts.values()) if key == 'overall' else counts[key]} tables)"
        for key, label in TABLE_GROUPS
    ]
    # Two baselines: the reference role for pymupdf4llm, so that each converter has its colour.
    fig = Figure(figsize=(WIDTH_IN, 4.4), layout="constrained")
    panels = fig.subplots(1, 2, sharey=True)
    width = 0.8 / len(converters)
    for ax, metric, title in zip(panels, ("f1", "teds"), ("Cell F1", "TEDS"), strict=True):
        for n, row in enumerate(converters):
            x = [i + (n - (len(converters) - 1) / 2) * width for i in range(len(TABLE_GROUPS))]
            values = [row[metric][key] or 0.0 for key, _ in TABLE_GROUPS]
            ax.bar(
                x, values, width=width * 0.92, color=ROLE_COLOURS[row["role"]], label=row["name"]
            )
            for xi, value in zip(x, values, strict=True):
                ax.annotate(
                    f"{value:.2f}",
                    (xi, value),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                    fontweight="bold" if row["role"] == "athenaeum" else "normal",
                )
        ax.set_xticks(range(len(TABLE_GROUPS)), labels, fontsize=8)
        ax.set_ylim(0, 1.18)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(axis="y", alpha=0.3)
    panels[0].set_ylabel("mean over tables")
    panels[0].legend(fontsize=8, frameon=False, loc="upper left", ncols=3)
    speed = ", ".join(f"{r['name']} {r['pages_per_s']:.1f}" for r in converters if r["pages_per_s"])
    note = (
        f"{sum(counts.values())} expected tables: camelot's test files, docling's ground truth "
        f"and the WARN report's table over 15 pages; the best predicted table on each table's "
        f"pages. Pages/s on these PDFs: {speed}."
    )
    return finish(fig, doc, "Tables against peers' expected cells", note)


@dataclass(frozen=True)
class Plot:
    png: str
    source: str  # the results file, named after the benchmark that writes it
    benchmark: str
    draw: Callable[..., Figure]
    # A second results file of the same benchmark, drawn beside the first when it is there.
    before: str | None = None


PLOTS = (
    Plot("cold_start.png", "cold_start.json", "bench_cold_start.py", plot_cold_start),
    Plot("lambda_cold_start.png", "layer.json", "bench_layer.py", plot_lambda_cold_start),
    Plot("layer_size.png", "layer.json", "bench_layer.py", plot_layer_size),
    Plot("query_latency.png", "query_latency.json", "bench_query_latency.py", plot_query_latency),
    Plot("load.png", "soak.json", "bench_soak.py", plot_load),
    Plot("api.png", "api.json", "bench_api.py", plot_api),
    Plot("scale.png", "scale.json", "bench_scale.py", plot_scale, SCALE_BEFORE),
    Plot("tables.png", "tables.json", "bench_tables.py", plot_tables),
)


def read(path: Path, benchmark: str | None = None) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a results file ({exc})") from None
    if doc.get("schema") != results_json.SCHEMA:
        raise ResultsError(
            f"{path}: schema {doc.get('schema')!r}, plots.py reads {results_json.SCHEMA}; rerun "
            "the benchmark with this checkout"
        )
    expected = benchmark or path.stem
    if doc.get("benchmark") != expected:
        raise ResultsError(f"{path}: written by {doc.get('benchmark')!r}, not {expected!r}")
    return doc


def draw_all(results: Path, out: Path) -> list[Path]:
    """Write every plot whose results file is in `results`; say which were skipped and why."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in PLOTS:
        source = results / plot.source
        if not source.is_file():
            print(
                f"skipped {plot.png}: no {source} (run benchmarks/{plot.benchmark} with "
                f"--json {source})",
                file=sys.stderr,
            )
            continue
        doc = read(source)
        try:
            with matplotlib.rc_context(
                {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
            ):
                extra = results / plot.before if plot.before else None
                if extra is not None and extra.is_file():
                    fig = plot.draw(doc, read(extra, Path(plot.source).stem))
                else:
                    fig = plot.draw(doc)
                target = out / plot.png
                fig.savefig(target, dpi=DPI, metadata={"Software": None})
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ResultsError(
                f"{source}: a field {plot.png} needs is missing or malformed "
                f"({type(exc).__name__}: {exc})"
            ) from None
        written.append(target)
        print(f"wrote {target}", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the JSON files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the PNGs go")
    args = parser.parse_args(argv)
    try:
        draw_all(args.results, args.out)
    except ResultsError as exc:
        sys.exit(f"plots.py: {exc}")


if __name__ == "__main__":
    main()
