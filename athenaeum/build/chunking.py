"""Turn documents into chunks the embedding model reads whole.

Three input formats: converted markdown (front matter + `<!-- page: N -->` markers), plain
markdown or text, and BEIR `corpus.jsonl` lines. A document becomes sections at its markdown
headings; a section becomes blocks (paragraphs, tables, fenced code); blocks are packed greedily
into chunks of at most `max_tokens` tokens as counted by the model's own tokenizer, so no chunk
is silently truncated at embedding time. An oversize paragraph is cut at sentence, then word,
then character boundaries; an oversize table between rows with its header repeated; an oversize
code block between lines, each piece re-fenced. Consecutive chunks of one section overlap by up
to `overlap` tokens of trailing prose so a sentence cut at a chunk edge is still seen whole once.

Pure Python: the tokenizer comes in as a `count_tokens` callable.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from athenaeum.build.sources import (
    ANCHOR_MARKER_RE,
    LOCATION_MARKER_RE,
    document_metadata,
    location,
    location_span,
    meaningful_title,
    parse_markdown,
    readable_stem,
    source_file,
)
from athenaeum.build.titles import plain_title
from athenaeum.bundle import ChunkRecord, SourceFileInfo
from athenaeum.bundle.format import CITE_BY_FIELD, COLLECTION_FIELD, collection_error
from athenaeum.errors import InvalidInputError

TokenCounter = Callable[[str], int]
"""Number of model tokens in a string, without the model's special tokens."""

# Bumped whenever the chunking algorithm changes what it produces for the same input, so that
# an incremental build notices and re-chunks (and re-embeds) everything.
CHUNKER_VERSION = 1
DEFAULT_OVERLAP = 32

DocumentKind = Literal["markdown", "text", "beir"]
BlockKind = Literal["paragraph", "table", "code", "heading"]

_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_TABLE_LINE_RE = re.compile(r"^ {0,3}\|")
_TABLE_SEPARATOR_RE = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by whitespace.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_WORD_RE = re.compile(r"\S+")
_EMPHASIS_RE = re.compile(r"\*\*|__|(?<!\w)[*_]+|[*_]+(?!\w)")
_CHUNK_SEPARATOR = "\n\n"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ChunkingParams:
    """What decides the chunks; stored in the manifest, and a change forces a full rebuild."""

    max_tokens: int
    overlap: int = DEFAULT_OVERLAP
    # Embed (and BM25-index) each chunk with its document title and heading path in front; see
    # `embed_text`.
    context: bool = True
    version: int = CHUNKER_VERSION

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise InvalidInputError(f"max_tokens must be at least 16, got {self.max_tokens}")
        if not 0 <= self.overlap <= self.max_tokens // 2:
            raise InvalidInputError(
                f"overlap must be between 0 and half of max_tokens ({self.max_tokens // 2}), "
                f"got {self.overlap}"
            )

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)


@dataclass(frozen=True)
class SourceDocument:
    """One document to index, before chunking. `sha256` is what change detection compares."""

    doc_id: str
    source: str
    title: str | None
    text: str
    sha256: str
    kind: DocumentKind
    metadata: dict[str, Any] = field(default_factory=dict)
    source_file: SourceFileInfo | None = None
    # "section": chunks are cited by their heading path (a converted Word, HTML or EPUB file).
    locator: str | None = None


# The chunker produces the bundle's own record: row i of chunks.jsonl, vectors.npy and BM25.
Chunk = ChunkRecord


def chunk_id(doc_id: str, ordinal: int, text: str) -> str:
    """Stable across rebuilds: the same document chunked the same way gets the same ids."""
    return hashlib.sha256(f"{doc_id}\x00{ordinal}\x00{text}".encode()).hexdigest()[:16]


