"""Documents to markdown (build side): `athenaeum convert`.

PDFs are read here; Word, PowerPoint, Excel, HTML and EPUB files by the readers in
athenaeum.build.formats, into the same contract (front matter, headings, tables, location
markers), through `convert_file`, which `athenaeum convert` and cloud ingest both call.

The converter works on PyMuPDF's text dictionary rather than on pymupdf4llm: on the shared
ground-truth set it is as faithful (see docs/benchmarks.md) and about an order of magnitude
faster, and it gives us the per-page control that page markers, header/footer removal and
per-page OCR need.

Per page: ruled tables are found with `find_tables` and rendered as markdown tables; the text
blocks outside them are kept in content-stream order (which, unlike a geometric sort, keeps
the columns of well-made multi-column PDFs in reading order); headings come from font size
relative to the document's body size; lines repeated in the top or bottom margin of many pages
(running headers, footers, page numbers) are dropped; words hyphenated across lines are joined.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import StrEnum
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from athenaeum import __version__
from athenaeum.build import formats as _formats
from athenaeum.build import tables as _tables
from athenaeum.build.gutter import strip_gutter
from athenaeum.build.orientation import upright_copy
from athenaeum.build.sources import (
    page_marker,
    parse_markdown,
    readable_stem,
    render_markdown,
)
from athenaeum.build.titles import FirstPage, document_title
from athenaeum.bundle.format import CITE_BY_FIELD, SOURCE_PATH_FIELD
from athenaeum.errors import InvalidInputError, MissingDependencyError

CONVERTER_NAME = "athenaeum-pymupdf"
FORMATS_CONVERTER_NAME = "athenaeum"
# What `convert` reads, and cloud ingest converts.
DOCUMENT_SUFFIXES = (".pdf", *_formats.SUFFIXES)
_HASH_CHUNK = 1 << 20

# A page whose text layer has fewer characters than this is treated as having none: scanned
# pages often carry a few stray glyphs (page numbers, a stamp).
MIN_TEXT_CHARS = 16
MARGIN_FRACTION = 0.09
HEADING_SIZE_RATIO = 1.15
_NUMBERED_HEADING_RE = re.compile(r"^(\d+(\.\d+)*\.?|[IVXLC]+\.|[A-Z]\.)\s+\S")
_PAGE_NUMBER_RE = re.compile(
    r"^\W*(page\s*)?\d{1,6}(\s*(of|/)\s*\d{1,6})?\W*$|^\W*[ivxlc]{1,6}\W*$", re.IGNORECASE
)
_SPACES_RE = re.compile(r"[ \t\u00a0]+")
_HYPHEN_END_RE = re.compile(r"[^\W\d_]-$")
_RECORDED_SHA_RE = re.compile(r"^sha256: '?([0-9a-f]{64})'?$", re.MULTILINE)


class Status(StrEnum):
    CONVERTED = "converted"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass
class FileResult:
    source: Path
    output: Path
    status: Status
    reason: str = ""
    pages: int = 0  # the file's units: pages, slides, sheets, chapters or sections
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    unit: str = "page"


@dataclass
class ConvertOptions:
    passwords: Sequence[str] = ()
    ocr: bool = False
    ocr_language: str = "eng"
    ocr_dpi: int = 300
    overwrite: bool = False
    # How a person supplies a password where these options come from: the CLI's flag, or the
    # ingest function's secret.
    password_hint: str = "give it with --password"  # noqa: S105 (advice, not a password)
    ocr_hint: str = "run with --ocr to read them"
    # A PDF with more pages is refused (its result says so) rather than converted.
    max_pages: int | None = None
    # Any other document larger than this many bytes is refused the same way.
    max_bytes: int | None = None


@dataclass
class ConvertReport:
    results: list[FileResult]

    def by_status(self, status: Status) -> list[FileResult]:
        return [r for r in self.results if r.status is status]

    @property
    def ok(self) -> bool:
        return not self.by_status(Status.FAILED)

    @property
    def pages_converted(self) -> int:
        """The PDF pages converted (other formats count slides, sheets or sections)."""
        return sum(r.pages for r in self.by_status(Status.CONVERTED) if r.unit == "page")


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path
    display: str  # the source path as written into the front matter
    # Where the source file lives, as the front matter records it; None: its local path.
    location: str | None = None


_PYMUPDF_EXTRAS = ("pymupdf.layout", "pymupdf4llm")


def _import_pymupdf() -> Any:
    blocked = []
    if "pymupdf" not in sys.modules:
        # pymupdf 2 imports pymupdf-layout (an ONNX layout model) and pymupdf4llm when they are
        # installed, which costs seconds per process; this converter needs neither. A None entry
        # in sys.modules makes those optional imports fail fast, as if they were not installed;
        # the entries are removed again so that code importing them explicitly later still can.
        blocked = [name for name in _PYMUPDF_EXTRAS if name not in sys.modules]
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]
    try:
        import pymupdf
    except ImportError as exc:  # pragma: no cover - exercised only on a bare install
        raise MissingDependencyError("pymupdf", "build") from exc
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]
    return pymupdf


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


# --- planning -------------------------------------------------------------------------------


def is_document(name: str) -> bool:
    """Whether `convert` reads a file of this name (by its suffix, in any case)."""
    return Path(name).suffix.lower() in DOCUMENT_SUFFIXES


def output_name(rel: str) -> str:
    """Where a document's markdown goes, relative to the output folder: a PDF's path with `.md`
    for its suffix ("reports/q3.pdf" becomes "reports/q3.md"), any other document's path with
    `.md` after its own suffix ("reports/q3.docx.md"), so that a report kept both as PDF and as
    Word is two documents, never one overwriting the other."""
    path = Path(rel)
    if path.suffix.lower() == ".pdf":
        return path.with_suffix(".md").as_posix()
    return f"{path.as_posix()}.md"


def plan_jobs(inputs: Iterable[Path], out_dir: Path) -> list[Job]:
    """Map every input document to its markdown output, mirroring each input folder's tree."""
    jobs: dict[Path, Job] = {}
    for given in inputs:
        if not given.exists():
            raise InvalidInputError(f"input not found: {given}")
        if given.is_dir():
            files = [p for p in given.rglob("*") if p.is_file()]
            documents = sorted(p for p in files if is_document(p.name))
            if not documents:
                raise InvalidInputError(_no_pdf_message(given, files))
            pairs = [(p, p.relative_to(given)) for p in documents]
        elif is_document(given.name):
            pairs = [(given, Path(given.name))]
        else:
            raise InvalidInputError(
                f"not a document convert reads ({', '.join(DOCUMENT_SUFFIXES)}) or a folder: "
                f"{given}"
            )
        for pdf, rel in pairs:
            output = out_dir / output_name(rel.as_posix())
            if output in jobs and jobs[output].source.resolve() != pdf.resolve():
                raise InvalidInputError(
                    f"{pdf} and {jobs[output].source} would both be written to {output}; "
                    "convert them in separate calls or to separate --out folders"
                )
            jobs[output] = Job(pdf, output, rel.as_posix())
    return list(jobs.values())


