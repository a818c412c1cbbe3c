"""Word documents (.docx): mammoth reads the document body into HTML by its styles (headings,
lists, tables with merged cells, footnotes and endnotes), which the HTML reader turns into
markdown.

What Word keeps beside the text, and what becomes of it:
- tracked changes: the text as it reads with every change accepted (insertions kept, deletions
  gone), which is what mammoth reads;
- comments: left out (a reviewer's remarks, not the document);
- headers and footers, repeated on every page: left out;
- footnotes and endnotes: kept, at the end under a "Notes" heading, each after its number;
- images: left out (their alt text too: it is most often a file name).
A document that never uses heading styles but sets its section titles as short bold paragraphs
gets those as headings, so its chunks still carry where they are.
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

from defusedxml import ElementTree as SafeTree

from athenaeum.build.formats import Converted, FormatError, one_line
from athenaeum.build.formats.html import Node, RenderOptions, parse, render
from athenaeum.build.sources import meaningful_title

_STYLE_MAP = """
p[style-name='Title'] => h1:fresh
p[style-name='Subtitle'] => h2:fresh
"""
_NOTE_ID_RE = re.compile(r"^(footnote|endnote)-\d+$")
_DC = "{http://purl.org/dc/elements/1.1/}"


def read_docx(data: bytes, name: str) -> Converted:
    import mammoth  # a build dependency

    try:
        package = zipfile.ZipFile(io.BytesIO(data))
        if "word/document.xml" not in package.namelist():
            raise FormatError("damaged: not a Word document (no word/document.xml)")
    except zipfile.BadZipFile as exc:
        raise FormatError(f"damaged: not a readable ZIP container ({exc})") from exc
    try:
        result = mammoth.convert_to_html(
            io.BytesIO(data),
            style_map=_STYLE_MAP,
            convert_image=mammoth.images.img_element(lambda image: {}),
        )
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, ValueError) as exc:
        raise FormatError(f"damaged: {type(exc).__name__}: {one_line(str(exc))[:160]}") from exc
    root = parse(result.value)
    _notes_under_a_heading(root)
    headed = any(n.tag in ("h1", "h2", "h3", "h4", "h5", "h6") for n in root.iter())
    markdown, headings = render(root, RenderOptions(bold_headings=not headed))
    if not markdown.strip():
        raise FormatError("no text: the document body is empty")
    return Converted(markdown, _core_title(package, name), "section", headings)


def _notes_under_a_heading(root: Node) -> None:
    """Footnotes and endnotes come last, as ordered lists: give them a heading of their own, so
    that the last section's chunks do not end in them."""
    for i, child in enumerate(root.children):
        if not isinstance(child, Node) or child.tag != "ol":
            continue
        first = next((c for c in child.children if isinstance(c, Node) and c.tag == "li"), None)
        if first is not None and _NOTE_ID_RE.match(first.attrs.get("id", "")):
            heading = Node("h2", children=["Notes"], parent=root)
            root.children.insert(i, heading)
            return


def _core_title(package: zipfile.ZipFile, name: str) -> str | None:
    try:
        core = SafeTree.fromstring(package.read("docProps/core.xml"))
    except (KeyError, ElementTree.ParseError):
        return None
    element = core.find(f"{_DC}title")
    return meaningful_title(element.text if element is not None else "", name)
