"""`athenaeum convert` and `athenaeum index`: documents to markdown, markdown to an index bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from athenaeum.cli.console import console, err_console, fail, stage_progress

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from athenaeum.build.convert import ConvertOptions, ConvertReport
    from athenaeum.build.indexer import IndexReport, ProgressCallback, Stage

# The library's `Device` and `EncoderPrecision`, which the CLI does not import before a command
# runs (athenaeum.build.embedding is slow to import); a test keeps them equal.
Device = Literal["auto", "cpu", "cuda", "mps"]
EncoderPrecision = Literal["fp32", "int8"]


def convert_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Documents (.pdf, .docx, .pptx, .xlsx, .html, .htm, .xhtml, .epub) or folders. "
            "Folders are searched recursively for them; other files are left alone.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the markdown. Each input folder's tree is mirrored in it, one .md "
            "per document (report.pdf becomes report.md, any other report.docx.md); a document "
            "given by itself is written to the top of it.",
            show_default=False,
        ),
    ],
    password: Annotated[
        list[str] | None,
        typer.Option(
            "--password",
            help="Password for encrypted PDFs and Word, PowerPoint and Excel files. Repeat for "
            "several: each encrypted file is tried with every one given. Without it encrypted "
            "files are reported, not converted.",
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
            help="Convert again even when the output records the same sha256 of its document "
            "(by default unchanged documents are skipped).",
        ),
    ] = False,
) -> None:
    """Convert documents to markdown that keeps headings, tables and where each passage is.

    PDFs, Word (.docx), PowerPoint (.pptx), Excel (.xlsx), web pages (.html, .htm, .xhtml) and
    EPUB books. Every output file starts with YAML front matter (source, title, pages, slides,
    sheets or chapters, sha256 of the original, converter and version) and marks where its text
    is: each PDF page with a `<!-- page: N -->` line, each slide with `<!-- slide: N -->`, each
    block of a sheet's rows with `<!-- sheet: N Budget!A1:F40 -->`, so that search results cite
    "p. 3", "slide 7" or "sheet Budget!A1:F40"; Word, HTML and EPUB are cited by their section
    path ("Chapter 3 > Methods"), and a web page's sections keep their anchors, so its links
    open the section. Speaker notes are kept after their slide under "Notes:"; hidden slides and
    sheets are left out; Word's tracked changes read as accepted and its comments, headers and
    footers are left out, its footnotes kept; a formula gives its value; a web page gives its
    article, without navigation, banners or footers. A PDF's tables become markdown tables,
    ruled or not (those of the other formats are tables already); a table that runs over
    several pages is written in one part per page, each under the table's own header row, and
    `athenaeum index` reads the parts as one table. Running headers, footers, page numbers and
    the line numbers down the margin of transcripts and pleadings are dropped and words
    hyphenated across lines are joined. A file that cannot be converted (encrypted without a
    password, malformed, no text layer) is reported and the others go on; the exit status is 0
    only when nothing failed. A folder with no document in it is an error that says what it
    holds.

    Example: athenaeum convert manuals/ --out converted/ --jobs 4
    """
    import os

    from athenaeum.build.convert import ConvertOptions

    options = ConvertOptions(
        passwords=password or [], ocr=ocr, ocr_language=ocr_language, overwrite=overwrite
    )
    report = _convert_with_progress(inputs, out, options, jobs=jobs or os.cpu_count() or 1)
    _print_convert(report, inputs, out)
    if not report.ok:
        raise typer.Exit(1)


def _convert_with_progress(
    inputs: list[Path], out: Path, options: ConvertOptions, *, jobs: int
) -> ConvertReport:
    """`convert` with a bar of files done, each named as it finishes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from athenaeum.build.convert import FileResult, convert, plan_jobs

    total = len(plan_jobs(inputs, out))
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

        return convert(inputs, out, options, jobs=jobs, on_result=advance)


def _print_convert(report: ConvertReport, inputs: list[Path], out: Path) -> None:
    from rich.table import Table

    from athenaeum.build.convert import Status

    # Names relative to the input they came from, so that a row fits in 80 columns; reasons and
    # warnings go below the table, one line each, once.
    names = {r.source: _relative_name(r.source, inputs) for r in report.results}
    table = Table(title=f"athenaeum convert: {len(report.results)} document(s)")
    table.add_column("file", overflow="fold")
    for column in ("status", "found", "seconds"):
        table.add_column(column, justify="right" if column != "status" else "left")
    styles = {Status.CONVERTED: "green", Status.SKIPPED: "dim", Status.FAILED: "bold red"}
    for r in report.results:
        table.add_row(
            names[r.source],
            f"[{styles[r.status]}]{r.status.value}[/]",
            f"{r.pages} {r.unit}{'' if r.pages == 1 else 's'}" if r.pages else "",
            f"{r.seconds:.2f}",
        )
    console.print(table)
    for r in report.results:  # unwrapped, so logs can be grepped
        if r.status is Status.FAILED:
            console.print(f"[bold red]failed[/] {names[r.source]}: {r.reason}", soft_wrap=True)
        for warning in r.warnings:
            console.print(f"[yellow]warning[/] {names[r.source]}: {warning}", soft_wrap=True)
    counts = {s: len(report.by_status(s)) for s in Status}
    found: dict[str, int] = {}
    for r in report.by_status(Status.CONVERTED):
        found[r.unit] = found.get(r.unit, 0) + r.pages
    units = ", ".join(f"{n} {unit}s" for unit, n in found.items() if n) or "0 pages"
    console.print(
        f"{counts[Status.CONVERTED]} converted ({units}), "
        f"{counts[Status.SKIPPED]} skipped, {counts[Status.FAILED]} failed; markdown in {out}"
    )


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
        Device,
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
        EncoderPrecision,
        typer.Option(
            "--encoder-precision",
            help="Precision of the query encoder shipped in the bundle: int8 (dynamically "
            "quantized per channel: a quarter of the size and faster per query, with retrieval "
            "quality within noise of fp32; docs/index-format.md has the measurements) or fp32. "
            "Documents are embedded as before "
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

    from athenaeum.build.indexer import BuildOptions, build_index

    options = BuildOptions(
        include=include or [],
        exclude=exclude or [],
        embed_model=embed_model,
        device=device,
        batch_size=batch_size,
        max_tokens=max_tokens,
        overlap=overlap,
        rebuild=rebuild,
        encoder_precision=encoder_precision,
    )
    progress = stage_progress()
    started = time.perf_counter()
    try:
        report = build_index(
            inputs, output, options, progress=_index_updater(progress, embed_model)
        )
    except KeyboardInterrupt:
        fail(f"interrupted; {output} was left as it was", code=130)
    finally:
        progress.stop()
    _print_index(report, output, time.perf_counter() - started)


def _index_updater(progress: Progress, embed_model: str) -> ProgressCallback:
    """build_index's progress drawn on `progress`, started only once there is something to
    chunk: a run with nothing to do shows no bars."""
    tasks: dict[str, TaskID] = {}

    def update(stage: Stage, done: int, total: int) -> None:
        if stage == "model":
            # Only when something is to be embedded: a run with nothing to do never loads it.
            if not done:
                err_console.print(f"Loading embedding model [bold]{embed_model}[/]…")
            return
        if stage not in tasks:
            if not tasks:
                progress.start()
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return update


def _print_index(report: IndexReport, output: Path, seconds: float) -> None:
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
