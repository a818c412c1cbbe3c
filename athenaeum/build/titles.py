"""A converted document's title, as a reader would name it.

In order: the PDF's own title when it names the document (producers often leave a file name, a
tool's name or a placeholder there); else the most prominent text of the first page (the
largest type clearly above the body size, that is neither a running head or foot, nor a page
number, nor a section or contents line such as "1 Foo"), in any script; else the document's
first heading that names it; else a short capitalised caption opening the first page (a
typewritten transcript has no larger type) or the head line above it; the file name only as a
last resort. Every candidate is made plain text first: a title is shown in search results, chat
sources and the front matter, where markdown syntax is debris.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from athenaeum.build.sources import meaningful_title, readable_stem

# Title type is clearly larger than the body: less is a bold or OCR-jittered body line.
TITLE_SIZE_RATIO = 1.1
MAX_TITLE_LINES = 3
MAX_TITLE_CHARS = 200
MAX_CAPTION_WORDS = 12
# Lines of a caption read before giving up on finding one.
CAPTION_LOOKAHEAD = 4

_LETTER_RE = re.compile(r"[^\W\d_]")
_IMAGE_RE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(\s[^<>]*)?/?>")
_HEADING_MARK_RE = re.compile(r"^\s{0,3}#{1,6}\s+")
_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")
# Emphasis markers and footnote stars at a word's edge; snake_case keeps its underscores.
_EMPHASIS_RE = re.compile(r"(?<![^\W_])[*_~`]+|[*_~`]+(?![^\W_])|[†‡]+")
# A section or contents line: a section number, then a title-cased Latin word or a word in a
# script without case ("1 Foo", "2.3 Results", "II. Scope", "2-5 - <Persian>"), not a
# citation such as "14 CFR Part 39".
_SECTION_RE = re.compile(
    r"^(\d{1,2}([.\-]\d{1,2})*[.)]?|[IVX]{1,4}\.)\s+([-\u2013:]\s+)?([A-Z][a-z]|[^\W\d_A-Za-z])"
)
_PAGE_NUMBER_END_RE = re.compile(r"^\d{1,4}\s+|[.,]?\s+\d{1,4}$|\.$")
_CONTENTS_LEADER_RE = re.compile(r"(\.\s?){3,}\s*\d+$")
_PATH_RE = re.compile(r"^([A-Za-z]:)?[\\/]|^\S*[\\/]\S*$")
# One Latin word with a capital inside ("IntMetadata", "reportFinal"): an identifier.
_IDENTIFIER_RE = re.compile(r"[A-Za-z]*[a-z][A-Z][A-Za-z]*")


class TitleLine(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def size(self) -> float: ...


class TitleBlock(Protocol):
    @property
    def bbox(self) -> tuple[float, float, float, float]: ...
    @property
    def lines(self) -> Sequence[TitleLine]: ...


@dataclass(frozen=True)
class FirstPage:
    """What the title needs to know of the first page: its text blocks in reading order (line
    numbers already removed) and the document's body size and running heads."""

    blocks: Sequence[TitleBlock]
    width: float
    height: float
    body_size: float
    margin: float  # the fraction of the height that counts as top or bottom margin
    running: Collection[str]  # normalised running heads and feet (see margin_key)
    margin_key: Callable[[str], str]


def plain_title(text: str) -> str:
    """`text` without markdown syntax: heading marks, emphasis, escapes, links, tags."""
    text = _IMAGE_RE.sub("", text)
    text = _LINK_RE.sub(r"\1", text)
    text = _TAG_RE.sub(" ", text)
    text = _HEADING_MARK_RE.sub("", text)
    parts = _ESCAPE_RE.split(text)
    # split keeps each escaped character at odd positions: those stay, whatever they are
    text = "".join(p if i % 2 else _EMPHASIS_RE.sub("", p) for i, p in enumerate(parts))
    return " ".join(text.split())


def real_title(candidate: object, source_name: str) -> str | None:
    """`candidate` as plain text when it names the document; None for a file name, a path, a
    tool's default, an identifier, a section or a contents line."""
    title = meaningful_title(plain_title(str(candidate or "")), source_name)
    if title is None:
        return None
    if _PATH_RE.search(title) or _IDENTIFIER_RE.fullmatch(title):
        return None
    if _SECTION_RE.match(title) or _CONTENTS_LEADER_RE.search(title):
        return None
    if title.endswith(":"):  # a label such as "Summary:" introduces what follows
        return None
    return title


