"""How a chunk is cited: label, pages and link, the same for the CLI, /search, chat and MCP."""

from __future__ import annotations

from athenaeum.bundle import ChunkRecord
from athenaeum.retrieval import citations


def chunk(**overrides: object) -> ChunkRecord:
    fields: dict[str, object] = {
        "id": "manuals/guide.md#3",
        "doc_id": "manuals/guide.md",
        "ordinal": 3,
        "text": "Hold the reset button for ten seconds.",
        "title": "User guide",
        "source": "guide.pdf",
        "heading_path": ["Setup", "Reset"],
        "page_start": 4,
        "page_end": 4,
    }
    fields.update(overrides)
    return ChunkRecord(**fields)  # type: ignore[arg-type]


def test_label_falls_back_from_title_to_headings_to_source() -> None:
    assert chunk().label == "User guide"
    assert chunk(title=None).label == "Setup > Reset"
    assert chunk(title=None, heading_path=[]).label == "guide.pdf"


def test_pages() -> None:
    assert citations.pages(chunk()) == "p. 4"
    assert citations.pages(chunk(page_end=None)) == "p. 4"
    assert citations.pages(chunk(page_end=6)) == "pp. 4-6"
    assert citations.pages(chunk(page_start=None, page_end=None)) is None
    assert citations.where(chunk(page_end=6)) == "guide.pdf, pp. 4-6"
    assert citations.where(chunk(page_start=None, page_end=None)) == "guide.pdf"
    assert citations.title(chunk()) == "User guide (guide.pdf, p. 4)"
    assert citations.title(chunk(page_start=None, page_end=None)) == "User guide (guide.pdf)"


def test_link_escapes_the_chunk_id() -> None:
    assert citations.link("https://api.example/prod", "manuals/guide.md#3") == (
        "https://api.example/prod/chunks/manuals%2Fguide.md%233"
    )


def test_citation_line_and_heading_are_markdown() -> None:
    assert citations.citation_line(
        2, chunk(page_end=5), citations.link("https://api.example", "manuals/guide.md#3")
    ) == ("[2] User guide, guide.pdf, pp. 4-5: https://api.example/chunks/manuals%2Fguide.md%233")
    assert citations.heading(1, chunk()) == "**[1] User guide** (guide.pdf, p. 4)"
    # A title with markdown in it cannot open emphasis or a link that swallows the answer.
    odd = chunk(title="WARN Report*", source="warn_report [2016].pdf")
    assert citations.heading(1, odd) == r"**[1] WARN Report\*** (warn_report \[2016\].pdf, p. 4)"
    assert citations.citation_line(1, odd, "https://x/chunks/a").startswith(
        r"[1] WARN Report\*, warn_report \[2016\].pdf, p. 4: https://x/chunks/"
    )