def _no_pdf_message(folder: Path, files: list[Path]) -> str:
    """What to say of a folder with no PDF in it: what it holds instead, and where that goes."""
    if not files:
        return f"no document to convert: {folder} has no files (is it the right folder?)"
    names = sorted({p.suffix.lower() or p.name for p in files})
    text = [p for p in files if p.suffix.lower() in (".md", ".markdown", ".txt")]
    advice = (
        "; markdown and text files need no conversion: give the folder to `athenaeum index`"
        if text
        else f"; convert reads {', '.join(DOCUMENT_SUFFIXES)} files"
    )
    return (
        f"no document to convert: {folder} holds {len(files)} file(s), none it reads "
        f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}){advice}"
    )


def _recorded_sha256(output: Path) -> str | None:
    """The source's hash recorded in an earlier output's front matter, if there is one."""
    if not output.is_file():
        return None
    with output.open(encoding="utf-8", errors="replace") as fh:
        head = fh.read(4096)
    if not head.startswith("---"):
        return None
    match = _RECORDED_SHA_RE.search(head.split("\n---", 1)[0])
    return match.group(1) if match else None


def _record_location(output: Path, location: str) -> None:
    """Point an unchanged conversion at where its PDF is now (it moved, or was converted before
    locations were recorded) without converting it again."""
    document = parse_markdown(output.read_text("utf-8"))
    if document.metadata.get(SOURCE_PATH_FIELD) == location:
        return
    metadata = {}
    for key, value in document.metadata.items():
        metadata[key] = value
        if key == "source":
            metadata[SOURCE_PATH_FIELD] = location
    metadata[SOURCE_PATH_FIELD] = location
    _write_atomic(output, render_markdown(metadata, document.body.lstrip("\n")))


