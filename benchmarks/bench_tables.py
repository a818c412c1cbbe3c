"""Tables: cell F1 and TEDS against peers' expected tables, three converters in the same run.

    uv run --group bench python benchmarks/bench_tables.py [--markdown] [--json PATH]

The cases:

- the 28 tables of ../shared/data/tables (camelot's test files and the cells its maintainers
  expect; `kind` ruled, partly ruled or unruled as cases.json says, with its `optional_rows`
  and the header rows its notes name);
- the tables of docling's ground truth under ../shared/data/pdf-groundtruth (docling/*.md),
  on the page where each is printed, except the table of contents of redp5110 (a list of
  section titles and page numbers, whose ground truth puts the page numbers in either column);
- the WARN report's table (../shared/data/pdfs, pages 1 to 15, one table with its header on the
  first page only), whose expected cells are read from the PDF's own text layer (`warn_rows`):
  the words of each text line in the table's area, in the column between the vertical rules
  that the PDF draws. The summary table after it is not a case.

Tabula-java's test files and the ICDAR 2013 table competition set are kept out: they are an
independent set, and none of the cases above comes from them (SOURCES.md section 5).

The converters, each in a fresh spawned process (pymupdf4llm leaves global PyMuPDF state behind
that changes other converters' tables) and converting every PDF whole, once, after an untimed
warm-up:

- athenaeum: `athenaeum.build.convert.convert_pdf`; its markdown tables are parsed back into
  cells. Rows after a page marker that follow a table without a header separator of their own,
  or under a repeat of its header row, continue it (a table over pages); the same reading
  applies to pymupdf4llm's tables.
- PyMuPDF `page.find_tables()` with its defaults, `table.extract()`, on every page, and
  `page.get_text()` for the text.
- `pymupdf4llm.to_markdown(doc, page_chunks=True)`, otherwise defaults (pymupdf-layout active);
  page_chunks only splits the output by page. Its markdown tables are parsed like athenaeum's.

Scores per case (benchmarks/table_score.py defines them): cell F1 and TEDS of the predicted
table on the case's pages that scores best against the expected one (0 where there is none);
"text" = the share of the expected table's words, read row by row, that the converter's text of
those pages has in the same order (difflib's matching blocks over bench_convert's word split):
the table's words in reading order, whatever the table markup. Means are over cases, overall and
per kind. pages/s = pages of all the PDFs above / seconds converting them. Beside them, "seq" is
bench_convert's text fidelity over pdf-groundtruth (the same three converters, get_text for
PyMuPDF), computed in this run (`--no-seq` skips it).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import difflib
import io
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import bench_convert
import results_json
import table_score
from bench_convert import SHARED_DATA, Table, words

TABLES = SHARED_DATA / "tables"
WARN_PDF = SHARED_DATA / "pdfs" / "WARN-Report-for-7-1-2015-to-03-25-2016.pdf"
WARN_PAGES = tuple(range(1, 16))
PASSWORDS = (*bench_convert.PASSWORDS, "userpass")
KINDS = ("ruled", "partly-ruled", "unruled")
# docling's ground-truth tables: (document, table index in its markdown, page, kind, block).
# Kinds judged from page renders, as for cases.json. The 2305.03393 table has a two-line header
# (docling repeats the row-spanning labels in its second line).
DOCLING_TABLES = (
    ("2305.03393v1-pg9", 0, 1, "partly-ruled", (0, 1)),
    ("redp5110_sampled", 1, 8, "ruled", None),
    ("redp5110_sampled", 2, 9, "ruled", None),
    ("redp5110_sampled", 3, 11, "ruled", None),
    ("redp5110_sampled", 4, 12, "ruled", None),
)
_HEADER_ROWS_RE = re.compile(r"[Hh]eader rows (\d+)-(\d+)")


@dataclass(frozen=True)
class Case:
    name: str
    pdf: Path
    pages: tuple[int, ...]  # 1-based
    kind: str
    source: str
    expected: table_score.Expected


# --- markdown tables ------------------------------------------------------------------------

_SEPARATOR_RE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_CELL_SPLIT_RE = re.compile(r"(?<!\\)\|")
_COMMENT_LINE_RE = re.compile(r"^\s*<!--.*-->\s*$")


@dataclass
class Found:
    """A table a converter produced: raw cell rows and each row's page (1-based)."""

    rows: list[list[str]] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)


