"""`athenaeum index`: documents in, an index bundle out, incrementally.

Reads `.md`/`.markdown`/`.txt` files and BEIR `corpus.jsonl` files, chunks them
(athenaeum.build.chunking), embeds the chunks (athenaeum.build.embedding), builds BM25
(athenaeum.retrieval.lexical) and writes the bundle atomically (athenaeum.bundle): it is built
beside the output and swapped in by rename, so a crash or Ctrl-C leaves the previous bundle as
it was.

Incremental: a document whose content hash is unchanged keeps its chunks and vectors from the
existing bundle; only new and changed documents are chunked and embedded; documents no longer in
the inputs are dropped. A different model (weights), document prefix or chunking parameters
make every old vector unusable, so they force a full rebuild, as does `rebuild=True`. The query
encoder's precision (fp32 or int8) decides only the encoder file: changing it re-exports the
encoder and rewrites the manifest, and embeds nothing.

A run with nothing to do (the same documents, model files and options as the bundle records)
says so without loading the model: torch and sentence-transformers are imported only when
something is to be embedded or exported.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from athenaeum.build.chunking import (
    DEFAULT_OVERLAP,
    ChunkingParams,
    SourceDocument,
    chunk_document,
    embed_text,
    read_beir_corpus,
    read_text_document,
)
from athenaeum.build.embedding import (
    DEFAULT_MODEL,
    ENCODER_PRECISIONS,
    Embedder,
    EncoderPrecision,
    load_embedder,
)
from athenaeum.build.model_folder import default_prefixes, locate
from athenaeum.bundle import (
    CHUNK_ENCODING,
    ENCODER_MODEL,
    ENCODER_MODEL_FILE,
    ENCODER_TOKENIZER_FILE,
    MANIFEST_FILE,
    VECTOR_ENCODING,
    Bundle,
    ChunkRecord,
    DocumentInfo,
    EmbeddingInfo,
    Manifest,
    choose_dense_kind,
    load_bundle,
    write_bundle,
)
from athenaeum.errors import AthenaeumError, InvalidInputError
from athenaeum.retrieval.lexical import BM25Index

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
BEIR_CORPUS_NAME = "corpus.jsonl"


DenseChoice = Literal["auto", "flat", "hnsw"]
Stage = Literal["model", "chunking", "embedding"]
ProgressCallback = Callable[[Stage, int, int], None]
"""Called as `progress(stage, done, total)`; totals are documents (chunking) or chunks
(embedding). "model" is 0 of 1 as the embedding model starts loading and 1 of 1 once it has
(never, when nothing is to be done)."""


@dataclass(frozen=True)
class BuildOptions:
    """How `build_index` finds, chunks and embeds documents; the defaults are `athenaeum index`'s.

    `max_tokens` defaults to what the model reads (its max_seq_length less special tokens and
    the document prefix) and may not exceed it. `encoder_precision` is that of the query
    encoder shipped in the bundle ("int8": dynamically quantized, a quarter of the size, a
    little less exact); documents are embedded in fp32 either way. The prefixes default to
    those the model's folder saves.
    """

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    embed_model: str = DEFAULT_MODEL
    device: str = "auto"
    batch_size: int | None = None
    max_tokens: int | None = None
    overlap: int = DEFAULT_OVERLAP
    context: bool = True
    query_prefix: str | None = None
    document_prefix: str | None = None
    rebuild: bool = False
    dense: DenseChoice = "auto"
    encoder_precision: EncoderPrecision = "int8"


@dataclass(frozen=True)
class IndexReport:
    output: Path
    documents_added: int
    documents_changed: int
    documents_unchanged: int
    documents_removed: int
    chunks_total: int
    chunks_embedded: int
    full_rebuild: bool
    rebuild_reason: str | None  # why every document was embedded again, when it was
    written: bool  # False when nothing changed and the existing bundle was left as it is
    dense_kind: str
    model_id: str
    device: str | None  # None when the model was not loaded: nothing was to be done
    backend: str | None
    encoder_precision: str
    encoder_bytes: int  # size of the bundle's encoder/model.onnx
    seconds: float

    @property
    def documents_total(self) -> int:
        return self.documents_added + self.documents_changed + self.documents_unchanged


# --- finding documents -----------------------------------------------------------------------


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    # Against the relative path (where `*` also crosses `/`) and the bare file name, so both
    # `drafts/*` and `*.txt` do what they look like.
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def discover_files(
    inputs: Sequence[Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip: Path | None = None,
) -> list[tuple[Path, str]]:
    """(file, path relative to its input) for every document file, in a stable order.

    Directories are searched recursively for .md/.markdown/.txt and corpus.jsonl files; hidden
    files and folders and `skip` (the output bundle) are left out. A file named directly is
    taken as it is, whatever include/exclude say.
    """
    found: list[tuple[Path, str]] = []
    skip_resolved = skip.resolve() if skip is not None else None
    for root in inputs:
        if not root.exists():
            raise InvalidInputError(f"input {root} does not exist", param="inputs")
        if root.is_file():
            if not _is_document(root) and root.suffix.lower() != ".jsonl":
                raise InvalidInputError(
                    f"input {root} is not a .md, .markdown, .txt or BEIR corpus .jsonl file",
                    param="inputs",
                )
            found.append((root, root.name))
            continue
        for path in sorted(root.rglob("*")):
            rel_path = path.relative_to(root)
            if any(part.startswith(".") for part in rel_path.parts) or not path.is_file():
                continue
            if skip_resolved is not None and path.resolve().is_relative_to(skip_resolved):
                continue
            rel = rel_path.as_posix()
            if not _is_document(path):
                continue
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            found.append((path, rel))
    return found


def _is_document(path: Path) -> bool:
    return path.suffix.lower() in TEXT_SUFFIXES or path.name == BEIR_CORPUS_NAME


def read_documents(files: Sequence[tuple[Path, str]]) -> list[SourceDocument]:
    """Every document of `files`; document ids must be unique across all inputs."""
    documents: list[SourceDocument] = []
    seen: dict[str, str] = {}
    for path, rel in files:
        if path.suffix.lower() == ".jsonl":
            docs: Iterator[SourceDocument] = read_beir_corpus(path, source=rel)
        else:
            docs = iter([read_text_document(path, rel)])
        for doc in docs:
            if doc.doc_id in seen:
                raise InvalidInputError(
                    f"two documents have the id {doc.doc_id!r} (in {seen[doc.doc_id]} and "
                    f"{rel}); index them separately or rename one",
                    param="inputs",
                )
            seen[doc.doc_id] = rel
            documents.append(doc)
    return documents


# --- building --------------------------------------------------------------------------------


@dataclass
class _Previous:
    """What an existing bundle offers for reuse: per document, its hash, chunks and vectors."""

    sha256: dict[str, str]
    chunks: dict[str, list[ChunkRecord]]
    vectors: dict[str, npt.NDArray[np.float32]]
    embedding: EmbeddingInfo
    dense_kind: str
    encoder_bytes: int
    has_document_encoder: bool
    layout: tuple[str, str]  # how its vectors and chunks are stored
    # False when the bundle records the model by its older weights fingerprint: the vectors are
    # reusable, and the manifest is written again with the recipe as it is now.
    recipe_current: bool = True


def _recipe(
    params: ChunkingParams, *, model_fingerprint: str, document_prefix: str, max_seq_length: int
) -> dict[str, object]:
    """Everything that decides a chunk's text and vector; stored as the manifest's `chunking`.

    Two bundles with equal recipes give identical chunks and vectors for the same document.
    """
    return {
        **params.to_dict(),
        "model_fingerprint": model_fingerprint,
        "document_prefix": document_prefix,
        "max_seq_length": max_seq_length,
    }


def _read_existing(output: Path) -> tuple[Bundle | None, str | None]:
    """The bundle at `output`, or None and the reason it cannot be used (None: there is none)."""
    if not (output / MANIFEST_FILE).is_file():
        return None, None
    try:
        return load_bundle(output), None
    except AthenaeumError as exc:
        return None, f"the existing bundle cannot be read ({exc.message})"


def _unchanged(bundle: Bundle, documents: Sequence[SourceDocument], options: BuildOptions) -> bool:
    """Whether `bundle` already is what indexing `documents` would write, told without loading
    the model: the same documents (content hashes), the same model files (the fingerprint
    `load_embedder` records), the same prefixes, chunking and encoder precision.

    True only when sure. False leaves the decision to the full path, which loads the model.
    """
    manifest = bundle.manifest
    if {d.doc_id: d.sha256 for d in documents} != {d.doc_id: d.sha256 for d in manifest.documents}:
        return False
    model = locate(options.embed_model)
    if model is None or manifest.chunking.get("model_fingerprint") != model.fingerprint:
        return False
    # The model's files are those the bundle was built from, so what the model would report
    # (dimension, pooling, max_seq_length, tokenizer) is what the bundle records.
    defaults = default_prefixes(model.path)
    if defaults is None:
        if options.query_prefix is None or options.document_prefix is None:
            return False
        defaults = ("", "")  # unused: both prefixes are given
    query = defaults[0] if options.query_prefix is None else options.query_prefix
    document = defaults[1] if options.document_prefix is None else options.document_prefix
    embedding = manifest.embedding
    precision = options.encoder_precision
    asked = (options.embed_model, model.revision, query, document, precision)
    recorded = (
        embedding.model_id,
        embedding.revision,
        embedding.query_prefix,
        embedding.document_prefix,
        embedding.encoder_precision,
    )
    if asked != recorded:
        return False
    if precision != "fp32" and manifest.document_encoder is None:
        return False  # written before bundles kept their document encoder: write it now
    if (manifest.vectors.encoding, manifest.chunks.encoding) != (VECTOR_ENCODING, CHUNK_ENCODING):
        return False  # format version 1's fp32 vectors and plain chunks: store them compactly
    max_tokens = options.max_tokens
    if max_tokens is None:
        max_tokens = _token_cap(bundle, document)
    params = ChunkingParams(max_tokens=max_tokens, overlap=options.overlap, context=options.context)
    recipe = _recipe(
        params,
        model_fingerprint=model.fingerprint,
        document_prefix=document,
        max_seq_length=embedding.max_seq_length,
    )
    return all(manifest.chunking.get(key) == value for key, value in recipe.items())


def _token_cap(bundle: Bundle, document_prefix: str) -> int:
    """`Embedder.token_cap` of the model `bundle` was built with, from the bundle's copy of the
    model's tokenizer (the same tokenizer, with truncation and padding set)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(bundle.encoder_dir / ENCODER_TOKENIZER_FILE))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    special = len(tokenizer.encode("", add_special_tokens=True).ids)
    prefix = len(tokenizer.encode(document_prefix, add_special_tokens=False).ids)
    return bundle.manifest.embedding.max_seq_length - special - (prefix if document_prefix else 0)


