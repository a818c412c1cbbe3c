"""PowerPoint decks (.pptx) into markdown, with the standard library alone (zipfile, ElementTree).

One section per slide, in the order of the deck (`ppt/presentation.xml`), each opened by
`<!-- slide: N -->` where N is the number PowerPoint shows (hidden slides count, but are left
out). The slide's title is its `## ` heading; its other text follows in reading order (top to
bottom, then left to right): paragraphs, bullet and numbered lists, tables. Speaker notes follow
the slide's content under `**Notes:**`. Comments (reviewers' remarks), pictures and charts are
left out.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeTree

from athenaeum.build.formats import (
    Converted,
    FormatError,
    location_marker,
    markdown_table,
    one_line,
)
from athenaeum.build.formats.encrypted import is_ole
from athenaeum.build.sources import meaningful_title

_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_DC = "{http://purl.org/dc/elements/1.1/}"

_LEVEL_EMU = 228600  # a quarter inch, in English Metric Units
# What reading one part of a damaged or odd ZIP can raise.
_PART_ERRORS = (
    KeyError,
    ValueError,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
    ET.ParseError,
)

_TITLE_TYPES = frozenset({"title", "ctrTitle"})
# Placeholders whose paragraphs are bullets unless the deck says otherwise (`obj` is the type of
# a placeholder that names none).
_BODY_TYPES = frozenset({"body", "obj"})
# The slide number, date and footer repeat on every slide and say nothing of its content.
_SKIPPED_TYPES = frozenset({"sldNum", "dt", "ftr", "sldImg", "hdr"})
# The type a layout's placeholder has on the master, where it takes its place and style from.
_MASTER_TYPE = {"ctrTitle": "title", "subTitle": "body", "obj": "body"}

# A line that would start a markdown construct it is not: a heading, a quote, a list item, a
# table row, a fence, a rule or setext underline, an HTML comment (a location marker).
_BLOCK_START_RE = re.compile(
    r"^(?:#|>|\||`{3}|~{3}|[-+*](?:\s|$)|\d{1,9}[.)](?:\s|$)|[=\-_*]{3,}\s*$|=+\s*$|<!--)"
)


_ORDERED_RE = re.compile(r"^(\d{1,9})([.)])")


def escape_line_start(line: str) -> str:
    """`line` with a backslash before what would make markdown read it as something else
    ("3\\. Results": a backslash escapes punctuation only, so it goes before the dot)."""
    if not _BLOCK_START_RE.match(line):
        return line
    if ordered := _ORDERED_RE.match(line):
        return f"{ordered.group(1)}\\{ordered.group(2)}{line[ordered.end() :]}"
    return "\\" + line


def _parse_xml(data: bytes) -> ET.Element:
    """A part's XML, through defusedxml: a document type declaration (which Office never
    writes, and which entity tricks such as billion laughs need) is refused."""
    try:
        element: ET.Element = SafeTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ValueError(f"a document type declaration, which Office never writes ({exc})") from exc
    return element


def read_pptx(data: bytes, name: str) -> Converted:
    """The deck in `data` (the bytes of the file called `name`) as markdown."""
    return _Deck(_open_zip(data), name).convert()


def _open_zip(data: bytes) -> zipfile.ZipFile:
    if is_ole(data):
        raise FormatError(
            "damaged: an OLE2 compound file, not a ZIP container (encrypted, or an older "
            "binary .ppt under a new name)"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise FormatError(f"damaged: not a readable ZIP container ({exc})") from exc
    return archive


@dataclass
class _Block:
    """A markdown block, or one item of a list (items are kept on consecutive lines)."""

    text: str
    list_item: bool = False
    first_of_shape: bool = False  # a list goes on only within one shape


@dataclass
class _Placed:
    """A shape's blocks and where it sits on the slide."""

    y: int
    x: int
    order: int
    blocks: list[_Block]

    def __post_init__(self) -> None:
        self.blocks[0].first_of_shape = True


