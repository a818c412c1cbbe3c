"""How a retrieved chunk is cited, the same everywhere: the CLI, /search, chat and MCP.

A citation names the chunk by its label (document title, else headings, else source file), its
pages, and a link: to the original file at the page where the server has one
(athenaeum.server.http.sources), else to the passage under the server's base URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from athenaeum.bundle.chunk import ChunkRecord

# What can open emphasis, code, a link or HTML mid-line. Underscores are left alone: inside a word
# (file_names_like_this) they are not emphasis, and escaping them costs tokens in every answer.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>])")


def pages(chunk: ChunkRecord) -> str | None:
    """Where the chunk is, as cited: its pages ("p. 3", "pp. 3-5"), or the place the format has
    instead ("slide 7", "sheet Budget!A1:F40", a section path "Chapter 3 > Methods"); None for a
    document without either."""
    return chunk.location or page_range(chunk.page_start, chunk.page_end)


def page_range(start: int | None, end: int | None) -> str | None:
    if start is None:
        return None
    if end in (None, start):
        return f"p. {start}"
    return f"pp. {start}-{end}"


def where(chunk: ChunkRecord) -> str:
    """The source file and where in it: "manual.pdf, pp. 3-5", "deck.pptx, slide 7"."""
    found = pages(chunk)
    return f"{chunk.source}, {found}" if found else chunk.source


def title(chunk: ChunkRecord) -> str:
    """The label with its file and pages, for lists of results: "User guide (guide.pdf, p. 3)"."""
    return f"{chunk.label} ({where(chunk)})"


def link(base_url: str, chunk_id: str) -> str:
    # Chunk ids contain "#" and "/" (doc path + ordinal); both must be escaped in a path segment.
    return f"{base_url}/chunks/{quote(chunk_id, safe='')}"


@dataclass(frozen=True)
class Source:
    """What one line of a Sources block cites: a document and a page range, which one or more
    of the cited chunks fall in."""

    chunk: ChunkRecord  # the chunk with the first page: the label, the file, the link's page
    first: int  # its index among the chunks cited
    page_start: int | None
    page_end: int | None
    members: tuple[int, ...]  # the indices of the chunks it cites, in rank order
    location: str | None = None  # a place other than pages: "slide 7", a section path

    def where(self) -> str:
        found = self.location or page_range(self.page_start, self.page_end)
        return f"{self.chunk.source}, {found}" if found else self.chunk.source


def sources(chunks: Sequence[ChunkRecord]) -> tuple[list[Source], list[int]]:
    """The sources of `chunks` (in rank order): one per document and page range, where the
    ranges of a document's chunks that overlap or touch are one range, so that no two lines say
    the same. Numbered by the best ranked chunk each cites; with, for each chunk, the number of
    its source."""
    by_doc: dict[str, list[int]] = {}
    for i, chunk in enumerate(chunks):
        by_doc.setdefault(chunk.doc_id, []).append(i)
    found: list[Source] = []
    for members in by_doc.values():
        # Chunks at a place other than pages (a slide, a sheet's cells, a section): one source
        # per place.
        located: dict[str, list[int]] = {}
        for i in members:
            if chunks[i].location:
                located.setdefault(chunks[i].location or "", []).append(i)
        for place, cited in located.items():
            first_chunk = chunks[cited[0]]
            found.append(
                Source(
                    first_chunk,
                    cited[0],
                    first_chunk.page_start,
                    first_chunk.page_end,
                    tuple(cited),
                    place,
                )
            )
        members = [i for i in members if not chunks[i].location]
        # A document without page numbers is one source, whichever of its chunks are cited.
        unpaged = [i for i in members if chunks[i].page_start is None]
        if unpaged:
            found.append(Source(chunks[unpaged[0]], unpaged[0], None, None, tuple(unpaged)))
        spans = sorted(
            (start, chunk.page_end or start, i)
            for i in members
            if (start := (chunk := chunks[i]).page_start) is not None
        )
        group: list[int] = []
        low = high = 0
        for start, end, i in [*spans, (0, 0, -1)]:  # the sentinel closes the last range
            if group and (i < 0 or start > high + 1):
                first = min(group, key=lambda j: (chunks[j].page_start or 0, j))
                found.append(Source(chunks[first], first, low, high, tuple(sorted(group))))
                group = []
            if i < 0:
                break
            if not group:
                low, high = start, end
            group.append(i)
            high = max(high, end)
    found.sort(key=lambda s: s.members[0])
    numbers = [0] * len(chunks)
    for n, source in enumerate(found, 1):
        for i in source.members:
            numbers[i] = n
    return found, numbers


def source_line(number: int, source: Source, url: str) -> str:
    """One numbered source line, as markdown: "[1] User guide, guide.pdf, pp. 3-5: https://…"."""
    name = escape_markdown(f"{source.chunk.label}, {source.where()}")
    return f"[{number}] {name}: {url}"


def heading(number: int, chunk: ChunkRecord) -> str:
    """A passage's heading, as markdown: "**[1] User guide** (p. 3)", the number its source's;
    the file is on the source line."""
    found = pages(chunk)
    label = f"**[{number}] {escape_markdown(chunk.label)}**"
    return f"{label} ({found})" if found else label


def escape_markdown(text: str) -> str:
    """`text` with the characters markdown would act on escaped: a title like "WARN Report*"
    must not open an emphasis that swallows the rest of the answer."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
