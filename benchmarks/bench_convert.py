"""PDF conversion: text fidelity against references, and pages per second.

    uv run python benchmarks/bench_convert.py [--quick] [--markdown]

Three converters run in the same process and run: athenaeum (`athenaeum.build.convert`), plain
PyMuPDF text extraction (`page.get_text()` of every page, joined) and `pymupdf4llm.to_markdown`
with its defaults (pymupdf 2 / pymupdf4llm 2: the pymupdf-layout ONNX model is active).

1. Fidelity, on every PDF under ../shared/data/pdf-groundtruth that has a reference
   (`<name>.txt` or `<name>.md` beside it). The score, "seq", is computed on words:

   - both sides are stripped of markdown syntax: HTML comments (page markers, `<!-- image -->`,
     pymupdf4llm's picture-text markers), image links `![..](..)`, link targets (`[t](u)` -> t),
     HTML tags (`<br>`, `<sup>`, ...), table separator rows, pymupdf4llm's
     `==> picture [..] intentionally omitted <==` placeholders, and emphasis, heading and table
     punctuation (which the word split below drops anyway);
   - Unicode NFKC, lowercase, then words = `re.findall(r"[^\\W_]+", text)`;
   - seq = 2*M / (|a| + |b|), where M is the number of words in the matching blocks of
     `difflib.SequenceMatcher(None, a, b, autojunk=False)`. It is 1 for identical word
     sequences and penalises missing text, extra text (repeated headers, junk) and text out of
     reading order alike.

   A second column, "bow F1", is the F1 of the two bags of words (multiset overlap): it ignores
   order, so seq well below bow F1 means the words are there but out of order.
2. Speed over ../shared/data/pdfs: pages per second for athenaeum with jobs=1 and jobs=2
   (`convert(..., jobs=N)` into a temporary folder, overwrite=True, so including the spawn
   start-up of the worker processes) and for the two baselines (single process; a file that
   fails counts no pages). Each timing is repeated 3 times when one run takes under 60 s and
   the median is reported. `--quick` restricts speed to a handful of small files.

athenaeum runs in a separate spawned process: `pymupdf4llm.to_markdown` leaves global PyMuPDF
state behind that changes athenaeum's output (table cells) in the same process.

`--markdown` also prints the tables as GitHub markdown (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import re
import statistics
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GROUNDTRUTH = SHARED_DATA / "pdf-groundtruth"
PDFS = SHARED_DATA / "pdfs"
PASSWORDS = ("test", "password", "openpassword")
QUICK_FILES = (
    "150109DSP-Milw-505-90D.pdf",
    "2023-06-20-PV.pdf",
    "multicolumn.pdf",
    "mistitled_outlines_example.pdf",
    "password-example.pdf",
    "scotus-transcript-p1.pdf",
)
REPEAT_UNDER_S = 60.0
REPEATS = 3

# --- the score ------------------------------------------------------------------------------

_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_IMAGE_RE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(\s[^<>]*)?/?>")
_TABLE_RULE_RE = re.compile(r"^[ \t]*\|?[ \t:|-]*-{3,}[ \t:|-]*\|?[ \t]*$", re.MULTILINE)
_PICTURE_RE = re.compile(r"==>\s*picture\b.*?<==", re.IGNORECASE | re.DOTALL)
_PUNCT_RE = re.compile(r"[*_`#|>~]+")
_WORD_RE = re.compile(r"[^\W_]+")


def strip_markdown(text: str) -> str:
    """Markdown (or plain text) to plain text, as far as the word split needs."""
    text = _COMMENT_RE.sub(" ", text)
    text = _PICTURE_RE.sub(" ", text)
    text = _IMAGE_RE.sub(" ", text)
    text = _LINK_RE.sub(r"\1", text)
    text = _TAG_RE.sub(" ", text)
    text = _TABLE_RULE_RE.sub(" ", text)
    return _PUNCT_RE.sub(" ", text)


def words(text: str) -> list[str]:
    return _WORD_RE.findall(unicodedata.normalize("NFKC", strip_markdown(text)).lower())


def sequence_similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """2*M/(|a|+|b|), M = words in SequenceMatcher's matching blocks."""
    if not a and not b:
        return 1.0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return 2 * matched / (len(a) + len(b))