class _Deck:
    def __init__(self, archive: zipfile.ZipFile, name: str) -> None:
        self.archive = archive
        self.name = name
        self.names = set(archive.namelist())
        self.warnings: list[str] = []
        self._xml_cache: dict[str, ET.Element | None] = {}
        self._rels_cache: dict[str, dict[str, tuple[str, str]]] = {}
        self._layouts: dict[str | None, _Layout] = {}

    # --- parts ---------------------------------------------------------------------------------

    def _xml(self, part: str) -> ET.Element | None:
        """The part parsed, or None when it is missing or unreadable (cached)."""
        if part not in self._xml_cache:
            root: ET.Element | None = None
            if part in self.names:
                try:
                    root = _parse_xml(self.archive.read(part))
                except _PART_ERRORS:
                    root = None
            self._xml_cache[part] = root
        return self._xml_cache[part]

    def _rels(self, part: str) -> dict[str, tuple[str, str]]:
        """The part's relationships: id -> (type's last word, target part)."""
        if part in self._rels_cache:
            return self._rels_cache[part]
        folder, base = posixpath.split(part)
        rels: dict[str, tuple[str, str]] = {}
        root = self._xml(posixpath.join(folder, "_rels", base + ".rels"))
        if root is not None:
            for rel in root.iter(f"{_PKG_REL}Relationship"):
                target = rel.get("Target") or ""
                if rel.get("TargetMode") == "External" or not target:
                    continue
                if target.startswith("/"):
                    path = target.lstrip("/")
                else:
                    path = posixpath.normpath(posixpath.join(folder, target))
                kind = (rel.get("Type") or "").rsplit("/", 1)[-1]
                rels[rel.get("Id") or ""] = (kind, path)
        self._rels_cache[part] = rels
        return rels

    def _related(self, part: str, kind: str) -> str | None:
        return next((t for k, t in self._rels(part).values() if k == kind), None)

    # --- the deck ------------------------------------------------------------------------------

    def convert(self) -> Converted:
        presentation = "ppt/presentation.xml"
        if presentation not in self.names:
            raise FormatError("damaged: not a PowerPoint deck (no ppt/presentation.xml)")
        try:
            root = _parse_xml(self.archive.read(presentation))
        except _PART_ERRORS as exc:
            raise FormatError(f"damaged: ppt/presentation.xml is unreadable ({exc})") from exc
        rels = self._rels(presentation)
        slide_parts = []
        for sld in root.iterfind(f"{_P}sldIdLst/{_P}sldId"):
            kind, target = rels.get(sld.get(f"{_R}id") or "", ("", ""))
            slide_parts.append(target if kind == "slide" else "")

        sections: list[str] = []
        hidden = 0
        first_title: str | None = None
        for number, part in enumerate(slide_parts, start=1):
            slide = self._xml(part) if part else None
            if slide is None:
                self.warnings.append(f"slide {number} is missing or unreadable: left out")
                continue
            if slide.get("show") in ("0", "false"):
                hidden += 1
                continue
            title, body = self._slide(part, slide)
            if not sections:
                first_title = title
            sections.append(location_marker("slide", number) + "\n\n" + body)
        if hidden:
            self.warnings.insert(0, f"{hidden} hidden slide(s) left out")
        markdown = "\n\n".join(s.rstrip() for s in sections)
        title = meaningful_title(self._core_title(), self.name)
        if title is None and first_title:
            title = meaningful_title(first_title, self.name)
        return Converted(
            markdown=markdown + "\n" if markdown else "",
            title=title,
            unit="slide",
            units=len(sections),
            warnings=self.warnings,
        )

    def _core_title(self) -> str:
        core = self._xml("docProps/core.xml")
        element = core.find(f"{_DC}title") if core is not None else None
        return one_line(element.text or "") if element is not None else ""

    # --- a slide -------------------------------------------------------------------------------

    def _slide(self, part: str, slide: ET.Element) -> tuple[str | None, str]:
        """The slide's title (None without one) and its markdown, title heading included."""
        layout_part = self._related(part, "slideLayout")
        layout = self._layouts.get(layout_part)
        if layout is None:
            layout = self._layouts[layout_part] = _Layout(self, layout_part)
        tree = slide.find(f"{_P}cSld/{_P}spTree")
        title: str | None = None
        placed: list[_Placed] = []
        if tree is not None:
            for order, shape in enumerate(_shapes(tree)):
                ph = _placeholder(shape)
                if ph is not None and ph[0] in _SKIPPED_TYPES:
                    continue
                if ph is not None and ph[0] in _TITLE_TYPES and title is None:
                    text = _plain_text(shape)
                    if text:
                        title = text
                        continue
                blocks = self._shape_blocks(shape, layout)
                if blocks:
                    y, x = _offset(shape) or layout.offset(ph) or (-1, -1)
                    placed.append(_Placed(y, x, order, blocks))
        placed = _reading_order(placed)

        parts: list[str] = []
        if title:
            parts.append("## " + title)
        parts.extend(_join_blocks(b for item in placed for b in item.blocks))
        notes = self._notes(part)
        if notes:
            parts.append("**Notes:**\n" + "\n\n".join(_join_blocks(notes)))
        return title, "\n\n".join(p for p in parts if p)

    def _shape_blocks(self, shape: ET.Element, layout: _Layout) -> list[_Block]:
        tag = shape.tag
        if tag == f"{_P}grpSp":
            children = []
            for order, child in enumerate(_shapes(shape)):
                blocks = self._shape_blocks(child, layout)
                if blocks:
                    y, x = _offset(child) or (-1, -1)
                    children.append(_Placed(y, x, order, blocks))
            return [b for item in _reading_order(children) for b in item.blocks]
        if tag == f"{_P}graphicFrame":
            table = shape.find(f"{_A}graphic/{_A}graphicData/{_A}tbl")
            if table is None:
                return []  # a chart, a diagram or an embedded object: no text of its own here
            rendered = _table(table)
            return [_Block(rendered)] if rendered else []
        if tag == f"{_P}sp":
            body = shape.find(f"{_P}txBody")
            if body is None:
                return []
            ph = _placeholder(shape)
            bulleted = ph is not None and ph[0] in _BODY_TYPES
            styles = [body, *layout.styles(ph)] if ph is not None else [body]
            return _paragraph_blocks(body, bulleted, styles)
        return []

    def _notes(self, part: str) -> list[_Block]:
        notes_part = self._related(part, "notesSlide")
        notes = self._xml(notes_part) if notes_part else None
        tree = notes.find(f"{_P}cSld/{_P}spTree") if notes is not None else None
        if tree is None:
            return []
        blocks: list[_Block] = []
        for shape in _shapes(tree):
            ph = _placeholder(shape)
            body = shape.find(f"{_P}txBody")
            if ph is not None and ph[0] == "body" and body is not None:
                blocks.extend(_paragraph_blocks(body, False, [body]))
        return blocks


