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
    return [
        _Word(w[0], w[1], w[2], w[3], w[4])
        for w in page.get_text("words", textpage=textpage)
        if w[4].strip()
    ]


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
    """Words of one cell, line by line, each line left to right."""
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


def _ruled_table(found: Any, words: Sequence[_Word]) -> Table | None:
    inside = [w for w in words if _in(w, found.bbox)]
    edges = _column_edges(found)
    grid: list[list[list[_Word]]] = []
    for row in found.rows:
        cells: list[list[_Word]] = [[] for _ in row.cells]
        for k, box in enumerate(row.cells):
            if box is None:
                continue
            span = k + 1
            while span < len(row.cells) and row.cells[span] is None:
                span += 1
            ws = [w for w in inside if _in(w, box)]
            if span == k + 1 or len(edges) != len(row.cells) + 1:
                cells[k] = ws
                continue
            # A cell over several columns: a shaded band or a missing rule may have merged
            # cells that are separate; each run of words goes to the column it lies in, and a
            # run that crosses a column edge (a real spanning label) to its first column.
            for line in _visual_lines(ws):
                for run in _runs(line):
                    first = _column_at(edges, run[0].x0 + 0.5)
                    last = _column_at(edges, run[-1].x1 - 0.5)
                    target = first if first == last else k
                    cells[max(k, min(target, span - 1))].extend(run)
        grid.append(cells)
    boxes = [r.bbox for r in found.rows]
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
    if len(rows) < 2 or max(len(r) for r in rows) < 2:
        return None
    bbox = (
        min(b[0] for b in kept),
        min(b[1] for b in kept),
        max(b[2] for b in kept),
        max(b[3] for b in kept),
    )
    return Table(bbox, rows, edges)


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


def _column_at(edges: Sequence[float], x: float) -> int:
    return max(0, max((k for k in range(len(edges) - 1) if edges[k] <= x), default=0))


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
        table = _region_table(lines[i : last + 1], page_width)
        if table is not None:
            tables.append(table)
            i = last + 1
        else:
            i += 1
    return tables


def _gutters(lines: Sequence[_Line], x0: float, x1: float) -> list[tuple[float, float]]:
    """X ranges that the runs of (almost) no multi-run line cross: the gaps between columns."""
    multi = [line for line in lines if len(line.runs) >= 2]
    allowed = len(multi) // 10  # a spanning header cell or two may cross a gutter
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
        for word in line.words:
            cells[column(word)].append(word)
        grid.append(cells)
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
    rows: list[list[list[_Word]]] = []
    for cells, line in zip(grid, lines, strict=True):
        filled = sum(1 for c in cells if c)
        # A line filling few columns, not the first, continues the row above (a wrapped cell).
        if rows and filled < max(2, ncols / 2) and not (len(line.runs) >= 2 and cells[0]):
            for k in range(ncols):
                rows[-1][k].extend(cells[k])
        else:
            rows.append([list(c) for c in cells])
    texts = [[_text_of(c) for c in row] for row in rows]
    if len(texts) < 3 or _list_like(texts):
        return None
    y0 = min(line.y0 for line in lines)
    y1 = max(line.y1 for line in lines)
    del page_width
    return Table((x0, y0, x1, y1), texts, edges)


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


def find_tables(page: Any, textpage: Any) -> list[Table]:
    """The tables on one page, top to bottom."""
    words = _words(page, textpage)
    tables: list[Table] = []
    if may_have_ruled_table(page.get_cdrawings()):
        # use_layout=False: pymupdf 2 otherwise runs its ONNX layout model on every page.
        for found in page.find_tables(use_layout=False).tables:
            table = _ruled_table(found, words)
            if table is not None:
                tables.append(table)
    tables.extend(_unruled_tables(words, page.rect.width, [t.bbox for t in tables]))
    return sorted(tables, key=lambda t: t.bbox[1])


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