def _cells(line: str) -> list[str]:
    parts = _CELL_SPLIT_RE.split(line.strip())
    if parts and not parts[0].strip():
        parts = parts[1:]
    if parts and not parts[-1].strip():
        parts = parts[:-1]
    return [p.strip() for p in parts]


def markdown_tables(pages: Sequence[tuple[int, str]]) -> list[Found]:
    """The pipe tables of markdown given page by page. A run of table lines without a header
    separator, or repeating its header row and separator, that comes after a table with only
    blank lines and comments (page markers) between continues that table."""
    tables: list[Found] = []
    current: Found | None = None
    gap = False  # only blank or comment lines since the last table line
    block: list[tuple[str, int]] = []

    def close_block() -> None:
        nonlocal current
        if not block:
            return
        has_separator = len(block) > 1 and _SEPARATOR_RE.match(block[1][0]) is not None
        rows = [(_cells(line), page) for line, page in block if not _SEPARATOR_RE.match(line)]
        if current is not None and not has_separator:
            target = current
        elif current is not None and rows and current.rows and rows[0][0] == current.rows[0]:
            # The same header again, separator and all, with only page markers between: the
            # table goes on (how athenaeum's chunker reads it too), its header not doubled.
            target = current
            rows = rows[1:]
        else:
            target = Found()
            tables.append(target)
        for cells, page in rows:
            target.rows.append(cells)
            target.pages.append(page)
        current = target
        block.clear()

    for page, text in pages:
        for line in text.splitlines():
            if line.lstrip().startswith("|"):
                block.append((line, page))
                continue
            if block:
                close_block()
                gap = True
            if not line.strip() or _COMMENT_LINE_RE.match(line):
                continue
            if gap:
                current, gap = None, False
    close_block()
    return tables


_PAGE_MARKER_RE = re.compile(r"^<!-- page: (\d+) -->[ \t]*$", re.MULTILINE)


def split_pages(markdown: str) -> list[tuple[int, str]]:
    """athenaeum's markdown body by its page markers (`<!-- page: N -->`, N 1-based)."""
    parts = _PAGE_MARKER_RE.split(markdown)
    out = [(1, parts[0])] if parts[0].strip() else []
    for number, text in zip(parts[1::2], parts[2::2], strict=True):
        out.append((int(number), text))
    return out


# --- cases ----------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [list(row) for row in csv.reader(handle)]


def camelot_cases() -> list[Case]:
    cases = []
    for entry in json.loads((TABLES / "cases.json").read_text(encoding="utf-8")):
        header = _HEADER_ROWS_RE.search(entry["notes"])
        block = (int(header[1]), int(header[2])) if header else None
        expected = table_score.Expected(
            _read_csv(TABLES / "expected" / entry["expected"]),
            block=block,
            optional=frozenset(entry.get("optional_rows", ())),
        )
        cases.append(
            Case(
                entry["expected"].removesuffix(".csv"),
                TABLES / "pdfs" / entry["pdf"],
                tuple(entry["pages"]),
                entry["kind"],
                "camelot",
                expected,
            )
        )
    return cases


def docling_cases() -> list[Case]:
    folder = SHARED_DATA / "pdf-groundtruth" / "docling"
    cases = []
    for document, index, page, kind, block in DOCLING_TABLES:
        markdown = (folder / f"{document}.md").read_text(encoding="utf-8")
        found = markdown_tables([(page, markdown)])[index]
        cases.append(
            Case(
                f"docling-{document}.p{page}",
                folder / f"{document}.pdf",
                (page,),
                kind,
                "docling",
                table_score.Expected(found.rows, block=block),
            )
        )
    return cases