# --- reading documents ---------------------------------------------------------------------


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_text_document(path: Path, doc_id: str) -> SourceDocument:
    """A `.md`/`.markdown` (parsed as markdown) or `.txt` (plain paragraphs) file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from exc
    text = raw.decode("utf-8", errors="replace")
    sha = hashlib.sha256(raw).hexdigest()
    if path.suffix.lower() == ".txt":
        return SourceDocument(doc_id, doc_id, readable_stem(path.name), text, sha, "text")
    parsed = parse_markdown(text)
    if COLLECTION_FIELD in parsed.metadata:
        # A document meant for a collection must never land at the root, which everyone reads.
        problem = collection_error(parsed.metadata[COLLECTION_FIELD])
        if problem is not None:
            raise InvalidInputError(
                f"{path}: the front matter's {COLLECTION_FIELD!r} is not a collection: {problem}",
                param="inputs",
            )
    source = str(parsed.metadata.get("source") or doc_id)
    title = (
        meaningful_title(plain_title(parsed.title or ""), source)
        or _first_heading(parsed.body, source)
        or readable_stem(source)
    )
    return SourceDocument(
        doc_id,
        source,
        title,
        text,
        sha,
        "markdown",
        metadata=document_metadata(parsed.metadata),
        source_file=source_file(parsed.metadata),
        locator=str(parsed.metadata.get(CITE_BY_FIELD) or "") or None,
    )


def _first_heading(body: str, source: str) -> str | None:
    """The first level-1 heading that names the document, else the first heading of any level
    that does (headings in code fences are code)."""
    in_fence = False
    found: list[tuple[int, str]] = []
    for line in body.splitlines():
        if _FENCE_RE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _HEADING_RE.match(line)):
            title = meaningful_title(clean_heading(m.group(2) or ""), source)
            if title:
                found.append((len(m.group(1)), title))
    return min(found, key=lambda item: item[0])[1] if found else None


def read_beir_corpus(path: Path, source: str | None = None) -> Iterator[SourceDocument]:
    """Documents of a BEIR `corpus.jsonl`: one JSON object per line with `_id`, `title`, `text`.

    BEIR practice: the text that is embedded and BM25-indexed is `title + " " + text`.
    """
    source = source or path.name
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                doc_id = str(record["_id"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InvalidInputError(
                    f"{path}:{line_number}: not a BEIR corpus line with an '_id' ({exc})"
                ) from exc
            title = str(record.get("title") or "").strip()
            body = str(record.get("text") or "").strip()
            text = f"{title} {body}".strip() if title else body
            yield SourceDocument(
                doc_id=doc_id,
                source=source,
                title=title or None,
                text=text,
                sha256=_sha256_text(json.dumps([title, body], ensure_ascii=False)),
                kind="beir",
            )


# --- blocks: a document's structure --------------------------------------------------------


@dataclass
class _Line:
    text: str
    page: int | None
    where: str | None = None  # a location that is not a page: "slide 7", "sheet Budget!A1:F9"
    anchor: str | None = None  # the fragment that opens its section in the original


@dataclass
class _Block:
    kind: BlockKind
    lines: list[_Line]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass
class _Section:
    heading_path: list[str]
    blocks: list[_Block] = field(default_factory=list)


def clean_heading(text: str) -> str:
    """Heading text without `**`/`__`/`*`/`_` emphasis markers (`snake_case` stays intact)."""
    return " ".join(_EMPHASIS_RE.sub("", text).split())


def _markdown_sections(body: str) -> list[_Section]:
    """Split markdown at ATX headings (not inside fenced code), keeping each line's page."""
    sections = [_Section([])]
    stack: list[tuple[int, str]] = []
    page: int | None = None
    where: str | None = None
    anchor: str | None = None
    current: _Block | None = None
    fence: str | None = None  # the opening fence while inside a code block

    def close() -> None:
        nonlocal current
        if current is not None and any(line.text.strip() for line in current.lines):
            blocks = sections[-1].blocks
            if blocks and _continues(blocks[-1], current):
                blocks[-1].lines.extend(current.lines[2:])
            else:
                blocks.append(current)
        current = None

    for line in body.split("\n"):
        if anchored := ANCHOR_MARKER_RE.fullmatch(line.rstrip("\r")):
            anchor = anchored.group(1).strip() or None
            continue
        if marker := LOCATION_MARKER_RE.fullmatch(line.rstrip("\r")):
            page = int(marker.group(2))
            where = location(marker.group(1), page, marker.group(3))
            # A paragraph ends at a page break so every paragraph has one page; tables and code
            # continue (their pieces still get exact spans from their own lines' pages).
            if current is not None and current.kind == "paragraph":
                close()
            continue
        line = line.rstrip("\r")
        if fence is not None:
            assert current is not None
            current.lines.append(_Line(line, page, where, anchor))
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                fence = None
                close()
            continue
        if fence_match := _FENCE_RE.match(line):
            close()
            fence = fence_match.group(1)
            current = _Block("code", [_Line(line, page, where, anchor)])
            continue
        if heading := _HEADING_RE.match(line):
            close()
            level = len(heading.group(1))
            stack = [h for h in stack if h[0] < level]
            stack.append((level, clean_heading(heading.group(2) or "")))
            sections.append(_Section([text for _, text in stack if text]))
            sections[-1].blocks.append(
                _Block("heading", [_Line(line.strip(), page, where, anchor)])
            )
            continue
        if not line.strip():
            close()
            continue
        kind: BlockKind = "table" if _TABLE_LINE_RE.match(line) else "paragraph"
        if current is None or current.kind != kind:
            close()
            current = _Block(kind, [])
        current.lines.append(_Line(line, page, where, anchor))
    close()
    return _merge_empty_sections(sections)