def _reusable(
    bundle: Bundle, recipe: dict[str, object], embedder: Embedder
) -> tuple[_Previous | None, str | None]:
    """What `bundle` offers for reuse under `recipe`, or None and the reason it cannot be used."""
    old = dict(bundle.manifest.chunking)
    current = True
    for key, value in recipe.items():
        if old.get(key) == value:
            continue
        if key == "model_fingerprint" and _same_weights(old.get(key), embedder):
            current = False
            continue
        return None, f"{key} changed"
    rows: dict[str, list[int]] = {}
    for row, chunk in enumerate(bundle.chunks):
        rows.setdefault(chunk.doc_id, []).append(row)
    return (
        _Previous(
            sha256={d.doc_id: d.sha256 for d in bundle.manifest.documents},
            chunks={doc: [bundle.chunks[r] for r in rs] for doc, rs in rows.items()},
            vectors={doc: bundle.vectors[rs] for doc, rs in rows.items()},
            embedding=bundle.manifest.embedding,
            dense_kind=bundle.manifest.dense.kind,
            encoder_bytes=bundle.manifest.files[ENCODER_MODEL].bytes,
            has_document_encoder=bundle.manifest.document_encoder is not None,
            layout=(bundle.manifest.vectors.encoding, bundle.manifest.chunks.encoding),
            recipe_current=current,
        ),
        None,
    )


