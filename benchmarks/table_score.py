"""How a converted table is scored against an expected one: cell F1 and TEDS (benchmarks/
bench_tables.py runs it; tests/benchmarks/test_table_score.py holds it to known values).

Cells are compared by a key: Unicode NFKC, casefolded, `<br>` and other HTML tags, every `*` and
`_` (markdown emphasis, which cannot be told from content: `_Men (_≥_18yrs)_`; a converter that
detaches the underscore of `USER_NAME` is not wrong about the cell), docling's `GLYPH<...>`
placeholders, bullet symbols and control or private-use characters removed, runs of two or more
dots (leaders) removed, and every whitespace character removed. Spaces go because the expected
data disagrees with itself about them (camelot 0.x joined the lines of a cell without a space,
`WITHTHE`; a letter-spaced heading reads `V i n s a u V e r r e`) and PyMuPDF's `find_tables`
drops some: where words break is text fidelity, scored apart. A cell whose key is empty is empty
and counts nowhere.

**Cell F1** ("aligned cell F1"). A predicted table and an expected one are aligned twice:

1. columns: a monotone alignment (no crossing) that maximises the multiset overlap of the cell
   keys of the paired columns;
2. rows: a monotone alignment that maximises the number of equal cells in the paired columns.
   Rows and columns either side may stay unpaired (a caption row, an extra column), at no
   cost but the cells they hold.

then columns are aligned again on the paired rows (equal cells per column pair) and rows again.
A true positive is a non-empty expected cell equal to the predicted cell at its paired row and
column. Precision = true positives / non-empty predicted cells, recall = true positives /
non-empty expected cells, F1 their harmonic mean. Paired by position rather than as a bag of
texts: a table whose rows merge, or whose columns shift, loses the cells that moved.

Three allowances, the same for every converter:

- **Header lines split into rows.** camelot's stream output, from which every partly ruled and
  unruled expected table comes, puts each text line of a multi-line header cell in a row of its
  own (`Medical &` / `Public` / `Health`). Such a block (`block`: the header rows the case's
  notes name) is joined into one row, each column's lines in order; the one row may pair with
  one predicted row or with up to as many consecutive predicted rows as the block has lines,
  joined the same way. A converter that keeps the header cells whole and one that splits them
  like camelot score alike. In a join a line equal to the line above it (a row-spanning label
  repeated) is taken once.
- **Optional rows** (a title, a caption, notes, a page number that camelot kept: `optional_rows`
  in cases.json) count on neither side: not as expected cells, and a predicted row paired with
  one is not counted either.
- **Spanning cells.** Markdown has no spans: a converter may repeat a spanning cell's text in
  each column it covers or leave them empty, and camelot puts the text in the first one. A
  predicted cell that repeats the cell to its left, where the expected cell is empty, is not
  counted; nor is an expected cell that repeats its left neighbour where the predicted one is
  empty (docling's ground truth repeats spans).

**TEDS** (Zhong et al., 2020, the PubTabNet metric): the table as a tree, `table` > `tr` >
`td`(text), its tree edit distance to the expected tree by Zhang and Shasha's algorithm
(implemented here), with insertions and deletions costing 1, renaming a `td` the normalised
Levenshtein distance of the two keys and a `tr` nothing; TEDS = 1 - distance / the larger node
count. It is computed on the same two tables as F1 after the allowances above (block joined,
optional rows out). It weighs structure (rows and cells in the right place and number) and
near-misses of text, where F1 wants cells exactly right.

A table over several pages is scored as one: F1 over the whole, TEDS as the mean of the TEDS of
each page's rows (the exact distance between two trees of thousands of nodes would take hours
here); a predicted table that covers one page only gets the rows of the other pages wrong.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_TAG_RE = re.compile(r"<br\s*/?>|</?[A-Za-z][A-Za-z0-9]*(\s[^<>]*)?/?>", re.IGNORECASE)
_GLYPH_RE = re.compile(r"GLYPH<[^>]*>")
_EMPHASIS_RE = re.compile(r"[*_]+")
_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|])")
_LEADERS_RE = re.compile(r"\.{2,}|…+")
_SPACE_RE = re.compile(r"\s+")
# Control, format and private-use characters: bullets that a font maps nowhere (PyMuPDF gives
# \x02 where docling writes GLYPH<...>).
_INVISIBLE = frozenset({"Cc", "Cf", "Co"})
_BULLETS = frozenset("•▪▫●○◦■□▶►‣\u2043·")


def cell_key(text: str | None) -> str:
    """The form in which two cells are compared (see the module docstring)."""
    if not text:
        return ""
    text = _GLYPH_RE.sub(" ", str(text))
    text = _TAG_RE.sub(" ", text)
    text = _EMPHASIS_RE.sub("", _ESCAPE_RE.sub(r"\1", text))
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _SPACE_RE.sub("", text)
    text = _LEADERS_RE.sub("", text)
    return "".join(
        ch for ch in text if ch not in _BULLETS and unicodedata.category(ch) not in _INVISIBLE
    )


def grid(rows: Sequence[Sequence[str | None]]) -> list[list[str]]:
    """Rows of cell keys, padded to one width."""
    keyed = [[cell_key(c) for c in row] for row in rows]
    width = max((len(r) for r in keyed), default=0)
    return [r + [""] * (width - len(r)) for r in keyed]


def join_lines(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows that are the text lines of one row, joined per column (a line equal to the one
    above it, a repeated row span, taken once)."""
    width = max((len(r) for r in rows), default=0)
    out = []
    for c in range(width):
        parts: list[str] = []
        for row in rows:
            value = row[c] if c < len(row) else ""
            if value and (not parts or parts[-1] != value):
                parts.append(value)
        out.append("".join(parts))
    return out