def _continues(before: _Block, block: _Block) -> bool:
    """A table on a later page with the same header row is the rest of the table before it:
    the converter repeats a table's header on each page it runs over, so that each page reads
    alone and keeps its page marker; the chunker takes the parts as one table again and cuts it
    between rows wherever it must, each piece under that header."""
    if before.kind != "table" or block.kind != "table" or len(block.lines) < 3:
        return False
    head = [line.text.strip() for line in block.lines[:2]]
    if not _TABLE_SEPARATOR_RE.match(head[1]):
        return False
    pages = [line.page for line in before.lines if line.page is not None]
    page = block.lines[0].page
    return [line.text.strip() for line in before.lines[:2]] == head and bool(
        pages and page is not None and page > max(pages)
    )


def _merge_empty_sections(sections: list[_Section]) -> list[_Section]:
    """A heading directly followed by another heading joins the next section's first chunk.

    Otherwise a document outline ("# Guide" then "## Install") yields chunks that hold nothing
    but a heading line, which match every query that mentions the heading and answer none.
    """
    merged: list[_Section] = []
    pending: list[_Section] = []
    for section in sections:
        if not section.blocks:
            continue
        if all(b.kind == "heading" for b in section.blocks):
            pending.append(section)
            continue
        # Only ancestors' headings join: a sibling's empty heading ("# A" then "# B") is dropped
        # rather than shown under a heading path it does not belong to.
        path = section.heading_path
        section.blocks[:0] = [
            block
            for empty in pending
            if path[: len(empty.heading_path)] == empty.heading_path
            for block in empty.blocks
        ]
        pending = []
        merged.append(section)
    if pending:  # headings at the very end, or a document that is nothing but headings
        merged.append(_Section(pending[-1].heading_path, [b for s in pending for b in s.blocks]))
    return merged


def _plain_sections(text: str) -> list[_Section]:
    """Plain text (`.txt`, BEIR): paragraphs at blank lines, no markdown structure."""
    section = _Section([])
    for paragraph in re.split(r"\n[ \t]*\n", text):
        if paragraph.strip():
            lines = [_Line(line.rstrip("\r"), None) for line in paragraph.strip("\n").split("\n")]
            section.blocks.append(_Block("paragraph", lines))
    return [section]


# --- pieces: blocks cut to fit ---------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """Where a piece of text is: its pages (or slide, sheet numbers), the locations of its first
    and last lines where the format has locations other than pages, and its section's anchor."""

    page_start: int | None = None
    page_end: int | None = None
    first: str | None = None
    last: str | None = None
    anchor: str | None = None

    def end(self) -> _Span:
        """Where the last of it is: the span of an overlap carried to the next chunk."""
        return _Span(self.page_end, self.page_end, self.last, self.last, self.anchor)


@dataclass
class _Piece:
    text: str
    tokens: int
    span: _Span
    prose: bool  # trailing prose may be repeated as overlap at the start of the next chunk
    carried: bool = False  # this piece is such an overlap


def _page_span(lines: Sequence[_Line]) -> _Span:
    pages = [line.page for line in lines if line.page is not None]
    wheres = [line.where for line in lines if line.where is not None]
    anchor = next((line.anchor for line in lines if line.anchor), None)
    return _Span(
        min(pages) if pages else None,
        max(pages) if pages else None,
        wheres[0] if wheres else None,
        wheres[-1] if wheres else None,
        anchor,
    )


