"""Excel workbooks (.xlsx) into markdown, with openpyxl.

One section per visible sheet, headed `## <sheet name>`. A sheet is cut into blocks at its empty
rows: a block of one cell per row (a title, a note) becomes paragraphs, a grid becomes a markdown
table whose first row is its header. Each block is opened by a marker naming the cells it holds
in Excel's own syntax (`<!-- sheet: 2 Budget!A1:F40 -->`), and a long table is cut into parts of
at most 50 rows, each with its own marker and the table's header repeated, so that a citation
names the rows it quotes. Values are those Excel last computed (a formula's cached value, never
its text), shown as Excel shows them where that is cheap: percentages, dates, the decimals of
the cell's number format. Hidden sheets and cell comments are left out.
"""

from __future__ import annotations

import io
import re
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import openpyxl  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

from athenaeum.build.formats import (
    Converted,
    FormatError,
    location_marker,
    markdown_table,
    one_line,
)
from athenaeum.build.formats.encrypted import is_ole
from athenaeum.build.formats.pptx import escape_line_start
from athenaeum.build.sources import meaningful_title

BLOCK_ROWS = 50  # the most sheet rows one marker covers
# A block of text alone (a table's header rows) this short, at most this many empty rows above
# a block with numbers, is that block's header: finance sheets leave a blank row between them.
_HEADER_ROWS = 5
_HEADER_GAP = 2

# A sheet name Excel writes without quotes: letters, digits, underscores and dots, not starting
# with a digit, and not something Excel would read as a cell (A1, R1C1) or a boolean.
_PLAIN_NAME_RE = re.compile(r"[^\W\d][\w.]*")
_CELL_LIKE_RE = re.compile(r"[A-Za-z]{1,3}\d+|[Rr]\d*[Cc]?\d*|[Cc]\d*|TRUE|FALSE", re.IGNORECASE)
# Parts of a number format that show no digits: quoted text, escapes, padding, colours, locales.
_FORMAT_NOISE_RE = re.compile(r'"[^"]*"|\\.|_.|\*.|\[[^\]]*\]')
_DECIMALS_RE = re.compile(r"\.([0#?]+)")


def read_xlsx(data: bytes, name: str) -> Converted:
    """The workbook in `data` (the bytes of the file called `name`) as markdown."""
    if is_ole(data):
        raise FormatError(
            "damaged: an OLE2 compound file, not a ZIP container (encrypted, or an older "
            "binary .xls under a new name)"
        )
    try:
        with warnings.catch_warnings():
            # openpyxl warns of what it does not keep (data validation, print settings...).
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    except Exception as exc:  # openpyxl raises whatever a malformed part makes it raise
        raise FormatError(
            f"damaged: not a readable workbook ({type(exc).__name__}: {exc})"
        ) from exc

    sections: list[str] = []
    hidden: list[str] = []
    for number, sheet_name in enumerate(workbook.sheetnames, start=1):
        sheet = workbook[sheet_name]
        if sheet.sheet_state in ("hidden", "veryHidden"):
            hidden.append(sheet_name)
            continue
        if not hasattr(sheet, "_cells"):  # a chart sheet: no cells
            continue
        section = _sheet(sheet, number)
        if section:
            sections.append(section)
    warnings_ = [f"{len(hidden)} hidden sheet(s) left out: {', '.join(hidden)}"] if hidden else []
    markdown = "\n\n".join(sections)
    return Converted(
        markdown=markdown + "\n" if markdown else "",
        title=meaningful_title(workbook.properties.title, name),
        unit="sheet",
        units=len(sections),
        warnings=warnings_,
    )


def sheet_reference(sheet_name: str, first: tuple[int, int], last: tuple[int, int]) -> str:
    """`Budget!A1:F40`, `'Tax rates 2007'!B3:H20`: a range of (row, column) cells, 1-based."""
    name = sheet_name
    if not _PLAIN_NAME_RE.fullmatch(name) or _CELL_LIKE_RE.fullmatch(name):
        name = "'" + name.replace("'", "''") + "'"
    start = f"{get_column_letter(first[1])}{first[0]}"
    end = f"{get_column_letter(last[1])}{last[0]}"
    return f"{name}!{start}" if start == end else f"{name}!{start}:{end}"


# --- a sheet ---------------------------------------------------------------------------------


@dataclass
class _Block:
    """Consecutive rows of a sheet with no empty row between them (save a header's gap)."""

    rows: dict[int, dict[int, str]]  # row -> column -> shown text, rows in order
    first: int
    last: int
    numeric: bool  # whether any of its cells holds a number or a date

    @property
    def grid(self) -> bool:
        return any(len(cells) > 1 for cells in self.rows.values())


def _sheet(sheet: Any, number: int) -> str:
    # The cells the sheet's XML holds: walking its dimensions instead would make a cell of every
    # empty position up to the farthest one (a stray format in XFD1048576).
    cells: dict[int, dict[int, str]] = {}
    numeric: set[int] = set()
    for (row, column), cell in sheet._cells.items():
        text, is_number = _shown(cell)
        if text:
            cells.setdefault(row, {})[column] = text
            if is_number:
                numeric.add(row)
    if not cells:
        return ""

    blocks: list[_Block] = []
    for row in sorted(cells):
        if blocks and row == blocks[-1].last + 1:
            blocks[-1].rows[row] = cells[row]
            blocks[-1].last = row
            blocks[-1].numeric |= row in numeric
        else:
            blocks.append(_Block({row: cells[row]}, row, row, row in numeric))
    blocks = _join_headers(blocks)

    name = sheet.title
    parts: list[str] = []
    for block in blocks:
        columns = sorted({c for row in block.rows.values() for c in row})
        for first, last, text in _render(block, columns):
            reference = sheet_reference(name, (first, columns[0]), (last, columns[-1]))
            parts.append(location_marker("sheet", number, reference) + "\n\n" + text)
    # The heading goes under the first marker, so that it is read as part of the sheet.
    heading = "## " + one_line(name)
    first_marker, _, rest = parts[0].partition("\n\n")
    parts[0] = f"{first_marker}\n\n{heading}\n\n{rest}"
    return "\n\n".join(parts)