@dataclass(frozen=True)
class Expected:
    """An expected table: raw rows, the 0-based rows of a header split by text line (`block`,
    inclusive) and rows that count nowhere (`optional`); `row_pages` gives each row's page for a
    table over several pages."""

    rows: Sequence[Sequence[str]]
    block: tuple[int, int] | None = None
    optional: frozenset[int] = frozenset()
    row_pages: Sequence[int] | None = None


@dataclass
class _Row:
    cells: list[str]
    lines: int  # how many predicted rows this row may pair with, joined (1 unless a block)
    optional: bool
    page: int | None


def _expected_rows(expected: Expected) -> list[_Row]:
    keyed = grid(expected.rows)
    pages = expected.row_pages
    out: list[_Row] = []
    block = expected.block
    i = 0
    while i < len(keyed):
        page = pages[i] if pages else None
        if block and i == block[0]:
            members = [r for r in range(block[0], block[1] + 1) if r not in expected.optional]
            if members:
                joined = join_lines([keyed[r] for r in members])
                out.append(_Row(joined, len(members), False, page))
            for r in range(block[0], block[1] + 1):
                if r in expected.optional:
                    out.append(_Row(keyed[r], 1, True, page))
            i = block[1] + 1
            continue
        out.append(_Row(keyed[i], 1, i in expected.optional, page))
        i += 1
    return out