class _Splitter:
    def __init__(self, count_tokens: TokenCounter, params: ChunkingParams) -> None:
        # The same strings (a block, its sentences, a piece) are counted more than once.
        self.count: TokenCounter = functools.lru_cache(maxsize=8192)(count_tokens)
        self.params = params

    def greedy(
        self,
        items: Sequence[_T],
        size: Callable[[_T], int],
        render: Callable[[Sequence[_T]], str],
        cap: int,
        overhead: int = 0,
    ) -> list[Sequence[_T]]:
        """Consecutive groups of items, each as long as fits in `cap` tokens.

        Groups grow on the sum of the items' own counts (exact for WordPiece, where whitespace
        and punctuation separate tokens), then each is counted once as rendered and shrunk an
        item at a time if a tokenizer merges across the joins. A group is never empty: a single
        item stands alone even if it is too big (callers cut items to fit first).
        """
        groups: list[Sequence[_T]] = []
        i = 0
        while i < len(items):
            j, total = i + 1, overhead + size(items[i])
            while j < len(items) and total + size(items[j]) <= cap:
                total += size(items[j])
                j += 1
            while j > i + 1 and self.count(render(items[i:j])) > cap:
                j -= 1
            groups.append(items[i:j])
            i = j
        return groups

    # Spans are (start, end) offsets into one text, so every piece is a verbatim slice of it.

    def split_text(self, text: str, cap: int) -> list[str]:
        """Cut text into pieces of at most `cap` tokens at sentence, word, then char boundaries."""
        return [text[a:b] for a, b in self._split_span(text, 0, len(text), cap, level=0)]

    def _split_span(self, text: str, a: int, b: int, cap: int, level: int) -> list[tuple[int, int]]:
        if self.count(text[a:b]) <= cap:
            return [(a, b)]
        if level >= 2:
            return self._split_chars(text, a, b, cap)
        units = _sentence_spans(text, a, b) if level == 0 else _word_spans(text, a, b)
        if len(units) <= 1:
            return self._split_span(text, a, b, cap, level + 1)
        atoms: list[tuple[int, int]] = []
        for ua, ub in units:
            atoms.extend(self._split_span(text, ua, ub, cap, level + 1))
        return self._pack_spans(text, atoms, cap)

    def _pack_spans(
        self, text: str, atoms: list[tuple[int, int]], cap: int
    ) -> list[tuple[int, int]]:
        """Greedy: each span takes as many consecutive atoms as fit in `cap` tokens."""
        groups = self.greedy(
            atoms,
            lambda span: self.count(text[span[0] : span[1]]),
            lambda group: text[group[0][0] : group[-1][1]],
            cap,
        )
        return [(group[0][0], group[-1][1]) for group in groups]

    def _split_chars(self, text: str, a: int, b: int, cap: int) -> list[tuple[int, int]]:
        """Last resort for a single "word" longer than the cap (a URL, a base64 blob)."""
        spans: list[tuple[int, int]] = []
        while a < b:
            lo, hi = a + 1, b  # the longest prefix text[a:end] that fits, by binary search
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.count(text[a:mid]) <= cap:
                    lo = mid
                else:
                    hi = mid - 1
            spans.append((a, lo))
            a = lo
        return spans

    def tail(self, text: str, budget: int) -> str:
        """The longest suffix of whole sentences (or, failing that, words) within `budget`."""
        if budget <= 0:
            return ""
        sentences = _sentence_spans(text, 0, len(text))
        best = ""
        for start, _ in reversed(sentences[1:]):
            candidate = text[start:]
            if self.count(candidate) > budget:
                break
            best = candidate
        if best:
            return best
        words = _word_spans(text, 0, len(text))
        lo, hi = 0, len(words) - 1  # how many trailing words fit (never all of them)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count(text[words[-mid][0] :]) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return text[words[-lo][0] :] if lo else ""

    # --- blocks to pieces

    def pieces(self, block: _Block, cap: int, cut_cap: int) -> list[_Piece]:
        """The block whole if it fits in `cap`, else cut into pieces of at most `cut_cap`."""
        text = block.text
        tokens = self.count(text)
        if tokens <= cap:
            return [_Piece(text, tokens, _page_span(block.lines), block.kind == "paragraph")]
        cap = cut_cap
        if tokens <= cap:
            return [_Piece(text, tokens, _page_span(block.lines), block.kind == "paragraph")]
        if block.kind == "table":
            return self._table_pieces(block, cap)
        if block.kind == "code":
            return self._code_pieces(block, cap)
        span = _page_span(block.lines)
        return [_Piece(part, self.count(part), span, True) for part in self.split_text(text, cap)]

    def _table_pieces(self, block: _Block, cap: int) -> list[_Piece]:
        """Cut between rows; each piece starts with the header row (and its separator)."""
        lines = block.lines
        head_len = 2 if len(lines) > 1 and _TABLE_SEPARATOR_RE.match(lines[1].text) else 1
        head, rows = lines[:head_len], lines[head_len:]
        if not rows:  # a header taller than the cap: nothing to repeat, cut it as text
            return [
                _Piece(part, self.count(part), _page_span(lines), False)
                for part in self.split_text(block.text, cap)
            ]
        groups = self.greedy(
            rows,
            lambda row: self.count(row.text),
            lambda group: "\n".join(x.text for x in [*head, *group]),
            cap,
            overhead=self.count("\n".join(x.text for x in head)),
        )
        pieces = []
        for group in groups:
            # A single row taller than the cap is kept whole (rows are never cut); the embedding
            # model then reads only its beginning, while BM25 still indexes all of it.
            text = "\n".join(x.text for x in [*head, *group])
            pieces.append(_Piece(text, self.count(text), _page_span(group), False))
        return pieces

    def _code_pieces(self, block: _Block, cap: int) -> list[_Piece]:
        """Cut between lines; every piece is wrapped in the block's fences so it still renders."""
        lines = block.lines
        opening = lines[0].text
        closed = len(lines) > 1 and _FENCE_RE.match(lines[-1].text) is not None
        fence_match = _FENCE_RE.match(opening)
        closing = fence_match.group(1) if fence_match else "```"
        body = lines[1:-1] if closed else lines[1:]
        fence_tokens = self.count(f"{opening}\n{closing}")
        inner_cap = cap - fence_tokens
        if inner_cap < 8:  # absurd fences: cut the whole thing as text
            return [
                _Piece(part, self.count(part), _page_span(lines), False)
                for part in self.split_text(block.text, cap)
            ]
        units: list[tuple[str, list[_Line]]] = []
        for line in body:
            if self.count(line.text) <= inner_cap:
                units.append((line.text, [line]))
            else:
                units.extend((part, [line]) for part in self.split_text(line.text, inner_cap))

        def render(group: Sequence[tuple[str, list[_Line]]]) -> str:
            return "\n".join([opening, *(t for t, _ in group), closing])

        pieces: list[_Piece] = []
        for group in self.greedy(units, lambda u: self.count(u[0]), render, cap, fence_tokens):
            text = render(group)
            span = _page_span([x for _, lines in group for x in lines])
            pieces.append(_Piece(text, self.count(text), span, False))
        return pieces


