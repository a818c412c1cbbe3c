"""`athenaeum convert` on the real PDFs in ../shared/data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from typer.testing import CliRunner

from athenaeum.build.convert import ConvertOptions, ConvertReport, Status, convert, plan_jobs
from athenaeum.build.sources import (
    PAGE_MARKER_RE,
    meaningful_title,
    parse_markdown,
    readable_stem,
)
from athenaeum.cli.main import app
from athenaeum.errors import InvalidInputError
from tests.conftest import DATA_DIR

DATA = DATA_DIR
PDFS = DATA / "pdfs"
PASSWORDS = ["test", "password", "openpassword"]  # from shared/data/SOURCES.md

# Every one of the 29 files and what must become of it in one `convert` call with passwords.
EXPECTED_FAILURES = {
    # a 472-byte file with a broken xref and no fonts: MuPDF repairs it to one empty page
    "issue-297-example.pdf": "no text layer on any of its 1 page(s)",
    # pdfplumber issue 932: content that draws no extractable text
    "malformed-from-issue-932.pdf": "no text layer on any of its 1 page(s)",
    # "xref not found": MuPDF opens it but finds no page tree
    "unreadablemetadata.pdf": "malformed PDF: no readable pages",
}
ENCRYPTED = [
    "crazyones-encrypted-256.pdf",
    "libreoffice-writer-password.pdf",
    "password-example.pdf",
]


@dataclass(frozen=True)
class Converted:
    out: Path
    report: ConvertReport  # what `convert` returned to the command
    output: str  # what the command printed, at 80 columns


@pytest.fixture(scope="module")
def converted_folder(tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """Every real PDF converted once, as users run it: `athenaeum convert` on the folder with the
    passwords, in 80 columns. The report is the one `convert` handed the command to print."""
    out = tmp_path_factory.mktemp("converted")
    reports: list[ConvertReport] = []

    def recorded(*args: Any, **kwargs: Any) -> ConvertReport:
        report = convert(*args, **kwargs)
        reports.append(report)
        return report

    passwords = [arg for password in PASSWORDS for arg in ("--password", password)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("athenaeum.build.convert.convert", recorded)
        result = CliRunner().invoke(
            app,
            ["convert", str(PDFS), "--out", str(out), *passwords, "--jobs", "2"],
            env={"COLUMNS": "80"},
        )
    assert result.exit_code == 1, result.output  # three files cannot be converted
    [report] = reports
    return Converted(out, report, result.output)


@pytest.fixture(scope="module")
def converted(converted_folder: Converted) -> tuple[Path, ConvertReport]:
    return converted_folder.out, converted_folder.report


def _body(out: Path, name: str) -> str:
    return parse_markdown((out / name).with_suffix(".md").read_text(encoding="utf-8")).body


def test_every_real_pdf_has_an_outcome(converted: tuple[Path, ConvertReport]) -> None:
    out, report = converted
    by_name = {r.source.name: r for r in report.results}
    assert sorted(by_name) == sorted(p.name for p in PDFS.glob("*.pdf"))
    assert len(by_name) == 29
    for name, result in by_name.items():
        if name in EXPECTED_FAILURES:
            assert result.status is Status.FAILED, name
            assert EXPECTED_FAILURES[name] in result.reason, (name, result.reason)
            assert not (out / name).with_suffix(".md").exists()
        else:
            assert result.status is Status.CONVERTED, (name, result.reason)
            doc = parse_markdown((out / name).with_suffix(".md").read_text(encoding="utf-8"))
            assert doc.metadata["pages"] == result.pages > 0
            # every page is marked, in order
            markers = [int(m.group(1)) for m in PAGE_MARKER_RE.finditer(doc.body)]
            assert markers == list(range(1, result.pages + 1)), name
    assert not report.ok


def test_encrypted_pdfs_convert_with_their_password(
    converted: tuple[Path, ConvertReport],
) -> None:
    out, _ = converted
    assert "crazy ones" in _body(out, "crazyones-encrypted-256.pdf").lower()
    for name in ENCRYPTED:
        assert len(_body(out, name)) > 100, name


def test_encrypted_pdf_without_password_is_reported(tmp_path: Path) -> None:
    files = [PDFS / name for name in ENCRYPTED]
    report = convert(files, tmp_path, ConvertOptions())
    for result in report.results:
        assert result.status is Status.FAILED
        assert result.reason == "encrypted: needs a password (give it with --password)"
    wrong = convert(files[:1], tmp_path, ConvertOptions(passwords=["nope"])).results[0]
    assert wrong.reason == "encrypted: none of the given passwords opens it"


def test_front_matter(converted: tuple[Path, ConvertReport]) -> None:
    out, _ = converted
    text = (out / "multicolumn.md").read_text(encoding="utf-8")
    meta = parse_markdown(text).metadata
    import hashlib

    assert meta == {
        "source": "multicolumn.pdf",
        # where the PDF was, absolute: the server finds it there to link citations to it
        "source_path": str((PDFS / "multicolumn.pdf").resolve()),
        "title": "Two-Column Document with Lorem Ipsum",
        "pages": 3,
        "sha256": hashlib.sha256((PDFS / "multicolumn.pdf").read_bytes()).hexdigest(),
        "converter": "athenaeum-pymupdf",
        "converter_version": meta["converter_version"],
    }
    assert meta["converter_version"].startswith("athenaeum ")


def test_titles_name_documents_not_files_or_tools(
    converted: tuple[Path, ConvertReport],
) -> None:
    _, report = converted
    titles = {
        r.source.name: parse_markdown(r.output.read_text(encoding="utf-8")).title
        for r in report.results
        if r.output is not None and r.output.is_file()
    }
    # The PDFs' own titles where they name the document.
    assert titles["multicolumn.pdf"] == "Two-Column Document with Lorem Ipsum"
    assert titles["federal-register-2020-17221.pdf"] == "14 CFR Part 39"
    assert titles["pr-136-example.pdf"].startswith("菲达环保")
    # Metadata that names a file, a tool or an id is refused: the first page's title instead,
    # and the readable file name where the first page has none.
    assert titles["scotus-transcript-p1.pdf"] == "IN THE SUPREME COURT OF THE UNITED STATES"
    assert titles["nics-background-checks-2015-11.pdf"] == (
        "NICS Firearm Background Checks November - 2015"
    )
    assert titles["WARN-Report-for-7-1-2015-to-03-25-2016.pdf"] == "WARN Report"
    assert titles["la-precinct-bulletin-2014-p1.pdf"] == "La precinct bulletin 2014 p1"
    for title in titles.values():
        assert title and meaningful_title(title, "x.pdf") == title, title
        assert not title.lower().endswith((".exe", ".doc", ".docx", ".pdf"))
        assert not title.startswith(("Microsoft Word", "PowerPoint Presentation"))


@pytest.mark.parametrize(
    ("candidate", "source", "expected"),
    [
        ("Annual report 2015", "ar.pdf", "Annual report 2015"),
        ("  Spaced   out  ", "a.pdf", "Spaced out"),
        ("10811.exe", "t.pdf", None),
        ("report.docx", "t.pdf", None),
        ("Microsoft Word - minutes.doc", "t.pdf", None),
        ("PowerPoint Presentation", "t.pdf", None),
        ("Untitled", "t.pdf", None),
        ("905_Precinct_NoOU", "t.pdf", None),
        ("20240117", "t.pdf", None),
        ("habibi", "habibi.pdf", None),
        ("right to left 01", "right_to_left_01.pdf", None),
        ("ab", "t.pdf", None),
        ("WARN Report*", "warn.pdf", "WARN Report*"),
        ("菲达环保2015年报", "pr.pdf", "菲达环保2015年报"),
    ],
)
def test_meaningful_title(candidate: str, source: str, expected: str | None) -> None:
    assert meaningful_title(candidate, source) == expected


def test_readable_stem() -> None:
    assert readable_stem("scotus-transcript_p1.pdf") == "Scotus transcript p1"
    assert readable_stem("WARN-Report-2016.pdf") == "WARN Report 2016"


def test_multicolumn_reading_order_headings_and_hyphenation(
    converted: tuple[Path, ConvertReport],
) -> None:
    body = _body(converted[0], "multicolumn.pdf")
    lines = [line for line in body.splitlines() if line.strip()]
    assert lines[:2] == ["<!-- page: 1 -->", "# Two-Column Document with Lorem Ipsum"]
    assert "\n## Abstract\n" in body
    # The left column ends with "Nulla malesuada porttitor diam." and the right column starts
    # with "pellentesque ante." on page 1: a geometric (row by row) sort would interleave them.
    left = body.index("Nulla malesuada porttitor diam.")
    right = body.index("pellentesque ante. Phasellus adipiscing semper elit.")
    page2 = body.index("<!-- page: 2 -->")
    assert body.index("## Abstract") < left < right < page2
    # "adip-" / "iscing" at a line break in the PDF becomes one word
    assert "adipiscing elit" in body
    assert "adip-" not in body and "adip- iscing" not in body


def test_table_rows_survive(converted: tuple[Path, ConvertReport]) -> None:
    body = _body(converted[0], "table-curves-example.pdf")
    rows = [line for line in body.splitlines() if line.startswith("|")]
    assert len(rows) >= 20
    assert "| Anaemia | Common | Common | Common |" in rows
    assert "| Thrombocytopenia | Uncommon | Uncommon | Common |" in rows
    assert re.fullmatch(r"\|(---\|){4}", rows[1])
    # the table sits after the text that precedes it on the page
    assert body.index("Table 2: Tabulated adverse reactions") < body.index("| Anaemia |")


def test_running_headers_are_not_repeated(converted: tuple[Path, ConvertReport]) -> None:
    body = _body(converted[0], "federal-register-2020-17221.pdf")
    # 15 pages, each with the running head "Federal Register / Vol. 85, No. 161 / ..." on top
    pdf = pymupdf.open(PDFS / "federal-register-2020-17221.pdf")
    on_pages = sum("Federal Register / Vol. 85" in page.get_text() for page in pdf)
    assert on_pages >= 10
    assert body.count("Federal Register / Vol. 85") <= 1
    # ...and the typesetter's stamp printed sideways in the left margin of every page
    assert on_pages and body.count("jbell on DSKJLSW7X2PROD") == 0
    # bare page numbers in the margins are gone too
    assert not re.search(r"^\d{5}$", body, re.MULTILINE)


def test_pages_without_text_layer_are_reported(converted: tuple[Path, ConvertReport]) -> None:
    _, report = converted
    chelsea = next(r for r in report.results if r.source.name == "chelsea_pdta.pdf")
    assert "no text layer on page(s) 4; run with --ocr to read them" in chelsea.warnings


def _scanned_pdf(path: Path) -> Path:
    """A one-page PDF whose only content is a picture of two lines of text."""
    src = pymupdf.open()
    page = src.new_page()
    page.insert_text((72, 100), "The quick brown fox jumps over the lazy dog.", fontsize=18)
    page.insert_text((72, 140), "Athenaeum reads scanned pages with Tesseract.", fontsize=18)
    image = page.get_pixmap(dpi=200).tobytes("png")
    scan = pymupdf.open()
    scan.new_page(width=page.rect.width, height=page.rect.height).insert_image(
        page.rect, stream=image
    )
    scan.save(path)
    return path


def test_ocr_reads_scanned_pages(tmp_path: Path) -> None:
    pdf = _scanned_pdf(tmp_path / "scan.pdf")
    without = convert([pdf], tmp_path / "a", ConvertOptions()).results[0]
    assert without.status is Status.FAILED
    assert without.reason == ("no text layer on any of its 1 page(s); run with --ocr to read them")
    with_ocr = convert([pdf], tmp_path / "b", ConvertOptions(ocr=True)).results[0]
    assert with_ocr.status is Status.CONVERTED, with_ocr.reason
    assert with_ocr.warnings == ["OCR on 1 page(s): 1"]
    body = _body(tmp_path / "b", "scan.pdf")
    assert "quick brown fox jumps over the lazy dog" in body


def test_ocr_without_tesseract_data_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdf = _scanned_pdf(tmp_path / "scan.pdf")
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path / "no-tessdata"))
    result = convert([pdf], tmp_path / "out", ConvertOptions(ocr=True)).results[0]
    assert result.status is Status.FAILED
    assert "OCR unavailable: Tesseract or its language data was not found" in result.reason
    assert "apt-get install tesseract-ocr" in result.reason


def test_unchanged_pdfs_are_skipped(tmp_path: Path) -> None:
    pdf = PDFS / "multicolumn.pdf"
    first = convert([pdf], tmp_path, ConvertOptions()).results[0]
    assert first.status is Status.CONVERTED
    again = convert([pdf], tmp_path, ConvertOptions()).results[0]
    assert again.status is Status.SKIPPED
    forced = convert([pdf], tmp_path, ConvertOptions(overwrite=True)).results[0]
    assert forced.status is Status.CONVERTED
    # a changed PDF under the same name is converted again
    changed = tmp_path / "in" / "multicolumn.pdf"
    changed.parent.mkdir()
    changed.write_bytes((PDFS / "google-doc-document.pdf").read_bytes())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "multicolumn.md").write_bytes((tmp_path / "multicolumn.md").read_bytes())
    redo = convert([changed.parent], tmp_path / "out", ConvertOptions()).results[0]
    assert redo.status is Status.CONVERTED


def test_output_mirrors_input_tree(tmp_path: Path) -> None:
    library = tmp_path / "library"
    (library / "manuals" / "v2").mkdir(parents=True)
    (library / "manuals" / "v2" / "guide.PDF").write_bytes((PDFS / "multicolumn.pdf").read_bytes())
    (library / "report.pdf").write_bytes((PDFS / "scotus-transcript-p1.pdf").read_bytes())
    (library / "notes.txt").write_text("not a pdf")
    report = convert([library], tmp_path / "out", ConvertOptions(), jobs=2)
    assert report.ok
    assert (tmp_path / "out" / "manuals" / "v2" / "guide.md").is_file()
    assert (tmp_path / "out" / "report.md").is_file()
    meta = parse_markdown((tmp_path / "out" / "manuals" / "v2" / "guide.md").read_text()).metadata
    assert meta["source"] == "manuals/v2/guide.PDF"


def test_bad_inputs_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="input not found"):
        plan_jobs([tmp_path / "missing"], tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InvalidInputError, match=r"not a document convert reads .* or a folder"):
        plan_jobs([tmp_path / "a.txt"], tmp_path)


def test_cli_summary_and_exit_status(tmp_path: Path, converted_folder: Converted) -> None:
    runner = CliRunner()
    good = runner.invoke(
        app, ["convert", str(PDFS / "multicolumn.pdf"), "--out", str(tmp_path / "a"), "--jobs", "1"]
    )
    assert good.exit_code == 0, good.output
    assert "1 converted (3 pages), 0 skipped, 0 failed" in good.output
    bad = runner.invoke(
        app,
        [
            "convert",
            str(PDFS / "password-example.pdf"),
            str(PDFS / "unreadablemetadata.pdf"),
            str(PDFS / "scotus-transcript-p1.pdf"),
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert bad.exit_code == 1
    assert "1 converted (1 pages), 0 skipped, 2 failed" in bad.output
    # Each failure once, with its reason, by its name as given (no absolute paths).
    assert bad.output.count("password-example.pdf: encrypted: needs a password") == 1
    summary = "\n".join(x for x in bad.output.splitlines() if not x.startswith("converting"))
    assert summary.count("unreadablemetadata.pdf") == 2  # its table row and its failure line
    assert str(PDFS) not in bad.output
    # A folder's files are named relative to it, and every line fits 80 columns.
    folder = converted_folder
    rows = [line for line in folder.output.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(rows) > 29 and all(len(line) <= 80 for line in rows), rows
    assert "│ federal-register-2020-17221.pdf" in folder.output
    assert str(PDFS) not in "\n".join(rows)
    missing = runner.invoke(app, ["convert", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert missing.exit_code == 2
    assert "input not found" in missing.output
    assert "Traceback" not in missing.output


def test_an_unchanged_pdf_that_moved_gets_its_new_location_without_converting(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "multicolumn.pdf").write_bytes((PDFS / "multicolumn.pdf").read_bytes())
    out = tmp_path / "md"
    assert convert([first], out).results[0].status is Status.CONVERTED
    before = parse_markdown((out / "multicolumn.md").read_text("utf-8"))
    again = convert([second], out).results[0]
    assert again.status is Status.SKIPPED
    after = parse_markdown((out / "multicolumn.md").read_text("utf-8"))
    assert before.metadata["source_path"] == str((first / "multicolumn.pdf").resolve())
    assert after.metadata["source_path"] == str((second / "multicolumn.pdf").resolve())
    assert after.body.strip() == before.body.strip()
    assert {k: v for k, v in after.metadata.items() if k != "source_path"} == {
        k: v for k, v in before.metadata.items() if k != "source_path"
    }


def test_a_folder_with_no_document_is_an_error_that_says_what_it_holds(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["convert", str(empty), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert f"no document to convert: {empty} has no files" in result.output
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "readme.md").write_text("# Notes\n", encoding="utf-8")
    (notes / "sub" / "deck.odp").write_bytes(b"PK")
    result = runner.invoke(app, ["convert", str(notes), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "holds 2 file(s), none it reads (.md, .odp)" in result.output
    assert "give the folder to `athenaeum index`" in result.output
    assert not (tmp_path / "out").exists()  # nothing written
    # A document anywhere below is enough, in any case; each of its formats goes to its own file.
    (notes / "sub" / "doc.PDF").write_bytes(b"%PDF-1.4")
    (notes / "sub" / "doc.DOCX").write_bytes(b"PK")
    jobs = plan_jobs([notes], tmp_path / "out")
    assert [j.display for j in jobs] == ["sub/doc.DOCX", "sub/doc.PDF"]
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == [
        "sub/doc.DOCX.md",
        "sub/doc.md",
    ]