class _Layout:
    """A slide's layout and master: where a placeholder without a place of its own sits, and
    the list styles it inherits (whether its paragraphs carry bullets)."""

    def __init__(self, deck: _Deck, part: str | None) -> None:
        self.layout = _placeholders(deck._xml(part)) if part else {}
        master = deck._related(part, "slideMaster") if part else None
        self.master = _placeholders(deck._xml(master)) if master else {}

    def _find(self, ph: tuple[str, str | None] | None) -> list[ET.Element]:
        if ph is None:
            return []
        kind, idx = ph
        found = []
        on_layout = self.layout.get(("idx", idx)) if idx else None
        if on_layout is None:
            on_layout = self.layout.get(("type", kind))
        if on_layout is not None:
            found.append(on_layout)
            kind = (_placeholder(on_layout, kind) or (kind, None))[0]
        on_master = self.master.get(("type", _MASTER_TYPE.get(kind, kind)))
        if on_master is not None:
            found.append(on_master)
        return found

    def offset(self, ph: tuple[str, str | None] | None) -> tuple[int, int] | None:
        for shape in self._find(ph):
            if found := _offset(shape):
                return found
        return None

    def styles(self, ph: tuple[str, str | None] | None) -> list[ET.Element]:
        return [body for s in self._find(ph) if (body := s.find(f"{_P}txBody")) is not None]