def _sentence_spans(text: str, a: int, b: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = a
    for m in _SENTENCE_END_RE.finditer(text, a, b):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < b and text[start:b].strip():
        spans.append((start, b))
    return [_strip_span(text, s, e) for s, e in spans if text[s:e].strip()]


def _word_spans(text: str, a: int, b: int) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _WORD_RE.finditer(text, a, b)]


def _strip_span(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


# --- packing ---------------------------------------------------------------------------------


def chunk_document(
    document: SourceDocument, count_tokens: TokenCounter, params: ChunkingParams
) -> list[Chunk]:
    """Chunks of one document, each at most `params.max_tokens` tokens by `count_tokens`.

    The only exception is a single table row longer than the cap: rows are never cut.
    """
    if document.kind == "markdown":
        sections = _markdown_sections(parse_markdown(document.text).body)
    else:
        sections = _plain_sections(document.text)
    splitter = _Splitter(count_tokens, params)
    cap = params.max_tokens
    texts: list[tuple[str, list[str], _Span]] = []
    for section in sections:
        packed = list(_pack_section(section, splitter, params, cap))
        label = context_label(document.title, section.heading_path, splitter.count, params)
        if label and any(
            not _starts_with(text, label) and splitter.count(f"{label}\n\n{text}") > cap
            for text, _ in packed
        ):
            # Some chunk has no room for its context: pack the section again leaving room.
            packed = list(
                _pack_section(section, splitter, params, cap - splitter.count(f"{label}\n\n"))
            )
        texts.extend((text, section.heading_path, span) for text, span in packed)
    by_sections = document.locator == "section"
    return [
        Chunk(
            id=chunk_id(document.doc_id, ordinal, text),
            doc_id=document.doc_id,
            ordinal=ordinal,
            text=text,
            title=document.title,
            source=document.source,
            heading_path=list(path),
            page_start=span.page_start,
            page_end=span.page_end,
            location=(" > ".join(path) or None)
            if by_sections
            else location_span(span.first, span.last),
            anchor=span.anchor,
        )
        for ordinal, (text, path, span) in enumerate(texts)
    ]


def _joined_span(spans: Sequence[_Span]) -> _Span:
    starts = [s.page_start for s in spans if s.page_start is not None]
    ends = [s.page_end for s in spans if s.page_end is not None]
    firsts = [s.first for s in spans if s.first is not None]
    lasts = [s.last for s in spans if s.last is not None]
    return _Span(
        min(starts) if starts else None,
        max(ends) if ends else None,
        firsts[0] if firsts else None,
        lasts[-1] if lasts else None,
        next((s.anchor for s in spans if s.anchor), None),
    )


def _pack_section(
    section: _Section, splitter: _Splitter, params: ChunkingParams, cap: int
) -> Iterator[tuple[str, _Span]]:
    overlap = params.overlap
    # A block that fits is kept whole; an oversize one is cut to leave room for the overlap
    # that each of its later pieces starts with.
    queue = deque(p for block in section.blocks for p in splitter.pieces(block, cap, cap - overlap))
    separator = splitter.count(_CHUNK_SEPARATOR)

    def join(group: Sequence[_Piece]) -> str:
        return _CHUNK_SEPARATOR.join(p.text for p in group)

    def fits(group: Sequence[_Piece]) -> bool:
        # On the pieces' own counts (exact for WordPiece); `settle` recounts once per chunk.
        return sum(p.tokens for p in group) + separator * (len(group) - 1) <= cap

    def settle(group: list[_Piece]) -> tuple[list[_Piece], list[_Piece]]:
        """The group as counted whole, and the pieces that must move to the next chunk."""
        spill: list[_Piece] = []
        while len(group) > 1 and splitter.count(join(group)) > cap:
            if group[0].carried:  # give up the overlap before any real text
                group = group[1:]
            else:
                spill.insert(0, group.pop())
        return group, spill

    current: list[_Piece] = []
    while queue or current:
        if queue and (not current or fits([*current, queue[0]])):
            current.append(queue.popleft())
            continue
        kept, spill = settle(current)
        yield join(kept), _joined_span([p.span for p in kept])
        queue.extendleft(reversed(spill))
        current = []
        previous = kept[-1]
        if queue and previous.prose and overlap:
            following = queue[0]
            tail = splitter.tail(previous.text, min(overlap, cap - following.tokens - separator))
            if tail:
                end = previous.span.end()
                carried = _Piece(tail, splitter.count(tail), end, True, carried=True)
                if fits([carried, following]):
                    current = [carried]


# --- the text the model embeds -------------------------------------------------------------


def context_label(
    title: str | None,
    heading_path: Sequence[str],
    count_tokens: TokenCounter,
    params: ChunkingParams,
) -> str:
    """`Title > Heading > Subheading`, at most a quarter of the cap (outer parts go first)."""
    if not params.context:
        return ""
    parts: list[str] = []
    for part in (title or "", *heading_path):
        part = " ".join(part.split())
        if part and part.casefold() not in {p.casefold() for p in parts}:
            parts.append(part)
    budget = params.max_tokens // 4
    while parts and count_tokens(" > ".join(parts)) > budget:
        parts.pop(0)
    return " > ".join(parts)


def embed_text(
    text: str,
    title: str | None,
    heading_path: Sequence[str],
    count_tokens: TokenCounter,
    params: ChunkingParams,
) -> str:
    """What the model embeds and BM25 indexes for a chunk: its text, with the title and heading
    path in front unless the text already starts with them (a BEIR document, whose text starts
    with its title; a first chunk under its `# Title`). A chunk cut from the middle of a long
    section otherwise carries no hint of what it is about.

    Never longer than `params.max_tokens`: chunk_document leaves room for the label.
    """
    label = context_label(title, heading_path, count_tokens, params)
    if not label or _starts_with(text, label):
        return text
    full = f"{label}\n\n{text}"
    return full if count_tokens(full) <= params.max_tokens else text


def _starts_with(text: str, label: str) -> bool:
    head = re.sub(r"\A\s*#{1,6}[ \t]*", "", text[: 4 * len(label) + 16])
    return clean_heading(head).casefold().startswith(" ".join(label.split()).casefold())