def bag_f1(candidate: Sequence[str], reference: Sequence[str]) -> float:
    overlap = sum((Counter(candidate) & Counter(reference)).values())
    if not overlap:
        return 0.0
    precision = overlap / len(candidate)
    recall = overlap / len(reference)
    return 2 * precision * recall / (precision + recall)


# --- converters -----------------------------------------------------------------------------


def _open(path: Path, passwords: Sequence[str] = PASSWORDS) -> Any:
    import pymupdf

    mupdf: Any = pymupdf  # untyped
    doc = mupdf.open(path)
    if doc.needs_pass and not any(doc.authenticate(pw) for pw in passwords):
        doc.close()
        raise RuntimeError(f"{path.name}: no password opens it")
    return doc


def athenaeum_text(path: Path, out_dir: Path) -> tuple[str, int]:
    from athenaeum.build.convert import ConvertOptions, Job, Status, convert_pdf
    from athenaeum.build.sources import parse_markdown

    output = out_dir / f"{path.stem}.md"
    result = convert_pdf(
        Job(path, output, path.name), ConvertOptions(passwords=PASSWORDS, overwrite=True)
    )
    if result.status is not Status.CONVERTED:
        raise RuntimeError(f"{path.name}: {result.reason}")
    return parse_markdown(output.read_text(encoding="utf-8")).body, result.pages


def pymupdf_text(path: Path, _out_dir: Path) -> tuple[str, int]:
    with _open(path) as doc:
        return "\n".join(page.get_text() for page in doc), doc.page_count


def pymupdf4llm_text(path: Path, _out_dir: Path) -> tuple[str, int]:
    import pymupdf4llm

    # Its default path prints a line per page it OCRs; keep the benchmark's output readable.
    with _open(path) as doc, contextlib.redirect_stdout(io.StringIO()):
        return str(pymupdf4llm.to_markdown(doc)), doc.page_count


def athenaeum_timed(files: Sequence[Path], out_dir: Path, jobs: int) -> tuple[int, float]:
    """One `convert(..., jobs=N)` run: (pages converted, seconds)."""
    from athenaeum.build.convert import ConvertOptions, Status, convert

    options = ConvertOptions(passwords=PASSWORDS, overwrite=True)
    started = time.perf_counter()
    report = convert(list(files), out_dir / f"jobs{jobs}", options, jobs=jobs)
    seconds = time.perf_counter() - started
    for failed in report.by_status(Status.FAILED):
        _note(f"athenaeum failed on {failed.source.name}: {failed.reason}")
    return report.pages_converted, seconds


_NOTED: set[str] = set()


def _note(message: str) -> None:
    if message not in _NOTED:
        _NOTED.add(message)
        print(f"  {message}", flush=True)


Converter = Callable[[Path, Path], tuple[str, int]]
CONVERTERS: dict[str, Converter] = {
    "athenaeum": athenaeum_text,
    "pymupdf get_text": pymupdf_text,
    "pymupdf4llm default": pymupdf4llm_text,
}


