"""Word, HTML and EPUB through `athenaeum convert`, and every real file of the shared formats
folder (SOURCES.md, section 4) converted or reported; the location markers they write become
the chunks' citations ("slide 7", "sheet Budget!A1:F40", a section path) and source links that
open a web page at its section."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from athenaeum.build.chunking import ChunkingParams, chunk_document, read_text_document
from athenaeum.build.convert import ConvertOptions, Status, convert
from athenaeum.build.sources import location_span, parse_markdown
from athenaeum.bundle import ChunkRecord
from athenaeum.cli.main import app
from athenaeum.retrieval import citations
from athenaeum.server.http.sources import WEB_PAGE_POLICY, page_charset, page_fragment
from tests.conftest import DATA_DIR

FORMATS = DATA_DIR / "formats"
PASSWORD = "Password1234_"  # the encrypted files' documented password (SOURCES.md)
BROKEN = {
    "corrupt-truncated-zip.docx": "damaged: not a readable ZIP container",
    "corrupt-truncated.pptx": "damaged: not a readable ZIP container",
}

Count = Callable[[str], int]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("formats")
    report = convert([FORMATS], out, ConvertOptions(passwords=["wrong", PASSWORD]), jobs=2)
    results = {r.source.name: r for r in report.results}
    texts = {
        name: parse_markdown(r.output.read_text("utf-8"))
        for name, r in results.items()
        if r.status is Status.CONVERTED
    }
    return {"results": results, "docs": texts, "out": out}


def _body(converted: dict[str, object], name: str) -> str:
    docs = converted["docs"]
    assert isinstance(docs, dict)
    return str(docs[name].body)


@pytest.mark.slow
def test_every_file_is_converted_or_reported_with_its_reason(
    converted: dict[str, object],
) -> None:
    results = converted["results"]
    assert isinstance(results, dict)
    assert len(results) == 29 == len(list(FORMATS.iterdir()))
    for name, result in results.items():
        if name in BROKEN:
            assert result.status is Status.FAILED and result.reason.startswith(BROKEN[name])
        else:
            assert result.status is Status.CONVERTED, (name, result.reason)
            assert result.pages > 0 or result.unit == "section", name
    units = {name: (r.unit, r.pages) for name, r in results.items()}
    assert units["slides-apache-performance-tuning-notes.pptx"] == ("slide", 46)  # 2 hidden
    assert units["budget-examples-ireland-twelve-sheets.xlsx"] == ("sheet", 12)
    assert units["book-alice-in-wonderland.epub"] == ("chapter", 11)
    assert units["manual-chapter13-trustee-handbook-large.docx"][1] > 200  # its headings
    # The front matter says what the file holds and how it is cited.
    docs = converted["docs"]
    assert isinstance(docs, dict)
    # Without a title of the file's own: the heading it opens with, else the file name; never
    # a sheet's name or a chapter heading from the middle.
    titles = {name: doc.metadata["title"] for name, doc in docs.items()}
    assert titles["slides-apache-performance-tuning-notes.pptx"] == "Apache Performance Tuning"
    assert titles["tax-rates-ireland-three-sheets.xlsx"] == "Tax rates ireland three sheets"
    assert titles["statutes-portuguese-golf-association.docx"] == (
        "Statutes portuguese golf association"
    )
    deck = docs["slides-apache-performance-tuning-notes.pptx"].metadata
    assert deck["slides"] == 46 and deck["source"] == "slides-apache-performance-tuning-notes.pptx"
    assert len(deck["sha256"]) == 64 and "cite_by" not in deck
    book = docs["book-alice-in-wonderland.epub"].metadata
    assert book["title"] == "Alice's Adventures in Wonderland" and book["cite_by"] == "section"
    # Each format has its own output, so a document kept as .docx and .xlsx is two documents.
    out = converted["out"]
    assert isinstance(out, Path)
    assert (out / "encrypted-agile-password.docx.md").is_file()
    assert (out / "encrypted-agile-password.xlsx.md").is_file()


def test_word_keeps_accepted_changes_footnotes_tables_and_bold_titles(
    converted: dict[str, object],
) -> None:
    tracked = _body(converted, "tracked-changes-insertions-deletions.docx")
    assert "March 2009: Apache Tika Release" in tracked  # an insertion, accepted
    assert "Maang Tika" not in tracked and "DragonLance" not in tracked  # deletions, gone
    form = _body(converted, "form-visa-application-merged-cells-footnotes.docx")
    notes = form.split("## Notes", 1)
    assert len(notes) == 2 and "testdoc test phrase" in notes[1]  # the footnote, kept
    report = _body(converted, "report-cancer-statistics-tables.docx")
    # A title row across the table is its caption; the column names are its header.
    caption = "Number of New Cases and Deaths Per 100,000 People (All Races, Females), Age-Adjusted"
    header = "| Year | New Cases - SEER 9 | New Cases - SEER 13 | Deaths - US |"
    assert f"{caption}\n\n{header}\n|---|---|---|---|\n| 1975 | 105.1 | - | 31.4 |" in report
    statutes = _body(converted, "statutes-portuguese-golf-association.docx")
    assert re.search(r"^#{1,6} CAPÍTULO PRIMEIRO$", statutes, re.MULTILINE)
    assert "O CNIG é uma associação de direito privado sem fins lucrativos." in statutes
    secret = _body(converted, "encrypted-agile-password.docx")
    assert "Lorem ipsum" in secret


def test_a_web_page_is_its_article_with_anchored_sections(converted: dict[str, object]) -> None:
    bbc = _body(converted, "news-bbc-gun-laws-boilerplate.html")
    assert "President Barack Obama has admitted that his failure to pass" in bbc
    for boilerplate in ("Accessibility links", "BBC navigation", "Share this page", "Related"):
        assert boilerplate not in bbc
    docs = converted["docs"]
    assert isinstance(docs, dict)
    assert (
        docs["news-bbc-gun-laws-boilerplate.html"].metadata["title"]
        == "Obama admits US gun laws are his 'biggest frustration'"
    )
    wiki = _body(converted, "article-wikipedia-hermitian-matrix.html")
    assert "<!-- anchor: Applications -->\n\n## Applications" in wiki
    assert "[edit]" not in wiki and "Jump to navigation" not in wiki
    assert r"$A{\text{ Hermitian}}\quad \iff \quad a_{ij}={\overline {a_{ji}}}$" in wiki
    sre = _body(converted, "book-chapter-google-sre.html")
    assert "<!-- anchor: definitions-2ksZhN -->\n\n## Definitions" in sre
    assert "**White-box monitoring**" in sre
    assert "Eliminating Toil" not in sre  # the book's table of contents is navigation
    # A draft typed into <pre> pages: its sections are headings with their anchors, its
    # bullets a list, its running heads and page footers gone.
    draft = _body(converted, "spec-ietf-remotestorage-draft.html")
    assert "<!-- anchor: section-3 -->\n\n## 3. Storage model" in draft
    assert "- item name\n- item type (folder or document)\n- current version" in draft
    assert "[Page 7]" not in draft
    fable = _body(converted, "story-japanese-aesop-fable.html")
    assert "肉をくわえたイヌが、橋を渡っていました。" in fable


def test_a_book_reads_in_spine_order_with_its_chapters(converted: dict[str, object]) -> None:
    alice = _body(converted, "book-alice-in-wonderland.epub")
    chapters = re.findall(r"^## (.+)$", alice, re.MULTILINE)
    assert chapters[chapters.index("Down The Rabbit-Hole") :][:3] == [
        "Down The Rabbit-Hole",
        "The Pool Of Tears",
        "A Caucus-Race And A Long Tale",
    ]
    assert "Alice was beginning to get very tired of sitting by her sister" in alice
    poem = _body(converted, "poem-the-waste-land.epub")
    assert "April is the cruellest month, breeding" in poem
    winter = _body(converted, "book-winter-sports-switzerland.epub")
    assert re.search(r"^## CHAPTER I THE SUN-SEEKER$", winter, re.MULTILINE)


def test_a_document_that_unpacks_too_large_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    from athenaeum.build import convert as convert_module

    # The limit is 1 GiB; at 8 MiB the test writes a part 8 MiB of zeros makes 8 KiB of.
    monkeypatch.setattr(convert_module, "MAX_UNPACKED_BYTES", 8 << 20)
    bomb = tmp_path / "in" / "bomb.docx"
    bomb.parent.mkdir()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("word/document.xml", "<w/>")
        package.writestr("word/media/zeros.bin", bytes(9 << 20))
    assert bomb.stat().st_size < 64 << 10
    [result] = convert([bomb.parent], tmp_path / "out").results
    assert result.status is Status.FAILED
    assert result.reason == "too large: it unpacks to 9 MiB, more than the limit of 8 MiB"


def test_encrypted_office_files_need_the_password(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("encrypted-agile-password.xlsx", "encrypted-agile-password.docx"):
        (folder / name).write_bytes((FORMATS / name).read_bytes())
    result = CliRunner().invoke(app, ["convert", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert result.output.count("encrypted: needs a password (give it with --password)") == 2
    result = CliRunner().invoke(
        app, ["convert", str(folder), "--out", str(tmp_path / "out"), "--password", "nope"]
    )
    assert result.output.count("none of the given passwords opens it") == 2
    result = CliRunner().invoke(
        app, ["convert", str(folder), "--out", str(tmp_path / "out"), "--password", PASSWORD]
    )
    assert result.exit_code == 0, result.output
    sheet = (tmp_path / "out" / "encrypted-agile-password.xlsx.md").read_text("utf-8")
    assert "lorem" in sheet and "ipsum" in sheet


def _chunks(
    converted: dict[str, object], name: str, count: Count, max_tokens: int = 256
) -> list[ChunkRecord]:
    out = converted["out"]
    assert isinstance(out, Path)
    document = read_text_document(out / f"{name}.md", f"{name}.md")
    return chunk_document(document, count, ChunkingParams(max_tokens=max_tokens))


def test_chunks_are_cited_by_slide_sheet_range_and_section(
    converted: dict[str, object], minilm_count_tokens: Count
) -> None:
    deck = _chunks(converted, "slides-apache-performance-tuning-notes.pptx", minilm_count_tokens)
    assert all(re.fullmatch(r"slides? \d+(-\d+)?", c.location or "") for c in deck)
    workers = next(c for c in deck if "Apache 2 Worker: threads * processes" in c.text)
    assert workers.location == "slide 24" and workers.heading_path == ["MaxClients"]
    assert workers.page_start == 24  # the slide number, for the pages filter too
    assert citations.where(workers) == "slides-apache-performance-tuning-notes.pptx, slide 24"
    assert 13 not in {c.page_start for c in deck}  # a hidden slide is not in the library
    sheets = _chunks(converted, "tax-rates-ireland-three-sheets.xlsx", minilm_count_tokens)
    ranges = [c.location or "" for c in sheets]
    assert all(re.fullmatch(r"sheets? \S+![A-Z]+\d+:[A-Z]+\d+.*", r) for r in ranges), ranges
    book = _chunks(converted, "book-alice-in-wonderland.epub", minilm_count_tokens)
    tea = next(c for c in book if "Why is a raven like a writing-desk?" in c.text)
    assert tea.location == " > ".join(tea.heading_path) and "A Mad Tea-Party" in tea.location
    assert citations.heading(1, tea).endswith(f"({tea.location})")
    page = _chunks(converted, "article-wikipedia-hermitian-matrix.html", minilm_count_tokens)
    applications = next(c for c in page if c.heading_path[-1:] == ["Applications"])
    assert applications.anchor == "Applications"
    assert page_fragment("hermitian.html", None, applications.anchor) == "#Applications"
    assert page_fragment("deck.pptx", 3, None) == "" and page_fragment("a.PDF", 3) == "#page=3"
    # A record writes its location and anchor, and reads them back.
    assert ChunkRecord.from_dict(__import__("json").loads(applications.to_json())) == applications


def test_location_spans_and_sources() -> None:
    assert location_span("slide 7", "slide 9") == "slides 7-9"
    assert location_span("sheet Budget!A1:F50", "sheet Budget!A51:F80") == "sheet Budget!A1:F80"
    assert location_span("sheet 'Q 1'!A1:B2", "sheet Costs!A1:C3") == (
        "sheets 'Q 1'!A1:B2 to Costs!A1:C3"
    )
    assert location_span(None, None) is None and location_span("slide 2", None) == "slide 2"

    def chunk(i: int, location: str | None, page: int | None) -> ChunkRecord:
        return ChunkRecord(
            f"c{i}", "deck.pptx.md", i, "text", "Deck", "deck.pptx", [], page, page, location
        )

    found, numbers = citations.sources(
        [chunk(0, "slide 7", 7), chunk(1, "slide 2", 2), chunk(2, "slide 7", 7)]
    )
    assert [s.where() for s in found] == ["deck.pptx, slide 7", "deck.pptx, slide 2"]
    assert numbers == [1, 2, 1]


def test_a_web_page_is_served_sandboxed_in_its_own_charset(tmp_path: Path) -> None:
    # A library's page never runs as the server's own: no scripts, forms or requests.
    assert WEB_PAGE_POLICY.startswith("sandbox;") and "default-src 'none'" in WEB_PAGE_POLICY
    pages = {
        "declared.html": '<meta charset="Shift_JIS"><p>欲張りなイヌ</p>'.encode("shift_jis"),
        "legacy.html": "<p>Caf\u00e9 cr\u00e8me</p>".encode("cp1252"),
        "plain.html": "<p>Café</p>".encode(),
        "feed.xhtml": b'<?xml version="1.0" encoding="ISO-8859-1"?><html/>',
    }
    for name, data in pages.items():
        (tmp_path / name).write_bytes(data)
    assert {name: page_charset(tmp_path / name) for name in pages} == {
        "declared.html": "shift_jis",
        "legacy.html": "windows-1252",
        "plain.html": "utf-8",
        "feed.xhtml": "iso-8859-1",
    }