def _join_headers(blocks: list[_Block]) -> list[_Block]:
    """A short grid of text alone joined to the grid of numbers a blank row or two below it."""
    joined: list[_Block] = []
    for block in blocks:
        previous = joined[-1] if joined else None
        if (
            previous is not None
            and previous.grid
            and not previous.numeric
            and len(previous.rows) <= _HEADER_ROWS
            and block.grid
            and block.numeric
            and block.first - previous.last - 1 <= _HEADER_GAP
        ):
            previous.rows.update(block.rows)
            previous.last = block.last
            previous.numeric = True
        else:
            joined.append(block)
    return joined


def _render(block: _Block, columns: list[int]) -> list[tuple[int, int, str]]:
    """The block as (first row, last row, markdown) parts of at most BLOCK_ROWS sheet rows."""
    rows = list(block.rows)  # in order
    # Title rows above a table and notes below it: one cell alone in its row.
    head = 0
    tail = len(rows)
    if not block.grid:
        head = tail  # all paragraphs
    else:
        while len(block.rows[rows[head]]) == 1:
            head += 1
        while len(block.rows[rows[tail - 1]]) == 1:
            tail -= 1
    used = [c for c in columns if any(c in block.rows[r] for r in rows[head:tail])]

    def table_row(row: int) -> list[str]:
        return [block.rows[row].get(c, "") for c in used]

    def paragraph(row: int) -> str:
        return escape_line_start(one_line(" ".join(block.rows[row].values())))

    parts: list[tuple[int, int, str]] = []
    start = block.first
    while start <= block.last:
        end = min(start + BLOCK_ROWS - 1, block.last)
        low, high = bisect_left(rows, start), bisect_right(rows, end)
        pieces = [paragraph(rows[i]) for i in range(low, min(high, head))]
        in_table = range(max(low, head), min(high, tail))
        if in_table:
            body = [rows[i] for i in in_table]
            if in_table[0] != head:  # a later part: the table's header again
                body.insert(0, rows[head])
            pieces.append(markdown_table([table_row(r) for r in body]))
        pieces.extend(paragraph(rows[i]) for i in range(max(low, tail), high))
        if pieces:
            parts.append((start, end, "\n\n".join(pieces)))
        start = end + 1
    return parts


# --- values ----------------------------------------------------------------------------------


def _shown(cell: Any) -> tuple[str, bool]:
    """The cell's value as Excel shows it, near enough ("" for an empty cell), and whether it
    is a number (a date and a time are numbers to Excel)."""
    value = cell.value
    kind = type(value)
    if kind is int or kind is float:  # the most common first
        return _number(value, str(cell.number_format or "General")), True
    if kind is str:
        return one_line(value), False
    if value is None:
        return "", False
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE"), False
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat(), True
        return value.isoformat(sep=" ", timespec="seconds" if value.second else "minutes"), True
    if isinstance(value, date):
        return value.isoformat(), True
    if isinstance(value, time):
        return value.isoformat(timespec="seconds" if value.second else "minutes"), True
    if isinstance(value, timedelta):
        return str(value), True
    if isinstance(value, (int, float)):  # their subclasses
        return _number(value, str(cell.number_format or "General")), True
    return one_line(str(value)), False


def _number(value: float, number_format: str) -> str:
    percent, decimals = _format_spec(number_format)
    if percent:
        value *= 100
    text = _general(value) if decimals is None else _fixed(value, *decimals)
    return text + "%" if percent else text


@lru_cache(maxsize=256)
def _format_spec(number_format: str) -> tuple[bool, tuple[int, int] | None]:
    """Whether a number format shows a percentage, and the fewest and most decimals it shows
    (None: as General shows them, for General itself and for formats read no further:
    scientific, fractions, text)."""
    section = _FORMAT_NOISE_RE.sub("", number_format.split(";", 1)[0])
    percent = "%" in section
    if section.strip().lower() == "general" or "E" in section.upper() or "/" in section:
        return percent, None
    if not re.search(r"[0#?]", section):
        return percent, None
    found = _DECIMALS_RE.search(section)
    return percent, (found.group(1).count("0"), len(found.group(1))) if found else (0, 0)


def _general(value: float) -> str:
    """Up to 10 significant digits, no binary noise (0.1 + 0.2 is 0.3), integers without ".0"."""
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = f"{value:.10g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}E{int(exponent):+03d}"
    return text


def _fixed(value: float, fewest: int, most: int) -> str:
    """`value` rounded as Excel rounds (half away from zero) to `most` decimals, trailing zeros
    kept down to `fewest`."""
    try:
        exact = Decimal(repr(value)).quantize(Decimal(1).scaleb(-most), rounding=ROUND_HALF_UP)
    except InvalidOperation:  # inf, nan, or more digits than the context holds
        return _general(value)
    text = f"{exact:f}"
    if most > fewest and "." in text:
        whole, fraction = text.split(".")
        fraction = fraction.rstrip("0")
        fraction += "0" * max(0, fewest - len(fraction))
        text = f"{whole}.{fraction}" if fraction else whole
    if text.startswith("-") and not text.strip("-0."):
        text = text[1:]  # -0.0 shows as 0
    return text