def _same_weights(recorded: object, embedder: Embedder) -> bool:
    """Whether a bundle that recorded its model by the weights (`sha256:`, as bundles did for
    local folders and hub models before the files fingerprint and the model card's commit) was
    built from the weights loaded now: then its vectors are still good."""
    return (
        isinstance(recorded, str)
        and recorded.startswith("sha256:")
        and recorded == embedder.weights_fingerprint()
    )


@dataclass(frozen=True)
class DocumentRows:
    """One document of a bundle being written: its manifest entry, chunks and their vectors."""

    info: DocumentInfo
    chunks: list[ChunkRecord]
    vectors: npt.NDArray[np.float32]


def document_info(doc: SourceDocument, chunk_count: int) -> DocumentInfo:
    return DocumentInfo(
        doc_id=doc.doc_id,
        source=doc.source,
        title=doc.title,
        sha256=doc.sha256,
        chunk_count=chunk_count,
        metadata=doc.metadata,
        source_file=doc.source_file,
    )


def chunking_params(recipe: Mapping[str, object]) -> ChunkingParams:
    """The chunking parameters a bundle's recipe (its manifest's `chunking`) records."""
    fields = {name: recipe[name] for name in ("max_tokens", "overlap", "context", "version")}
    return ChunkingParams(**fields)  # type: ignore[arg-type]


