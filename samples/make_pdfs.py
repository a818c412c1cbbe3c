"""Render the sample library (samples/source/*.md, Athenaeum's own short docs) to PDF.

The PDFs in samples/library/ are made by this script, so the sample carries no third-party
files. Each page gets a running header and a page number, as real manuals do, so that the
converter's header and footer removal has something to do.

    uv run python samples/make_pdfs.py
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import pymupdf

HERE = Path(__file__).resolve().parent
PAGE = pymupdf.paper_rect("a5")
BODY = pymupdf.Rect(PAGE.x0 + 50, PAGE.y0 + 60, PAGE.x1 - 50, PAGE.y1 - 60)
CSS = """
body { font-family: sans-serif; font-size: 10pt; }
h1 { font-size: 20pt; } h2 { font-size: 15pt; } h3 { font-size: 12pt; }
table { border-collapse: collapse; }
td, th { border: 1px solid black; padding: 2px; font-size: 9pt; }
"""


def markdown_to_html(markdown: str) -> str:
    """Just enough markdown for the sample: headings, paragraphs and pipe tables."""
    out: list[str] = []
    blocks = re.split(r"\n\s*\n", markdown.strip())
    for block in blocks:
        lines = block.strip().splitlines()
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            out.append(f"<h{level}>{html.escape(lines[0][level:].strip())}</h{level}>")
        elif lines[0].startswith("|"):
            rows = [
                [html.escape(c.strip()) for c in line.strip().strip("|").split("|")]
                for line in lines
                if not re.fullmatch(r"[\s|:-]+", line)
            ]
            head = "".join(f"<th>{c}</th>" for c in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
            out.append(f"<table><tr>{head}</tr>{body}</table>")
        else:
            out.append(f"<p>{html.escape(' '.join(lines))}</p>")
    return "\n".join(out)


def render(source: Path, target: Path) -> None:
    markdown = source.read_text(encoding="utf-8")
    title = markdown.splitlines()[0].lstrip("# ").strip()
    story = pymupdf.Story(markdown_to_html(markdown), user_css=CSS)
    writer = pymupdf.DocumentWriter(str(target))
    more = True
    while more:
        device = writer.begin_page(PAGE)
        more, _ = story.place(BODY)
        story.draw(device)
        writer.end_page()
    writer.close()
    # Running header and page number, added afterwards so they sit outside the story's flow.
    doc = pymupdf.open(target)
    doc.set_metadata({"title": title, "author": "Athenaeum", "creator": "samples/make_pdfs.py"})
    for page in doc:
        page.insert_text((50, 35), f"Athenaeum documentation · {title}", fontsize=7)
        page.insert_text((PAGE.width / 2 - 5, PAGE.height - 30), str(page.number + 1), fontsize=8)
    doc.save(target, incremental=True, encryption=pymupdf.PDF_ENCRYPT_KEEP)


def main() -> int:
    out_dir = HERE / "library"
    out_dir.mkdir(exist_ok=True)
    for source in sorted((HERE / "source").glob("*.md")):
        target = out_dir / source.with_suffix(".pdf").name
        render(source, target)
        print(f"wrote {target.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