def warn_rows(
    path: Path = WARN_PDF, pages: Sequence[int] = WARN_PAGES
) -> tuple[list[list[str]], list[int]]:
    """The WARN report's table from the PDF's text layer: on each page, the words below the
    header (first page) or the top (later pages) and above the "Summary by Month" heading, in
    text lines by their baseline, each word in the column between the vertical rules it falls
    in; a cell's words joined by spaces in reading order."""
    doc = bench_convert._open(path)
    rows: list[list[str]] = []
    row_pages: list[int] = []
    with doc:
        for number in pages:
            page = doc[number - 1]
            # The column rules run the height of the table; short ones belong to other boxes.
            rules: set[float] = set()
            for drawing in page.get_drawings():
                for item in drawing["items"]:
                    if item[0] == "re" and item[1].width < 2 and item[1].height > 200:
                        rules.add(round(item[1].x0, 1))
                    elif (
                        item[0] == "l"
                        and abs(item[1].x - item[2].x) < 1
                        and abs(item[1].y - item[2].y) > 200
                    ):
                        rules.add(round(item[1].x, 1))
            ordered = sorted(rules)
            edges = [x for i, x in enumerate(ordered) if i == 0 or x - ordered[i - 1] > 3]
            found = page.get_text("words")
            top = 0.0
            if number == pages[0]:
                top = min(w[1] for w in found if w[4] == "Notice") - 1
            texts = [w[4] for w in found]
            stop = min(
                (
                    found[i][1]
                    for i in range(len(found) - 2)
                    if texts[i : i + 3] == ["Summary", "by", "Month"]
                ),
                default=float("inf"),
            )
            lines: dict[int, list[tuple[float, float, str]]] = {}
            for x0, y0, x1, y1, text, *_ in found:
                if y0 < top or y0 >= stop - 1 or not edges[0] <= x0 < edges[-1]:
                    continue
                key = next((k for k in lines if abs(k - y1) <= 2), round(y1))
                lines.setdefault(key, []).append((x0, x1, text))
            for key in sorted(lines):
                cells = [[] for _ in range(len(edges) - 1)]
                for x0, x1, text in sorted(lines[key]):
                    middle = (x0 + x1) / 2
                    column = next(
                        (i for i in range(len(edges) - 1) if edges[i] <= middle < edges[i + 1]),
                        None,
                    )
                    if column is not None:
                        cells[column].append(text)
                rows.append([" ".join(c) for c in cells])
                row_pages.append(number)
    return rows, row_pages


def warn_case() -> Case:
    rows, pages = warn_rows()
    return Case(
        "warn-report.p1-15",
        WARN_PDF,
        WARN_PAGES,
        "ruled",
        "warn",
        table_score.Expected(rows, row_pages=pages),
    )


def all_cases() -> list[Case]:
    return [*camelot_cases(), *docling_cases(), warn_case()]


# --- converters -----------------------------------------------------------------------------


@dataclass
class Converted:
    tables: list[Found]
    page_text: dict[int, str]
    pages: int
    seconds: float


def run_athenaeum(path: Path, out_dir: Path) -> Converted:
    from athenaeum.build.convert import ConvertOptions, Job, Status, convert_pdf
    from athenaeum.build.sources import parse_markdown

    output = out_dir / f"{path.stem}.md"
    started = time.perf_counter()
    result = convert_pdf(
        Job(path, output, path.name), ConvertOptions(passwords=PASSWORDS, overwrite=True)
    )
    seconds = time.perf_counter() - started
    if result.status is not Status.CONVERTED:
        raise RuntimeError(f"{path.name}: {result.reason}")
    pages = split_pages(parse_markdown(output.read_text(encoding="utf-8")).body)
    text: dict[int, str] = {}
    for number, part in pages:
        text[number] = text.get(number, "") + part
    return Converted(markdown_tables(pages), text, result.pages, seconds)


def run_find_tables(path: Path, _out_dir: Path) -> Converted:
    started = time.perf_counter()
    tables: list[Found] = []
    text: dict[int, str] = {}
    with bench_convert._open(path, PASSWORDS) as doc:
        count = doc.page_count
        for page in doc:
            text[page.number + 1] = page.get_text()
            for table in page.find_tables().tables:
                rows = [[c or "" for c in row] for row in table.extract()]
                tables.append(Found(rows, [page.number + 1] * len(rows)))
    return Converted(tables, text, count, time.perf_counter() - started)