def write_documents(
    output: Path,
    parts: Sequence[DocumentRows],
    *,
    embedding: EmbeddingInfo,
    recipe: Mapping[str, object],
    count: Callable[[str], int],
    encoder_dir: Path,
    document_encoder: Path | None,
    dense_kind: DenseChoice = "auto",
) -> Manifest:
    """Write a bundle of `parts`, in their order, with BM25 built over all of their chunks (its
    statistics are global: every document's weights depend on the whole collection)."""
    params = chunking_params(recipe)
    chunks = [c for part in parts for c in part.chunks]
    blocks = [part.vectors for part in parts]
    matrix = np.concatenate(blocks) if blocks else np.zeros((0, embedding.dimension), np.float32)
    bm25 = BM25Index.build(
        embed_text(c.text, c.title, c.heading_path, count, params) for c in chunks
    )
    kind = choose_dense_kind(len(chunks)) if dense_kind == "auto" else dense_kind
    return write_bundle(
        output,
        embedding=embedding,
        chunking=dict(recipe),
        documents=[part.info for part in parts],
        chunks=chunks,
        vectors=matrix,
        bm25_index=bm25,
        encoder_dir=encoder_dir,
        dense_kind=kind,
        document_encoder=document_encoder,
    )


def build_index(
    inputs: Sequence[Path],
    output: Path,
    options: BuildOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    embedder: Embedder | None = None,
) -> IndexReport:
    """Index the documents under `inputs` into the bundle directory `output`.

    `embedder` reuses an already loaded model (then the options' `embed_model`, `device`,
    `batch_size` and prefixes are ignored).
    """
    started = time.perf_counter()
    options = options or BuildOptions()
    output = Path(output)
    _check_output(output, options)
    documents = _find_documents(inputs, output, options)

    existing: Bundle | None = None
    reason: str | None = "--rebuild" if options.rebuild else None
    if not options.rebuild:
        existing, reason = _read_existing(output)
    if embedder is None and existing is not None and _unchanged(existing, documents, options):
        manifest = existing.manifest
        return _up_to_date(
            output,
            options,
            None,
            documents=len(documents),
            chunks=manifest.counts.chunks,
            dense_kind=manifest.dense.kind,
            encoder_bytes=manifest.files[ENCODER_MODEL].bytes,
            started=started,
        )

    if embedder is None:
        embedder = _load_embedder(options, progress)
    params = _chunking_params(embedder, options)
    recipe = _recipe(
        params,
        model_fingerprint=embedder.info.fingerprint,
        document_prefix=embedder.info.document_prefix,
        max_seq_length=embedder.info.max_seq_length,
    )
    previous: _Previous | None = None
    if existing is not None:
        previous, reason = _reusable(existing, recipe, embedder)
    sorted_ = _sort_and_chunk(documents, previous, embedder, params, progress)

    embedding = embedder.info.embedding_info(options.encoder_precision)
    if previous is not None and _nothing_to_write(sorted_, previous, embedding, options):
        return _up_to_date(
            output,
            options,
            embedder,
            documents=sorted_.unchanged,
            chunks=sum(len(c) for c in previous.chunks.values()),
            dense_kind=previous.dense_kind,
            encoder_bytes=previous.encoder_bytes,
            started=started,
        )

    kind, manifest = _embed_and_write(
        output, sorted_, previous, embedder, embedding, recipe, options, progress
    )
    return IndexReport(
        output=output,
        documents_added=sorted_.added,
        documents_changed=sorted_.changed,
        documents_unchanged=sorted_.unchanged,
        documents_removed=sorted_.removed,
        chunks_total=manifest.counts.chunks,
        chunks_embedded=len(sorted_.new_texts),
        full_rebuild=previous is None,
        rebuild_reason=reason if previous is None else None,
        written=True,
        dense_kind=kind,
        model_id=embedder.info.model_id,
        device=embedder.device,
        backend=embedder.backend,
        encoder_precision=options.encoder_precision,
        encoder_bytes=manifest.files[ENCODER_MODEL].bytes,
        seconds=time.perf_counter() - started,
    )