# --- output ---------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]

    def print_rich(self) -> None:
        from rich.console import Console
        from rich.table import Table as RichTable

        table = RichTable(title=self.title)
        for i, header in enumerate(self.headers):
            table.add_column(header, justify="left" if i == 0 else "right")
        for row in self.rows:
            table.add_row(*row)
        Console(width=160).print(table)

    def markdown(self) -> str:
        lines = [
            "| " + " | ".join(self.headers) + " |",
            "|" + "|".join(["---"] + ["---:"] * (len(self.headers) - 1)) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return f"{self.title}\n\n" + "\n".join(lines)


# --- 1. fidelity ----------------------------------------------------------------------------


def reference_pairs() -> list[tuple[Path, Path]]:
    pairs = []
    for pdf in sorted(GROUNDTRUTH.rglob("*.pdf")):
        for suffix in (".txt", ".md"):
            reference = pdf.with_suffix(suffix)
            if reference.is_file():
                pairs.append((pdf, reference))
                break
    return pairs


def fidelity(
    out_dir: Path, isolated: ProcessPoolExecutor
) -> tuple[Table, Table, dict[tuple[str, str], list[str]]]:
    """Score every converter on every reference PDF. Returns the score table, a time table and
    the word lists of each (converter, pdf) for diagnostics (the reference under "reference")."""
    pairs = reference_pairs()
    rows: list[list[str]] = []
    seconds: dict[str, float] = dict.fromkeys(CONVERTERS, 0.0)
    pages: dict[str, int] = dict.fromkeys(CONVERTERS, 0)
    means: dict[str, list[tuple[float, float]]] = {name: [] for name in CONVERTERS}
    kept: dict[tuple[str, str], list[str]] = {}
    for pdf, reference in pairs:
        ref_words = words(reference.read_text(encoding="utf-8"))
        kept["reference", pdf.name] = ref_words
        row = [f"{pdf.parent.name}/{pdf.name}", str(len(ref_words))]
        for name, converter in CONVERTERS.items():
            started = time.perf_counter()
            try:
                if name == "athenaeum":
                    text, n = isolated.submit(converter, pdf, out_dir).result()
                else:
                    text, n = converter(pdf, out_dir)
            except Exception as exc:
                print(f"  {name} failed on {pdf.name}: {type(exc).__name__}: {exc}")
                text, n = "", 0
            seconds[name] += time.perf_counter() - started
            pages[name] += n
            got = words(text)
            kept[name, pdf.name] = got
            seq, f1 = sequence_similarity(got, ref_words), bag_f1(got, ref_words)
            means[name].append((seq, f1))
            row += [f"{seq:.3f}", f"{f1:.3f}"]
        rows.append(row)
    mean_row = ["mean", ""]
    for name in CONVERTERS:
        mean_row += [
            f"{statistics.fmean(s for s, _ in means[name]):.3f}",
            f"{statistics.fmean(f for _, f in means[name]):.3f}",
        ]
    rows.append(mean_row)
    headers = ["PDF", "ref words"]
    for name in CONVERTERS:
        headers += [f"{name} seq", f"{name} bow F1"]
    scores = Table("Text fidelity (seq = ordered word similarity, 2M/(|a|+|b|))", headers, rows)
    times = Table(
        "Fidelity set: time per converter (one run each, all reference PDFs)",
        ["converter", "pages", "seconds", "s/page"],
        [
            [name, str(pages[name]), f"{seconds[name]:.2f}", f"{seconds[name] / pages[name]:.3f}"]
            for name in CONVERTERS
            if pages[name]
        ],
    )
    return scores, times, kept


def word_diff(got: Sequence[str], reference: Sequence[str], *, limit: int = 40) -> list[str]:
    """The largest non-matching stretches between a conversion and its reference."""
    matcher = difflib.SequenceMatcher(None, reference, got, autojunk=False)
    ops = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    ops.sort(key=lambda op: max(op[2] - op[1], op[4] - op[3]), reverse=True)
    lines = []
    for tag, i1, i2, j1, j2 in ops[:limit]:
        ref_part = " ".join(reference[i1:i2])
        got_part = " ".join(got[j1:j2])
        lines.append(
            f"{tag:7} ref[{i1}:{i2}] {ref_part[:200]!r}  ->  got[{j1}:{j2}] {got_part[:200]!r}"
        )
    return lines


# --- 2. speed -------------------------------------------------------------------------------


def _timed(run: Callable[[], tuple[int, float]]) -> tuple[int, float, int]:
    """(pages, median seconds, repeats): one run, and two more when it took under 60 s."""
    times: list[float] = []
    pages = 0
    while True:
        pages, seconds = run()
        times.append(seconds)
        if times[0] >= REPEAT_UNDER_S or len(times) == REPEATS:
            return pages, statistics.median(times), len(times)


def _baseline_run(converter: Converter, files: Sequence[Path], out_dir: Path) -> tuple[int, float]:
    started = time.perf_counter()
    pages = 0
    for pdf in files:
        try:
            pages += converter(pdf, out_dir)[1]
        except Exception as exc:
            _note(f"{converter.__name__} failed on {pdf.name}: {type(exc).__name__}: {exc}")
    return pages, time.perf_counter() - started


def speed(files: Sequence[Path], out_dir: Path, isolated: ProcessPoolExecutor) -> Table:
    def athenaeum_run(jobs: int) -> Callable[[], tuple[int, float]]:
        # In the clean worker process: pymupdf4llm's to_markdown leaves global PyMuPDF state
        # behind that changes athenaeum's output (see fidelity()).
        return lambda: isolated.submit(athenaeum_timed, files, out_dir, jobs).result()

    runs: dict[str, Callable[[], tuple[int, float]]] = {
        "athenaeum --jobs 1": athenaeum_run(1),
        "athenaeum --jobs 2": athenaeum_run(2),
        "pymupdf get_text": lambda: _baseline_run(pymupdf_text, files, out_dir),
        "pymupdf4llm default": lambda: _baseline_run(pymupdf4llm_text, files, out_dir),
    }
    measured: dict[str, tuple[int, float, int]] = {}
    for name, run in runs.items():
        print(f"  timing {name} ...", flush=True)
        measured[name] = _timed(run)
    base_pages, base_seconds, _ = measured["pymupdf4llm default"]
    base_rate = base_pages / base_seconds
    rows = [
        [
            name,
            str(pages),
            f"{seconds:.2f}",
            f"{pages / seconds:.1f}",
            f"{pages / seconds / base_rate:.2f}x",
            str(repeats),
        ]
        for name, (pages, seconds, repeats) in measured.items()
    ]
    title = (
        f"Speed over {len(files)} PDFs in {files[0].parent} "
        f"(median of the repeats; ratio = pages/s relative to pymupdf4llm default)"
    )
    return Table(
        title, ["converter", "pages", "seconds", "pages/s", "vs pymupdf4llm", "repeats"], rows
    )


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="speed on a few small files only")
    parser.add_argument("--markdown", action="store_true", help="also print markdown tables")
    parser.add_argument(
        "--diff",
        metavar="PDF",
        default="1601.03642.pdf",
        help="print athenaeum's largest word-diff stretches for this reference PDF when it "
        "scores below 0.95 (default: %(default)s)",
    )
    args = parser.parse_args()

    import pymupdf
    import pymupdf4llm

    print(f"pymupdf {pymupdf.__version__}, pymupdf4llm {pymupdf4llm.__version__}")
    tables: list[Table] = []
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        out_dir = Path(tmp)
        # athenaeum runs in a separate spawned process that never calls pymupdf4llm:
        # to_markdown changes global PyMuPDF state (seen: decimal points in table cells moved)
        # that would otherwise change athenaeum's output in this process.
        isolated = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        # Warm-up: imports, and the first to_markdown call loads the layout model; untimed.
        warm = reference_pairs()[0][0]
        isolated.submit(athenaeum_text, warm, out_dir).result()
        for name, converter in CONVERTERS.items():
            if name != "athenaeum":
                converter(warm, out_dir)

        print("1. fidelity ...", flush=True)
        scores, times, kept = fidelity(out_dir, isolated)
        tables += [scores, times]
        for table in (scores, times):
            table.print_rich()
        ours = kept.get(("athenaeum", args.diff))
        reference = kept.get(("reference", args.diff))
        if ours is not None and reference is not None:
            score = sequence_similarity(ours, reference)
            if score < 0.95:
                print(f"\nathenaeum on {args.diff}: seq {score:.3f} < 0.95; largest differences")
                for line in word_diff(ours, reference):
                    print("  " + line)

        files = sorted(PDFS.glob("*.pdf"))
        if args.quick:
            files = [f for f in files if f.name in QUICK_FILES]
        print(f"\n2. speed ({len(files)} PDFs) ...", flush=True)
        table = speed(files, out_dir, isolated)
        tables.append(table)
        table.print_rich()
        isolated.shutdown()

    if args.markdown:
        print()
        for table in tables:
            print(table.markdown() + "\n")


if __name__ == "__main__":
    main()
