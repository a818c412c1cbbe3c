"""Tables on a PDF page, and tables that run over several pages (build side, for convert).

Two finders share one cell model. Ruled tables come from PyMuPDF's `find_tables` (its "lines"
strategy) when the page's drawings suggest a grid; their cell texts are rebuilt from the page's
words, and a ruled row that really holds several rows (rules only every few rows, each cell a
stack of lines at the same heights) is split into those rows. Tables without a full grid are
found from the words alone: lines whose words fall into separate runs with wide gaps, several
such lines in a row whose runs share column gutters. Ordinary prose, even in two columns,
fails those tests because its runs are long sentences, not short cells.

A row that is one long cell across the whole table at its top or bottom (a caption, a note) is
left out, so it stays text. A table at the top of a page that lines up with the last table of
the page before (same columns at the same places, nothing but margins between) continues it:
a repeated header row is dropped, and the continuation carries the real header, so each page's
part is a readable table of its own; the chunker joins the parts again (see chunking.py).
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

BBox = tuple[float, float, float, float]

_SPACES_RE = re.compile(r"[ \t\u00a0]+")
# Bullets, list numbers and line numbers: a column of nothing else makes a list, not a table.
_MARKER_RE = re.compile(r"^(\W|\(?(\d{1,3}|[a-z]|[ivxlc]{1,5})[.):]?)$", re.IGNORECASE)
_NUMBER_RE = re.compile(r"^[(\[]?[-+\u2212\u2013]?[$\u20ac\u00a3\u00a5]?\d[\d,.\s]*%?[)\]]?$")
_LEADER_RE = re.compile(r"(\.\s?){4,}|…{2,}")
# Column edges of two parts of one table may differ by this fraction of the page width.
_EDGE_TOLERANCE = 0.02


@dataclass
class _Word:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    # Text running up the page (1), down it (-1), or across (0).
    turned: int = 0

    @property
    def yc(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass
class Table:
    """A table found on one page: its rows of cell texts and where its columns lie."""

    bbox: BBox
    rows: list[list[str]]
    # Left edges of the columns and the table's right edge, for matching continuations.
    edges: list[float]
    # Set on a table continuing one on an earlier page: the real header to show above it.
    continued_header: list[str] | None = None
    _markdown: str | None = field(default=None, repr=False)

    @property
    def columns(self) -> int:
        return max((len(r) for r in self.rows), default=0)

    def markdown(self) -> str:
        rows = list(self.rows)
        if self.continued_header is not None:
            rows.insert(0, self.continued_header)
        width = max(len(r) for r in rows)
        lines = []
        for i, row in enumerate(rows):
            cells = [_cell(c) for c in row] + [""] * (width - len(row))
            lines.append("| " + " | ".join(cells) + " |")
            if i == 0:
                lines.append("|" + "|".join(["---"] * width) + "|")
        return "\n".join(lines)


def _cell(text: str) -> str:
    return _SPACES_RE.sub(" ", text.replace("\n", " ")).strip().replace("|", "\\|")


# --- words and lines -------------------------------------------------------------------------


def _words(page: Any, textpage: Any) -> list[_Word]:
    """The page's words, each once: text drawn twice at (almost) the same place, for a bold
    or shadow effect, is one word."""
    words: list[_Word] = []
    seen: set[tuple[str, int, int]] = set()
    for w in page.get_text("words", textpage=textpage):
        if not w[4].strip():
            continue
        key = (w[4], round(w[0]), round(w[1]))
        if key in seen:
            continue
        seen.add(key)
        words.append(_Word(w[0], w[1], w[2], w[3], w[4]))
    return words


def _visual_lines(words: Sequence[_Word]) -> list[list[_Word]]:
    """Words grouped into lines by height on the page (not by PyMuPDF's blocks, which often
    make each table cell a block of its own), each line sorted left to right."""
    lines: list[list[_Word]] = []
    for word in sorted(words, key=lambda w: (w.yc, w.x0)):
        if lines:
            last = lines[-1]
            yc = statistics.fmean(w.yc for w in last)
            if abs(word.yc - yc) < 0.45 * max(word.height, last[0].height):
                last.append(word)
                continue
        lines.append([word])
    for line in lines:
        line.sort(key=lambda w: w.x0)
    return lines


def _text_of(words: Sequence[_Word]) -> str:
    """Words of one cell, line by line, each line left to right (a cell set running up the
    page: its lines left to right, each bottom to top; running down, the other way)."""
    turned = sum(w.turned for w in words)
    if words and abs(turned) > len(words) / 2:
        up = turned > 0
        columns: list[list[_Word]] = []
        for word in sorted(words, key=lambda w: (w.x0 + w.x1) / 2, reverse=not up):
            xc = (word.x0 + word.x1) / 2
            last = columns[-1] if columns else None
            if last and abs(xc - statistics.fmean((w.x0 + w.x1) / 2 for w in last)) < 0.45 * (
                word.x1 - word.x0
            ):
                last.append(word)
            else:
                columns.append([word])
        ordered = [sorted(c, key=lambda w: -w.yc if up else w.yc) for c in columns]
        return " ".join(" ".join(w.text for w in c) for c in ordered)
    return " ".join(" ".join(w.text for w in line) for line in _visual_lines(words))


# --- ruled tables ----------------------------------------------------------------------------


def may_have_ruled_table(drawings: Sequence[dict[str, Any]]) -> bool:
    """Cheap pre-check for find_tables: a ruled table needs horizontal and vertical rules
    (or boxes). Fraction bars, underlines and figures alone do not qualify."""
    horizontal = vertical = boxes = 0
    for drawing in drawings:
        for item in drawing.get("items", ()):
            if item[0] == "l":
                (x0, y0), (x1, y1) = item[1], item[2]
                horizontal += abs(y1 - y0) < 1 and abs(x1 - x0) > 5
                vertical += abs(x1 - x0) < 1 and abs(y1 - y0) > 5
            elif item[0] == "re":  # ("re", (x0, y0, x1, y1), orientation)
                rect = item[1]
                width, height = abs(rect[2] - rect[0]), abs(rect[3] - rect[1])
                horizontal += height < 2 and width > 5
                vertical += width < 2 and height > 5
                boxes += width >= 2 and height >= 2
        if (horizontal >= 3 and vertical >= 3) or boxes >= 4:
            return True
    return False


def _in(word: _Word, box: BBox) -> bool:
    x, y = (word.x0 + word.x1) / 2, word.yc
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def _ruled_table(found: Any, words: Sequence[_Word], page_width: float) -> Table | None:
    inside = [w for w in words if _in(w, found.bbox)]
    edges = _column_edges(found)
    slivers = _slivers(edges, inside)
    grid: list[list[list[_Word]]] = []
    owner = _smallest_cells(found.rows, inside)
    for i, row in enumerate(found.rows):
        cells: list[list[_Word]] = [[] for _ in row.cells]
        for k, box in enumerate(row.cells):
            if box is None:
                continue
            span = k + 1
            while span < len(row.cells) and row.cells[span] is None:
                span += 1
            ws = [w for w in inside if owner.get(id(w)) == (i, k)]
            if span == k + 1 or len(edges) != len(row.cells) + 1:
                cells[k] = ws
                continue
            # A cell over several columns: a shaded band or a missing rule may have merged
            # cells that are separate; each run of words goes to the column it lies in, and a
            # run that crosses a column edge (a real spanning label) to its first column.
            for line in _visual_lines(ws):
                for run in _runs(line):
                    first = _column_at(edges, run[0].x0 + 0.5, slivers)
                    last = _column_at(edges, run[-1].x1 - 0.5, slivers, end=True)
                    if first != last and all(_NUMBER_RE.match(w.text) for w in run):
                        # Figures set close together are a cell each, never one label.
                        for w in run:
                            target = _column_at(edges, (w.x0 + w.x1) / 2, slivers)
                            cells[max(k, min(target, span - 1))].append(w)
                        continue
                    target = first if first == last else k
                    cells[max(k, min(target, span - 1))].extend(run)
        grid.append(cells)
    _spread_row_spans(found, grid)
    boxes = [r.bbox for r in found.rows]
    labels = _stub_labels(found, words, page_width, [any(c) for c in grid])
    if labels is not None:  # a column of row labels left of the rules, outside the grid
        grid = [[label, *cells] for label, cells in zip(labels, grid, strict=True)]
        edges = [min(w.x0 for ws in labels for w in ws), *edges]
        boxes = [(edges[0], b[1], b[2], b[3]) for b in boxes]
    rows: list[list[str]] = []
    kept: list[BBox] = []
    for cells, box in zip(grid, boxes, strict=True):
        if not any(cells):
            continue
        # The first row is a header: its cells may well all wrap onto two lines.
        parts = _split_stacked(cells) if rows else None
        for part in parts or [cells]:
            rows.append([_text_of(c) for c in part])
        kept.append(box)
    if not rows:
        return None
    rows, kept = _drop_banners(rows, kept)
    if len(rows) < 2:
        return None
    rows, edges = _without_empty_columns(rows, edges)
    if max(len(r) for r in rows) < 2:
        return None
    bbox = (
        min(b[0] for b in kept),
        min(b[1] for b in kept),
        max(b[2] for b in kept),
        max(b[3] for b in kept),
    )
    return Table(bbox, rows, edges)


def _smallest_cells(rows: Sequence[Any], words: Sequence[_Word]) -> dict[int, tuple[int, int]]:
    """For each word of the table, the cell (row, column) it belongs to: where cells overlap
    (a cell drawn inside another, as `find_tables` reports some boxed headers), the smallest."""
    owner: dict[int, tuple[int, int]] = {}
    best: dict[int, float] = {}
    for i, row in enumerate(rows):
        for k, box in enumerate(row.cells):
            if box is None:
                continue
            area = (box[2] - box[0]) * (box[3] - box[1])
            for w in words:
                if _in(w, box) and area < best.get(id(w), float("inf")):
                    best[id(w)] = area
                    owner[id(w)] = (i, k)
    return owner


def _without_empty_columns(
    rows: list[list[str]], edges: list[float]
) -> tuple[list[list[str]], list[float]]:
    """Columns with nothing in any row dropped: the slivers between the two lines of a double
    rule, a ruled column left blank. Each kept column keeps its left edge."""
    width = max(len(r) for r in rows)
    keep = [k for k in range(width) if any(k < len(r) and r[k].strip() for r in rows)]
    if len(keep) == width:
        return rows, edges
    rows = [[r[k] if k < len(r) else "" for k in keep] for r in rows]
    if len(edges) == width + 1:
        edges = [edges[k] for k in keep] + [edges[-1]]
    return rows, edges


def _spread_row_spans(found: Any, grid: list[list[list[_Word]]]) -> None:
    """A cell drawn over several rows (no rule under it where its neighbours have rules)
    whose lines stand each level with a line of one of those rows: a stack of cells, one per
    row, not one label over them. Its lines go to their rows. A label over several rows (its
    lines centred, not level with the rows' own lines) stays whole."""
    rows = found.rows
    # The first row is the header: its tall cells stand beside header lines, not rows.
    for i, row in enumerate(rows[1:], start=1):
        for k, box in enumerate(row.cells):
            if box is None:
                continue
            end = k + 1  # the columns the cell covers
            while end < len(row.cells) and row.cells[end] is None:
                end += 1
            spanned = [i]
            for j in range(i + 1, len(rows)):
                below = rows[j]
                if k >= len(below.cells) or below.cells[k] is not None:
                    break
                if below.bbox[1] < box[1] - 1 or below.bbox[3] > box[3] + 1:
                    break
                spanned.append(j)
            if len(spanned) < 2:
                continue
            covered = range(k, min(end, len(grid[i])))
            plans = [_spread_plan(rows, grid, spanned, c, covered) for c in covered]
            # A stack of rows drawn as one cell holds a stack in more than one of its columns
            # (labels beside their figures); one column's lines alone are a label broken over
            # lines, whatever rows they stand level with.
            if sum(1 for plan in plans if plan) < 2:
                continue
            for c, plan in zip(covered, plans, strict=True):
                if plan:
                    grid[i][c] = []
                    for target, line in plan:
                        grid[target][c].extend(line)


def _spread_plan(
    rows: Any, grid: list[list[list[_Word]]], spanned: list[int], c: int, covered: range
) -> list[tuple[int, list[_Word]]]:
    """Where each line of one column of a cell over several rows would go: the row it
    stands level with (next to a line of that row's own cells); empty when a line has none,
    or all go to one row."""
    plan: list[tuple[int, list[_Word]]] = []
    for line in _visual_lines(grid[spanned[0]][c]):
        yc = statistics.fmean(w.yc for w in line)
        height = statistics.median(w.height for w in line)
        target = next((j for j in spanned if _band(rows[j])[0] <= yc <= _band(rows[j])[1]), None)
        if target is None:
            return []
        level = any(
            abs(w.yc - yc) < 0.3 * height
            for other, ws in enumerate(grid[target])
            if other not in covered
            for w in ws
        )
        if not level:
            return []
        plan.append((target, line))
    return plan if len({t for t, _ in plan}) >= 2 else []


def _band(row: Any) -> tuple[float, float]:
    """A row's own height: from its top to the bottom of its shortest cell (a cell drawn
    over the rows below makes the row's box that tall)."""
    return row.bbox[1], min(c[3] for c in row.cells if c is not None)


def _stub_labels(
    found: Any, words: Sequence[_Word], page_width: float, filled_rows: Sequence[bool]
) -> list[list[_Word]] | None:
    """Row labels set left of a ruled grid, without rules of their own (a township's name
    beside its row of counts): for each row, the words just left of the grid at its height.
    Only a narrow column of short labels beside most body rows, with nothing else beside the
    grid, counts; text in a column beside a table is not its labels."""
    left = found.bbox[0]
    beside = [
        w
        for w in words
        if w.x1 <= left + 1 and found.bbox[1] <= w.yc <= found.bbox[3] and w.x0 >= 0
    ]
    if not beside:
        return None
    x0 = min(w.x0 for w in beside)
    if left - x0 > 0.25 * page_width or left - max(w.x1 for w in beside) > 0.05 * page_width:
        return None
    labels: list[list[_Word]] = [[] for _ in found.rows]
    for w in beside:
        k = next((k for k, r in enumerate(found.rows) if r.bbox[1] <= w.yc <= r.bbox[3]), None)
        if k is None:
            return None  # words beside the grid between its rows: not labels of its rows
        labels[k].append(w)
    body = [ws for ws, full in zip(labels[1:], filled_rows[1:], strict=True) if full]
    filled = [ws for ws in body if ws]
    if len(filled) < max(2, 0.5 * len(body)) or any(len(ws) > 5 for ws in filled):
        return None
    return labels


def _column_edges(found: Any) -> list[float]:
    """Left edges of the columns and the right edge of the table, from the cells of all rows
    (a column's edge is known from any row where that column has a cell of its own)."""
    ncols = max(len(r.cells) for r in found.rows)
    edges: list[float | None] = [None] * ncols
    for row in found.rows:
        for k, box in enumerate(row.cells):
            if box is not None and edges[k] is None:
                edges[k] = box[0]
    if any(e is None for e in edges):
        return [found.bbox[0] + k for k in range(ncols)] + [found.bbox[2]]
    return [e for e in edges if e is not None] + [found.bbox[2]]


def _column_at(
    edges: Sequence[float], x: float, slivers: frozenset[int] = frozenset(), end: bool = False
) -> int:
    """The column at x. A sliver (the gap between the two lines of a double rule) holds no
    text: what starts in it belongs to the column on its right, what ends in it (a line run
    over its rule) to the column on its left."""
    k = max(0, max((k for k in range(len(edges) - 1) if edges[k] <= x), default=0))
    step = -1 if end else 1
    while k in slivers and 0 <= k + step < len(edges) - 1:
        k += step
    return k


def _slivers(edges: Sequence[float], words: Sequence[_Word]) -> frozenset[int]:
    """Columns narrower than a line of text is high that hold no word whole: the gaps
    between the two lines of double rules."""
    if not words:
        return frozenset()
    height = statistics.median(w.height for w in words)
    return frozenset(
        k
        for k in range(len(edges) - 1)
        if edges[k + 1] - edges[k] < height
        and not any(edges[k] - 0.5 <= w.x0 and w.x1 <= edges[k + 1] + 0.5 for w in words)
    )


def _split_stacked(cells: list[list[_Word]]) -> list[list[list[_Word]]] | None:
    """A row that holds several rows: its filled cells are stacks of lines at the same heights.
    A wrapped cell (one cell of two lines beside cells of one) is not."""
    lines_by_cell = [_visual_lines(c) for c in cells]
    centers = sorted(statistics.fmean(w.yc for w in line) for ls in lines_by_cell for line in ls)
    if not centers:
        return None
    height = statistics.median(w.height for c in cells for w in c)
    levels: list[float] = []
    for y in centers:
        if not levels or y - levels[-1] > 0.5 * height:
            levels.append(y)
    if len(levels) < 2:
        return None

    def level_of(line: list[_Word]) -> int:
        y = statistics.fmean(w.yc for w in line)
        return min(range(len(levels)), key=lambda k: abs(levels[k] - y))

    filled = [ls for ls in lines_by_cell if ls]
    full = [ls for ls in filled if {level_of(line) for line in ls} == set(range(len(levels)))]
    # Every filled cell must be such a stack: a cell of one line beside stacks may span them
    # (a label over several rows), and the row is then read as one, as its grid draws it.
    if len(full) < 2 or len(full) < len(filled):
        return None
    parts: list[list[list[_Word]]] = [[[] for _ in cells] for _ in levels]
    for c, ls in enumerate(lines_by_cell):
        for line in ls:
            parts[level_of(line)][c].extend(line)
    return parts


def _drop_banners(rows: list[list[str]], boxes: list[BBox]) -> tuple[list[list[str]], list[BBox]]:
    """Leave out a caption or title above the table and notes below it: rows at either end
    with a single filled cell of running text."""

    def banner(row: list[str]) -> bool:
        filled = [c for c in row if c.strip()]
        return len(row) > 2 and len(filled) == 1 and len(filled[0].split()) >= 3

    while rows and banner(rows[0]):
        rows, boxes = rows[1:], boxes[1:]
    while rows and banner(rows[-1]):
        rows, boxes = rows[:-1], boxes[:-1]
    return rows, boxes


# --- tables without a full grid --------------------------------------------------------------


@dataclass
class _Line:
    words: list[_Word]
    runs: list[list[_Word]]  # words split at wide gaps

    @property
    def y0(self) -> float:
        return min(w.y0 for w in self.words)

    @property
    def y1(self) -> float:
        return max(w.y1 for w in self.words)

    @property
    def height(self) -> float:
        return statistics.median(w.height for w in self.words)


def _runs(line: list[_Word]) -> list[list[_Word]]:
    runs = [[line[0]]]
    for word in line[1:]:
        prev = runs[-1][-1]
        # Between words of a sentence the gap is a space (a quarter to a half of the font
        # height, more in justified text); between cells it is wider than the font is high.
        if word.x0 - prev.x1 > 1.0 * max(prev.height, word.height):
            runs.append([word])
        else:
            runs[-1].append(word)
    return runs


def _unruled_tables(
    words: Sequence[_Word], page_width: float, taken: Sequence[BBox]
) -> list[Table]:
    free = [w for w in words if not any(_in(w, box) for box in taken)]
    lines = [_Line(ws, _runs(ws)) for ws in _visual_lines(free)]
    tables: list[Table] = []
    starts: list[int] = []  # where each table's region begins in `lines`
    i = 0
    while i < len(lines):
        if len(lines[i].runs) < 2:
            i += 1
            continue
        # A region: lines of several runs, close below each other; single-run lines between
        # them (wrapped cells) are taken along while the next line of runs follows closely.
        j, last = i + 1, i
        while j < len(lines):
            gap = lines[j].y0 - lines[j - 1].y1
            if gap > 1.6 * lines[j - 1].height:
                break
            if len(lines[j].runs) >= 2:
                last = j
            elif j - last > 2:
                break
            j += 1
        last = _with_wrapped_tail(lines, i, last)
        table = _region_table(lines[i : last + 1], page_width)
        if table is not None:
            if tables and _continues(tables[-1], table, lines, page_width):
                # Read as one region, so that its rows' spacing is measured over all of it.
                joined = _region_table(lines[starts[-1] : last + 1], page_width)
                if joined is not None and _lines_up(joined, table, page_width):
                    tables[-1] = joined
                    i = last + 1
                    continue
            tables.append(table)
            starts.append(i)
            i = last + 1
        else:
            i += 1
    return tables


def _with_wrapped_tail(lines: Sequence[_Line], first: int, last: int) -> int:
    """The region's last line, moved down over the wrapped end of its last row: one run right
    below it, starting right of the first column and ending within the region (the second
    line of a description in the last row), which would otherwise be left out of the table."""
    region = lines[first : last + 1]
    first_column_end = max(line.runs[0][-1].x1 for line in region if len(line.runs) >= 2)
    right = max(w.x1 for line in region for w in line.words)
    for _ in range(2):
        if last + 1 >= len(lines):
            break
        line, above = lines[last + 1], lines[last]
        if (
            len(line.runs) != 1
            or line.y0 - above.y1 > 0.5 * above.height
            or line.words[0].x0 <= first_column_end
            or line.words[-1].x1 > right + above.height
        ):
            break
        last += 1
    return last


def _continues(above: Table, below: Table, lines: Sequence[_Line], page_width: float) -> bool:
    """Two tables with the same columns, one under the other with only blank space between
    (a blank line or two, as between the sections of a list): one table."""
    between = [ln for ln in lines if ln.y0 >= above.bbox[3] - 1 and ln.y1 <= below.bbox[1] + 1]
    if between:
        return False
    height = statistics.median(ln.height for ln in lines)
    return below.bbox[1] - above.bbox[3] <= 4 * height and _lines_up(above, below, page_width)


def _gutters(lines: Sequence[_Line], x0: float, x1: float) -> list[tuple[float, float]]:
    """X ranges that the runs of (almost) no row line cross: the gaps between columns.

    The lines above the first full row (one with at least half as many runs as the fullest
    line) are a header: set tightly (words of neighbouring columns closer than a gap between
    cells) or spanning several columns, it would close the gutters that every body row keeps
    open, so it does not count here and its words are placed by where they lie. Every line of
    several runs from there on counts: prose, whose stretched lines cross each other's gaps,
    keeps no gutter."""
    fullest = max((len(line.runs) for line in lines), default=0)
    first = next(k for k, line in enumerate(lines) if len(line.runs) >= max(2, fullest / 2))
    multi = [line for line in lines[first:] if len(line.runs) >= 2]
    allowed = len(multi) // 10  # a spanning cell or two may still cross a gutter
    step = 1.0
    n = int((x1 - x0) / step) + 1
    cover = [0] * n
    for line in multi:
        for run in line.runs:
            a = int((run[0].x0 - x0) / step)
            b = int((run[-1].x1 - x0) / step)
            for k in range(max(a, 0), min(b + 1, n)):
                cover[k] += 1
    gutters: list[tuple[float, float]] = []
    start: int | None = None
    for k in range(n):
        if cover[k] <= allowed:
            if start is None:
                start = k
        elif start is not None:
            if start > 0:
                gutters.append((x0 + start * step, x0 + k * step))
            start = None
    return gutters


def _region_table(lines: Sequence[_Line], page_width: float) -> Table | None:
    multi = [line for line in lines if len(line.runs) >= 2]
    if len(multi) < 3:
        return None
    x0 = min(w.x0 for line in lines for w in line.words)
    x1 = max(w.x1 for line in lines for w in line.words)
    height = statistics.median(line.height for line in lines)
    gutters = [g for g in _gutters(lines, x0, x1) if g[1] - g[0] >= 0.5 * height]
    if not gutters:
        return None
    edges = [x0] + [(a + b) / 2 for a, b in gutters] + [x1]
    ncols = len(edges) - 1

    def column(word: _Word) -> int:
        x = (word.x0 + word.x1) / 2
        return max(k for k in range(ncols) if edges[k] <= x + 1e-6)

    grid: list[list[list[_Word]]] = []
    for line in lines:
        cells: list[list[_Word]] = [[] for _ in range(ncols)]
        if len(line.runs) == 1:  # one run alone on its line is one cell, from where it starts
            cells[column(line.words[0])].extend(line.words)
        else:
            for word in line.words:
                cells[column(word)].append(word)
        grid.append(cells)
    grid, lines = _join_offset_lines(grid, list(lines))
    # Cells, not sentences: prose in columns has long runs in every column.
    sizes = [len(c) for cells in grid for c in cells if c]
    for k in range(ncols):
        col = [len(cells[k]) for cells in grid if cells[k]]
        if col and statistics.median(col) > 6:
            return None
    if statistics.fmean(sizes) > 4.5:
        return None
    # Most rows fill most columns; a table is more than two labels on a few lines.
    fill = statistics.fmean(
        sum(1 for c in cells if c) / ncols
        for cells, line in zip(grid, lines, strict=True)
        if len(line.runs) >= 2
    )
    if fill < 0.5:
        return None
    pitch = _row_pitch(lines)
    rows: list[list[list[_Word]]] = []
    for n, (cells, line) in enumerate(zip(grid, lines, strict=True)):
        filled = sum(1 for c in cells if c)
        # A line filling few columns, not the first, continues the row above (a wrapped cell),
        # unless it starts in the first column at the rows' own spacing: then it is a row of
        # its own (a section label, a group heading over the rows below). Closer below the
        # line above than rows sit to each other, it is a wrapped first cell.
        wrapped = not cells[0] or pitch is None or line.y0 - lines[n - 1].y0 < 0.85 * pitch
        if (
            rows
            and wrapped
            and filled < max(2, ncols / 2)
            and not (len(line.runs) >= 2 and cells[0])
        ):
            for k in range(ncols):
                rows[-1][k].extend(cells[k])
        else:
            rows.append([list(c) for c in cells])
    texts = [[_text_of(c) for c in row] for row in rows]
    if len(texts) < 3 or _list_like(texts) or _prose_columns(texts):
        return None
    y0 = min(line.y0 for line in lines)
    y1 = max(line.y1 for line in lines)
    del page_width
    return Table((x0, y0, x1, y1), texts, edges)


def _join_offset_lines(
    grid: list[list[list[_Word]]], lines: list[_Line]
) -> tuple[list[list[list[_Word]]], list[_Line]]:
    """A cell centred beside a cell of two lines sits between their lines, half a line below
    the first: such a line, overlapping the line above by a good part of its height and
    filling only columns that line leaves empty, belongs to the row of the line above."""
    out_grid: list[list[list[_Word]]] = []
    out_lines: list[_Line] = []
    for cells, line in zip(grid, lines, strict=True):
        if out_lines:
            above, above_cells = out_lines[-1], out_grid[-1]
            overlap = min(above.y1, line.y1) - max(above.y0, line.y0)
            disjoint = all(not (a and b) for a, b in zip(above_cells, cells, strict=True))
            if disjoint and overlap >= 0.3 * min(above.height, line.height):
                words = sorted(above.words + line.words, key=lambda w: w.x0)
                out_lines[-1] = _Line(words, above.runs + line.runs)
                for k, c in enumerate(cells):
                    above_cells[k].extend(c)
                continue
        out_grid.append(cells)
        out_lines.append(line)
    return out_grid, out_lines


def _row_pitch(lines: Sequence[_Line]) -> float | None:
    """The usual distance from one row's line to the next: the median over neighbouring lines
    that are both rows (several runs each); None where fewer than two such pairs exist."""
    steps = [
        b.y0 - a.y0 for a, b in itertools.pairwise(lines) if len(a.runs) >= 2 and len(b.runs) >= 2
    ]
    return statistics.median(steps) if len(steps) >= 2 else None


def _prose_columns(rows: Sequence[Sequence[str]]) -> bool:
    """Running text in columns whose lines happen to align (a three-column page, justified):
    in a column of prose, line after line continues the sentence of the line above (it starts
    in lower case under a line of several words that does not end a sentence). Two such
    columns, or one where the table has no more than two, make it text."""
    width = max(len(r) for r in rows)
    prose = 0
    for k in range(width):
        cells = [r[k].strip() if k < len(r) else "" for r in rows]
        filled = [c for c in cells if c]
        if len(filled) < 3:
            continue
        continued = sum(
            1
            for above, cell in itertools.pairwise(cells)
            if cell[:1].islower() and len(above.split()) >= 3 and above[-1:] not in ".:;!?"
        )
        if continued >= 0.25 * len(filled):
            prose += 1
    return prose >= 2 or (prose >= 1 and width <= 2)


def _list_like(rows: Sequence[Sequence[str]]) -> bool:
    """A numbered or bulleted list (or a line-numbered page) set as two columns, or a table of
    contents with dot leaders: aligned like a table, read as text."""
    if any(_LEADER_RE.search(c) for row in rows for c in row):
        return True
    first = [row[0].strip() for row in rows if row and row[0].strip()]
    width = max(len(r) for r in rows)
    return (
        width <= 3
        and len(first) >= 0.5 * len(rows)
        and all(_MARKER_RE.match(token) for c in first for token in c.split())
    )


# --- a page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sideways:
    """A line of text running up (`up`) or down the page."""

    bbox: BBox
    up: bool


def sideways_lines(page_dict: dict[str, Any]) -> list[Sideways]:
    """Where the page has text running up or down (margin stamps, a column header set on its
    side): such words are read in their own direction, and are no cells of unruled tables."""
    found: list[Sideways] = []
    for block in page_dict.get("blocks", []):
        for line in block.get("lines", []):
            dx, dy = line.get("dir", (1.0, 0.0))
            if abs(dy) > abs(dx):
                x0, y0, x1, y1 = line["bbox"]
                found.append(Sideways((x0, y0, x1, y1), dy < 0))
    return found


def find_tables(page: Any, textpage: Any, sideways: Sequence[Sideways] = ()) -> list[Table]:
    """The tables on one page, top to bottom. Words inside `sideways` lines count only in
    ruled cells (a column header set running up its cell); they are no cells of their own."""
    words = _words(page, textpage)
    for word in words:
        line = next((s for s in sideways if _in(word, s.bbox)), None)
        if line is not None:
            word.turned = 1 if line.up else -1
    tables: list[Table] = []
    drawings = page.get_cdrawings()
    marks = _figure_marks(drawings)
    figures: list[BBox] = []  # grids that are plots or diagrams: neither table nor free words
    if may_have_ruled_table(drawings):
        # use_layout=False: pymupdf 2 otherwise runs its ONNX layout model on every page.
        for found in page.find_tables(use_layout=False).tables:
            table = _ruled_table(found, words, page.rect.width)
            if table is not None and _is_figure(table.bbox, marks):
                figures.append(table.bbox)
            elif table is not None:
                tables.append(table)
    ruled = list(tables)
    upright = [w for w in words if not w.turned]
    taken = [t.bbox for t in tables] + figures
    for table in _unruled_tables(upright, page.rect.width, taken):
        if _is_figure(table.bbox, marks):
            continue
        header = _header_band_over(table, ruled, words)
        if header is not None:
            tables.remove(header)
            table = _with_header(table, header)
        tables.append(table)
    return sorted(tables, key=lambda t: t.bbox[1])


# A table region holding this many strokes of a drawing (slanted lines, curves larger than a
# rounded corner) is a figure: a plot's ticks and labels, a diagram's boxes.
FIGURE_MARKS = 8


def _figure_marks(drawings: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """The middle of every stroke that a table never draws: a slanted line, or a curve larger
    than a rounded corner."""
    marks: list[tuple[float, float]] = []
    for drawing in drawings:
        for item in drawing.get("items", ()):
            if item[0] == "l":
                (x0, y0), (x1, y1) = item[1], item[2]
                if abs(x1 - x0) > 1 and abs(y1 - y0) > 1:
                    marks.append(((x0 + x1) / 2, (y0 + y1) / 2))
            elif item[0] == "c":
                xs = [pt[0] for pt in item[1:5]]
                ys = [pt[1] for pt in item[1:5]]
                if max(xs) - min(xs) > 8 and max(ys) - min(ys) > 8:
                    marks.append((sum(xs) / 4, sum(ys) / 4))
    return marks


def _is_figure(box: BBox, marks: Sequence[tuple[float, float]]) -> bool:
    inside = sum(1 for x, y in marks if box[0] <= x <= box[2] and box[1] <= y <= box[3])
    return inside >= FIGURE_MARKS


def _header_band_over(body: Table, ruled: Sequence[Table], words: Sequence[_Word]) -> Table | None:
    """A boxed header band with an unruled body under it (a shaded title row over rows set
    on whitespace): a ruled table of a few rows right above the body, nothing between them,
    across the same width."""
    for head in ruled:
        if len(head.rows) > 3:
            continue
        gap = body.bbox[1] - head.bbox[3]
        height = statistics.median(w.height for w in words) if words else 0.0
        if not -1 <= gap <= 3 * height:
            continue
        between = [w for w in words if head.bbox[3] < w.yc < body.bbox[1] and not _in(w, body.bbox)]
        width = min(head.bbox[2], body.bbox[2]) - max(head.bbox[0], body.bbox[0])
        span = max(head.bbox[2], body.bbox[2]) - min(head.bbox[0], body.bbox[0])
        if not between and width >= 0.8 * span:
            return head
    return None


def _with_header(body: Table, head: Table) -> Table:
    """The body with the band's rows on top, each band cell in the body column under its
    middle (cells that land in one column are joined)."""
    ncols = len(body.edges) - 1

    def column(x: float) -> int:
        return max(0, max((k for k in range(ncols) if body.edges[k] <= x), default=0))

    rows: list[list[str]] = []
    for row in head.rows:
        cells = [""] * ncols
        for k, text in enumerate(row):
            if not text.strip() or k + 1 >= len(head.edges):
                continue
            target = column((head.edges[k] + head.edges[k + 1]) / 2)
            cells[target] = f"{cells[target]} {text}".strip()
        rows.append(cells)
    bbox = (
        min(head.bbox[0], body.bbox[0]),
        head.bbox[1],
        max(head.bbox[2], body.bbox[2]),
        body.bbox[3],
    )
    return Table(bbox, rows + body.rows, body.edges)


# --- across pages ----------------------------------------------------------------------------


@dataclass
class PageTables:
    """What continuation needs of a page: its size, its tables, and where its other text is."""

    width: float
    height: float
    tables: list[Table]
    text_boxes: list[BBox]


def link_continuations(pages: Sequence[PageTables]) -> None:
    """Mark each table that continues the last table of the page before it."""
    for before, after in itertools.pairwise(pages):
        if not before.tables or not after.tables:
            continue
        last = max(before.tables, key=lambda t: t.bbox[3])
        first = min(after.tables, key=lambda t: t.bbox[1])
        if not _lines_up(last, first, after.width):
            continue
        if any(b[1] >= last.bbox[3] - 1 for b in before.text_boxes):
            continue  # text after the table on its page: the table ended there
        if any(b[3] <= first.bbox[1] + 1 for b in after.text_boxes):
            continue  # text before the table on the next page: a new table
        header = last.continued_header if last.continued_header is not None else last.rows[0]
        if _same_row(first.rows[0], header):
            first.rows = first.rows[1:]
            if not first.rows:
                continue
        first.continued_header = header


def _lines_up(a: Table, b: Table, width: float) -> bool:
    if a.columns != b.columns or len(a.edges) != len(b.edges):
        return False
    tolerance = _EDGE_TOLERANCE * width
    return all(abs(x - y) <= tolerance for x, y in zip(a.edges, b.edges, strict=True))


def _same_row(a: Sequence[str], b: Sequence[str]) -> bool:
    def key(row: Sequence[str]) -> list[str]:
        return ["".join(c.split()).lower() for c in row]

    return key(a) == key(b)