def run_pymupdf4llm(path: Path, _out_dir: Path) -> Converted:
    import pymupdf4llm

    started = time.perf_counter()
    # Its default path prints a line per page it OCRs; keep the benchmark's output readable.
    with bench_convert._open(path, PASSWORDS) as doc, contextlib.redirect_stdout(io.StringIO()):
        count = doc.page_count
        chunks = pymupdf4llm.to_markdown(doc, page_chunks=True)
    seconds = time.perf_counter() - started
    pages = [(int(chunk["metadata"]["page_number"]), str(chunk["text"])) for chunk in chunks]
    text = dict(pages)
    return Converted(markdown_tables(pages), text, count, seconds)


Runner = Callable[[Path, Path], Converted]
CONVERTERS: dict[str, tuple[Runner, str]] = {
    "athenaeum": (run_athenaeum, "athenaeum"),
    "PyMuPDF find_tables": (run_find_tables, "baseline"),
    "pymupdf4llm": (run_pymupdf4llm, "reference"),
}


def convert_all(runner: Runner, files: Sequence[Path], out_dir: Path) -> dict[Path, Converted]:
    """In the worker process: a warm-up, then every file once."""
    runner(files[0], out_dir)
    out = {}
    for path in files:
        try:
            out[path] = runner(path, out_dir)
        except Exception as exc:
            print(f"  {runner.__name__} failed on {path.name}: {type(exc).__name__}: {exc}")
            out[path] = Converted([], {}, 0, 0.0)
    return out


# --- scoring --------------------------------------------------------------------------------


@dataclass
class CaseScore:
    f1: float
    precision: float
    recall: float
    teds: float
    text: float


def ordered_recall(got: Sequence[str], reference: Sequence[str]) -> float:
    if not reference:
        return 1.0
    matcher = difflib.SequenceMatcher(None, reference, got, autojunk=False)
    return sum(b.size for b in matcher.get_matching_blocks()) / len(reference)


def score_case(case: Case, converted: Converted) -> CaseScore:
    pages = set(case.pages)
    best: table_score.Score | None = None
    for found in converted.tables:
        if not pages.intersection(found.pages):
            continue
        score = table_score.score_table(case.expected, found.rows, found.pages)
        if best is None or score.f1 > best.f1:
            best = score
    expected_rows = [
        row for i, row in enumerate(case.expected.rows) if i not in case.expected.optional
    ]
    reference = words("\n".join(" ".join(row) for row in expected_rows))
    got = words("\n".join(converted.page_text.get(p, "") for p in case.pages))
    text = ordered_recall(got, reference)
    if best is None:
        return CaseScore(0.0, 0.0, 0.0, 0.0, text)
    table_score.with_teds(best, case.pages if len(case.pages) > 1 else None)
    return CaseScore(best.f1, best.precision, best.recall, best.teds or 0.0, text)


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def groundtruth_seq(out_dir: Path) -> dict[str, float]:
    """bench_convert's seq mean over pdf-groundtruth, for its three converters."""
    isolated = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    with isolated:
        _, _, kept = bench_convert.fidelity(out_dir, isolated)
    out = {}
    for name in bench_convert.CONVERTERS:
        scores = [
            bench_convert.sequence_similarity(kept[name, pdf.name], kept["reference", pdf.name])
            for pdf, _ in bench_convert.reference_pairs()
        ]
        out[name] = statistics.fmean(scores)
    return out