def _up_to_date(
    output: Path,
    options: BuildOptions,
    embedder: Embedder | None,
    *,
    documents: int,
    chunks: int,
    dense_kind: str,
    encoder_bytes: int,
    started: float,
) -> IndexReport:
    """The report of a build that left the bundle as it was; `embedder` is None when the model
    was not loaded."""
    return IndexReport(
        output=output,
        documents_added=0,
        documents_changed=0,
        documents_unchanged=documents,
        documents_removed=0,
        chunks_total=chunks,
        chunks_embedded=0,
        full_rebuild=False,
        rebuild_reason=None,
        written=False,
        dense_kind=dense_kind,
        model_id=options.embed_model if embedder is None else embedder.info.model_id,
        device=None if embedder is None else embedder.device,
        backend=None if embedder is None else embedder.backend,
        encoder_precision=options.encoder_precision,
        encoder_bytes=encoder_bytes,
        seconds=time.perf_counter() - started,
    )


def _check_output(output: Path, options: BuildOptions) -> None:
    if options.encoder_precision not in ENCODER_PRECISIONS:
        raise InvalidInputError(
            f"unknown encoder precision {options.encoder_precision!r}; use fp32 or int8",
            param="encoder_precision",
        )
    if output.is_file():
        raise InvalidInputError(f"output {output} is a file, not a directory", param="output")
    if output.is_dir() and not (output / MANIFEST_FILE).is_file() and any(output.iterdir()):
        # Checked now, not after minutes of embedding, though write_bundle checks it too.
        raise InvalidInputError(
            f"output {output} exists and is not an index bundle; choose an empty or new folder",
            param="output",
        )


def _find_documents(
    inputs: Sequence[Path], output: Path, options: BuildOptions
) -> list[SourceDocument]:
    documents = read_documents(
        discover_files(
            [Path(p) for p in inputs],
            include=options.include,
            exclude=options.exclude,
            skip=output,
        )
    )
    if not documents:
        raise InvalidInputError(
            "no documents found in the inputs (looked for .md, .markdown, .txt and "
            "corpus.jsonl files, after --include/--exclude)",
            param="inputs",
        )
    return documents


def _load_embedder(options: BuildOptions, progress: ProgressCallback | None) -> Embedder:
    if progress is not None:
        progress("model", 0, 1)
    embedder = load_embedder(
        options.embed_model,
        device=options.device,
        batch_size=options.batch_size,
        query_prefix=options.query_prefix,
        document_prefix=options.document_prefix,
    )
    if progress is not None:
        progress("model", 1, 1)
    return embedder


def _chunking_params(embedder: Embedder, options: BuildOptions) -> ChunkingParams:
    cap = embedder.token_cap()
    if options.max_tokens is not None and options.max_tokens > cap:
        raise InvalidInputError(
            f"--max-tokens {options.max_tokens} is more than the model reads ({cap} tokens of "
            f"text after special tokens and the document prefix)",
            param="max_tokens",
        )
    return ChunkingParams(
        max_tokens=options.max_tokens or cap, overlap=options.overlap, context=options.context
    )