def _placeholders(root: ET.Element | None) -> dict[tuple[str, str | None], ET.Element]:
    """A layout's or master's placeholder shapes, by ("idx", idx) and by ("type", type)."""
    found: dict[tuple[str, str | None], ET.Element] = {}
    tree = root.find(f"{_P}cSld/{_P}spTree") if root is not None else None
    if tree is None:
        return found
    for shape in _shapes(tree):
        ph = _placeholder(shape)
        if ph is None:
            continue
        kind, idx = ph
        if idx:
            found.setdefault(("idx", idx), shape)
        found.setdefault(("type", kind), shape)
    return found


def _shapes(tree: ET.Element) -> Iterator[ET.Element]:
    """The shapes of a shape tree or group, what markup compatibility wraps included."""
    for child in tree:
        if child.tag == f"{_MC}AlternateContent":
            choice = child.find(f"{_MC}Choice")
            chosen = choice if choice is not None else child.find(f"{_MC}Fallback")
            if chosen is not None:
                yield from _shapes(chosen)
        elif child.tag in (f"{_P}sp", f"{_P}grpSp", f"{_P}graphicFrame"):
            yield child


def _placeholder(shape: ET.Element, default: str = "obj") -> tuple[str, str | None] | None:
    """(type, idx) of a placeholder shape; None for a shape that is no placeholder."""
    for nv in (f"{_P}nvSpPr", f"{_P}nvGraphicFramePr", f"{_P}nvGrpSpPr"):
        ph = shape.find(f"{nv}/{_P}nvPr/{_P}ph")
        if ph is not None:
            return ph.get("type") or default, ph.get("idx")
    return None


def _offset(shape: ET.Element) -> tuple[int, int] | None:
    """(y, x) of the shape's top left corner, when the shape gives it."""
    off = None
    if shape.tag == f"{_P}graphicFrame":
        off = shape.find(f"{_P}xfrm/{_A}off")
    else:
        for props in (f"{_P}spPr", f"{_P}grpSpPr"):
            off = shape.find(f"{props}/{_A}xfrm/{_A}off")
            if off is not None:
                break
    if off is None:
        return None
    try:
        return int(off.get("y") or 0), int(off.get("x") or 0)
    except ValueError:
        return None


def _reading_order(items: list[_Placed]) -> list[_Placed]:
    """Top to bottom, and left to right among shapes whose tops are level (within a quarter
    inch: boxes side by side are rarely aligned to the point). A shape without a place of its
    own stays after the one before it."""
    last = (-1, -1)
    for item in items:
        if item.y < 0:
            item.y, item.x = last
        last = (item.y, item.x)
    rows: list[list[_Placed]] = []
    for item in sorted(items, key=lambda item: (item.y, item.x, item.order)):
        if rows and item.y - rows[-1][0].y <= _LEVEL_EMU:
            rows[-1].append(item)
        else:
            rows.append([item])
    return [item for row in rows for item in sorted(row, key=lambda i: (i.x, i.y, i.order))]


# --- text ------------------------------------------------------------------------------------


def _paragraph_text(paragraph: ET.Element, breaks: str) -> str:
    """A paragraph's runs, fields and line breaks (`breaks` stands for each break)."""
    pieces: list[str] = []
    for child in paragraph:
        if child.tag in (f"{_A}r", f"{_A}fld"):
            t = child.find(f"{_A}t")
            if t is not None and t.text:
                pieces.append(t.text)
        elif child.tag == f"{_A}br":
            pieces.append("\n")
    lines = [one_line(line) for line in "".join(pieces).replace("\v", "\n").split("\n")]
    return breaks.join(line for line in lines if line)


def _plain_text(shape: ET.Element) -> str:
    body = shape.find(f"{_P}txBody")
    if body is None:
        return ""
    return one_line(" ".join(_paragraph_text(p, " ") for p in body.iterfind(f"{_A}p")))


