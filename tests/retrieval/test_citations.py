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


def test_source_line_and_heading_are_markdown() -> None:
    [source], _ = citations.sources([chunk(page_end=5)])
    link = citations.link("https://api.example", "manuals/guide.md#3")
    assert citations.source_line(2, source, link) == (
        "[2] User guide, guide.pdf, pp. 4-5: https://api.example/chunks/manuals%2Fguide.md%233"
    )
    # The heading names the passage and its pages; the file is on its source line.
    assert citations.heading(1, chunk()) == "**[1] User guide** (p. 4)"
    assert citations.heading(1, chunk(page_start=None, page_end=None)) == "**[1] User guide**"
    # A title with markdown in it cannot open emphasis or a link that swallows the answer.
    odd = chunk(title="WARN Report*", source="warn_report [2016].pdf")
    assert citations.heading(1, odd) == r"**[1] WARN Report\*** (p. 4)"
    [source], _ = citations.sources([odd])
    assert citations.source_line(1, source, "https://x/chunks/a").startswith(
        r"[1] WARN Report\*, warn_report \[2016\].pdf, p. 4: https://x/chunks/"
    )


def test_sources_are_one_per_document_and_page_range() -> None:
    cited = [
        chunk(id="g#1", page_start=4, page_end=4),
        chunk(id="m#1", doc_id="memo.md", source="memo.pdf", page_start=1, page_end=1),
        chunk(id="g#2", page_start=4, page_end=4),  # the same page: the same source
        chunk(id="g#3", page_start=5, page_end=6),  # touches it: one range, pp. 3-6
        chunk(id="g#0", page_start=3, page_end=3),
        chunk(id="g#9", page_start=9, page_end=9),  # apart: a source of its own
        chunk(id="n#1", doc_id="notes.md", source="notes.md", page_start=None, page_end=None),
        chunk(id="n#2", doc_id="notes.md", source="notes.md", page_start=None, page_end=None),
    ]
    found, numbers = citations.sources(cited)
    assert [(s.chunk.id, s.where(), s.members) for s in found] == [
        ("g#0", "guide.pdf, pp. 3-6", (0, 2, 3, 4)),  # its link opens the first page
        ("m#1", "memo.pdf, p. 1", (1,)),
        ("g#9", "guide.pdf, p. 9", (5,)),
        ("n#1", "notes.md", (6, 7)),
    ]
    assert numbers == [1, 2, 1, 1, 1, 3, 4, 4]
    assert [s.first for s in found] == [4, 1, 5, 6]
    assert citations.sources([]) == ([], [])