@dataclass
class _Sorted:
    """The documents sorted into reused and to-embed, the latter chunked."""

    added: int
    changed: int
    unchanged: int
    removed: int
    # In document order: None for a document whose chunks and vectors are reused.
    per_doc: list[tuple[SourceDocument, list[ChunkRecord] | None]]
    new_texts: list[str]  # what the model embeds for each new chunk
    new_ids: list[npt.NDArray[np.int32] | None]


def _sort_and_chunk(
    documents: Sequence[SourceDocument],
    previous: _Previous | None,
    embedder: Embedder,
    params: ChunkingParams,
    progress: ProgressCallback | None,
) -> _Sorted:
    count = embedder.count_tokens
    result = _Sorted(0, 0, 0, 0, [], [], [])
    for done, doc in enumerate(documents, 1):
        old_sha = previous.sha256.get(doc.doc_id) if previous else None
        if previous is not None and old_sha == doc.sha256:
            result.unchanged += 1
            result.per_doc.append((doc, None))
        else:
            if old_sha is None:
                result.added += 1
            else:
                result.changed += 1
            # Every chunk's text is counted while chunking: its tokens, kept, spare the
            # embedding stage a second tokenization.
            with embedder.recording_tokens() as model_ids:
                records = chunk_document(doc, count, params)
                for c in records:
                    text = embed_text(c.text, c.title, c.heading_path, count, params)
                    result.new_texts.append(text)
                    result.new_ids.append(model_ids(embedder.info.document_prefix + text))
            result.per_doc.append((doc, records))
        if progress is not None:
            progress("chunking", done, len(documents))
    current_ids = {doc.doc_id for doc in documents}
    result.removed = len(set(previous.sha256) - current_ids) if previous else 0
    return result


def _nothing_to_write(
    sorted_: _Sorted, previous: _Previous, embedding: EmbeddingInfo, options: BuildOptions
) -> bool:
    """Whether the existing bundle already is what this build would write."""
    return (
        not sorted_.added
        and not sorted_.changed
        and not sorted_.removed
        and previous.embedding == embedding
        and previous.recipe_current
        and (options.encoder_precision == "fp32" or previous.has_document_encoder)
        and previous.layout == (VECTOR_ENCODING, CHUNK_ENCODING)
    )


def _embed_and_write(
    output: Path,
    sorted_: _Sorted,
    previous: _Previous | None,
    embedder: Embedder,
    embedding: EmbeddingInfo,
    recipe: Mapping[str, object],
    options: BuildOptions,
    progress: ProgressCallback | None,
) -> tuple[str, Manifest]:
    """Embed the new chunks and write the bundle; its dense index kind and manifest."""
    precision = options.encoder_precision
    # Exported (and for int8 quantized and checked) before embedding, so that a model that
    # cannot be exported fails now rather than after minutes of embedding.
    encoder_dir = embedder.encoder_dir(precision)

    def on_batch(done: int, total: int) -> None:
        if progress is not None:
            progress("embedding", done, total)

    new_vectors = embedder.embed_documents(
        sorted_.new_texts, progress=on_batch, token_ids=sorted_.new_ids
    )

    # In document order: reused rows from the old bundle, new rows just embedded.
    parts: list[DocumentRows] = []
    cursor = 0
    dimension = embedder.info.dimension
    for doc, fresh in sorted_.per_doc:
        if fresh is None:
            assert previous is not None
            records = previous.chunks.get(doc.doc_id, [])
            vectors = previous.vectors.get(doc.doc_id, np.zeros((0, dimension), np.float32))
        else:
            records = fresh
            vectors = new_vectors[cursor : cursor + len(records)]
            cursor += len(records)
        parts.append(DocumentRows(document_info(doc, len(records)), records, vectors))
    dense = options.dense
    kind = choose_dense_kind(sum(len(p.chunks) for p in parts)) if dense == "auto" else dense
    manifest = write_documents(
        output,
        parts,
        embedding=embedding,
        recipe=recipe,
        count=embedder.count_tokens,
        encoder_dir=encoder_dir,
        # The fp32 graph the documents were embedded with, so that documents can be added to
        # the bundle later without the model's weights (the ingest function does).
        document_encoder=(
            None if precision == "fp32" else embedder.encoder_dir("fp32") / ENCODER_MODEL_FILE
        ),
        dense_kind=kind,
    )
    return kind, manifest
