"""How a retrieved chunk is cited, the same everywhere: the CLI, /search, chat and MCP.

A citation names the chunk by its label (document title, else headings, else source file), its
pages, and a link: to the original file at the page where the server has one
(athenaeum.server.http.sources), else to the passage under the server's base URL.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from athenaeum.bundle.chunk import ChunkRecord

# What can open emphasis, code, a link or HTML mid-line. Underscores are left alone: inside a word
# (file_names_like_this) they are not emphasis, and escaping them costs tokens in every answer.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>])")


def pages(chunk: ChunkRecord) -> str | None:
    """The pages as cited, "p. 3" or "pp. 3-5"; None for a document without page numbers."""
    if chunk.page_start is None:
        return None
    if chunk.page_end in (None, chunk.page_start):
        return f"p. {chunk.page_start}"
    return f"pp. {chunk.page_start}-{chunk.page_end}"


def where(chunk: ChunkRecord) -> str:
    """The source file and pages: "manual.pdf, pp. 3-5"."""
    found = pages(chunk)
    return f"{chunk.source}, {found}" if found else chunk.source


def title(chunk: ChunkRecord) -> str:
    """The label with its file and pages, for lists of results: "User guide (guide.pdf, p. 3)"."""
    return f"{chunk.label} ({where(chunk)})"


def link(base_url: str, chunk_id: str) -> str:
    # Chunk ids contain "#" and "/" (doc path + ordinal); both must be escaped in a path segment.
    return f"{base_url}/chunks/{quote(chunk_id, safe='')}"


def citation_line(number: int, chunk: ChunkRecord, url: str) -> str:
    """One numbered source line, as markdown: "[1] User guide, guide.pdf, p. 3: https://…"."""
    name = escape_markdown(f"{chunk.label}, {where(chunk)}")
    return f"[{number}] {name}: {url}"


def heading(number: int, chunk: ChunkRecord) -> str:
    """A passage's numbered heading, as markdown: "**[1] User guide** (guide.pdf, p. 3)"."""
    return f"**[{number}] {escape_markdown(chunk.label)}** ({escape_markdown(where(chunk))})"


def escape_markdown(text: str) -> str:
    """`text` with the characters markdown would act on escaped: a title like "WARN Report*"
    must not open an emphasis that swallows the rest of the answer."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
