"""How a retrieved chunk is cited, the same everywhere: the CLI, /search, chat and MCP.

A citation names the chunk by its label (document title, else headings, else source file), its
pages, and a link to the passage under the server's base URL.
"""

from __future__ import annotations

from urllib.parse import quote

from athenaeum.bundle.chunk import ChunkRecord


def pages(chunk: ChunkRecord) -> str | None:
    """ "p. 3" or "pp. 3-5"; None for a chunk from a document without page numbers."""
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
    """The label with its pages, for lists of results: "User guide (p. 3)"."""
    found = pages(chunk)
    return f"{chunk.label} ({found})" if found else chunk.label


def link(base_url: str, chunk_id: str) -> str:
    # Chunk ids contain "#" and "/" (doc path + ordinal); both must be escaped in a path segment.
    return f"{base_url}/chunks/{quote(chunk_id, safe='')}"


def citation_line(number: int, chunk: ChunkRecord, base_url: str) -> str:
    """One numbered source line: "[1] User guide, guide.pdf, p. 3: https://…/chunks/…"."""
    return f"[{number}] {chunk.label}, {where(chunk)}: {link(base_url, chunk.id)}"