def _bullet(ppr: ET.Element | None) -> str | None:
    """ "char", "auto" or "none" where these paragraph properties set the bullet, else None."""
    if ppr is None:
        return None
    for child in ppr:
        if child.tag == f"{_A}buNone":
            return "none"
        if child.tag == f"{_A}buChar" or child.tag == f"{_A}buBlip":
            return "char"
        if child.tag == f"{_A}buAutoNum":
            return "auto"
    return None


def _paragraph_blocks(body: ET.Element, bulleted: bool, styles: list[ET.Element]) -> list[_Block]:
    """A text body's paragraphs: list items where they carry a bullet, else paragraphs.

    `bulleted`: whether the shape's paragraphs are bullets unless a style says otherwise (a body
    placeholder); `styles`: the text bodies whose list styles apply, nearest first.
    """
    blocks: list[_Block] = []
    counters: dict[int, int] = {}
    columns: dict[int, int] = {}  # where the text of the last item at each level starts
    for paragraph in body.iterfind(f"{_A}p"):
        ppr = paragraph.find(f"{_A}pPr")
        try:
            level = min(max(int(ppr.get("lvl") or 0), 0), 8) if ppr is not None else 0
        except ValueError:
            level = 0
        text = _paragraph_text(paragraph, "\n")
        if not text:
            continue
        bullet = _bullet(ppr)
        auto = ppr.find(f"{_A}buAutoNum") if ppr is not None else None
        if bullet is None:
            for style in styles:
                lvl = style.find(f"{_A}lstStyle/{_A}lvl{level + 1}pPr")
                if (bullet := _bullet(lvl)) is not None:
                    if lvl is not None and bullet == "auto":
                        auto = lvl.find(f"{_A}buAutoNum")
                    break
        if bullet is None:
            bullet = "char" if bulleted else "none"
        if bullet == "none":
            counters = {k: v for k, v in counters.items() if k < level}
            columns = {}
            lines = text.split("\n")
            blocks.append(_Block("\n".join(escape_line_start(line) for line in lines)))
            continue
        for deeper in [k for k in counters if k > level]:
            del counters[deeper]
        if bullet == "auto":
            if level not in counters:
                try:
                    start = int(auto.get("startAt") or 1) if auto is not None else 1
                except ValueError:
                    start = 1
                counters[level] = start
            else:
                counters[level] += 1
            mark = f"{counters[level]}. "
        else:
            counters.pop(level, None)
            mark = "- "
        # Nested under its parent's text (two spaces under "- ", three under "1. ").
        indent = " " * next((columns[k] for k in range(level - 1, -1, -1) if k in columns), 0)
        if level and not indent:
            indent = "  "  # no parent to nest under: more would make it a code block
        columns = {k: v for k, v in columns.items() if k < level}
        columns[level] = len(indent) + len(mark)
        lines = text.split("\n")
        continuation = "\n" + indent + " " * len(mark)
        item = indent + mark + lines[0] + "".join(continuation + line for line in lines[1:])
        blocks.append(_Block(item, list_item=True))
    return blocks


def _join_blocks(blocks: Iterator[_Block] | list[_Block]) -> list[str]:
    """Markdown blocks, a list's consecutive items joined into one."""
    joined: list[str] = []
    previous_item = False
    for block in blocks:
        if block.list_item and previous_item and not block.first_of_shape:
            joined[-1] += "\n" + block.text
        else:
            joined.append(block.text)
        previous_item = block.list_item
    return joined


def _table(table: ET.Element) -> str:
    rows: list[list[str]] = []
    for tr in table.iterfind(f"{_A}tr"):
        row = []
        for tc in tr.iterfind(f"{_A}tc"):
            if tc.get("hMerge") in ("1", "true") or tc.get("vMerge") in ("1", "true"):
                row.append("")
                continue
            body = tc.find(f"{_A}txBody")
            paragraphs = body.iterfind(f"{_A}p") if body is not None else iter(())
            row.append(" ".join(t for p in paragraphs if (t := _paragraph_text(p, " "))))
        rows.append(row)
    if not any(cell for row in rows for cell in row):
        return ""
    return markdown_table(rows)