SEQ_NAMES = {
    "athenaeum": "athenaeum",
    "PyMuPDF find_tables": "pymupdf get_text",
    "pymupdf4llm": "pymupdf4llm default",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="also print markdown tables")
    parser.add_argument("--no-seq", action="store_true", help="skip the pdf-groundtruth seq")
    parser.add_argument("--cases", metavar="TEXT", help="only the cases whose name has TEXT")
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run = results_json.start("tables", __file__, argv)

    import pymupdf
    import pymupdf4llm

    print(f"pymupdf {pymupdf.__version__}, pymupdf4llm {pymupdf4llm.__version__}")
    cases = all_cases()
    if args.cases:
        cases = [c for c in cases if args.cases in c.name]
    files = sorted({c.pdf for c in cases}, key=lambda p: (p.parent.name, p.name))
    print(f"{len(cases)} cases in {len(files)} PDFs")
    converted: dict[str, dict[Path, Converted]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_tables_") as tmp:
        for name, (runner, _) in CONVERTERS.items():
            print(f"  converting with {name} ...", flush=True)
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                converted[name] = pool.submit(convert_all, runner, files, Path(tmp)).result()
        seq = {} if args.no_seq else groundtruth_seq(Path(tmp))

    print("  scoring ...", flush=True)
    per_case: list[dict[str, Any]] = []
    scores: dict[str, list[tuple[Case, CaseScore]]] = {name: [] for name in CONVERTERS}
    for case in cases:
        entry: dict[str, Any] = {
            "name": case.name,
            "kind": case.kind,
            "source": case.source,
            "pages": list(case.pages),
            "pdf": f"{case.pdf.parent.name}/{case.pdf.name}",
        }
        for name in CONVERTERS:
            score = score_case(case, converted[name][case.pdf])
            scores[name].append((case, score))
            entry[name] = {k: round(v, 4) for k, v in vars(score).items()}
        per_case.append(entry)

    summary: list[dict[str, Any]] = []
    for name, (_, role) in CONVERTERS.items():
        done = converted[name].values()
        pages = sum(c.pages for c in done)
        seconds = sum(c.seconds for c in done)
        row: dict[str, Any] = {"name": name, "role": role, "f1": {}, "teds": {}}
        for group in ("overall", *KINDS):
            chosen = [s for c, s in scores[name] if group in ("overall", c.kind)]
            row["f1"][group] = _mean([s.f1 for s in chosen])
            row["teds"][group] = _mean([s.teds for s in chosen])
        row["text"] = _mean([s.text for _, s in scores[name]])
        row["seq_groundtruth"] = seq.get(SEQ_NAMES[name])
        row["pages"], row["seconds"] = pages, seconds
        row["pages_per_s"] = pages / seconds if seconds else None
        summary.append(row)

    def fmt(value: float | None) -> str:
        return "" if value is None else f"{value:.3f}"

    counts = {k: sum(1 for c in cases if c.kind == k) for k in KINDS}
    headline = Table(
        f"Tables: {len(cases)} cases ({', '.join(f'{n} {k}' for k, n in counts.items())}); "
        "means over cases",
        [
            "converter",
            "cell F1",
            "F1 ruled",
            "F1 partly ruled",
            "F1 unruled",
            "TEDS",
            "TEDS ruled",
            "TEDS partly ruled",
            "TEDS unruled",
            "table text",
            "seq (pdf-groundtruth)",
            "pages/s",
        ],
        [
            [
                r["name"],
                *(fmt(r["f1"][g]) for g in ("overall", *KINDS)),
                *(fmt(r["teds"][g]) for g in ("overall", *KINDS)),
                fmt(r["text"]),
                fmt(r["seq_groundtruth"]),
                f"{r['pages_per_s']:.1f}" if r["pages_per_s"] else "",
            ]
            for r in summary
        ],
    )
    cases_table = Table(
        "Per case: cell F1 / TEDS / table text",
        ["case", "kind", *CONVERTERS],
        [
            [
                e["name"],
                e["kind"],
                *(
                    f"{e[n]['f1']:.3f} / {e[n]['teds']:.3f} / {e[n]['text']:.3f}"
                    for n in CONVERTERS
                ),
            ]
            for e in per_case
        ],
    )
    for table in (cases_table, headline):
        table.print_rich()
    if args.markdown:
        print()
        for table in (headline, cases_table):
            print(table.markdown() + "\n")
    results_json.write(
        args.json,
        run,
        {
            "cases": per_case,
            "converters": summary,
            "kinds": counts,
            "versions": {"pymupdf": pymupdf.__version__, "pymupdf4llm": pymupdf4llm.__version__},
        },
    )


if __name__ == "__main__":
    sys.exit(main())
