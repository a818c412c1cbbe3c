"""The converted-markdown format shared by `convert` (writer) and `index` (reader).

A converted file is YAML front matter followed by markdown in which every page starts with a
marker line `<!-- page: N -->` (1-based). Plain markdown without front matter or markers is
also accepted by the reader: it is then one "page" with no page numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePath
from typing import Any

import yaml

from athenaeum.bundle.format import CONVERSION_FIELDS, SOURCE_PATH_FIELD
from athenaeum.bundle.manifest import SourceFileInfo

PAGE_MARKER_RE = re.compile(r"^<!-- page: (\d+) -->[ \t]*$", re.MULTILINE)
# Where a document's text is: `<!-- page: 3 -->`, `<!-- slide: 7 -->`, `<!-- sheet: 2
# Budget!A1:F40 -->` (the sheet's number, then the cells that follow as a range).
LOCATION_MARKER_RE = re.compile(r"^<!-- (page|slide|sheet): (\d+)(?: (.*?))? -->[ \t]*$")
# The section that follows can be opened at `#anchor` in the original (a web page).
ANCHOR_MARKER_RE = re.compile(r"^<!-- anchor: (.*?) -->[ \t]*$")
_RANGE_RE = re.compile(
    r"^(?P<sheet>.+)!\$?(?P<start>[A-Z]{1,3}\$?\d+)(?::\$?(?P<end>[A-Z]{1,3}\$?\d+))?$"
)
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*(?:\n|\Z)", re.DOTALL)


def page_marker(page_number: int) -> str:
    return f"<!-- page: {page_number} -->"


def location(unit: str, number: int, label: str | None) -> str | None:
    """How a location marker is cited: "slide 7", "sheet Budget!A1:F40"; None for a page,
    which citations give as a page range from the chunk's page numbers."""
    if unit == "slide":
        return f"slide {number}"
    if unit == "sheet":
        return f"sheet {label}" if label else f"sheet {number}"
    return None


def location_span(first: str | None, last: str | None) -> str | None:
    """The location of text that runs from `first` to `last`: "slides 7-8", the sheet's rows
    as one range ("sheet Budget!A1:F80"), or both ends."""
    if first is None or last is None or first == last:
        return first or last
    if first.startswith("slide ") and last.startswith("slide "):
        return f"slides {first[6:]}-{last[6:]}"
    if first.startswith("sheet ") and last.startswith("sheet "):
        a, b = _RANGE_RE.match(first[6:]), _RANGE_RE.match(last[6:])
        if a and b and a["sheet"] == b["sheet"]:
            return f"sheet {a['sheet']}!{a['start']}:{b['end'] or b['start']}"
        return f"sheets {first[6:]} to {last[6:]}"
    return f"{first} to {last}"


@dataclass
class MarkdownDocument:
    metadata: dict[str, Any] = field(default_factory=dict)
    body: str = ""

    @property
    def title(self) -> str | None:
        title = self.metadata.get("title")
        return str(title) if title else None


def parse_markdown(text: str) -> MarkdownDocument:
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        return MarkdownDocument({}, text)
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return MarkdownDocument({}, text)
    if not isinstance(meta, dict):
        return MarkdownDocument({}, text)
    return MarkdownDocument(meta, text[match.end() :])


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def document_metadata(front_matter: dict[str, Any]) -> dict[str, Any]:
    """The front matter's own fields, as JSON values: scalars, and lists of scalars; dates become
    ISO text, and anything nested is left out (filters match scalars)."""
    kept: dict[str, Any] = {}
    for key, value in front_matter.items():
        if not isinstance(key, str) or key in CONVERSION_FIELDS:
            continue
        items = value if isinstance(value, list) else [value]
        plain = [_json_scalar(v) for v in items]
        if not plain or any(v is None for v in plain):
            continue
        kept[key] = plain if isinstance(value, list) else plain[0]
    return kept


def _json_scalar(value: object) -> str | int | float | bool | None:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, date):  # YAML dates (datetime is a date too)
        return value.isoformat()
    return None


def source_file(front_matter: dict[str, Any]) -> SourceFileInfo | None:
    """The original file as `convert` recorded it: its sha256 and, when recorded, where it was.
    None when the front matter names no source with a well-formed sha256."""
    digest = str(front_matter.get("sha256") or "").lower()
    if not front_matter.get("source") or not _SHA256.match(digest):
        return None
    location = front_matter.get(SOURCE_PATH_FIELD)
    return SourceFileInfo(
        location=str(location) if isinstance(location, str) and location else None,
        sha256=digest,
    )


def render_markdown(metadata: dict[str, Any], body: str) -> str:
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{body.rstrip()}\n"


# --- titles ----------------------------------------------------------------------------------

# What PDF producers leave in the title field that names no document: file names, tool names
# and placeholders.
_FILE_EXTENSION = re.compile(
    r"\.(exe|docx?|dotx?|pdf|pptx?|xlsx?|rtf|txt|odt|odp|indd|qxd|pub|tiff?|jpe?g|png|html?)$",
    re.IGNORECASE,
)
_TOOL_PREFIX = re.compile(
    r"^(microsoft (word|powerpoint|excel)\b|powerpoint presentation\b|untitled\b)", re.IGNORECASE
)
_PLACEHOLDER_TITLES = frozenset(
    {
        "document",
        "title",
        "slide 1",
        "contents",
        "table of contents",
        "no title",
        "presentation",
        "(anonymous)",
        "anonymous",
        "none",
        "null",
        "unknown",
    }
)
_SEPARATORS = re.compile(r"[\s_\-.]+")
# One Latin "word" of letters, digits, underscores, dots and dashes: a file name or an id.
_ID = re.compile(r"[A-Za-z0-9_.\-]+")


def meaningful_title(candidate: object, source_name: str) -> str | None:
    """`candidate` with its whitespace normalised, or None when it names no document: empty or
    tiny, a file name (its own or any with an extension), a tool's default, a placeholder, or an
    id (one Latin word with underscores or digits)."""
    title = " ".join(str(candidate or "").split())
    if len(title) < 3:
        return None
    lowered = title.lower()
    if lowered in _PLACEHOLDER_TITLES or _TOOL_PREFIX.match(title) or _FILE_EXTENSION.search(title):
        return None
    if _ID.fullmatch(title) and ("_" in title or any(c.isdigit() for c in title)):
        return None
    stem = PurePath(source_name).stem
    if _SEPARATORS.sub(" ", lowered).strip() == _SEPARATORS.sub(" ", stem.lower()).strip():
        return None
    return title


def readable_stem(source_name: str) -> str:
    """A file name made readable, for a document without a title: "scotus-transcript_p1.pdf"
    becomes "Scotus transcript p1"."""
    words = _SEPARATORS.sub(" ", PurePath(source_name).stem).strip()
    if not words:
        return source_name
    return words[0].upper() + words[1:] if words.islower() else words