def document_title(
    metadata_title: object,
    first_page: FirstPage | None,
    headings: Iterable[str],
    source_name: str,
) -> str:
    title = real_title(metadata_title, source_name)
    if title:
        return title
    if first_page and (title := _prominent(first_page, source_name)):
        return title
    for heading in headings:
        if title := real_title(heading, source_name):
            return title
    if first_page and (title := _caption(first_page, source_name)):
        return title
    return readable_stem(source_name)


def _is_running(text: str, block: TitleBlock, page: FirstPage) -> bool:
    """Whether text at the top of the page is (part of) the running head of the other pages."""
    key = page.margin_key(text)
    return (
        block.bbox[1] < page.height * page.margin
        and len(key) >= 4
        and any(key in running for running in page.running)
    )


def _candidate_blocks(page: FirstPage) -> list[TitleBlock]:
    """The first page's blocks less its feet and running heads."""
    foot = page.height * (1 - page.margin)
    return [
        block
        for block in page.blocks
        if block.bbox[1] < foot
        and not _is_running(" ".join(x.text for x in block.lines), block, page)
    ]


def _prominent(page: FirstPage, source_name: str) -> str | None:
    blocks = _candidate_blocks(page)

    def size_of(line: TitleLine) -> float:
        return round(line.size * 2) / 2

    def eligible(line: TitleLine, block: TitleBlock) -> bool:
        return bool(_LETTER_RE.search(line.text)) and not _is_running(line.text, block, page)

    body = page.body_size

    sizes = sorted(
        {
            size_of(line)
            for block in blocks
            for line in block.lines
            if line.size >= body * TITLE_SIZE_RATIO and eligible(line, block)
        },
        reverse=True,
    )
    for size in sizes:
        for b, block in enumerate(blocks):
            # a title starts at its block's first line of its size ("2-5", "- Standards")
            first = next((i for i, x in enumerate(block.lines) if size_of(x) == size), None)
            if first is None or not any(eligible(x, block) for x in block.lines[first:]):
                continue
            title = real_title(_gather(blocks, b, first, size_of), source_name)
            if title:
                return title
    return None


def _gather(
    blocks: Sequence[TitleBlock], b: int, i: int, size_of: Callable[[TitleLine], float]
) -> str:
    """The title's lines from block b's line i on: the lines of the same size that follow it in
    its block, and in the blocks just below it."""
    size = size_of(blocks[b].lines[i])
    texts: list[str] = []
    bottom = blocks[b].bbox[1]
    for block in blocks[b:]:
        if texts and (block.bbox[1] - bottom > size or size_of(block.lines[0]) != size):
            break
        for line in block.lines[i if block is blocks[b] else 0 :]:
            if size_of(line) != size or len(texts) == MAX_TITLE_LINES:
                break
            texts.append(line.text)
        else:
            bottom = block.bbox[3]
            continue
        break
    title = _join(texts)
    return title if len(title) <= MAX_TITLE_CHARS else ""


def _join(texts: Sequence[str]) -> str:
    out = ""
    for text in texts:
        if out.endswith("-") and out[-2:-1].isalpha() and text[:1].islower():
            out = out[:-1] + text
        else:
            out = f"{out} {text}".strip()
    return out


def _caption(page: FirstPage, source_name: str) -> str | None:
    """A typewritten first page's caption: its first short, centred, all-capital line in the
    body area, else its head line, provided either reads as words."""
    band = page.height * page.margin
    body = [b for b in _candidate_blocks(page) if b.bbox[3] > band]
    for block in body[:CAPTION_LOOKAHEAD]:
        text = block.lines[0].text.strip()
        cased = [c for c in text if c.isalpha() and c.lower() != c.upper()]
        centred = abs((block.bbox[0] + block.bbox[2]) - page.width) < 0.2 * page.width
        if (
            len(block.lines) == 1
            and centred
            and cased
            and all(c.isupper() for c in cased)
            and len(text.split()) <= MAX_CAPTION_WORDS
            and _wordy(text)
            and (title := real_title(text, source_name))
        ):
            return title
    heads = [b for b in page.blocks if b.bbox[3] <= band]
    for block in heads[:1]:
        # a head line often carries the page number: "THE SIEGE OF VICKSBURG. 49"
        text = _PAGE_NUMBER_END_RE.sub("", " ".join(line.text for line in block.lines))
        if len(text.split()) <= MAX_CAPTION_WORDS and _wordy(text):
            return real_title(text, source_name)
    return None


def _wordy(text: str) -> bool:
    """Mostly letters: not a date, a number, a code or a row of dashes."""
    visible = [c for c in text if not c.isspace()]
    return bool(visible) and sum(c.isalpha() for c in visible) >= 0.6 * len(visible)
