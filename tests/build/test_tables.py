"""Tables on real pages: a table over several pages, rows without rules between them, a
caption beside a table, and a table the chunker cuts under its real header."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pymupdf
import pytest

from athenaeum.build.chunking import ChunkingParams, SourceDocument, chunk_document
from athenaeum.build.convert import ConvertOptions, Job, convert_pdf
from athenaeum.build.sources import parse_markdown
from tests.conftest import DATA_DIR

PDFS = DATA_DIR / "pdfs"
WARN = PDFS / "WARN-Report-for-7-1-2015-to-03-25-2016.pdf"
WARN_HEADER = "| Notice Date | Effective | Received | Company | City | No. Of | Layoff/Closure |"


def _convert_pages(tmp: Path, source: Path, pages: list[int]) -> str:
    """Convert only the given pages (0-based) of a real PDF: the tests stay fast."""
    part = tmp / f"{source.stem}-part.pdf"
    with pymupdf.open(source) as doc:
        doc.select(pages)
        doc.save(part)
    out = tmp / f"{source.stem}.md"
    result = convert_pdf(Job(part, out, part.name), ConvertOptions(overwrite=True))
    assert result.reason == ""
    return parse_markdown(out.read_text("utf-8")).body


@pytest.fixture(scope="module")
def warn(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Pages 8 to 10 of the report: page 9 is where Symantec's notice opened every page part.
    return _convert_pages(tmp_path_factory.mktemp("warn"), WARN, [0, 8, 9])


def _tables(markdown: str) -> list[list[str]]:
    tables: list[list[str]] = []
    previous = ""
    for line in markdown.split("\n"):
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(line)
        previous = line
    return tables


def test_a_continued_table_keeps_its_real_header_on_every_page(warn: str) -> None:
    parts = warn.split("<!-- page: ")[1:]
    assert [p.split(" ", 1)[0] for p in parts] == ["1", "2", "3"]  # every page keeps its marker
    for part in parts:
        (table,) = _tables(part)
        assert table[0] == WARN_HEADER  # never a data row promoted to a header
        assert table[1].startswith("|---|")
        assert all(row != WARN_HEADER for row in table[2:])  # and never twice
        assert len(table) > 30
    # Symantec's row of page 9 (the second page here) is a data row, once.
    symantec = [line for line in warn.split("\n") if "11/30/2015 | 12/04/2015" in line]
    assert symantec == [
        "| 11/30/2015 | 12/04/2015 | 12/02/2015 | Symantec Corporation | Mountain View | 44 "
        "| Layoff Permanent |"
    ]


def test_the_chunker_cuts_a_long_table_under_its_real_header(
    warn: str, minilm_count_tokens: Callable[[str], int]
) -> None:
    doc = SourceDocument("warn.md", "warn.pdf", "WARN", warn, "0" * 64, "markdown")
    chunks = chunk_document(doc, minilm_count_tokens, ChunkingParams(254, 32, False))
    rows = [line for line in warn.split("\n") if line.startswith("| ") and line != WARN_HEADER]
    seen: list[str] = []
    pages: set[int] = set()
    for chunk in chunks:
        lines = chunk.text.split("\n")
        if not any(line.startswith("| ") for line in lines):
            continue
        start = next(i for i, line in enumerate(lines) if line.startswith("| "))
        assert lines[start] == WARN_HEADER
        seen.extend(line for line in lines[start + 2 :] if line.startswith("| "))
        assert chunk.page_start is not None and chunk.page_end is not None
        assert chunk.page_end - chunk.page_start <= 1
        pages.update(range(chunk.page_start, chunk.page_end + 1))
    assert seen == rows  # every row once, in order: the parts were taken as one table
    assert pages == {1, 2, 3}
    # A chunk on the second page cites it.
    (symantec,) = [c for c in chunks if "11/30/2015 | 12/04/2015" in c.text]
    assert symantec.page_start <= 2 <= symantec.page_end  # type: ignore[operator]


def test_rows_without_rules_between_them_stay_rows(tmp_path: Path) -> None:
    body = _convert_pages(tmp_path, PDFS / "nics-background-checks-2015-11.pdf", [0])
    lines = body.split("\n")
    texas = [line for line in lines if line.startswith("| Texas |")]
    assert texas and texas[0].startswith("| Texas | 21,550 | 56,941 | 51,670 |")
    for state in ("Tennessee", "Utah", "Vermont", "Virgin Islands", "Alabama", "Wyoming"):
        assert sum(line.startswith(f"| {state} |") for line in lines) == 1, state
    assert not any("Tennessee Texas" in line for line in lines)
    # The title above the grid and the notes below it are text, not rows.
    (table,) = _tables(body)
    assert not any("NOTES" in row or "Background Checks" in row for row in table)
    assert "NOTES" in body


def test_an_unruled_table_is_found_and_its_caption_stays_out(tmp_path: Path) -> None:
    body = _convert_pages(tmp_path, PDFS / "multicolumn.pdf", [2])
    (table,) = _tables(body)
    header = "| Country | Population (millions) | Area (km2) | Capital | Official Language |"
    assert table[0] == header
    assert "| Belgium | 11.5 | 30,689 | Brussels | Dutch, French, German |" in table
    assert not any("Table 1" in row for row in table)
    assert "Table 1: EU Countries Information" in body


def test_prose_lists_and_line_numbers_are_not_tables(tmp_path: Path) -> None:
    # Prose in two columns; a line-numbered transcript; a numbered agenda.
    for name in ("multicolumn.pdf", "scotus-transcript-p1.pdf", "cupertino_usd_4-6-16.pdf"):
        body = _convert_pages(tmp_path, PDFS / name, [0])
        assert len(body) > 500 and not _tables(body), name


def test_a_page_printed_sideways_is_read_upright(tmp_path: Path) -> None:
    # The whole page is turned a quarter: every line runs up the page.
    body = _convert_pages(tmp_path, PDFS / "senate-expenditures.pdf", [0])
    (table,) = _tables(body)
    # The boxed header band and the unruled body under it are one table.
    assert table[0] == "|  | PAYEE NAME | OBLIGATION/SERVICE DATES |  | DESCRIPTION | AMOUNT ($) |"
    assert table[2] == "|  |  | START | END |  |  |"
    assert "|  | BAIN, J MATTHEW |  |  | DISTRICT DIRECTOR | 37,499.96 |" in table
    # A description wrapped onto a second line stays in its row, the last row's too.
    assert (
        "| 9 | CITIBANK - TRAVEL CBA CARD | 03/04/2019 | 03/06/2019 | STAFF TRANSPORTATION "
        "AIRFARE FOR E JOHNSON KANSAS CITY TO WASHINGTON DC AND RETURN | 920.68 |"
    ) in table
    assert table[-1].endswith("FOR C WEIHS WASHINGTON DC TO SPRINGFIELD AND RETURN | 411.49 |")
    assert len(table) == 2 + 1 + 10 + 22
    assert "AIRFARE" not in body.replace("\n".join(table), "")


def test_words_running_up_the_margin_are_not_cells(tmp_path: Path) -> None:
    # Federal Register pages carry a sideways stamp in the margin; beside a few short lines of
    # text it once made a table of them.
    body = _convert_pages(tmp_path, PDFS / "federal-register-2020-17221.pdf", [8, 14])
    assert not _tables(body)
    assert "replace the existing Runaway Stabilizer" in body
    assert "Issued on August 3, 2020." in body


def test_a_label_on_its_own_line_at_the_rows_spacing_is_a_row(tmp_path: Path) -> None:
    # A ballot's office titles sit on lines of their own, over the candidates' rows, at the
    # same spacing as the rows: not wrapped text of the row above.
    body = _convert_pages(tmp_path, PDFS / "la-precinct-bulletin-2014-p1.pdf", [0])
    rows = [line for table in _tables(body) for line in table]
    assert "| CONTROLLER |  |  |  |  |  |" in rows
    assert not any("GRIEGO" in row and "CONTROLLER" in row for row in rows)


def test_a_header_set_on_its_side_reads_in_its_own_direction(tmp_path: Path) -> None:
    # Column headers run up their ruled cells: each reads as written, not bottom line first.
    source = DATA_DIR / "pdf-groundtruth" / "docling" / "redp5110_sampled.pdf"
    body = _convert_pages(tmp_path, source, [8])
    (table,) = _tables(body)
    assert table[0] == (
        "| User action | *JOBCTL | QIBM_DB_SECADM | QIBM_DB_SQLADM | QIBM_DB_SYSMON "
        "| No Authority |"
    )
    assert "| Visual Explain within Run SQL scripts | X |  | X | X | X |" in table


def test_plots_and_chart_legends_are_not_tables(tmp_path: Path) -> None:
    # A page of function plots (axes, ticks, curves) and a pie chart's legend: their labels
    # line up like cells, but the strokes around them are a drawing's.
    plots = _convert_pages(tmp_path, PDFS / "GeoTopo-komprimiert.pdf", [34])
    assert not _tables(plots)
    assert "(c) Sinus und Kosinus haben keine gemeinsame Nullstelle" in plots
    legend = _convert_pages(tmp_path, PDFS / "chelsea_pdta.pdf", [20])
    assert not any("District 1" in row for table in _tables(legend) for row in table)
    assert "District 1" in legend


TABLES = DATA_DIR / "tables" / "pdfs"


def test_cells_drawn_over_several_rows_and_double_rules(tmp_path: Path) -> None:
    # Indicators and their figures drawn as one cell over five rows, each line level with a
    # row of the next column group: one row per indicator.
    health = _convert_pages(tmp_path, TABLES / "camelot-district-health-indicators.pdf", [0])
    rows = [row for table in _tables(health) for row in table]
    assert any(
        row.startswith("| Children age 6-9 months receiving solid/semi-solid food")
        and "| 78.6 | 75.0 |" in row
        and row.endswith("| 85.9 | 89.3 |")
        for row in rows
    )
    # Columns between the two lines of double rules are neither columns nor where text goes.
    outbreaks = _convert_pages(tmp_path, TABLES / "camelot-disease-outbreaks-two-tables.pdf", [0])
    second = _tables(outbreaks)[-1]
    assert all(" |  | " not in row.split("Under")[1] for row in second if "Under" in row)
    bihar = next(row for row in second if "| Bihar |" in row)
    assert bihar.startswith("| 1 | Bihar | Madhubani | xxi. Acute Diarrhoeal Disease | 69 | 0 |")
    assert "Indra Mandal tola, SC Sugapatti, PHC Phulparas" in bihar


def test_row_labels_left_of_the_grid_and_headers_on_their_side(tmp_path: Path) -> None:
    # Township names stand left of the ruled grid, without rules; candidates' names run up
    # their header cells.
    body = _convert_pages(tmp_path, TABLES / "camelot-election-vertical-headers.pdf", [0])
    (table,) = _tables(body)
    assert any(row.startswith("| Alcona | 963 | 439 | 55 | 26 | 47 | 164 |") for row in table)
    assert any("| Brian Calley | Patrick Colbeck | Jim Hines |" in row for row in table)