def _align(scores: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """The monotone pairing of rows of `scores` with its columns of largest total score."""
    n, m = len(scores), len(scores[0]) if scores else 0
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = best[i], best[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = max(below[j], row[j + 1], scores[i][j] + below[j + 1])
    pairs = []
    i = j = 0
    while i < n and j < m:
        if scores[i][j] > 0 and best[i][j] == scores[i][j] + best[i + 1][j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _column_overlap(e_rows: Sequence[_Row], p_rows: Sequence[Sequence[str]]) -> list[list[float]]:
    e_width = len(e_rows[0].cells) if e_rows else 0
    p_width = len(p_rows[0]) if p_rows else 0
    e_cols = [Counter(r.cells[c] for r in e_rows if r.cells[c]) for c in range(e_width)]
    p_cols = [Counter(r[c] for r in p_rows if r[c]) for c in range(p_width)]
    return [[float(sum((ec & pc).values())) for pc in p_cols] for ec in e_cols]


def _equal_cells(e_cells: Sequence[str], p_cells: Sequence[str], columns: dict[int, int]) -> int:
    return sum(1 for c, pc in columns.items() if e_cells[c] and e_cells[c] == p_cells[pc])


@dataclass
class _Pair:
    e: int  # index into the expected rows
    start: int  # first predicted row
    lines: int  # predicted rows joined
    cells: list[str]  # the predicted row (joined)


def _align_rows(
    e_rows: Sequence[_Row], p_rows: Sequence[Sequence[str]], columns: dict[int, int]
) -> list[_Pair]:
    n, m = len(e_rows), len(p_rows)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    choice: dict[tuple[int, int], tuple[int, int]] = {}
    joined: dict[tuple[int, int], list[str]] = {}
    for i in range(n - 1, -1, -1):
        e = e_rows[i]
        row, below = best[i], best[i + 1]
        for j in range(m - 1, -1, -1):
            value = max(below[j], row[j + 1])
            for k in range(1, min(e.lines, m - j) + 1):
                cells = (
                    list(p_rows[j])
                    if k == 1
                    else joined.setdefault((j, k), join_lines(p_rows[j : j + k]))
                )
                score = _equal_cells(e.cells, cells, columns)
                if score and score + below[j + k] > value:
                    value = score + below[j + k]
                    choice[i, j] = (k, score)
            row[j] = value
    pairs = []
    i = j = 0
    while i < n and j < m:
        k_score = choice.get((i, j))
        if k_score and best[i][j] == k_score[1] + best[i + 1][j + k_score[0]]:
            k = k_score[0]
            cells = list(p_rows[j]) if k == 1 else joined[j, k]
            pairs.append(_Pair(i, j, k, cells))
            i, j = i + 1, j + k
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


@dataclass
class Score:
    f1: float
    precision: float
    recall: float
    true_positives: int
    expected_cells: int
    predicted_cells: int
    teds: float | None = None
    # The two tables TEDS compares: expected and predicted rows after the allowances, with pages.
    trees: tuple[list[tuple[list[str], int | None]], list[tuple[list[str], int | None]]] = field(
        default=([], []), repr=False
    )


def _repeats_left(cells: Sequence[str], c: int) -> bool:
    return c > 0 and bool(cells[c]) and cells[c] == cells[c - 1]


def score_table(
    expected: Expected,
    predicted: Sequence[Sequence[str | None]],
    predicted_pages: Sequence[int] | None = None,
) -> Score:
    """Cell F1 of `predicted` (raw rows) against `expected`; TEDS is left to `with_teds`."""
    e_rows = _expected_rows(expected)
    p_rows = grid(predicted)
    pages = list(predicted_pages) if predicted_pages else [None] * len(p_rows)
    columns: dict[int, int] = {}
    pairs: list[_Pair] = []
    if e_rows and p_rows and p_rows[0]:
        columns = dict(_align(_column_overlap(e_rows, p_rows)))
        pairs = _align_rows(e_rows, p_rows, columns)
        if pairs:
            e_width, p_width = len(e_rows[0].cells), len(p_rows[0])
            by_pair = [[0.0] * p_width for _ in range(e_width)]
            for pair in pairs:
                e_cells = e_rows[pair.e].cells
                for c in range(e_width):
                    if e_cells[c]:
                        for pc in range(p_width):
                            if e_cells[c] == pair.cells[pc]:
                                by_pair[c][pc] += 1
            columns = dict(_align(by_pair))
            pairs = _align_rows(e_rows, p_rows, columns)

    paired_e = {pair.e: pair for pair in pairs}
    inverse = {pc: c for c, pc in columns.items()}
    tp = n_exp = 0
    for i, e in enumerate(e_rows):
        if e.optional:
            continue
        pair = paired_e.get(i)
        for c, value in enumerate(e.cells):
            if not value:
                continue
            got = pair.cells[columns[c]] if pair and c in columns else None
            if got == value:
                tp += 1
                n_exp += 1
            elif not (_repeats_left(e.cells, c) and pair and not got):
                n_exp += 1

    # Predicted rows as TEDS sees them: a block's lines joined, rows paired with optional ones out.
    shown: list[tuple[list[str], int | None, _Pair | None]] = []
    starts = {pair.start: pair for pair in pairs}
    j = 0
    while j < len(p_rows):
        pair = starts.get(j)
        if pair is not None:
            if not e_rows[pair.e].optional:
                shown.append((pair.cells, pages[j], pair))
            j += pair.lines
        else:
            shown.append((p_rows[j], pages[j], None))
            j += 1
    n_pred = 0
    for cells, _, pair in shown:
        e_cells = e_rows[pair.e].cells if pair else None
        for pc, value in enumerate(cells):
            if not value:
                continue
            c = inverse.get(pc)
            e_value = e_cells[c] if e_cells is not None and c is not None else None
            if _repeats_left(cells, pc) and e_cells is not None and not e_value:
                continue
            n_pred += 1
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_exp if n_exp else 0.0
    f1 = 2 * tp / (n_pred + n_exp) if n_pred + n_exp else 0.0
    e_tree = [(e.cells, e.page) for e in e_rows if not e.optional]
    p_tree = [(cells, page) for cells, page, _ in shown]
    return Score(f1, precision, recall, tp, n_exp, n_pred, trees=(e_tree, p_tree))


# --- TEDS -----------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


@dataclass
class Node:
    label: str
    text: str = ""
    children: list[Node] = field(default_factory=list)


def table_tree(rows: Sequence[Sequence[str]]) -> Node:
    """`table` > `tr` > `td`; empty cells are nodes too (they hold the columns in place)."""
    return Node("table", children=[Node("tr", children=[Node("td", c) for c in r]) for r in rows])


def _postorder(root: Node) -> tuple[list[Node], list[int], list[int]]:
    """Nodes in postorder, the leftmost leaf descendant of each, and the keyroots."""
    nodes: list[Node] = []
    leftmost: list[int] = []

    def walk(node: Node) -> int:
        first = -1
        for child in node.children:
            left = walk(child)
            if first < 0:
                first = left
        nodes.append(node)
        index = len(nodes) - 1
        leftmost.append(index if first < 0 else first)
        return leftmost[index]

    walk(root)
    seen: dict[int, int] = {}
    for i, left in enumerate(leftmost):
        seen[left] = i  # the highest node with that leftmost leaf
    return nodes, leftmost, sorted(seen.values())


def tree_edit_distance(a: Node, b: Node, rename: Callable[[Node, Node], float]) -> float:
    """Zhang and Shasha (1989): insertions and deletions cost 1, renaming `rename`."""
    nodes_a, left_a, keys_a = _postorder(a)
    nodes_b, left_b, keys_b = _postorder(b)
    treedist = [[0.0] * len(nodes_b) for _ in nodes_a]
    for i in keys_a:
        li = left_a[i]
        for j in keys_b:
            lj = left_b[j]
            rows, cols = i - li + 2, j - lj + 2
            fd = [[0.0] * cols for _ in range(rows)]
            for x in range(1, rows):
                fd[x][0] = fd[x - 1][0] + 1
            for y in range(1, cols):
                fd[0][y] = fd[0][y - 1] + 1
            for x in range(1, rows):
                i1 = li + x - 1
                same_a = left_a[i1] == li
                fx, fx1 = fd[x], fd[x - 1]
                for y in range(1, cols):
                    j1 = lj + y - 1
                    if same_a and left_b[j1] == lj:
                        d = min(
                            fx1[y] + 1, fx[y - 1] + 1, fx1[y - 1] + rename(nodes_a[i1], nodes_b[j1])
                        )
                        fx[y] = d
                        treedist[i1][j1] = d
                    else:
                        p, q = left_a[i1] - li, left_b[j1] - lj
                        fx[y] = min(fx1[y] + 1, fx[y - 1] + 1, fd[p][q] + treedist[i1][j1])
    return treedist[-1][-1]


def _rename(a: Node, b: Node) -> float:
    if a.label != b.label:
        return 1.0
    if a.label != "td" or a.text == b.text:
        return 0.0
    return levenshtein(a.text, b.text) / max(len(a.text), len(b.text))


def _count(node: Node) -> int:
    return 1 + sum(_count(child) for child in node.children)


def teds(expected: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """1 - TED / max(node counts) of two tables of cell keys."""
    a, b = table_tree(expected), table_tree(predicted)
    size = max(_count(a), _count(b))
    return 1.0 - tree_edit_distance(a, b, _rename) / size


def with_teds(score: Score, pages: Sequence[int] | None = None) -> Score:
    """Fill `score.teds` from its trees; with `pages`, the mean over those pages."""
    e_tree, p_tree = score.trees
    if not pages or len(pages) < 2:
        score.teds = teds([r for r, _ in e_tree], [r for r, _ in p_tree])
        return score
    values = []
    for page in pages:
        values.append(
            teds([r for r, p in e_tree if p == page], [r for r, p in p_tree if p == page])
            if any(p == page for _, p in e_tree)
            else 1.0
        )
    score.teds = sum(values) / len(values)
    return score
