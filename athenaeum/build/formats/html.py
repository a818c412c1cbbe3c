"""HTML to markdown: web pages (the article only), and the HTML that EPUB books and Word
documents (through mammoth) are made of.

The standard library's tolerant tokenizer builds a small tree (with the implicit closes that
real pages rely on: a `<p>` ended by the next block, an `<li>` by the next item, table cells by
the next cell or row); `render` walks it into markdown blocks: headings (with an anchor marker
where the heading can be linked to), paragraphs, lists, tables (merged cells spread out, layout
tables read as text), code, quotes and math (its TeX where the page carries it).

For a web page, `article` first finds the part a reader came for, the way reading modes do:
navigation, banners, footers, sidebars, share bars, cookie notices, forms and scripts go; the
text blocks are scored by their length, their commas and how little of them is link text, each
block's score goes to its container and half to the container's container, and the best
container wins, with the siblings that score close to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

from athenaeum.build.formats import (
    Converted,
    FormatError,
    anchor_marker,
    markdown_table,
    one_line,
)
from athenaeum.build.sources import meaningful_title

_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "keygen",
    ]
)
_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "li",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "html",
        "caption",
    ]
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
# Never text a reader reads.
_DROPPED = frozenset(
    [
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "object",
        "embed",
        "svg",
        "canvas",
        "button",
        "input",
        "select",
        "textarea",
        "head",
        "title",
        "meta",
        "link",
        "rt",
        "rp",
        "map",
        "audio",
        "video",
    ]
)
# What an item, a cell or a row ends: the open element it closes, up to which boundary.
_CLOSES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "li": (frozenset({"li"}), frozenset({"ul", "ol", "menu", "dir"})),
    "dt": (frozenset({"dt", "dd"}), frozenset({"dl"})),
    "dd": (frozenset({"dt", "dd"}), frozenset({"dl"})),
    "tr": (frozenset({"tr", "td", "th"}), frozenset({"table", "thead", "tbody", "tfoot"})),
    "td": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "th": (frozenset({"td", "th"}), frozenset({"tr", "table"})),
    "thead": (frozenset({"thead", "tbody", "tfoot", "tr", "td", "th"}), frozenset({"table"})),
    "tbody": (frozenset({"thead", "tbody", "tfoot", "tr", "td", "th"}), frozenset({"table"})),
    "tfoot": (frozenset({"thead", "tbody", "tfoot", "tr", "td", "th"}), frozenset({"table"})),
    "option": (frozenset({"option"}), frozenset({"select"})),
}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = field(default=None, repr=False)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def text(self) -> str:
        parts: list[str] = []
        stack: list[Node | str] = list(reversed(self.children))
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
            elif item.tag not in _DROPPED:
                stack.extend(reversed(item.children))
        return "".join(parts)

    def find(self, tag: str) -> Node | None:
        return next((n for n in self.iter() if n.tag == tag), None)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag in _CLOSES:
            closes, boundary = _CLOSES[tag]
            for i in range(len(self.stack) - 1, 0, -1):
                open_tag = self.stack[i].tag
                if open_tag in boundary:
                    break
                if open_tag in closes:
                    del self.stack[i:]
                    break
        if tag in _BLOCKS and self.stack[-1].tag == "p":
            self.stack.pop()
        node = Node(tag, {k.lower(): v or "" for k, v in attrs}, parent=self.stack[-1])
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag.lower() not in _VOID:  # XHTML's <a id="x"/>
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return
        if tag == "p":  # a stray </p> is an empty paragraph, as browsers read it
            self.stack[-1].children.append(Node("p", parent=self.stack[-1]))

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_ENCODING_RE = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")


def decode(data: bytes) -> str:
    """The page's text: its byte-order mark, else the charset it declares, else UTF-8, else
    Windows-1252 (what browsers assume of an undeclared legacy page)."""
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    head = data[:4096]
    declared = _XML_ENCODING_RE.search(head) or _CHARSET_RE.search(head)
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii"), errors="replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# --- the article -------------------------------------------------------------------------------

# Class and id words of what surrounds an article (reading modes use much the same list), and of
# what an article's own containers are called.
_UNLIKELY_RE = re.compile(
    r"-ad-|ad-break|agegate|banner|breadcrumb|combx|comment|community|consent|cookie|cover-wrap|"
    r"disqus|editsection|extra|footer|gdpr|header|jump-?to|legends|menu|modal|navbar|navigation|newsletter|pager|"
    r"pagination|popup|promo|related|remark|replies|rss|share|sharing|shoutbox|sidebar|"
    r"skip-?link|skyscraper|social|sponsor|subscribe|supplemental|toolbar|yom-remote",
    re.IGNORECASE,
)
_MAYBE_RE = re.compile(r"and|article|body|column|content|main|mathjax|shadow", re.IGNORECASE)
_POSITIVE_RE = re.compile(
    r"article|body|content|entry|hentry|h-entry|main|page|pagination|post|text|blog|story",
    re.IGNORECASE,
)
_NEGATIVE_RE = re.compile(
    r"-ad-|hidden|^hid$| hid$| hid |^hid |banner|combx|comment|com-|contact|foot|footer|"
    r"footnote|gdpr|masthead|media|meta|outbrain|promo|related|scroll|share|shoutbox|sidebar|"
    r"skyscraper|sponsor|shopping|tags|tool|widget",
    re.IGNORECASE,
)
_BOILERPLATE_TAGS = frozenset({"nav", "aside", "footer", "form", "dialog", "menu"})
_BOILERPLATE_ROLES = frozenset(
    {
        "navigation",
        "banner",
        "contentinfo",
        "complementary",
        "menu",
        "menubar",
        "search",
        "alert",
        "alertdialog",
        "dialog",
        "toolbar",
    }
)
# What the class and id words are checked on: the containers boilerplate comes in.
_CONTAINERS = frozenset({"div", "section", "ul", "ol", "dl", "span", "figure", "header", "table"})
_PARAGRAPH_TAGS = frozenset({"p", "pre", "td", "blockquote", "li", "dd"})


def _names(node: Node) -> str:
    return f"{node.attrs.get('class', '')} {node.attrs.get('id', '')}"


def _hidden(node: Node) -> bool:
    style = node.attrs.get("style", "").replace(" ", "").lower()
    return (
        "hidden" in node.attrs
        or node.attrs.get("aria-hidden") == "true"
        or "display:none" in style
        or "visibility:hidden" in style
    )


def _strip(node: Node, keep: Node | None = None) -> None:
    """Remove, in place, what is never the article: scripts and forms, navigation, banners,
    footers, sidebars, share bars and cookie notices, and what the page hides."""
    kept: list[Node | str] = []
    for child in node.children:
        if isinstance(child, str):
            kept.append(child)
            continue
        if child is not keep and _boilerplate(child):
            continue
        _strip(child, keep)
        kept.append(child)
    node.children = kept


def _boilerplate(node: Node) -> bool:
    if node.tag in _DROPPED or node.tag in _BOILERPLATE_TAGS:
        return True
    if node.attrs.get("role", "").lower() in _BOILERPLATE_ROLES:
        return True
    if _hidden(node) and not node.find("math"):  # MathML is often hidden beside its image
        return True
    if node.tag in ("header",) and not node.find("h1"):
        return True
    if node.tag not in _CONTAINERS:
        return False
    names = _names(node)
    return bool(_UNLIKELY_RE.search(names)) and not _MAYBE_RE.search(names)


def _link_density(node: Node) -> float:
    total = len(one_line(node.text()))
    if not total:
        return 0.0
    links = sum(len(one_line(a.text())) for a in node.iter() if a.tag == "a")
    return links / total


def _class_weight(node: Node) -> int:
    weight = 0
    for name in (node.attrs.get("class", ""), node.attrs.get("id", "")):
        if not name:
            continue
        if _NEGATIVE_RE.search(name):
            weight -= 25
        if _POSITIVE_RE.search(name):
            weight += 25
    return weight


def article(root: Node) -> Node:
    """The page's article: the container whose text blocks score best, with the siblings that
    score close to it (a story split by an inline promo), after the boilerplate is gone."""
    body = root.find("body") or root
    _strip(body, keep=None)
    scores: dict[int, float] = {}
    nodes: dict[int, Node] = {}
    for node in list(body.iter()):
        if node.tag not in _PARAGRAPH_TAGS:
            continue
        text = one_line(node.text())
        if len(text) < 25:
            continue
        score = 1 + sum(text.count(c) for c in ",\u3001\uff0c\u3002") + min(len(text) // 100, 3)
        parent = node.parent
        for share in (1.0, 0.5):
            if parent is None or parent is root:
                break
            key = id(parent)
            if key not in scores:
                nodes[key] = parent
                scores[key] = _class_weight(parent) + {"div": 5, "article": 10, "main": 10}.get(
                    parent.tag, 0
                )
            scores[key] += score * share
            parent = parent.parent
    if not scores:
        return body
    ranked = {k: s * (1 - _link_density(nodes[k])) for k, s in scores.items()}
    best = nodes[max(ranked, key=ranked.__getitem__)]
    # A row of a layout table scores for all its cells: go down to the cell that carries it.
    while best.tag in ("table", "thead", "tbody", "tfoot", "tr"):
        inner = [
            c
            for c in best.children
            if isinstance(c, Node) and ranked.get(id(c), 0) >= 0.5 * ranked[id(best)]
        ]
        if len(inner) != 1:
            break
        best = inner[0]
    parent = best.parent
    if parent is None:
        return best
    threshold = max(10.0, ranked.get(id(best), 0) * 0.2)
    siblings: list[Node | str] = []
    for child in parent.children:
        if isinstance(child, str) or child is best:
            siblings.append(child)
            continue
        text = one_line(child.text())
        if ranked.get(id(child), 0.0) >= threshold or (
            child.tag == "p" and len(text) > 80 and _link_density(child) < 0.25
        ):
            siblings.append(child)
    return Node("div", children=siblings)


# --- markdown ----------------------------------------------------------------------------------

_INLINE_SPACE_RE = re.compile(r"[ \t\r\n\f\u00a0]+")


@dataclass
class RenderOptions:
    anchors: bool = False  # emit anchor markers before headings that have an id
    bold_headings: bool = False  # a short paragraph wholly in bold is a heading (Word)
    heading_offset: int = 0  # added to every heading level (a chapter file inside a book)


class _Renderer:
    def __init__(self, options: RenderOptions) -> None:
        self.options = options
        self.blocks: list[str] = []
        self.headings = 0
        self.deepest = 0

    # blocks

    def block(self, node: Node, depth: int = 0) -> None:
        inline: list[Node | str] = []

        def flush() -> None:
            if inline:
                text = self.inline(inline).strip()
                if text:
                    self.paragraph(text, inline)
                inline.clear()

        for child in node.children:
            if isinstance(child, str) or not self._is_block(child):
                inline.append(child)
                continue
            flush()
            self.element(child, depth)
        flush()

    def _is_block(self, node: Node) -> bool:
        return (
            node.tag in _BLOCKS
            or node.tag in _HEADINGS
            or (node.tag in ("math",) and (node.attrs.get("display") == "block"))
        )

    def paragraph(self, text: str, parts: list[Node | str]) -> None:
        if self.options.bold_headings and self._all_bold(parts) and self._heading_like(text):
            level = min(6, self.deepest + 1 if self.deepest else 2)
            self.heading_block(level, text.strip("*").strip(), None)
            return
        self.blocks.append(text)

    @staticmethod
    def _heading_like(text: str) -> bool:
        plain = text.strip("*").strip()
        return (
            2 < len(plain) <= 120
            and not plain.endswith((".", ":", ";", ","))
            and bool(re.search(r"[^\W\d_]", plain))
        )

    @staticmethod
    def _all_bold(parts: list[Node | str]) -> bool:
        content = [p for p in parts if not (isinstance(p, str) and not p.strip())]
        return bool(content) and all(
            isinstance(p, Node) and p.tag in ("strong", "b") for p in content
        )

    def element(self, node: Node, depth: int) -> None:
        tag = node.tag
        if tag in _DROPPED:
            return
        if tag in _HEADINGS:
            text = one_line(self.inline(node.children))
            if text:
                level = self._level(node)
                self.heading_block(level, text, self._anchor(node))
        elif tag in ("ul", "ol", "menu", "dir"):
            lines = self.list_lines(node, 0)
            if lines:
                self.blocks.append("\n".join(lines))
        elif tag == "dl":
            self.definition_list(node)
        elif tag == "table":
            self.table(node, depth)
        elif tag == "pre":
            self.pre(node)
        elif tag == "blockquote":
            inner = _Renderer(self.options)
            inner.block(node, depth + 1)
            if inner.blocks:
                quoted = "\n\n".join(inner.blocks)
                self.blocks.append(
                    "\n".join(f"> {line}" if line else ">" for line in quoted.split("\n"))
                )
        elif tag == "hr":
            return
        elif tag == "math":
            text = self.math(node)
            if text:
                self.blocks.append(f"$${text}$$")
        else:
            if (
                self.options.anchors
                and tag == "section"
                and not any(isinstance(c, Node) and c.tag in _HEADINGS for c in node.children[:3])
            ):
                pass
            self.block(node, depth)

    def _level(self, node: Node) -> int:
        level = _HEADINGS[node.tag]
        if level == 1:  # HTML5 outlines nest <h1>s in sections
            sections = 0
            parent = node.parent
            while parent is not None:
                if (
                    parent.tag in ("section", "article")
                    and parent.attrs.get("data-type", "") != "chapter"
                ):
                    sections += 1
                parent = parent.parent
            level = min(6, 1 + sections) if sections else 1
        return max(1, min(6, level + self.options.heading_offset))

    def heading_block(self, level: int, text: str, anchor: str | None) -> None:
        self.headings += 1
        self.deepest = max(self.deepest, level)
        if anchor and self.options.anchors:
            self.blocks.append(anchor_marker(anchor))
        self.blocks.append("#" * level + " " + text)

    @staticmethod
    def _anchor(node: Node) -> str | None:
        if node.attrs.get("id"):
            return node.attrs["id"]
        for inner in node.iter():
            if inner.attrs.get("id"):
                return inner.attrs["id"]
            if inner.tag == "a" and inner.attrs.get("name"):
                return inner.attrs["name"]
        parent = node.parent
        if (
            parent is not None
            and parent.tag in ("section", "article", "div")
            and parent.attrs.get("id")
        ):
            first = next((c for c in parent.children if isinstance(c, Node)), None)
            if first is node:
                return parent.attrs["id"]
        return None

    def list_lines(self, node: Node, level: int) -> list[str]:
        lines: list[str] = []
        ordered = node.tag == "ol"
        number = (
            int(node.attrs.get("start", "1") or 1) if node.attrs.get("start", "").isdigit() else 1
        )
        for item in node.children:
            if isinstance(item, str):
                if item.strip():
                    lines.append("  " * level + "- " + one_line(item))
                continue
            if item.tag in ("ul", "ol"):
                lines.extend(self.list_lines(item, level + 1))
                continue
            if item.tag != "li":
                inner = _Renderer(self.options)
                inner.block(Node("div", children=[item]))
                lines.extend("  " * level + "- " + one_line(b) for b in inner.blocks)
                continue
            text_parts: list[Node | str] = []
            nested: list[Node] = []
            for child in item.children:
                if isinstance(child, Node) and child.tag in ("ul", "ol"):
                    nested.append(child)
                elif isinstance(child, Node) and child.tag in ("p", "div") and not nested:
                    text_parts.extend([" ", *child.children, " "])
                else:
                    text_parts.append(child)
            text = one_line(self.inline(text_parts))
            bullet = f"{number}. " if ordered else "- "
            number += 1
            if text:
                lines.append("  " * level + bullet + text)
            for sub in nested:
                lines.extend(self.list_lines(sub, level + 1))
        return lines

    def definition_list(self, node: Node) -> None:
        lines = []
        for child in node.children:
            if isinstance(child, Node) and child.tag in ("dt", "dd"):
                text = one_line(self.inline(child.children))
                if text:
                    lines.append(f"**{text}**" if child.tag == "dt" else text)
        if lines:
            self.blocks.append("\n\n".join(lines))

    def table(self, node: Node, depth: int) -> None:
        rows = [r for r in node.iter() if r.tag == "tr" and self._owner_table(r) is node]
        cells = [
            [c for c in r.children if isinstance(c, Node) and c.tag in ("td", "th")] for r in rows
        ]
        if self._layout(node, cells):
            for row in cells:
                for cell in row:
                    self.block(cell, depth + 1)
            return
        grid: list[list[str]] = []
        pending: dict[int, tuple[int, str]] = {}  # column -> (rows left, text) of a rowspan
        for row in cells:
            out: list[str] = []
            col = 0

            for cell in row:
                col = _fill(pending, out, col)
                text = one_line(self.inline(cell.children))
                span = _span(cell, "colspan")
                down = _span(cell, "rowspan")
                for k in range(span):
                    out.append(text if k == 0 else "")
                    if down > 1:
                        pending[col] = (down - 1, "")
                    col += 1
            col = _fill(pending, out, col)
            if any(c.strip() for c in out):
                grid.append(out)
        if not grid:
            return
        caption = node.find("caption")
        if caption is not None and self._owner_table(caption) is node:
            text = one_line(self.inline(caption.children))
            if text:
                self.blocks.append(text)
        if len(grid) == 1 and len(grid[0]) == 1:
            self.blocks.append(grid[0][0])
            return
        # A title row, one cell across the whole table, is the table's caption.
        while len(grid) > 2 and len(cells[0]) == 1 and _span(cells[0][0], "colspan") > 1:
            self.blocks.append(grid.pop(0)[0])
            cells = cells[1:]
        self.blocks.append(markdown_table(grid))

    @staticmethod
    def _owner_table(node: Node) -> Node | None:
        parent = node.parent
        while parent is not None and parent.tag != "table":
            parent = parent.parent
        return parent

    def _layout(self, table: Node, cells: list[list[Node]]) -> bool:
        """A table used to lay a page out, not to hold data: cells with blocks of their own
        (paragraphs, lists, other tables, headings), or one column."""
        if not cells:
            return True
        if max(len(r) for r in cells) <= 1:
            return True
        for row in cells:
            for cell in row:
                blocks = [
                    c
                    for c in cell.iter()
                    if c is not cell
                    and (c.tag in _HEADINGS or c.tag in ("table", "ul", "ol", "pre", "blockquote"))
                ]
                if blocks:
                    return True
                paragraphs = sum(1 for c in cell.iter() if c.tag in ("p", "div"))
                if paragraphs > 2 or len(one_line(cell.text())) > 400:
                    return True
        return False

    def pre(self, node: Node) -> None:
        text = node.text().strip("\n")
        if not text.strip():
            return
        lines = text.split("\n")
        if len(lines) >= 12 and _prose_share(lines) > 0.5:
            # Section titles marked up inside the text (an RFC's `<span class="h2">` with its
            # `<a name="section-2">`) keep their anchors.
            anchors = {
                one_line(span.text()): a.attrs.get("name") or a.attrs.get("id", "")
                for span in node.iter()
                if span.tag == "span" and re.fullmatch(r"h[1-6]", span.attrs.get("class", ""))
                for a in span.iter()
                if a.tag == "a" and (a.attrs.get("name") or a.attrs.get("id"))
            }
            self.preformatted_prose(lines, anchors)
            return
        fence = "```"
        while fence in text:
            fence += "`"
        self.blocks.append(f"{fence}\n{text}\n{fence}")

    def preformatted_prose(self, lines: list[str], anchors: dict[str, str]) -> None:
        """A document typed into one `<pre>` (an Internet-Draft): its numbered section titles
        are headings, its paragraphs are paragraphs, its indented figures stay as code."""
        paragraph: list[str] = []

        def flush() -> None:
            if not paragraph:
                return
            text = " ".join(line.strip() for line in paragraph)
            if _PLAIN_BULLET_RE.match(text):  # "   *  GET a folder: ..." lines are list items
                items: list[str] = []
                for line in paragraph:
                    bullet = _PLAIN_BULLET_RE.match(line.strip())
                    if bullet or not items:
                        items.append(line.strip()[bullet.end() if bullet else 0 :])
                    else:
                        items[-1] += " " + line.strip()
                self.blocks.append("\n".join(f"- {item}" for item in items))
            elif (
                len(paragraph) > 1
                and any(len(line) - len(line.lstrip()) > 6 for line in paragraph)
                and _prose_share(paragraph) < 0.5
            ):
                self.blocks.append("```\n" + "\n".join(paragraph) + "\n```")
            else:
                self.blocks.append(text)
            paragraph.clear()

        for line in lines:
            stripped = line.strip()
            section = _SECTION_LINE_RE.match(line)
            if section and len(stripped) < 80:
                flush()
                level = min(6, 2 + section.group(1).count("."))
                title = one_line(stripped)
                self.heading_block(level, title, anchors.get(title))
            elif not stripped or _RUNNING_LINE_RE.match(stripped):
                flush()
            else:
                paragraph.append(line)
        flush()

    # inline

    def inline(self, parts: list[Node | str]) -> str:
        out: list[str] = []
        for part in parts:
            if isinstance(part, str):
                out.append(_INLINE_SPACE_RE.sub(" ", part))
                continue
            tag = part.tag
            if tag in _DROPPED:
                continue
            if tag == "br":
                out.append("\n")
            elif tag == "img":
                alt = part.attrs.get("alt", "").strip()
                if alt and "math" in part.attrs.get("class", "") and not self._beside_math(part):
                    out.append(f"${alt}$")
            elif tag == "math":
                text = self.math(part)
                if text:
                    out.append(f"${text}$")
            elif tag in ("code", "kbd", "samp", "tt"):
                text = part.text().strip()
                if text:
                    out.append(f"`{text}`" if "`" not in text else text)
            elif tag in ("sup",) and _footnote_reference(part):
                out.append(one_line(part.text()))
            elif tag == "a" and part.attrs.get("href", "").startswith("#footnote-ref"):
                continue  # a footnote's way back to its reference
            elif tag in _BLOCKS or tag in _HEADINGS:
                out.append(" " + self.inline(part.children) + " ")
            else:
                out.append(self.inline(part.children))
        lines = (" ".join(line.split()) for line in "".join(out).split("\n"))
        return "\n".join(line for line in lines if line).strip()

    @staticmethod
    def _beside_math(node: Node) -> bool:
        parent = node.parent
        return parent is not None and any(n.tag == "math" for n in parent.iter())

    @staticmethod
    def math(node: Node) -> str:
        alt = node.attrs.get("alttext", "").strip()
        if alt:
            return _tex(alt)
        for inner in node.iter():
            if inner.tag == "annotation" and "tex" in inner.attrs.get("encoding", "").lower():
                return _tex(inner.text())
        return one_line(node.text())


_SECTION_LINE_RE = re.compile(r"^(\d+(?:\.\d+)*)\.?\s{1,4}[A-Z][^.]*$|^(Appendix [A-Z])\.?\s")
_PLAIN_BULLET_RE = re.compile(r"^[*o\-\u2022]\s+")
_RUNNING_LINE_RE = re.compile(r"^(.{0,60}\s{3,}.{0,60}\s{3,}.{0,40}|.*\[Page \d+\])$")


def _prose_share(lines: list[str]) -> float:
    text = [line for line in lines if line.strip()]
    if not text:
        return 0.0
    prose = sum(1 for line in text if re.search(r"[a-z]{3,} [a-z]{2,} [a-z]{2,}", line))
    return prose / len(text)


def _tex(text: str) -> str:
    text = one_line(text)
    match = re.fullmatch(r"\{\\displaystyle (.*)\}", text)
    return match.group(1).strip() if match else text


def _footnote_reference(node: Node) -> bool:
    return any(a.tag == "a" and a.attrs.get("href", "").startswith("#") for a in node.iter())


def _fill(pending: dict[int, tuple[int, str]], out: list[str], col: int) -> int:
    """Fill the columns that cells of rows above span down into; the next free column."""
    while col in pending:
        left, text = pending[col]
        out.append(text)
        if left <= 1:
            del pending[col]
        else:
            pending[col] = (left - 1, text)
        col += 1
    return col


def _span(cell: Node, name: str) -> int:
    value = cell.attrs.get(name, "1").strip()
    return max(1, min(int(value), 1000)) if value.isdigit() else 1


def render(node: Node, options: RenderOptions | None = None) -> tuple[str, int]:
    """The markdown of `node`, and how many headings it holds."""
    renderer = _Renderer(options or RenderOptions())
    renderer.block(node)
    blocks = [b for b in renderer.blocks if b.strip()]
    # An anchor marker alone at the end, or two in a row, marks nothing.
    kept: list[str] = []
    for block in blocks:
        if kept and kept[-1].startswith("<!-- anchor:") and block.startswith("<!-- anchor:"):
            kept[-1] = block
        else:
            kept.append(block)
    if kept and kept[-1].startswith("<!-- anchor:"):
        kept.pop()
    return "\n\n".join(kept), renderer.headings


# --- a web page ----------------------------------------------------------------------------------

_TITLE_SEPARATORS_RE = re.compile("\\s+[|\\-\u2013\u2014\u00bb\u00b7:]\\s+")


def page_title(root: Node, content: Node, name: str) -> str | None:
    """The page's title: what it tells sharers (og:title), else its <title> without the site's
    name, else its article's first heading."""
    heading = next((n for n in content.iter() if n.tag in ("h1", "h2")), None)
    heading_text = one_line(heading.text()) if heading is not None else ""
    named = [
        m.attrs.get("content", "")
        for m in root.iter()
        if m.tag == "meta"
        and m.attrs.get("property", m.attrs.get("name", "")).lower()
        in ("og:title", "twitter:title", "dc.title")
    ]
    head = root.find("title")
    for full in [*named, head.text() if head is not None else ""]:
        full = one_line(full)
        parts = _TITLE_SEPARATORS_RE.split(full)
        if heading_text and heading_text in parts:
            return heading_text
        if len(parts) > 1:
            # The site's name is the shorter end: "Obama admits ... - BBC News".
            first, last = parts[0], parts[-1]
            choice = first if len(first) >= len(last) else last
            if len(choice.split()) >= 2 or not re.search(r"[a-zA-Z]", choice):
                return meaningful_title(choice, name) or meaningful_title(full, name)
        title = meaningful_title(full, name)
        if title:
            return title
    return meaningful_title(heading_text, name)


def read_html(data: bytes, name: str) -> Converted:
    """A web page: its article as markdown, each linkable section marked with its anchor."""
    text = decode(data)
    if "<" not in text:
        raise FormatError("not HTML: no markup in the file")
    root = parse(text)
    content = article(root)
    markdown, headings = render(content, RenderOptions(anchors=True))
    if not markdown.strip():
        raise FormatError("no text: the page holds no article text")
    return Converted(markdown, page_title(root, content, name), "section", headings)
