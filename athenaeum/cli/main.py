"""The `athenaeum` command line. Every command is a thin wrapper over a library function."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from athenaeum import __version__
from athenaeum.errors import AthenaeumError, InvalidInputError

if TYPE_CHECKING:
    from rich.progress import Progress

    from athenaeum.library.push import PushReport
    from athenaeum.retrieval.backend import Hit


class _Commands(TyperGroup):
    """The CLI's one error boundary: a domain error from any command is a one-line message and
    exit status 2, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AthenaeumError as exc:
            fail(exc.message)


app = typer.Typer(
    name="athenaeum",
    cls=_Commands,
    help="Give an LLM a library: convert PDFs to markdown, index them, search and serve the index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
console = Console()
err_console = Console(stderr=True)


def _stage_progress(*, transient: bool = False) -> Progress:
    """A progress display of named stages (one bar each: done of total, time taken), on
    stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=transient,
    )


def _stage_updater(progress: Progress) -> Callable[[str, int, int], None]:
    """`progress(stage, done, total)` callbacks drawn as one bar per stage on `progress`."""
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return update


def fail(message: str, code: int = 2) -> NoReturn:
    """A user mistake: a one-line error, never a traceback."""
    from rich.markup import escape

    # One line whatever the width, for logs; a path like "notes/[old]" is text, not markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"athenaeum {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Give an LLM a library: convert PDFs to markdown, index them, search and serve the index."""


# --- commands -------------------------------------------------------------------------------


@app.command("serve")
def serve_command(
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            "-i",
            help="The index: a bundle folder, or s3://BUCKET/PREFIX holding a bundle or a "
            "published index (which is followed: a version `athenaeum ingest` publishes is "
            "served within ATHENAEUM_INDEX_REFRESH_S seconds). Default: ATHENAEUM_INDEX_DIR, "
            "else ATHENAEUM_INDEX_S3_URI.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Without OAuth or API keys configured only a loopback "
            "address is allowed, unless --insecure-no-auth is given.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port.")] = 8000,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve without any authentication on a non-loopback address. Anyone who can "
            "reach the port can read the whole index: use only on a private network.",
        ),
    ] = False,
    sources: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            help="The folder with the original files the index was built from (the folder "
            "given to `athenaeum convert`). Default: where convert recorded each file. "
            "Citations link to a file only while its sha256 matches the index.",
            show_default=False,
        ),
    ] = None,
    link_ttl: Annotated[
        int | None,
        typer.Option(
            "--link-ttl",
            min=60,
            max=604_800,
            help="Seconds a link to an original file stays valid. Default: "
            "ATHENAEUM_LINK_TTL_S, else 3600.",
            show_default=False,
        ),
    ] = None,
    s3vectors: Annotated[
        str | None,
        typer.Option(
            "--s3vectors",
            help="Search this Amazon S3 Vectors index, s3vectors://VECTOR_BUCKET/INDEX (what "
            "`athenaeum publish` filled), instead of loading a bundle. --index then names the "
            "bundle published to it, or a copy of its query side (manifest.json and encoder/): "
            "only the manifest and the query encoder are read. Uses the usual AWS credentials "
            "and region. Default: ATHENAEUM_S3VECTORS_INDEX when ATHENAEUM_INDEX_BACKEND is "
            "s3vectors.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the index over HTTP: /search, OpenAI-compatible /chat/completions, and MCP at /mcp.

    Settings come from ATHENAEUM_* environment variables (docs/settings.md): OAuth or API
    keys for auth, an OpenAI-compatible upstream for the generating model, CORS origins.
    The index is loaded before the server listens, so a bad bundle fails here.

    Example: athenaeum serve --index index/ --port 8000

    With the chunks in an Amazon S3 Vectors index (see `athenaeum publish`):

    athenaeum serve --index index/ --s3vectors s3vectors://vectors/library
    """
    from pydantic import ValidationError

    from athenaeum.server.local import serve
    from athenaeum.server.settings import Settings

    if sources is not None and not sources.is_dir():
        fail(f"--sources {sources} is not a folder")
    if s3vectors is not None and index is not None and index.startswith("s3://"):
        fail(
            "--s3vectors searches the service's index: give --index a local folder (the bundle "
            "published to it, or its query side), not an s3:// address"
        )
    try:
        overrides: dict[str, object] = {}
        if s3vectors is not None:
            overrides.update(
                index_backend="s3vectors",
                s3vectors_index=s3vectors,
                index_s3_uri=None,
                index_start_s3_uri=None,
            )
        if index is not None and index.startswith("s3://"):
            overrides.update(index_s3_uri=index, index_dir=None)
        elif index is not None:
            overrides.update(index_dir=Path(index), index_s3_uri=None, index_start_s3_uri=None)
        if sources is not None:
            overrides.update(sources_dir=sources, sources_s3_uri=None)
        if link_ttl is not None:
            overrides["link_ttl_s"] = link_ttl
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        fail(
            "invalid settings: "
            + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
        )
    err_console.print(f"Loading the index and serving on http://{host}:{port} …")
    serve(settings, host=host, port=port, insecure_no_auth=insecure_no_auth)


@app.command("openapi")
def openapi_command(
    server_url: Annotated[
        str,
        typer.Option(
            "--server-url",
            help="The API's public URL, as ChatGPT will call it (for example the API Gateway "
            "stage URL).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the schema to this file instead of standard output.",
            show_default=False,
        ),
    ] = None,
    allow_http: Annotated[
        bool,
        typer.Option(
            "--allow-http",
            help="Accept an http:// server URL (for other OpenAPI clients; ChatGPT refuses it).",
        ),
    ] = False,
) -> None:
    """Print the OpenAPI schema for a ChatGPT custom GPT action (search and fetch a passage).

    Paste it into the GPT editor's Actions and choose OAuth, or API key (Bearer) for
    `athenaeum serve` (the AWS deployment accepts only OAuth tokens); docs/chatgpt.md walks
    through it.

    Example: athenaeum openapi --server-url https://abc123.execute-api.eu-west-1.amazonaws.com/prod
    """
    import json

    from athenaeum.server.gpt_action import gpt_action_schema

    text = json.dumps(gpt_action_schema(server_url, allow_http=allow_http), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"Wrote the GPT action schema to {out}.")


def _search_filter(
    documents: list[str], pages: str | None, metadata: list[str]
) -> dict[str, object]:
    """The filter the search options describe, in the form /search takes."""
    raw: dict[str, object] = {}
    if documents:
        raw["documents"] = documents
    if pages is not None:
        start, dash, end = pages.strip().partition("-")
        try:
            first = int(start) if start.strip() else None
            last = (int(end) if end.strip() else None) if dash else first
        except ValueError:
            raise InvalidInputError(
                f'--pages must look like "3-5", "3-", "-5" or "4", got {pages!r}', param="pages"
            ) from None
        raw["pages"] = {k: v for k, v in (("from", first), ("to", last)) if v is not None}
    fields: dict[str, list[str]] = {}
    for item in metadata:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise InvalidInputError(f"--meta takes FIELD=VALUE, got {item!r}", param="meta")
        fields.setdefault(key.strip(), []).append(value.strip())
    if fields:
        raw["metadata"] = fields
    return raw


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.", show_default=False)],
    index: Annotated[
        Path,
        typer.Option("--index", "-i", help="The index bundle folder.", show_default=False),
    ],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many results, 1 to 50.")] = 5,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="hybrid (dense and BM25 scores fused), dense (embeddings only) or bm25 "
            "(keywords only).",
        ),
    ] = "hybrid",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON, for scripts.")
    ] = False,
    documents: Annotated[
        list[str] | None,
        typer.Option(
            "--document",
            "-d",
            help='Only these documents: a file name, path or glob ("guide.pdf", "reports/*", '
            'or a folder ending in "/"). Repeat for several.',
            show_default=False,
        ),
    ] = None,
    pages: Annotated[
        str | None,
        typer.Option(
            "--pages",
            help='Only passages on these pages: "3-5", "3-" (from 3), "-5" (up to 5) or "4".',
            show_default=False,
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--meta",
            help="Only documents whose front matter has FIELD=VALUE. Repeat for several fields "
            "(all must match) or values (FIELD=a --meta FIELD=b: either).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Search an index bundle and print the best passages with their sources and pages.

    The score is the cosine similarity in dense mode, the BM25 score in bm25 mode and in
    hybrid mode the two scores, each scaled to 0..1 over the candidates, averaged: compare
    scores within one search only.

    Example: athenaeum search "how do I reset the device" --index index/ --top-k 3
    """
    import json

    from rich.text import Text

    from athenaeum.retrieval import citations
    from athenaeum.retrieval.engine import SearchEngine

    search_filter = _search_filter(documents or [], pages, metadata or [])
    engine = SearchEngine.load(index)
    hits = engine.search(query, top_k=top_k, mode=mode, filter=search_filter)
    if as_json:
        payload = {"query": query, "mode": mode, "results": [_hit_json(h) for h in hits]}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    if not hits:
        console.print("No results.")
        return
    for rank, hit in enumerate(hits, 1):
        c = hit.chunk
        where = citations.where(c)
        console.print(f"[bold]{rank}.[/] [cyan]{hit.score:.4f}[/]  {where}", highlight=False)
        heading = " > ".join(c.heading_path) or (c.title or "")
        if heading:
            console.print(Text(f"   {heading}", style="dim"))
        snippet = " ".join(c.text.split())
        if len(snippet) > 300:
            snippet = snippet[:297] + "..."
        console.print(f"   {snippet}", highlight=False, markup=False)
        console.print(f"   [dim]chunk {c.id}[/]", highlight=False)


def _hit_json(hit: Hit) -> dict[str, Any]:
    c = hit.chunk
    return {
        "chunk_id": c.id,
        "doc_id": c.doc_id,
        "score": hit.score,
        "text": c.text,
        "source": c.source,
        "title": c.title,
        "page_start": c.page_start,
        "page_end": c.page_end,
        "heading_path": list(c.heading_path),
    }


@app.command("verify")
def verify_command(
    index: Annotated[Path, typer.Argument(help="The index bundle folder.", show_default=False)],
) -> None:
    """Verify an index bundle in full, and record that it was so that loading it is fast.

    Every file is hashed against the sha256 its manifest lists, every chunk parsed, and the
    vectors, BM25 postings and query encoder checked; then verification.json is written beside
    them. `athenaeum serve`, `athenaeum search` and the Lambda function load a copy with a
    current record without hashing it again, the largest part of loading a bundle
    (docs/benchmarks.md); a file rewritten, resized, replaced or copied since no longer
    matches the record and is hashed again. `athenaeum index` and an S3 download record
    their bundles themselves: run this after copying a bundle by hand, or to check one. A
    damaged bundle is refused with the problem named, and nothing is recorded.

    Example: athenaeum verify index/
    """
    import time

    from athenaeum.bundle import VERIFICATION_FILE
    from athenaeum.retrieval.engine import verify_index

    started = time.perf_counter()
    try:
        engine = verify_index(index)
    except OSError as exc:  # the checks passed; the folder is read-only
        fail(f"{index} is intact, but its {VERIFICATION_FILE} cannot be written ({exc})")
    files = engine.bundle.manifest.files
    megabytes = sum(f.bytes for f in files.values()) / 1_000_000
    facts = engine.facts
    console.print(
        f"{index}: intact. {len(files)} files ({megabytes:.1f} MB) match their sha256, "
        f"{facts.chunks} chunks of {facts.documents} documents, query encoder loads "
        f"({time.perf_counter() - started:.1f} s). Recorded in {index / VERIFICATION_FILE}.",
        soft_wrap=True,  # the paths stay whole
    )


@app.command("eval")
def eval_command(
    dataset: Annotated[
        Path,
        typer.Argument(
            help="A BEIR dataset folder: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.",
            show_default=False,
        ),
    ],
    index: Annotated[
        Path | None,
        typer.Option(
            "--index",
            "-i",
            help="Evaluate this existing bundle (built from the dataset's corpus) instead of "
            "building one.",
            show_default=False,
        ),
    ] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir",
            help="Where to build (and keep, for reuse) the dataset's bundle. Default: "
            "~/.cache/athenaeum/eval/NAME-HASH (the dataset folder is never written to). "
            "A rebuild over an unchanged corpus embeds nothing.",
            show_default=False,
        ),
    ] = None,
    embed_model: Annotated[
        str | None,
        typer.Option(
            "--embed-model",
            help="sentence-transformers model for the build (default: as `athenaeum index`).",
            show_default=False,
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="The qrels split to score.")] = "test",
    mode: Annotated[
        list[str] | None,
        typer.Option(
            "--mode",
            help="Evaluate only this mode (hybrid, dense, bm25); repeat for several. "
            "Default: all three.",
            show_default=False,
        ),
    ] = None,
    keep_identical_ids: Annotated[
        bool,
        typer.Option(
            "--keep-identical-ids",
            help="Score a retrieved document whose id is the query's own id. By default it is "
            "left out, as BEIR's and MTEB's `ignore_identical_ids` do, so the numbers compare "
            "with published tables.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics as JSON, for scripts.")
    ] = False,
    s3vectors: Annotated[
        str | None,
        typer.Option(
            "--s3vectors",
            help="Evaluate this Amazon S3 Vectors index, s3vectors://VECTOR_BUCKET/INDEX, "
            "which `athenaeum publish` filled with the --index bundle (required with it; only "
            "its manifest and query encoder are read). Searches run in the service, so the "
            "latencies include the round trip.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Measure retrieval quality and speed on a BEIR dataset.

    Builds a bundle of the corpus (unless --index is given), runs every judged query through
    each search mode and prints nDCG@10, Recall@100 and MRR@10 (documents ranked by their best
    chunk) with the per-query latency p50/p99 in milliseconds.

    Example: athenaeum eval data/beir/scifact
    """
    import dataclasses
    import json

    from rich.progress import (
        TaskID,
    )
    from rich.table import Table

    from athenaeum.build.evaluation import (
        Ranker,
        build_dataset_index,
        bundle_ranker,
        default_index_dir,
        evaluate_ranker,
        hits_ranker,
        load_beir,
    )
    from athenaeum.retrieval.backend import SEARCH_MODES, IndexFacts
    from athenaeum.retrieval.engine import SearchEngine

    modes = mode or list(SEARCH_MODES)
    data = load_beir(dataset, split=split)
    if s3vectors is not None and index is None:
        fail("--s3vectors needs --index: the bundle that `athenaeum publish` put in that index")
    if index is None:
        index = work_dir or default_index_dir(dataset)
        err_console.print(f"Indexing {dataset / 'corpus.jsonl'} into {index}…")
        with _stage_progress() as bar:
            tasks: dict[str, TaskID] = {}

            def on_progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            build_dataset_index(dataset, index, embed_model=embed_model, progress=on_progress)
    ranker: Ranker
    facts: IndexFacts
    if s3vectors is not None:
        from athenaeum.s3vectors.backend import S3VectorsSearch, s3vectors_client
        from athenaeum.s3vectors.publish import VectorIndex

        backend = S3VectorsSearch.load(
            index, VectorIndex.parse(s3vectors), client=s3vectors_client()
        )
        ranker = hits_ranker(lambda query, how, depth: backend.rank(query, mode=how, depth=depth))
        facts = backend.facts
    else:
        engine = SearchEngine.load(index)
        ranker, facts = bundle_ranker(engine), engine.facts
    reports = evaluate_ranker(ranker, data, modes, ignore_identical_ids=not keep_identical_ids)
    if as_json:
        payload = {
            "dataset": str(dataset),
            "split": split,
            "index": str(index),
            "backend": facts.backend,
            "s3vectors": s3vectors,
            "ignore_identical_ids": not keep_identical_ids,
            "modes": [dataclasses.asdict(r) for r in reports],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(
        title=f"{dataset.name} ({split}): {reports[0].queries} queries, "
        f"{facts.documents} documents, {facts.chunks} chunks, {facts.model_id}"
        + (f", in {facts.location}" if facts.backend == "s3vectors" else "")
    )
    for column in ("mode", "nDCG@10", "Recall@100", "MRR@10", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in reports:
        table.add_row(
            r.mode,
            f"{r.ndcg_at_10:.4f}",
            f"{r.recall_at_100:.4f}",
            f"{r.mrr_at_10:.4f}",
            f"{r.latency_p50_ms:.2f}",
            f"{r.latency_p99_ms:.2f}",
        )
    console.print(table)


@app.command("convert")
def convert_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="PDF files or folders. Folders are searched recursively for *.pdf files.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the markdown. Each input folder's tree is mirrored in it, one .md "
            "per PDF; a PDF given by itself is written to the top of it.",
            show_default=False,
        ),
    ],
    password: Annotated[
        list[str] | None,
        typer.Option(
            "--password",
            help="Password for encrypted PDFs. Repeat for several: each encrypted file is "
            "tried with every one given. Without it encrypted files are reported, not converted.",
            show_default=False,
        ),
    ] = None,
    ocr: Annotated[
        bool,
        typer.Option(
            "--ocr",
            help="Run OCR (Tesseract, through PyMuPDF) on pages that have no text layer. "
            "Without it such pages are reported. Needs Tesseract installed "
            "(Debian/Ubuntu: apt-get install tesseract-ocr; macOS: brew install tesseract).",
        ),
    ] = False,
    ocr_language: Annotated[
        str,
        typer.Option(
            "--ocr-language",
            help="Tesseract language(s) for --ocr, for example eng, deu or eng+fra.",
        ),
    ] = "eng",
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Files converted in parallel, each in its own process. Default: the number "
            "of CPU cores.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Convert again even when the output records the same PDF sha256 (by default "
            "unchanged PDFs are skipped).",
        ),
    ] = False,
) -> None:
    """Convert PDFs to markdown that keeps headings, tables and page numbers.

    Every output file starts with YAML front matter (source, title, pages, sha256 of the PDF,
    converter and version) and marks each page with a `<!-- page: N -->` line, so search
    results can cite pages. Running headers, footers and page numbers are dropped and words
    hyphenated across lines are joined. A file that cannot be converted (encrypted without a
    password, malformed, no text layer) is reported and the others go on; the exit status is
    0 only when nothing failed.

    Example: athenaeum convert manuals/ --out converted/ --jobs 4
    """
    import os

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from athenaeum.build.convert import ConvertOptions, FileResult, Status, convert, plan_jobs

    workers = jobs or os.cpu_count() or 1
    total = len(plan_jobs(inputs, out))
    options = ConvertOptions(
        passwords=password or [], ocr=ocr, ocr_language=ocr_language, overwrite=overwrite
    )
    progress = Progress(
        TextColumn("converting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
    )
    with progress:
        task = progress.add_task("", total=total)

        def advance(result: FileResult) -> None:
            progress.update(task, advance=1, description=result.source.name)

        report = convert(inputs, out, options, jobs=workers, on_result=advance)

    # Names relative to the input they came from, so that a row fits in 80 columns; reasons and
    # warnings go below the table, one line each, once.
    names = {r.source: _relative_name(r.source, inputs) for r in report.results}
    table = Table(title=f"athenaeum convert: {len(report.results)} PDF(s)")
    table.add_column("file", overflow="fold")
    for column in ("status", "pages", "seconds"):
        table.add_column(column, justify="right" if column != "status" else "left")
    styles = {Status.CONVERTED: "green", Status.SKIPPED: "dim", Status.FAILED: "bold red"}
    for r in report.results:
        table.add_row(
            names[r.source],
            f"[{styles[r.status]}]{r.status.value}[/]",
            str(r.pages or ""),
            f"{r.seconds:.2f}",
        )
    console.print(table)
    for r in report.results:  # unwrapped, so logs can be grepped
        if r.status is Status.FAILED:
            console.print(f"[bold red]failed[/] {names[r.source]}: {r.reason}", soft_wrap=True)
        for warning in r.warnings:
            console.print(f"[yellow]warning[/] {names[r.source]}: {warning}", soft_wrap=True)
    counts = {s: len(report.by_status(s)) for s in Status}
    console.print(
        f"{counts[Status.CONVERTED]} converted ({report.pages_converted} pages), "
        f"{counts[Status.SKIPPED]} skipped, {counts[Status.FAILED]} failed; markdown in {out}"
    )
    if not report.ok:
        raise typer.Exit(1)


def _relative_name(source: Path, inputs: list[Path]) -> str:
    """A converted file's name as the user gave it: relative to the input folder it was found
    in, or the file's own name."""
    for root in inputs:
        try:
            relative = source.resolve().relative_to(root.resolve())
        except ValueError:
            continue
        return relative.as_posix() if relative.parts else source.name
    return source.name


@app.command("index")
def index_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Folders or files to index. Folders are searched recursively for .md, "
            ".markdown and .txt files (markdown written by `athenaeum convert` keeps its page "
            "numbers) and for BEIR corpus.jsonl files. Hidden files and folders are skipped.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The index bundle folder to create or update. It is replaced atomically: an "
            "interrupted run leaves the previous bundle as it was.",
            show_default=False,
        ),
    ],
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            help="Index only files matching this glob, against the path relative to the input "
            "folder or the file name (`*` also crosses `/`). Repeat for several.",
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="Skip files matching this glob (matched as --include is). Repeat for several.",
            show_default=False,
        ),
    ] = None,
    embed_model: Annotated[
        str,
        typer.Option(
            "--embed-model",
            help="sentence-transformers model: a Hugging Face id or a local folder. Its query "
            "encoder is exported to ONNX into the bundle, so the server needs no torch.",
        ),
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="Where to embed: auto (CUDA, then Apple MPS, then CPU), cpu, cuda or mps. On "
            "CPU the documents are embedded with onnxruntime, which is faster there; on CUDA in "
            "half precision (cosine with the CPU's vectors >= 0.9995).",
        ),
    ] = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            help="Chunks per embedding batch. [default: 8 on CPU, 256 on a GPU]",
            show_default=False,
        ),
    ] = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Embed every document again. Without it only new and changed documents are "
            "embedded (by content hash); a changed model or chunking option rebuilds anyway.",
        ),
    ] = False,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-tokens",
            min=16,
            help="Most tokens per chunk, counted by the model's tokenizer. Default and maximum: "
            "what the model reads (256 less 2 special tokens for all-MiniLM-L6-v2).",
            show_default=False,
        ),
    ] = None,
    overlap: Annotated[
        int,
        typer.Option(
            "--overlap",
            min=0,
            help="Tokens of trailing text that a chunk repeats from the one before it when a "
            "section is longer than one chunk.",
        ),
    ] = 32,
    encoder_precision: Annotated[
        str,
        typer.Option(
            "--encoder-precision",
            help="Precision of the query encoder shipped in the bundle: int8 (dynamically "
            "quantized per channel: a quarter of the size, 23 MB instead of 90 MB for "
            "all-MiniLM-L6-v2, and about twice as fast per query, with SciFact nDCG@10 within "
            "noise of fp32; see docs/index-format.md) or fp32. Documents are embedded as before "
            "either way (fp32 on CPU, fp16 on CUDA), so switching an existing bundle re-exports "
            "the encoder and embeds nothing.",
        ),
    ] = "int8",
) -> None:
    """Index documents into a search bundle: chunk, embed, and build BM25 and dense indexes.

    Each document is split at its markdown headings into chunks the embedding model reads
    whole; every chunk keeps its heading path and page numbers. The bundle holds the chunks,
    their vectors, a BM25 index and the ONNX query encoder: `athenaeum serve` needs nothing
    else. Re-running on the same inputs re-embeds only what changed, and when nothing did it
    says so in a moment, without loading the model.

    Example: athenaeum index converted/ --output index/
    """
    import time

    from rich.progress import (
        TaskID,
    )

    from athenaeum.build.indexer import Stage, build_index

    if device not in ("auto", "cpu", "cuda", "mps"):
        fail(f"--device must be auto, cpu, cuda or mps, not {device!r}")
    if encoder_precision not in ("fp32", "int8"):
        fail(f"--encoder-precision must be fp32 or int8, not {encoder_precision!r}")
    precision: Literal["fp32", "int8"] = "int8" if encoder_precision == "int8" else "fp32"

    progress = _stage_progress()
    tasks: dict[str, TaskID] = {}

    def on_progress(stage: Stage, done: int, total: int) -> None:
        if stage == "model":
            # Only when something is to be embedded: a run with nothing to do never loads it.
            if not done:
                err_console.print(f"Loading embedding model [bold]{embed_model}[/]…")
            return
        if stage not in tasks:
            if not tasks:
                progress.start()  # not before: a run with nothing to do shows no bars
            label = "chunking" if stage == "chunking" else "embedding"
            tasks[stage] = progress.add_task(label, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    started = time.perf_counter()
    try:
        report = build_index(
            inputs,
            output,
            include=include or [],
            exclude=exclude or [],
            embed_model=embed_model,
            device=device,
            batch_size=batch_size,
            max_tokens=max_tokens,
            overlap=overlap,
            rebuild=rebuild,
            encoder_precision=precision,
            progress=on_progress,
        )
    except KeyboardInterrupt:
        fail(f"interrupted; {output} was left as it was", code=130)
    finally:
        progress.stop()
    seconds = time.perf_counter() - started
    if report.rebuild_reason:
        console.print(f"Rebuilt every document: {report.rebuild_reason}.")
    console.print(
        f"{report.documents_total} documents: {report.documents_added} added, "
        f"{report.documents_changed} changed, {report.documents_unchanged} unchanged, "
        f"{report.documents_removed} removed."
    )
    embedded = (
        f"{report.chunks_embedded} chunks embedded ({report.chunks_total} in the index, "
        f"{report.dense_kind} dense index)"
    )
    if report.device is not None:
        console.print(
            f"{embedded} with {report.model_id} on {report.device} ({report.backend}) "
            f"in {seconds:.1f} s."
        )
    else:
        console.print(f"{embedded} in {seconds:.1f} s; the embedding model was not loaded.")
    console.print(
        f"Query encoder: {report.encoder_precision}, {report.encoder_bytes / 1_000_000:.1f} MB."
    )
    if report.written:
        console.print(f"Index bundle written to [bold]{output}[/].")
    else:
        console.print(f"Nothing changed; {output} is up to date.")


@app.command("push")
def push_command(
    folder: Annotated[
        Path,
        typer.Argument(
            help="The local folder of documents. Folders in it are searched recursively; "
            "hidden files and folders are left out.",
            show_default=False,
        ),
    ],
    library: Annotated[
        str,
        typer.Argument(
            help="The library: s3://BUCKET/PREFIX, for example s3://my-bucket/library. Each "
            "document goes to PREFIX/<its path in the folder>.",
            show_default=False,
        ),
    ],
    delete: Annotated[
        bool,
        typer.Option(
            "--delete",
            help="Also delete the documents under the prefix that have no file in the folder. "
            "Only document keys are deleted (and only those --include/--exclude select); "
            "anything else under the prefix, and everything outside it, is left alone.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would be uploaded and deleted; change nothing."),
    ] = False,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            help="Push only documents matching this glob, against the path relative to the "
            "folder or the file name (`*` also crosses `/`). Repeat for several.",
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="Leave out documents matching this glob (matched as --include is). Repeat for "
            "several.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Make the library in S3 match a local folder: upload new and changed documents.

    Documents are PDFs and .md, .markdown and .txt files; other files are reported as skipped.
    A document is uploaded when no object has its key or the object's sha256 differs: every
    object carries its file's sha256 in its metadata, and S3 checks the bytes against it on the
    way in (per part for files of 8 MiB and more). Unchanged documents are not sent again. With
    --delete, documents removed from the folder are deleted from the prefix, after the uploads.
    One file that fails is reported and the others go on; the exit status is then 1.

    Credentials, region and endpoint are boto3's own settings (AWS_PROFILE, AWS_REGION, and
    AWS_ENDPOINT_URL for another S3-compatible server).

    Example: athenaeum push ~/manuals s3://my-bucket/library --delete
    """
    import threading

    from athenaeum.library.push import push

    progress = None
    on_progress = None
    if err_console.is_terminal:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
        )
        tasks: dict[str, TaskID] = {}
        adding = threading.Lock()  # uploads report from the transfer manager's threads

        def on_progress(stage: str, done: int, total: int) -> None:
            assert progress is not None
            with adding:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], advance=done)

        progress.start()
    try:
        report = push(
            folder,
            library,
            delete=delete,
            dry_run=dry_run,
            include=include or [],
            exclude=exclude or [],
            on_progress=on_progress,
        )
    except KeyboardInterrupt:
        fail("interrupted; what was uploaded stays, run push again to finish", code=130)
    finally:
        if progress is not None:
            progress.stop()
    _print_push(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_push(report: PushReport) -> None:
    from rich.filesize import decimal
    from rich.text import Text

    dry = report.dry_run
    for upload in report.uploaded:
        size = decimal(upload.document.size)
        verb = "would upload" if dry else "uploaded"
        console.print(
            Text.assemble((verb, "green"), f" {upload.key} ({upload.change}, {size})"),
            soft_wrap=True,
        )
    for gone in report.deleted:
        verb = "would delete" if dry else "deleted"
        console.print(Text.assemble((verb, "yellow"), f" {gone.key}"), soft_wrap=True)
    for failure in report.failed:
        err_console.print(
            Text.assemble(("failed", "bold red"), f" {failure.key}: {failure.reason}"),
            soft_wrap=True,
        )

    def amount(count: int, what: str, size: int) -> str:
        return f"{count} {what} ({decimal(size)})"

    counts = ", ".join(
        (
            amount(
                len(report.uploaded),
                "to upload" if dry else "uploaded",
                sum(u.document.size for u in report.uploaded),
            ),
            amount(len(report.unchanged), "unchanged", sum(d.size for d in report.unchanged)),
            amount(
                len(report.deleted),
                "to delete" if dry else "deleted",
                sum(o.size for o in report.deleted),
            ),
            amount(len(report.skipped), "skipped", sum(s.size for s in report.skipped)),
            f"{len(report.failed)} failed",
        )
    )
    where = f"{report.location.uri}/"
    console.print(
        f"Dry run, nothing changed in {where}: {counts}." if dry else f"{where}: {counts}.",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    reasons: dict[str, list[str]] = {}
    for item in report.skipped:
        reasons.setdefault(item.reason, []).append(item.rel)
    for reason, names in sorted(reasons.items()):
        kinds: dict[str, int] = {}
        for name in names:
            suffix = Path(name).suffix.lower() or "(no extension)"
            kinds[suffix] = kinds.get(suffix, 0) + 1
        listed = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        console.print(
            f"Skipped, {reason}: {listed}.", soft_wrap=True, highlight=False, markup=False
        )
    if report.kept:
        console.print(
            f"{len(report.kept)} document(s) under the prefix have no file in the folder and "
            "were kept (--delete removes them).",
            highlight=False,
        )
    if report.others:
        console.print(
            f"{report.others} other object(s) under the prefix (not documents, or filtered "
            "out) were left as they are.",
            highlight=False,
        )


@app.command("publish")
def publish_command(
    bundle: Annotated[
        Path,
        typer.Argument(
            help="The index bundle folder (what `athenaeum index` wrote).", show_default=False
        ),
    ],
    target: Annotated[
        str,
        typer.Argument(
            help="The Amazon S3 Vectors index, s3vectors://VECTOR_BUCKET/INDEX (created when "
            "it does not exist).",
            show_default=False,
        ),
    ],
    state: Annotated[
        str,
        typer.Option(
            "--state",
            help="Where the record of what the index holds is kept, s3://BUCKET/KEY: with it "
            "only new and changed chunks are put and removed ones deleted.",
            show_default=False,
        ),
    ],
) -> None:
    """Publish a bundle's chunks into an Amazon S3 Vectors index, for libraries past one
    function's bundle.

    One vector per chunk, with its text (searched in full text by the service), title,
    headings and source, and its document, pages and front matter as filterable metadata.
    Only what changed since the last publish is sent. Uses the usual AWS credentials and
    region.

    Example: athenaeum publish index/ s3vectors://vectors/library --state s3://b/state.json
    """
    import boto3  # type: ignore[import-untyped]

    from athenaeum.bundle import load_bundle
    from athenaeum.s3vectors.publish import S3State, VectorIndex, publish
    from athenaeum.storage.client import s3_client
    from athenaeum.storage.location import S3Location

    index = VectorIndex.parse(target)
    if not state.startswith("s3://") or not S3Location.parse(state, what="--state").prefix:
        fail(f"--state must be an s3://BUCKET/KEY address, not {state!r}")
    where = S3Location.parse(state, what="--state")
    loaded = load_bundle(bundle, verify="full")
    progress = _stage_progress(transient=True)
    on_progress = _stage_updater(progress)

    with progress:
        report = publish(
            loaded,
            index,
            client=boto3.client("s3vectors"),
            state=S3State(s3_client(None), where.bucket, where.prefix, index),
            progress=on_progress,
        )
    created = " (index created)" if report.created_index else ""
    for change in report.index_changes:
        console.print(f"{report.index}: {change}.", highlight=False)
    console.print(
        f"Published {bundle} to {report.index}{created}: {report.put} vectors put, "
        f"{report.deleted} deleted, {report.unchanged} unchanged, in {report.seconds:.1f} s."
    )


@app.command("ingest")
def ingest_command(
    library: Annotated[
        str,
        typer.Argument(
            help="The library: an S3 prefix of PDFs, .md, .markdown and .txt files, "
            "s3://BUCKET/PREFIX.",
            show_default=False,
        ),
    ],
    index: Annotated[
        str,
        typer.Option(
            "--index",
            "-i",
            help="The published index to update, s3://BUCKET/PREFIX (athenaeum serve --index "
            "and the API function follow it).",
            show_default=False,
        ),
    ],
    from_bundle: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A bundle built by `athenaeum index` to start from when the index holds no "
            "version yet: its encoders, settings and documents (files in the library that it "
            "already holds are not embedded again). Ignored once the index has a version.",
            show_default=False,
        ),
    ] = None,
    password: Annotated[
        list[str] | None,
        typer.Option(
            "--password",
            help="Password for encrypted PDFs; repeat for several. Without one, encrypted "
            "files are reported, not published.",
            show_default=False,
        ),
    ] = None,
    max_pages: Annotated[
        int | None,
        typer.Option(
            "--max-pages",
            min=1,
            help="Refuse PDFs with more pages (they are named in the report).",
            show_default=False,
        ),
    ] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir",
            help="Where downloads, conversions and the local copy of the index go. Default: a "
            "folder in the system's temporary directory, kept between runs.",
            show_default=False,
        ),
    ] = None,
    keep_versions: Annotated[
        int,
        typer.Option(
            "--keep-versions",
            min=1,
            help="Published versions to keep after publishing; older ones, and the files only "
            "they use, are deleted (none written in the last hour).",
        ),
    ] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the ingest report as JSON.")
    ] = False,
) -> None:
    """Bring a published index up to date with a library in S3, without torch.

    New and changed files are converted, chunked and embedded with the index's own document
    encoder; files removed from the library are dropped; then a new version is published and
    the pointer moved. Unchanged files are not downloaded again. This is what the ingest
    function does in the cloud; it works against any S3 endpoint boto3 accepts
    (AWS_ENDPOINT_URL). A file that cannot be converted is reported and the others are
    published; the exit status is 1 when any failed.

    Example: athenaeum ingest s3://my-bucket/library --index s3://my-bucket/index --from index/
    """
    import tempfile

    from athenaeum.ingest.pipeline import ingest
    from athenaeum.storage.client import s3_client
    from athenaeum.storage.location import S3Location

    locations = []
    for name, uri in (("library", library), ("--index", index)):
        if not uri.startswith("s3://"):
            fail(f"{name} must be an s3://BUCKET/PREFIX address, not {uri!r}")
        locations.append(S3Location.parse(uri, what=name))
    if from_bundle is not None and not from_bundle.is_dir():
        fail(f"--from {from_bundle} is not a folder")
    work = work_dir or Path(tempfile.gettempdir()) / "athenaeum-ingest"
    progress = _stage_progress(transient=True)
    on_progress = _stage_updater(progress)

    with progress:
        report = ingest(
            locations[0],
            locations[1],
            client=s3_client(None),
            work_dir=work,
            from_bundle=from_bundle,
            passwords=password or [],
            max_pages=max_pages,
            progress=on_progress,
            keep_versions=keep_versions,
        )
    if as_json:
        console.print_json(report.to_json())
    else:
        verb = "Published" if report.published else "Nothing to publish:"
        console.print(
            f"{verb} version {(report.version or '')[:12]} of {report.index}: "
            f"{report.documents_total} documents, {report.chunks_total} chunks "
            f"({report.documents_added} added, {report.documents_changed} changed, "
            f"{report.documents_removed} removed, {report.documents_unchanged} unchanged; "
            f"{report.chunks_embedded} chunks embedded)."
        )
        for item in report.failed:
            err_console.print(f"[yellow]not published[/] {item['key']}: {item['reason']}")
        for item in report.skipped:
            err_console.print(f"[dim]skipped[/] {item['key']}: {item['reason']}")
    if report.failed:
        raise typer.Exit(1)


def main() -> None:
    app()