# --- text layout ----------------------------------------------------------------------------


@dataclass
class _Line:
    text: str
    size: float
    bold: bool
    mono: bool


@dataclass
class _Block:
    bbox: tuple[float, float, float, float]
    lines: list[_Line]

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)


def _blocks_of(page_dict: dict[str, Any]) -> list[_Block]:
    blocks: list[_Block] = []
    for raw in page_dict.get("blocks", []):
        if raw.get("type") != 0:
            continue
        lines: list[_Line] = []
        for raw_line in raw.get("lines", []):
            spans = [s for s in raw_line.get("spans", []) if s.get("text", "").strip()]
            if not spans:
                continue
            text = _SPACES_RE.sub(" ", "".join(s["text"] for s in raw_line["spans"])).strip()
            chars = sum(len(s["text"].strip()) for s in spans)
            size = sum(s["size"] * len(s["text"].strip()) for s in spans) / max(chars, 1)
            bold = all(s["flags"] & 16 or "bold" in s["font"].lower() for s in spans)
            mono = all(s["flags"] & 8 for s in spans)
            lines.append(_Line(text, size, bold, mono))
        if lines:
            x0, y0, x1, y1 = raw["bbox"]
            blocks.append(_Block((x0, y0, x1, y1), lines))
    return blocks


