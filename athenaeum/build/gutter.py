"""Line-number gutters: the column of line numbers down the margin of court transcripts,
pleadings and legislative bills.

The numbers are layout, not text: kept, they become paragraphs of bare numbers or prefix every
line ("12 argument before the Court"). A gutter is recognised on one page's text dictionary
(PyMuPDF's `get_text("dict")`) as a run of bare integers, each one more than the one above,
aligned on one edge, evenly spaced down the page, standing in a vertical strip of their own at
one side of the text. Numbered lists, tables whose first column counts rows and page numbers
fail at least one of these: list and row numbers share their strip with the paragraph or the
header next to them, page numbers do not count up down the page.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

_NUMBER_RE = re.compile(r"^\d{1,4}$")
# Fewer numbers than this are not told apart from a short numbered list.
MIN_RUN = 5
# A run this long needs no further evidence; a shorter one needs a numbered line with no text
# beside it (gutters number blank lines, lists never do).
SURE_RUN = 10
_ALIGN_TOLERANCE = 2.5
_PITCH_TOLERANCE = 0.15
_MAX_PITCH_MULTIPLE = 3
# How many lines above and below the run its strip must be empty.
_NEAR = 3
# The share of the page's other text that lies beside the run.
_COVERAGE = 0.75


@dataclass(frozen=True)
class _Mark:
    value: int
    bbox: tuple[float, float, float, float]
    where: tuple[int, int, int]  # block, line and span index in the text dictionary


def strip_gutter(page_dict: dict[str, Any], width: float) -> int:
    """Remove a line-number gutter from a page's text dictionary in place; the number of line
    numbers removed (0: the page has none)."""
    marks, others = _marks_and_others(page_dict)
    if len(marks) < MIN_RUN:
        return 0
    best: list[_Mark] = []
    for run in _aligned_runs(marks):
        if len(run) > len(best) and _is_gutter(run, others, width):
            best = run
    if not best:
        return 0
    _remove(page_dict, {m.where for m in best})
    return len(best)


def _marks_and_others(
    page_dict: dict[str, Any],
) -> tuple[list[_Mark], list[tuple[float, float, float, float]]]:
    """Bare integers that start their line (candidate line numbers), and every other span."""
    marks: list[_Mark] = []
    others: list[tuple[float, float, float, float]] = []
    for b, block in enumerate(page_dict.get("blocks", [])):
        if block.get("type") != 0:
            continue
        for li, line in enumerate(block.get("lines", [])):
            first = True
            for s, span in enumerate(line.get("spans", [])):
                text = span.get("text", "").strip()
                if not text:
                    continue
                bbox = tuple(span["bbox"])
                if first and _NUMBER_RE.match(text):
                    marks.append(_Mark(int(text), bbox, (b, li, s)))
                else:
                    others.append(bbox)
                first = False
    return marks, others


def _aligned_runs(marks: list[_Mark]) -> list[list[_Mark]]:
    """Runs of numbers counting up by one down the page, on a common right or left edge."""
    runs: list[list[_Mark]] = []
    for edge in (2, 0):  # right-aligned numbers (the usual), then left-aligned ones
        columns: list[list[_Mark]] = []
        for mark in sorted(marks, key=lambda m: m.bbox[edge]):
            if columns and abs(columns[-1][0].bbox[edge] - mark.bbox[edge]) <= _ALIGN_TOLERANCE:
                columns[-1].append(mark)
            else:
                columns.append([mark])
        for column in columns:
            column.sort(key=lambda m: m.bbox[1])
            run: list[_Mark] = []
            for mark in column:
                if run and mark.value == run[-1].value + 1 and mark.bbox[1] > run[-1].bbox[3] - 1:
                    run.append(mark)
                else:
                    if len(run) >= MIN_RUN:
                        runs.append(run)
                    run = [mark]
            if len(run) >= MIN_RUN:
                runs.append(run)
    return runs


def _is_gutter(
    run: list[_Mark], others: list[tuple[float, float, float, float]], width: float
) -> bool:
    tops = [m.bbox[1] for m in run]
    gaps = [b - a for a, b in itertools.pairwise(tops)]
    pitch = min(gaps)
    if pitch <= 0:
        return False
    for gap in gaps:
        multiple = round(gap / pitch)
        if multiple > _MAX_PITCH_MULTIPLE or abs(gap / pitch - multiple) > _PITCH_TOLERANCE:
            return False
    x0 = min(m.bbox[0] for m in run)
    x1 = max(m.bbox[2] for m in run)
    top, bottom = run[0].bbox[1], run[-1].bbox[3]
    near = [o for o in others if o[3] > top - _NEAR * pitch and o[1] < bottom + _NEAR * pitch]
    # The strip is the gutter's own: a list's or a table's numbers share theirs with the
    # heading, the paragraph or the header row above or below them.
    if any(o[0] < x1 and o[2] > x0 for o in near):
        return False
    beside = [o for o in others if o[3] > top - pitch and o[1] < bottom + pitch]
    # ...and it runs down the page's text, not beside a part of it.
    if len(beside) < _COVERAGE * len(others):
        return False
    left = all(o[0] >= x1 for o in beside)
    right = all(o[2] <= x0 for o in beside)
    if not beside or not ((left and x1 < width / 2) or (right and x0 > width / 2)):
        return False
    if len(run) >= SURE_RUN:
        return True
    return any(not any(o[3] > m.bbox[1] + 1 and o[1] < m.bbox[3] - 1 for o in beside) for m in run)


def _remove(page_dict: dict[str, Any], where: set[tuple[int, int, int]]) -> None:
    for b, block in enumerate(page_dict.get("blocks", [])):
        if block.get("type") != 0:
            continue
        lines = []
        for li, line in enumerate(block.get("lines", [])):
            spans = [s for si, s in enumerate(line.get("spans", [])) if (b, li, si) not in where]
            if any(s.get("text", "").strip() for s in spans):
                lines.append({**line, "spans": spans, "bbox": _union(spans)})
        block["lines"] = lines
        if lines:
            block["bbox"] = _union(lines)


def _union(items: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    boxes = [i["bbox"] for i in items if i.get("text", "x").strip()] or [i["bbox"] for i in items]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
