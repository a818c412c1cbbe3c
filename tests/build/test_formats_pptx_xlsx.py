"""The PowerPoint and Excel readers on the real decks and workbooks of the shared data
(SOURCES.md, section 4): slide numbers, titles, speaker notes, hidden slides and sheets, tables
with merged cells, values as Excel shows them, and files that cannot be read."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable
from datetime import date
from functools import cache
from pathlib import Path

import openpyxl
import pytest

from athenaeum.build.formats import Converted, FormatError
from athenaeum.build.formats.pptx import read_pptx
from athenaeum.build.formats.xlsx import read_xlsx, sheet_reference
from tests.conftest import DATA_DIR

FORMATS = DATA_DIR / "formats"
APACHE = FORMATS / "slides-apache-performance-tuning-notes.pptx"
MERGED = FORMATS / "slides-table-merged-cells.pptx"
JAPANESE = FORMATS / "slide-japanese-gothic-unicode.pptx"
COMMENTS = FORMATS / "slides-water-finance-with-comments.pptx"
EVALUATION = FORMATS / "slides-evaluation-communication-notes.pptx"
TAX = FORMATS / "tax-rates-ireland-three-sheets.xlsx"
BUDGET = FORMATS / "budget-examples-ireland-twelve-sheets.xlsx"
RTL = FORMATS / "rtl-arabic-hebrew-sheets.xlsx"
FINANCE = FORMATS / "financial-results-by-segment-h1-2023.xlsx"

_MARKER_RE = re.compile(r"^<!-- (slide|sheet): (\d+)(?: (.*?))? -->$", re.MULTILINE)


@cache
def _pptx(path: Path) -> Converted:
    return read_pptx(path.read_bytes(), path.name)


@cache
def _xlsx(path: Path) -> Converted:
    return read_xlsx(path.read_bytes(), path.name)


def _sections(markdown: str) -> dict[int, str]:
    """Each location's text, by its number (a sheet's blocks together)."""
    sections: dict[int, str] = {}
    parts = _MARKER_RE.split(markdown)
    for i in range(1, len(parts), 4):
        number = int(parts[i + 1])
        sections[number] = sections.get(number, "") + parts[i + 3]
    return sections


def _replace_part(path: Path, part: str, edit: Callable[[bytes], bytes]) -> bytes:
    """The deck at `path` with one part rewritten by `edit` (bytes -> bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in source.infolist():
            data = source.read(info)
            z.writestr(info, edit(data) if info.filename == part else data)
    return out.getvalue()


# --- pptx ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FORMATS.glob("*.pptx")), ids=lambda p: p.name)
def test_every_real_deck_converts_or_fails_with_a_reason(path: Path) -> None:
    if path.name.startswith("corrupt"):
        with pytest.raises(FormatError, match="damaged"):
            read_pptx(path.read_bytes(), path.name)
        return
    converted = _pptx(path)
    assert converted.unit == "slide"
    markers = [int(m.group(2)) for m in _MARKER_RE.finditer(converted.markdown)]
    assert converted.units == len(markers) > 0
    assert markers == sorted(set(markers))  # in the deck's order, each once
    assert all(m.group(1) == "slide" for m in _MARKER_RE.finditer(converted.markdown))


def test_slides_are_numbered_as_powerpoint_shows_them_and_hidden_ones_are_left_out() -> None:
    converted = _pptx(APACHE)
    sections = _sections(converted.markdown)
    # 48 slides, of which the 13th and the 48th are hidden (show="0").
    assert sorted(sections) == [n for n in range(1, 48) if n != 13]
    assert converted.units == 46
    assert "2 hidden slide(s) left out" in converted.warnings
    assert "SE Toolkit" not in converted.markdown  # slide 13's title
    assert "Further Reading" not in converted.markdown  # slide 48's title
    assert sections[11].lstrip().startswith("## Purposes of Monitoring\n")
    assert sections[14].lstrip().startswith("## Monitoring: Ganglia\n")
    assert converted.title == "Apache Performance Tuning"  # docProps/core.xml


def test_a_hidden_slide_shown_again_comes_back_under_its_own_number() -> None:
    data = _replace_part(
        APACHE, "ppt/slides/slide13.xml", lambda xml: xml.replace(b' show="0"', b"", 1)
    )
    converted = read_pptx(data, APACHE.name)
    sections = _sections(converted.markdown)
    assert 13 in sections and 48 not in sections
    assert "## Monitoring Solaris: SE Toolkit" in sections[13]
    assert converted.warnings == ["1 hidden slide(s) left out"]


def test_speaker_notes_follow_their_slide_under_notes() -> None:
    sections = _sections(_pptx(APACHE).markdown)
    content, notes = sections[11].split("**Notes:**\n")
    assert "- Observation\n- Extrapolation" in content
    assert "Monitoring is a critical component of tuning your server." in notes
    assert "Observation -- Is everything allright?" in notes
    assert "Hello crowd, welcome. Introduce self." in sections[1].split("**Notes:**")[1]
    # A slide without notes has no notes block; the notes' slide number placeholder is not text.
    assert "**Notes:**" not in sections[14]
    assert sum("**Notes:**" in s for s in sections.values()) < len(sections)
    assert not any(re.search(r"\*\*Notes:\*\*\n\d+\s*$", s) for s in sections.values())


def test_a_table_with_merged_header_cells_is_a_markdown_table() -> None:
    converted = _pptx(MERGED)
    slide = _sections(converted.markdown)[1]
    lines = slide.strip().split("\n")
    assert lines[0] == "## Test Table Slide"
    table = [line for line in lines if line.startswith("|")]
    # gridSpan="3": the text in the first cell, the cells it covers empty.
    assert table[0] == "|  | Class1 |  |  | Class2 |  |  |"
    assert table[1] == "|---|---|---|---|---|---|---|"
    assert table[2] == "|  | A merged with B |  | C | A | B | C |"
    assert table[3] == "| R1 | True | False |  | False | True | True |"
    assert len(table) == 10
    assert converted.title == "Test Table Slide"  # dc:title is empty: the first slide's title


def test_lists_and_reading_order() -> None:
    # Five text boxes side by side, their tops a few points apart: read left to right.
    slide = _sections(_pptx(MERGED).markdown)[3]
    order = [slide.index(t) for t in ("List item4", "I1", "Item A", "List1", "l1")]
    assert order == sorted(order)
    assert "1. List item4\n2. List item5\n3. List item6\n\n- I1" in slide  # two lists, not one
    assert "Some info:\n\n- Item A\n- Item B" in slide
    # A numbered list with bullets nested under its items (lvl 1 and 2 in the body placeholder).
    overview = _sections(_pptx(EVALUATION).markdown)[2]
    assert "1. Rationale\n   - The problem\n   - Why marketing?" in overview
    assert "3. Bringing it all together\n   - Key principles" in overview


def test_japanese_and_characters_outside_the_bmp_survive() -> None:
    converted = _pptx(JAPANESE)
    assert "ゾルゲと尾崎、淡々と最期" in converted.markdown
    assert "\uff08\uff27\uff28\uff31\uff09" in converted.markdown  # (GHQ), full width
    assert "𐌲𐌿𐍄𐌹𐍃𐌺" in converted.markdown
    assert "| Row 1 Col 1 | Row 1 Col 2 | Row 1 Col 3 |" in converted.markdown
    assert "## " not in converted.markdown  # its title placeholder is empty: no heading invented
    assert converted.title is None  # dc:title is "Slide 1"


def test_comments_are_left_out() -> None:
    with zipfile.ZipFile(COMMENTS) as deck:
        comments = [
            text
            for name in deck.namelist()
            if name.startswith("ppt/comments/")
            for text in re.findall(r"<p:text>([^<]+)</p:text>", deck.read(name).decode())
        ]
    assert len(comments) == 2
    converted = _pptx(COMMENTS)
    assert "## Outline of the presentation" in converted.markdown  # the deck itself is there
    for text in comments:
        assert text not in converted.markdown


def test_files_that_are_no_deck_raise_a_format_error() -> None:
    with pytest.raises(FormatError, match=r"damaged: not a readable ZIP container"):
        read_pptx((FORMATS / "corrupt-truncated.pptx").read_bytes(), "corrupt-truncated.pptx")
    with pytest.raises(FormatError, match="damaged"):
        read_pptx(MERGED.read_bytes()[:20000], MERGED.name)
    with pytest.raises(FormatError, match=r"no ppt/presentation\.xml"):
        read_pptx(_replace_zip_without(MERGED, "ppt/presentation.xml"), MERGED.name)
    with pytest.raises(FormatError, match="OLE2"):
        read_pptx((FORMATS / "encrypted-agile-password.docx").read_bytes(), "x.pptx")


def _replace_zip_without(path: Path, part: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as z:
        for info in source.infolist():
            if info.filename != part:
                z.writestr(info, source.read(info))
    return out.getvalue()


def test_the_biggest_deck_converts_fast() -> None:
    data = APACHE.read_bytes()
    start = time.perf_counter()
    read_pptx(data, APACHE.name)
    assert time.perf_counter() - start < 1.5  # about 0.1 s alone; room for a busy machine


# --- xlsx ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FORMATS.glob("*.xlsx")), ids=lambda p: p.name)
def test_every_real_workbook_converts_or_fails_with_a_reason(path: Path) -> None:
    if path.name.startswith("encrypted"):
        with pytest.raises(FormatError, match="OLE2"):
            read_xlsx(path.read_bytes(), path.name)
        return
    converted = _xlsx(path)
    assert converted.unit == "sheet"
    markers = list(_MARKER_RE.finditer(converted.markdown))
    assert markers and all(m.group(1) == "sheet" and m.group(3) for m in markers)
    assert converted.units == len({m.group(2) for m in markers})
    assert len(re.findall(r"^## ", converted.markdown, re.MULTILINE)) == converted.units


def test_three_sheets_with_their_names_ranges_and_percentages() -> None:
    converted = _xlsx(TAX)
    headings = re.findall(r"^## (.+)$", converted.markdown, re.MULTILINE)
    assert headings == ["Avgtxfull", "Avgtxmod", "Avgselemp"]
    assert converted.units == 3 and converted.warnings == []
    # Rows 3 to 14 of the first sheet, columns A to M, hold its first table (rows 2 and 15 empty).
    assert "<!-- sheet: 1 Avgtxfull!A3:M14 -->" in converted.markdown
    ws = openpyxl.load_workbook(TAX, data_only=True)["Avgtxfull"]
    assert all(c.value is None for c in ws[2]) and all(c.value is None for c in ws[15])
    assert ws["A3"].value and ws["M4"].value and ws["M14"].value
    # Rates stored as fractions under a "0.0%" format show as Excel shows them.
    assert ws["C5"].value == pytest.approx(0.0617) and ws["C5"].number_format == "0.0%"
    assert "| 6000 | 4726 | 6.2% | 3.9% | 0.0% |" in converted.markdown
    assert "0.0617" not in converted.markdown
    # The merged C3:M3 keeps its text in C3, the cells it covers empty.
    assert "| FULL RATE PRSI |  | SINGLE |  |  |" in converted.markdown
    # The sheet's title above the table and the footnotes below it are paragraphs.
    assert "(iii) AVERAGE TAX RATES ON ANNUAL EARNINGS IN % TERMS*\n" in converted.markdown
    assert "\\* Average Tax Rates:" in converted.markdown  # not a list item


def test_twelve_sheets_each_with_its_heading() -> None:
    workbook = openpyxl.load_workbook(BUDGET, read_only=True)
    names = workbook.sheetnames
    assert len(names) == 12
    assert all(workbook[n].sheet_state == "visible" for n in names)
    converted = _xlsx(BUDGET)
    assert re.findall(r"^## (.+)$", converted.markdown, re.MULTILINE) == names
    assert converted.units == 12
    # Sheet names Excel would read as a cell (EXP1) or that hold spaces are quoted.
    assert "<!-- sheet: 1 'Exp1'!A4:J22 -->" in converted.markdown
    assert "<!-- sheet: 2 'Exp2 (2)'!" in converted.markdown
    # The sentences above a table are paragraphs, its header the first row of the table.
    sheet1 = _sections(converted.markdown)[1]
    assert "Married couple, one income, no children taxed under PAYE" in sheet1
    assert "\n| GROSS | PRSI Liability |  | Levy Liability |" in sheet1


def test_right_to_left_sheets_keep_their_text() -> None:
    converted = _xlsx(RTL)
    assert "## عربى" in converted.markdown
    assert "<!-- sheet: 2 عربى!A1:A4 -->" in converted.markdown
    assert "עִבְרִית" in converted.markdown and "اَلْعَرَبِيَّةُ" in converted.markdown
    assert "نص" in converted.markdown
    # One cell a row: paragraphs, not a table.
    assert "|" not in converted.markdown
    # Cell comments are left out.
    workbook = openpyxl.load_workbook(RTL)
    comments = [
        c.comment.text for ws in workbook for row in ws.iter_rows() for c in row if c.comment
    ]
    assert len(comments) == 2
    for text in comments:
        assert text.split("Comment:")[-1].strip() not in converted.markdown


def test_values_are_the_cached_values_of_the_real_workbook() -> None:
    converted = _xlsx(FINANCE)
    ws = openpyxl.load_workbook(FINANCE, data_only=True)["OS-Rev.and results 30 06 2023"]
    formulas = openpyxl.load_workbook(FINANCE)["OS-Rev.and results 30 06 2023"]
    # Columns E and I are empty all the way down: left out of the table.
    for row in (9, 12, 18):
        cells = [ws[f"{c}{row}"].value for c in "ABCDFGHJ"]
        assert all(isinstance(v, int) for v in cells[1:])
        assert "| " + " | ".join(str(v) for v in cells) + " |" in converted.markdown
    # Row 18 is a row of formulas: their values, never their text.
    assert formulas["B18"].value == "=SUM(B9:B17)" and ws["B18"].value == 46293
    assert "| Total | 46293 |" in converted.markdown
    assert "SUM(" not in converted.markdown
    # A header with line breaks in its cells, a blank row above the numbers: one table.
    assert "<!-- sheet: 1 'OS-Rev.and results 30 06 2023'!A6:J18 -->" in converted.markdown
    period = "January\u2013June"  # an en dash
    assert f"| In millions of CHF |  |  |  |  |  |  | {period} 2023 |" in converted.markdown
    assert f"{period}\n2023" not in converted.markdown


def test_a_hidden_sheet_is_left_out_and_the_others_keep_their_numbers() -> None:
    workbook = openpyxl.load_workbook(TAX)
    workbook["Avgtxmod"].sheet_state = "hidden"
    out = io.BytesIO()
    workbook.save(out)
    converted = read_xlsx(out.getvalue(), TAX.name)
    assert re.findall(r"^## (.+)$", converted.markdown, re.MULTILINE) == ["Avgtxfull", "Avgselemp"]
    assert converted.warnings == ["1 hidden sheet(s) left out: Avgtxmod"]
    assert converted.units == 2
    assert sorted(_sections(converted.markdown)) == [1, 3]


def _long_workbook() -> bytes:
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.title = "Long data"
    ws.append(["id", "name", "share", "when", "ok", "ratio"])
    for i in range(1, 121):
        ws.append([i, f"item\n{i}", i / 8, date(2024, 1, 1 + i % 28), i % 2 == 0, 0.1 + 0.2 * i])
        ws.cell(i + 1, 3).number_format = "0.0%"
    ws["C2"].number_format = "0%"
    ws["B3"] = "#DIV/0!"  # openpyxl writes it as an error cell
    ws["F4"] = 5.0
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_a_long_table_is_cut_into_blocks_with_its_header_and_contiguous_ranges() -> None:
    converted = read_xlsx(_long_workbook(), "long.xlsx")
    markers = list(_MARKER_RE.finditer(converted.markdown))
    assert [m.group(3) for m in markers] == [
        "'Long data'!A1:F50",
        "'Long data'!A51:F100",
        "'Long data'!A101:F121",
    ]
    header = "| id | name | share | when | ok | ratio |"
    blocks = _MARKER_RE.split(converted.markdown)[4::4]
    previous = 0
    for block in blocks:
        table = [line for line in block.split("\n") if line.startswith("|")]
        assert table[0] == header and table.count(header) == 1
        ids = [int(line.split("|")[1]) for line in table[2:]]
        assert ids == list(range(previous + 1, previous + len(ids) + 1))  # no row lost or twice
        assert len(ids) <= 50
        previous = ids[-1]
    assert previous == 120
    assert converted.markdown.startswith("<!-- sheet: 1 'Long data'!A1:F50 -->\n\n## Long data\n")


def test_values_as_excel_shows_them() -> None:
    markdown = read_xlsx(_long_workbook(), "long.xlsx").markdown
    rows = {
        int(cells[1]): line
        for line in markdown.split("\n")
        if len(cells := line.split("|")) > 2 and cells[1].strip().isdigit()
    }
    assert rows[1] == "| 1 | item 1 | 13% | 2024-01-02 | FALSE | 0.3 |"  # 0.125 under "0%"
    assert rows[2] == "| 2 | #DIV/0! | 25.0% | 2024-01-03 | TRUE | 0.5 |"
    assert rows[3] == "| 3 | item 3 | 37.5% | 2024-01-04 | FALSE | 5 |"
    assert rows[10] == "| 10 | item 10 | 125.0% | 2024-01-11 | TRUE | 2.1 |"


def test_sheet_references_quote_names_as_excel_does() -> None:
    assert sheet_reference("Budget", (1, 1), (40, 6)) == "Budget!A1:F40"
    assert sheet_reference("Tax rates 2007", (3, 2), (20, 8)) == "'Tax rates 2007'!B3:H20"
    assert sheet_reference("Bob's", (1, 1), (1, 1)) == "'Bob''s'!A1"
    assert sheet_reference("2007", (1, 27), (2, 28)) == "'2007'!AA1:AB2"


def test_files_that_are_no_workbook_raise_a_format_error() -> None:
    with pytest.raises(FormatError, match="damaged"):
        read_xlsx(b"not a zip at all", "x.xlsx")
    with pytest.raises(FormatError, match="damaged"):
        read_xlsx(TAX.read_bytes()[:10000], TAX.name)
    with pytest.raises(FormatError, match="damaged"):
        read_xlsx(MERGED.read_bytes(), "deck.xlsx")  # a ZIP, but a deck