def _join_lines(lines: Sequence[str]) -> str:
    """Join the lines of a paragraph, re-joining words hyphenated at line ends."""
    out = ""
    for line in lines:
        if not out:
            out = line
        elif _HYPHEN_END_RE.search(out) and line[:1].islower():
            out = out[:-1] + line
        else:
            out = f"{out} {line}"
    return out


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """The fraction of a's area that lies inside b."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    area = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
    return max(w, 0) * max(h, 0) / area


def _in_margin(block: _Block, page: _Page) -> bool:
    """Whether a block lies wholly in a page's outer band, where running heads, footers,
    page numbers and sidebar stamps live."""
    x0, y0, x1, y1 = block.bbox
    band_x, band_y = page.width * MARGIN_FRACTION, page.height * MARGIN_FRACTION
    return y1 < band_y or y0 > page.height - band_y or x1 < band_x or x0 > page.width - band_x


def _margin_key(text: str) -> str:
    return re.sub(r"\d+", "0", text.lower()).strip()


@dataclass
class _Page:
    number: int
    width: float
    height: float
    blocks: list[_Block]
    tables: list[_tables.Table]
    has_images: bool
    ocr: bool = False


def _read_page(pymupdf: Any, page: Any, *, ocr: bool, language: str, dpi: int) -> _Page:
    flags = (
        pymupdf.TEXT_PRESERVE_WHITESPACE
        | pymupdf.TEXT_MEDIABOX_CLIP
        | pymupdf.TEXT_CID_FOR_UNKNOWN_UNICODE
    )
    number = page.number + 1
    has_images = bool(page.get_images(full=False))
    textpage = None
    if ocr:
        textpage = page.get_textpage_ocr(flags=flags, language=language, dpi=dpi, full=True)
    else:
        textpage = page.get_textpage(flags=flags)
    page_dict = page.get_text("dict", textpage=textpage)
    upright = None if ocr else upright_copy(pymupdf, page, page_dict)
    if upright is not None:  # read the page turned, as its reader would hold it
        page = upright.page
        textpage = page.get_textpage(flags=flags)
        page_dict = page.get_text("dict", textpage=textpage)
    strip_gutter(page_dict, page.rect.width)
    blocks = _blocks_of(page_dict)
    tables = [] if ocr else _tables.find_tables(page, textpage, _tables.sideways_lines(page_dict))
    if tables:
        blocks = [b for b in blocks if all(_overlap(b.bbox, t.bbox) < 0.5 for t in tables)]
    read = _Page(number, page.rect.width, page.rect.height, blocks, tables, has_images, ocr)
    if upright is not None:
        upright.doc.close()
    return read


def _body_size(pages: Sequence[_Page]) -> float:
    weights: Counter[float] = Counter()
    for page in pages:
        for block in page.blocks:
            for line in block.lines:
                weights[round(line.size * 2) / 2] += len(line.text)
    return weights.most_common(1)[0][0] if weights else 10.0


def _unmark_typewritten(pages: Sequence[_Page]) -> None:
    """A monospaced font marks code only where it stands out from the body; in a typewritten
    document (transcripts, filings, plain-text exports) it is just the typeface."""
    chars: Counter[bool] = Counter()
    for page in pages:
        for block in page.blocks:
            for line in block.lines:
                chars[line.mono] += len(line.text)
    if chars[True] > chars[False]:
        for page in pages:
            for block in page.blocks:
                for line in block.lines:
                    line.mono = False


def _repeated_margin_keys(pages: Sequence[_Page]) -> set[str]:
    """Normalised texts found in the top or bottom margin of many pages: running heads."""
    if len(pages) < 2:
        return set()
    seen: Counter[str] = Counter()
    for page in pages:
        keys = {_margin_key(b.text) for b in page.blocks if _in_margin(b, page)}
        seen.update(keys)
    threshold = max(2, int(0.4 * len(pages)))
    return {key for key, n in seen.items() if n >= threshold and key}


def _heading_levels(pages: Sequence[_Page], body: float) -> dict[float, int]:
    sizes: Counter[float] = Counter()
    for page in pages:
        for block in page.blocks:
            if _is_heading_candidate(block, body):
                sizes[round(block.lines[0].size * 2) / 2] += 1
    ranked = sorted(sizes, reverse=True)[:4]
    return {size: level for level, size in enumerate(ranked, start=1)}


def _is_heading_candidate(block: _Block, body: float) -> bool:
    text = block.text
    if len(block.lines) > 3 or len(text) > 200 or not re.search(r"[^\W\d_]", text):
        return False
    return all(line.size >= body * HEADING_SIZE_RATIO for line in block.lines)


def _render_block(block: _Block, body: float, levels: dict[float, int]) -> str:
    if _is_heading_candidate(block, body):
        level = levels.get(round(block.lines[0].size * 2) / 2, 0)
        if level:
            return "#" * level + " " + _join_lines([line.text for line in block.lines])
    text = block.text
    if (
        len(block.lines) == 1
        and block.lines[0].bold
        and len(text.split()) <= 12
        and _NUMBERED_HEADING_RE.match(text)
    ):
        return "#" * (max(levels.values(), default=0) + 1) + " " + text
    if all(line.mono for line in block.lines) and len(block.lines) > 1:
        return "```\n" + "\n".join(line.text for line in block.lines) + "\n```"
    return _join_lines([line.text for line in block.lines])


def _dropped(block: _Block, page: _Page, drop: set[str]) -> bool:
    """A running head, footer or page number: left out of the page's text."""
    return _in_margin(block, page) and bool(
        _margin_key(block.text) in drop or _PAGE_NUMBER_RE.match(block.text)
    )


def _render_page(page: _Page, body: float, levels: dict[float, int], drop: set[str]) -> str:
    pieces: list[tuple[tuple[float, float, float, float], str]] = []
    for block in page.blocks:
        if _dropped(block, page, drop):
            continue
        pieces.append((block.bbox, _render_block(block, body, levels)))
    # A table goes before the first block (in reading order) that starts below its top and
    # shares its horizontal extent: that keeps tables inside the column they belong to.
    for table in page.tables:
        bbox, markdown = table.bbox, table.markdown()
        at = len(pieces)
        for i, (other, _) in enumerate(pieces):
            if other[1] >= bbox[1] and min(other[2], bbox[2]) > max(other[0], bbox[0]):
                at = i
                break
        pieces.insert(at, (bbox, markdown))
    return "\n\n".join(text for _, text in pieces)


def _title(
    metadata: dict[str, Any], markdown: str, source_name: str, first_page: FirstPage | None
) -> str:
    headings = (m.group(1) for m in re.finditer(r"^#{1,6} (.+)$", markdown, re.MULTILINE))
    return document_title(metadata.get("title"), first_page, headings, source_name)


