"""Documents other than PDF, read into the same markdown contract (athenaeum.build.sources).

Each reader takes a file's bytes and returns a `Converted`: the markdown body, with location
markers where the format has locations (`<!-- slide: 7 -->` for a deck, `<!-- sheet: 2
Budget!A1:F40 -->` for a block of a workbook's rows, `<!-- anchor: methods -->` where a web
page's section can be linked to), the title the file itself gives, and how many of its units
(slides, sheets, sections) it holds. `athenaeum.build.convert` writes the front matter around it,
the same way for every format, in `athenaeum convert` and in cloud ingest.

Readers raise `FormatError` with a reason a person can act on ("encrypted: needs a password",
"damaged: not a ZIP container"); convert reports it against the file's name and goes on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Unit = Literal["page", "slide", "sheet", "chapter", "section"]

# The suffixes each reader takes.
DOCX = (".docx",)
PPTX = (".pptx",)
XLSX = (".xlsx",)
HTML = (".html", ".htm", ".xhtml")
EPUB = (".epub",)
SUFFIXES = (*DOCX, *PPTX, *XLSX, *HTML, *EPUB)

_SPACES_RE = re.compile(r"[ \t\r\n\u00a0\u2028\u2029]+")
_MARKER_UNSAFE_RE = re.compile(r"-{2,}|[<>\n]")


class FormatError(Exception):
    """A file this reader cannot read; the message is the reason, for the report."""


@dataclass
class Converted:
    markdown: str
    title: str | None
    unit: Unit
    units: int  # slides, sheets, chapters or sections (headings) found
    warnings: list[str] = field(default_factory=list)


def location_marker(unit: Unit, number: int, label: str | None = None) -> str:
    """`<!-- slide: 7 -->`, or with a label: `<!-- sheet: 2 Budget!A1:F40 -->`."""
    text = f"<!-- {unit}: {number}"
    if label:
        text += " " + _MARKER_UNSAFE_RE.sub(" ", label).strip()
    return text + " -->"


def anchor_marker(anchor: str) -> str:
    """`<!-- anchor: methods -->`: the section that follows can be opened at `#methods`."""
    return f"<!-- anchor: {_MARKER_UNSAFE_RE.sub('', anchor).strip()} -->"


def one_line(text: str) -> str:
    return _SPACES_RE.sub(" ", text).strip()


def table_cell(text: str) -> str:
    """A cell's text on one line, its pipes escaped."""
    return one_line(text).replace("\\", "\\\\").replace("|", "\\|")


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """A markdown table of `rows`, the first one its header; rows padded to the widest."""
    width = max((len(r) for r in rows), default=0)
    if not width:
        return ""
    lines = []
    for i, row in enumerate(rows):
        cells = [table_cell(c) for c in row] + [""] * (width - len(row))
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            lines.append("|" + "|".join(["---"] * width) + "|")
    return "\n".join(lines)
