"""`athenaeum search`, `verify` and `eval`: reading an index bundle, checking it, and measuring
its retrieval on a BEIR dataset."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from athenaeum.cli.console import console, err_console, fail, stage_progress, stage_updater
from athenaeum.errors import InvalidInputError

if TYPE_CHECKING:
    from athenaeum.build.evaluation import ModeReport, Ranker
    from athenaeum.retrieval.backend import Hit, IndexFacts


class Mode(StrEnum):
    """The search modes (the library's `SearchMode`), as Typer offers them: a bad one is
    refused before an index is loaded or built. An Enum, not a Literal, because eval's --mode
    is repeatable."""

    hybrid = "hybrid"
    dense = "dense"
    bm25 = "bm25"


# The filter's parts as the API names them, and the options that give them here.
_FILTER_OPTIONS = {
    "filter.collections": "--collection",
    "filter.documents": "--document",
    "filter.pages": "--pages",
    "filter.metadata": "--meta",
}


def _in_option_terms(exc: InvalidInputError) -> InvalidInputError:
    """A filter's refusal, naming the option the user typed instead of the API's field."""
    message = exc.message
    for field, option in _FILTER_OPTIONS.items():
        if message.startswith(field):
            message = option + message[len(field) :]
            break
    return InvalidInputError(message, param=exc.param, code=exc.code)


def _search_filter(
    documents: list[str],
    pages: str | None,
    metadata: list[str],
    collections: Sequence[str] = (),
) -> dict[str, object]:
    """The filter the search options describe, in the form /search takes."""
    raw: dict[str, object] = {}
    if collections:
        raw["collections"] = list(collections)
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


def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.", show_default=False)],
    index: Annotated[
        Path,
        typer.Option("--index", "-i", help="The index bundle folder.", show_default=False),
    ],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many results, 1 to 50.")] = 5,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="hybrid (dense and BM25 scores fused), dense (embeddings only) or bm25 "
            "(keywords only).",
        ),
    ] = Mode.hybrid,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON, for scripts.")
    ] = False,
    collections: Annotated[
        list[str] | None,
        typer.Option(
            "--collection",
            "-c",
            help="Only this collection (a document's collection is the first folder of its "
            "path in the library, or its front matter's `collection`). Repeat for several.",
            show_default=False,
        ),
    ] = None,
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

    from athenaeum.retrieval.engine import SearchEngine

    search_filter = _search_filter(documents or [], pages, metadata or [], collections or [])
    engine = SearchEngine.load(index)
    try:
        hits = engine.search(query, top_k=top_k, mode=mode.value, filter=search_filter)
    except InvalidInputError as exc:
        raise _in_option_terms(exc) from None
    if as_json:
        payload = {"query": query, "mode": mode.value, "results": [_hit_json(h) for h in hits]}
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        _print_hits(hits)


def _print_hits(hits: list[Hit]) -> None:
    from rich.text import Text

    from athenaeum.retrieval import citations

    if not hits:
        console.print("No results.")
        return
    for rank, hit in enumerate(hits, 1):
        c = hit.chunk
        where = citations.where(c)
        console.print(f"[bold]{rank}.[/] [cyan]{hit.score:.4f}[/]  {where}", highlight=False)
        heading = " > ".join(c.heading_path) or (c.title or "")
        if heading and heading != c.location:
            console.print(Text(f"   {heading}", style="dim"))
        snippet = " ".join(c.text.split())
        if len(snippet) > 300:
            snippet = snippet[:297] + "..."
        console.print(f"   {snippet}", highlight=False, markup=False)
        console.print(f"   [dim]chunk {c.id}[/]", highlight=False)


def _hit_json(hit: Hit) -> dict[str, Any]:
    from athenaeum.retrieval import citations

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
        "location": citations.pages(c),
        "heading_path": list(c.heading_path),
    }


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
        list[Mode] | None,
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

    from athenaeum.build.evaluation import evaluate_ranker, load_beir
    from athenaeum.retrieval.backend import SEARCH_MODES

    modes = [m.value for m in mode] if mode else list(SEARCH_MODES)
    data = load_beir(dataset, split=split)
    if s3vectors is not None and index is None:
        fail("--s3vectors needs --index: the bundle that `athenaeum publish` put in that index")
    if index is None:
        index = _build_dataset_index(dataset, work_dir, embed_model)
    ranker, facts = _ranker(index, s3vectors)
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
    else:
        _print_eval(dataset, split, reports, facts)


def _build_dataset_index(dataset: Path, work_dir: Path | None, embed_model: str | None) -> Path:
    """The dataset's bundle, built (or brought up to date) in `work_dir` or the cache."""
    from athenaeum.build.evaluation import build_dataset_index, default_index_dir

    index = work_dir or default_index_dir(dataset)
    err_console.print(f"Indexing {dataset / 'corpus.jsonl'} into {index}…")
    with stage_progress() as bar:
        build_dataset_index(dataset, index, embed_model=embed_model, progress=stage_updater(bar))
    return index


def _ranker(index: Path, s3vectors: str | None) -> tuple[Ranker, IndexFacts]:
    """The ranker the evaluation runs: the bundle's engine, or the S3 Vectors index it was
    published to."""
    from athenaeum.build.evaluation import bundle_ranker, hits_ranker

    if s3vectors is None:
        from athenaeum.retrieval.engine import SearchEngine

        engine = SearchEngine.load(index)
        return bundle_ranker(engine), engine.facts
    from athenaeum.s3vectors.backend import S3VectorsSearch, s3vectors_client
    from athenaeum.s3vectors.publish import VectorIndex

    backend = S3VectorsSearch.load(index, VectorIndex.parse(s3vectors), client=s3vectors_client())
    ranker = hits_ranker(lambda query, how, depth: backend.rank(query, mode=how, depth=depth))
    return ranker, backend.facts


def _print_eval(dataset: Path, split: str, reports: list[ModeReport], facts: IndexFacts) -> None:
    from rich.table import Table

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