def _first_page(pymupdf: Any, doc: Any, body: float, drop: set[str]) -> FirstPage:
    """The first page as the title sees it: all its text, tables' included (a title is often
    set in a layout table), without its line numbers."""
    page = doc[0]
    flags = pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP
    page_dict = page.get_text("dict", flags=flags)
    upright = upright_copy(pymupdf, page, page_dict)
    width, height = page.rect.width, page.rect.height
    if upright is not None:
        width, height = height, width
        page_dict = upright.page.get_text("dict", flags=flags)
        upright.doc.close()
    strip_gutter(page_dict, width)
    return FirstPage(_blocks_of(page_dict), width, height, body, MARGIN_FRACTION, drop, _margin_key)


# --- one file -------------------------------------------------------------------------------


def _open(pymupdf: Any, job: Job, options: ConvertOptions) -> tuple[Any, list[str]]:
    warnings: list[str] = []
    pymupdf.TOOLS.mupdf_warnings(reset=True)
    try:
        doc = pymupdf.open(job.source, filetype="pdf")
    except Exception as exc:
        raise _Failure(f"malformed PDF: {_one_line(exc) or type(exc).__name__}") from exc
    if doc.needs_pass:
        if not options.passwords:
            raise _Failure(f"encrypted: needs a password ({options.password_hint})")
        if not any(doc.authenticate(pw) for pw in options.passwords):
            raise _Failure("encrypted: none of the given passwords opens it")
    if doc.is_repaired:
        warnings.append("damaged file was repaired while opening; check the output")
    if doc.page_count == 0:
        raise _Failure("malformed PDF: no readable pages")
    if options.max_pages is not None and doc.page_count > options.max_pages:
        pages = doc.page_count
        doc.close()
        raise _Failure(
            f"too large: {pages} pages, more than the limit of {options.max_pages}; split it "
            "into smaller files"
        )
    return doc, warnings


class _Failure(Exception):
    pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def convert_pdf(job: Job, options: ConvertOptions) -> FileResult:
    """Convert one PDF; never raises for a bad file, the result says what went wrong."""
    started = time.perf_counter()
    result = FileResult(job.source, job.output, Status.FAILED)
    try:
        digest = sha256_file(job.source)
        if not options.overwrite and _recorded_sha256(job.output) == digest:
            _record_location(job.output, str(job.source.resolve()))
            result.status = Status.SKIPPED
            result.reason = "unchanged since the last conversion (use --overwrite to redo)"
            return result
        pymupdf = _import_pymupdf()
        doc, result.warnings = _open(pymupdf, job, options)
        with doc:
            result.pages = doc.page_count
            markdown, first_page = _convert_document(pymupdf, doc, options, result)
            metadata = {
                "source": job.display,
                SOURCE_PATH_FIELD: job.location or str(job.source.resolve()),
                "title": _title(doc.metadata or {}, markdown, job.source.name, first_page),
                "pages": doc.page_count,
                "sha256": digest,
                "converter": CONVERTER_NAME,
                "converter_version": f"athenaeum {__version__}, pymupdf {pymupdf.__version__}",
            }
        _write_atomic(job.output, render_markdown(metadata, markdown))
        result.status = Status.CONVERTED
    except _Failure as exc:
        result.reason = str(exc)
    except Exception as exc:  # one bad file never stops the others; say what it was
        result.reason = f"unexpected error: {type(exc).__name__}: {_one_line(exc)}"
    finally:
        result.seconds = time.perf_counter() - started
    return result


def convert_file(job: Job, options: ConvertOptions) -> FileResult:
    """Convert one document of any format `convert` reads; never raises for a bad file."""
    if job.source.suffix.lower() == ".pdf":
        return convert_pdf(job, options)
    return convert_other(job, options)


_OPENING_HEADING_RE = re.compile(r"\A(?:<!--[^\n]*-->\s*)*#{1,6} (.+)$", re.MULTILINE)
_UNIT_FIELDS = {"slide": "slides", "sheet": "sheets", "chapter": "chapters", "section": "sections"}


