"""Line-number gutters and titles, on real PDFs from ../shared/data/pdfs."""

from __future__ import annotations

import re
from pathlib import Path

import pymupdf
import pytest

from athenaeum.build.convert import ConvertOptions, Status, convert
from athenaeum.build.sources import parse_markdown
from athenaeum.build.titles import plain_title, real_title
from tests.conftest import DATA_DIR

PDFS = DATA_DIR / "pdfs"
# Small files, one page each but mistitled (4 pages) and cupertino (3 pages).
TITLE_CASES = [
    "scotus-transcript-p1.pdf",
    "right_to_left_01.pdf",
    "issue-336-example.pdf",
    "cupertino_usd_4-6-16.pdf",
    "mistitled_outlines_example.pdf",
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """Each case's (title, body)."""
    out = tmp_path_factory.mktemp("text")
    report = convert([PDFS / name for name in TITLE_CASES], out, ConvertOptions())
    assert all(r.status is Status.CONVERTED for r in report.results)
    documents = {}
    for name in TITLE_CASES:
        doc = parse_markdown((out / name).with_suffix(".md").read_text(encoding="utf-8"))
        documents[name] = (str(doc.metadata["title"]), doc.body)
    return documents


def test_transcript_loses_its_line_numbers_and_keeps_its_text_in_order(
    converted: dict[str, tuple[str, str]],
) -> None:
    body = converted["scotus-transcript-p1.pdf"][1]
    paragraphs = [p for p in body.split("\n\n") if p.strip()]
    # 25 line numbers down the left margin; the page number "1" at the foot is not one of them
    # but is dropped as a page number.
    assert not [p for p in paragraphs if re.fullmatch(r"\d+", p)], paragraphs
    # Courier is the transcript's typeface, not code: no fences.
    assert "```" not in body
    assert "MICHAEL A. KNOWLES, :" in paragraphs
    order = [
        "IN THE SUPREME COURT OF THE UNITED STATES",
        "MICHAEL A. KNOWLES, :",
        "v. : No. 07-1315",
        "ALEXANDRE MIRZAYANCE. :",
        "Washington, D.C.",
        "The above-entitled matter came on for oral",
        "argument before the Supreme Court of the United States",
        "at 1:01 p.m.",
        "APPEARANCES:",
        "CHARLES M. SEVILLA, ESQ., San Diego, Cal.; on behalf",
        "of the Respondent.",
    ]
    assert [paragraphs.index(p) for p in order] == sorted(paragraphs.index(p) for p in order)


def test_a_numbered_contents_page_keeps_its_numbers(
    converted: dict[str, tuple[str, str]],
) -> None:
    # Nine entries "1 Foo 2" ... "9 Baz 4", numbered 1 to 9 down the left edge of page 1.
    body = converted["mistitled_outlines_example.pdf"][1]
    page1 = body.split("<!-- page: 2 -->")[0]
    for line in ("1 Foo 2", "2 Bar 2", "5 Bar 3", "9 Baz 4"):
        assert f"\n{line}\n" in page1, page1


def _list_page(path: Path, *, heading: bool) -> Path:
    """A page with twelve list items whose numbers are set apart from their text, as a
    hanging-indent list is; with a heading above them at the numbers' left edge or without."""
    doc = pymupdf.open()
    page = doc.new_page()
    if heading:
        page.insert_text((72, 80), "Steps to follow", fontsize=11)
    for i in range(1, 13):
        y = 100 + 16 * i
        page.insert_text((72, y), str(i), fontsize=11)
        page.insert_text((96, y), f"Do the thing numbered {i} and check it.", fontsize=11)
    doc.save(path)
    return path


def test_a_numbered_list_under_its_heading_is_not_a_gutter(tmp_path: Path) -> None:
    pdf = _list_page(tmp_path / "list.pdf", heading=True)
    convert([pdf], tmp_path / "out", ConvertOptions())
    body = (tmp_path / "out" / "list.md").read_text(encoding="utf-8")
    assert body.count("Do the thing") == 12
    # the numbers are still there, in the list's order
    pairs = re.findall(r"(\d+) Do the thing numbered (\d+)", body)
    assert pairs == [(str(i), str(i)) for i in range(1, 13)], body


def test_code_in_a_monospaced_font_among_body_text_stays_fenced(tmp_path: Path) -> None:
    doc = pymupdf.open()
    page = doc.new_page()
    text = "Install the package and run it as the example below shows, then read its output."
    for y in (80, 96, 112, 128):
        page.insert_text((72, y), text, fontsize=11, fontname="helv")
    page.insert_text((72, 160), "pip install athenaeum", fontsize=10, fontname="cour")
    page.insert_text((72, 172), "athenaeum convert pdfs --out md", fontsize=10, fontname="cour")
    doc.save(tmp_path / "code.pdf")
    convert([tmp_path / "code.pdf"], tmp_path / "out", ConvertOptions())
    body = (tmp_path / "out" / "code.md").read_text(encoding="utf-8")
    assert "```\npip install athenaeum\nathenaeum convert pdfs --out md\n```" in body


def test_titles_come_from_the_first_page_when_the_metadata_names_nothing(
    converted: dict[str, tuple[str, str]],
) -> None:
    titles = {name: title for name, (title, _) in converted.items()}
    # metadata "10811.exe"; the transcript's type is all one size: its centred caption
    assert titles["scotus-transcript-p1.pdf"] == "IN THE SUPREME COURT OF THE UNITED STATES"
    # no metadata title; the Arabic heading is the largest type on the page
    assert titles["right_to_left_01.pdf"].startswith("تحسين")
    assert titles["right_to_left_01.pdf"].endswith("R وPython")
    # a page from a Chinese standard: its head line names it
    assert titles["issue-336-example.pdf"] == "安徽省建设用地使用标准\uff082020 年版\uff09"
    # metadata "Microsoft Word - SPECIAL BOARD AGENDA 040616.doc"; the largest type, 3 lines
    assert titles["cupertino_usd_4-6-16.pdf"] == "Board of Education Special Meeting AGENDA"
    # page 1 is a table of contents ("Contents", "1 Foo 2"): no title on it, so the file name
    assert titles["mistitled_outlines_example.pdf"] == "Mistitled outlines example"


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("WARN Report*", "WARN Report"),
        ("**Annual** _report_ 2015", "Annual report 2015"),
        ("## Results \\*preliminary\\*", "Results *preliminary*"),
        ("[The Crazy Ones](http://example.com)", "The Crazy Ones"),
        ("snake_case_name matters", "snake_case_name matters"),
        ("Notes†", "Notes"),
    ],
)
def test_plain_title(markdown: str, plain: str) -> None:
    assert plain_title(markdown) == plain


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("C:\\Users\\me\\report", None),
        ("/home/me/report", None),
        ("IntMetadata", None),
        ("1 Foo", None),
        ("2.3 Results", None),
        ("Contents", None),
        ("Introduction ........ 3", None),
        ("Summary:", None),
        ("14 CFR Part 39", "14 CFR Part 39"),
        ("WARN Report*", "WARN Report"),
    ],
)
def test_real_title(candidate: str, expected: str | None) -> None:
    assert real_title(candidate, "x.pdf") == expected