def read_document(data: bytes, name: str, options: ConvertOptions) -> _formats.Converted:
    """A non-PDF document read into markdown by its format's reader (decrypted first, when an
    Office file is password-protected)."""
    from athenaeum.build.formats import docx, epub, html, pptx, xlsx
    from athenaeum.build.formats.encrypted import decrypt, is_ole

    suffix = Path(name).suffix.lower()
    office = suffix in (*_formats.DOCX, *_formats.PPTX, *_formats.XLSX)
    if office and is_ole(data):
        data = decrypt(data, options.passwords, options.password_hint)
    if office or suffix in _formats.EPUB:
        _check_unpacked_size(data)
    if suffix in _formats.DOCX:
        return docx.read_docx(data, name)
    if suffix in _formats.PPTX:
        return pptx.read_pptx(data, name)
    if suffix in _formats.XLSX:
        return xlsx.read_xlsx(data, name)
    if suffix in _formats.EPUB:
        return epub.read_epub(data, name)
    if suffix in _formats.HTML:
        return html.read_html(data, name)
    raise _formats.FormatError(f"not a format convert reads ({suffix or 'no suffix'})")


# A ZIP-based document (Office, EPUB) that unpacks to more than this is refused: a real one is a
# few times its packed size, a crafted one (a "zip bomb") thousands of times.
MAX_UNPACKED_BYTES = 1 << 30


def _check_unpacked_size(data: bytes) -> None:
    import io
    import zipfile

    try:
        unpacked = sum(info.file_size for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # the reader says what is wrong with it
    if unpacked > MAX_UNPACKED_BYTES:
        raise _formats.FormatError(
            f"too large: it unpacks to {unpacked / 2**20:,.0f} MiB, more than the limit of "
            f"{MAX_UNPACKED_BYTES / 2**20:,.0f} MiB"
        )


def convert_other(job: Job, options: ConvertOptions) -> FileResult:
    """Convert one Word, PowerPoint, Excel, HTML or EPUB file; the result says what went wrong."""
    started = time.perf_counter()
    result = FileResult(job.source, job.output, Status.FAILED)
    try:
        digest = sha256_file(job.source)
        if not options.overwrite and _recorded_sha256(job.output) == digest:
            _record_location(job.output, str(job.source.resolve()))
            result.status = Status.SKIPPED
            result.reason = "unchanged since the last conversion (use --overwrite to redo)"
            return result
        size = job.source.stat().st_size
        if options.max_bytes is not None and size > options.max_bytes:
            raise _Failure(
                f"too large: {size / 2**20:.1f} MiB, more than the limit of "
                f"{options.max_bytes / 2**20:.0f} MiB; split it into smaller files"
            )
        converted = read_document(job.source.read_bytes(), job.source.name, options)
        result.pages, result.unit = converted.units, converted.unit
        result.warnings.extend(converted.warnings)
        # Without a title of the file's own, the heading the document opens with, if it opens
        # with one (a sheet's name is no title); else the file name made readable.
        heading = (
            None if converted.unit == "sheet" else _OPENING_HEADING_RE.match(converted.markdown)
        )
        title = (
            converted.title
            or (heading.group(1).strip() if heading else None)
            or readable_stem(job.source.name)
        )
        metadata: dict[str, Any] = {
            "source": job.display,
            SOURCE_PATH_FIELD: job.location or str(job.source.resolve()),
            "title": title,
            _UNIT_FIELDS.get(converted.unit, "sections"): converted.units,
            **({CITE_BY_FIELD: "section"} if converted.unit in ("section", "chapter") else {}),
            "sha256": digest,
            "converter": FORMATS_CONVERTER_NAME,
            "converter_version": f"athenaeum {__version__}",
        }
        _write_atomic(job.output, render_markdown(metadata, converted.markdown))
        result.status = Status.CONVERTED
    except (_Failure, _formats.FormatError) as exc:
        result.reason = str(exc)
    except Exception as exc:  # one bad file never stops the others; say what it was
        result.reason = f"unexpected error: {type(exc).__name__}: {_one_line(exc)}"
    finally:
        result.seconds = time.perf_counter() - started
    return result


def _convert_document(
    pymupdf: Any, doc: Any, options: ConvertOptions, result: FileResult
) -> tuple[str, FirstPage | None]:
    pages: list[_Page] = []
    textless: list[int] = []
    ocr_failed: str | None = None
    for page in doc:
        read = _read_page(pymupdf, page, ocr=False, language="", dpi=0)
        chars = sum(len(b.text) for b in read.blocks) + sum(len(t.markdown()) for t in read.tables)
        if chars < MIN_TEXT_CHARS and (read.has_images or chars == 0):
            if options.ocr and ocr_failed is None:
                try:
                    read = _read_page(
                        pymupdf, page, ocr=True, language=options.ocr_language, dpi=options.ocr_dpi
                    )
                except Exception as exc:  # MuPDF raises its own error types for Tesseract
                    ocr_failed = _tesseract_message(exc)
                    textless.append(read.number)
            else:
                textless.append(read.number)
        pages.append(read)
    ocr_pages = [p.number for p in pages if p.ocr]
    if ocr_pages:
        result.warnings.append(f"OCR on {len(ocr_pages)} page(s): {_page_list(ocr_pages)}")
    if textless:
        hint = "" if options.ocr else f"; {options.ocr_hint}"
        if len(textless) == len(pages) and not ocr_pages:
            reason = f"no text layer on any of its {len(pages)} page(s)"
            raise _Failure(f"{reason}; {ocr_failed}" if ocr_failed else reason + hint)
        result.warnings.append(f"no text layer on page(s) {_page_list(textless)}{hint}")
    if ocr_failed:
        result.warnings.append(ocr_failed)
    _unmark_typewritten(pages)
    body = _body_size(pages)
    levels = _heading_levels(pages, body)
    drop = _repeated_margin_keys(pages)
    _tables.link_continuations(
        [
            _tables.PageTables(
                p.width, p.height, p.tables, [b.bbox for b in p.blocks if not _dropped(b, p, drop)]
            )
            for p in pages
        ]
    )
    rendered = []
    for page in pages:
        text = _render_page(page, body, levels, drop)
        rendered.append(f"{page_marker(page.number)}\n\n{text}".rstrip())
    first_page = None if pages[0].ocr else _first_page(pymupdf, doc, body, drop)
    return "\n\n".join(rendered), first_page


def _tesseract_message(exc: BaseException) -> str:
    text = _one_line(exc)
    if "tessdata" in text.lower() or "tesseract" in text.lower():
        return (
            f"OCR unavailable: Tesseract or its language data was not found ({text}); "
            "install it (Debian/Ubuntu: apt-get install tesseract-ocr; macOS: brew install "
            "tesseract) or point TESSDATA_PREFIX at its tessdata folder"
        )
    return f"OCR failed: {text}"


def _page_list(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20])
    return shown + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# --- many files -----------------------------------------------------------------------------


def iter_convert(
    jobs: Sequence[Job], options: ConvertOptions, *, workers: int = 1
) -> Iterator[FileResult]:
    """Convert jobs, yielding each result as it finishes (in completion order)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield convert_file(job, options)
        return
    # spawn, not fork: MuPDF keeps global state that a forked child should not inherit.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        # Largest files first, so a big file started last does not become the tail.
        ordered = sorted(jobs, key=lambda j: j.source.stat().st_size, reverse=True)
        futures = {pool.submit(convert_file, job, options): job for job in ordered}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # a crashed worker (for example killed by the OS)
                job = futures[future]
                yield FileResult(
                    job.source, job.output, Status.FAILED, f"worker crashed: {_one_line(exc)}"
                )


def convert(
    inputs: Sequence[Path],
    out_dir: Path,
    options: ConvertOptions | None = None,
    *,
    jobs: int = 1,
    on_result: Callable[[FileResult], None] | None = None,
) -> ConvertReport:
    """Convert every document under `inputs` into markdown under `out_dir`."""
    options = options or ConvertOptions()
    if jobs < 1:
        raise InvalidInputError("--jobs must be at least 1", param="jobs")
    planned = plan_jobs(inputs, out_dir)
    results: list[FileResult] = []
    for result in iter_convert(planned, options, workers=jobs):
        results.append(result)
        if on_result:
            on_result(result)
    order = {job.source: i for i, job in enumerate(planned)}
    results.sort(key=lambda r: order[r.source])
    return ConvertReport(results)
