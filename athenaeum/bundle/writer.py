"""Writing a bundle: built in a temporary directory beside the target, manifest.json last,
then swapped in by rename, so an interrupted build never leaves a half bundle at the target."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from athenaeum import __version__
from athenaeum.bundle.bm25 import BM25Postings
from athenaeum.bundle.chunk import ChunkRecord, encode_blocks
from athenaeum.bundle.format import (
    BM25_FILE,
    CHUNK_BLOCK,
    CHUNK_BLOCKS_FILE,
    CHUNK_ENCODING,
    CHUNKS_FILE,
    DENSE_FILE,
    DOCUMENT_ENCODER,
    ENCODER_DIR,
    ENCODER_MODEL_FILE,
    ENCODER_TOKENIZER_FILE,
    FORMAT_NAME,
    HNSW_DEFAULTS,
    MANIFEST_FILE,
    VECTOR_ENCODING,
    VECTORS_FILE,
    ChunkEncoding,
    DenseKind,
    VectorEncoding,
    choose_dense_kind,
    format_version_of,
)
from athenaeum.bundle.hashing import sha256_file
from athenaeum.bundle.manifest import (
    BM25Info,
    ChunksInfo,
    Counts,
    DenseInfo,
    DocumentEncoderInfo,
    DocumentInfo,
    EmbeddingInfo,
    FileInfo,
    Manifest,
    VectorsInfo,
)
from athenaeum.bundle.verification import manifest_sha256, stamps, write_record
from athenaeum.errors import InvalidInputError

if TYPE_CHECKING:
    import faiss


def write_bundle(
    output: Path,
    *,
    embedding: EmbeddingInfo,
    chunking: Mapping[str, Any],
    documents: Sequence[DocumentInfo],
    chunks: Sequence[ChunkRecord],
    vectors: npt.ArrayLike,
    bm25_index: BM25Postings,
    encoder_dir: Path,
    dense_kind: DenseKind | Literal["auto"] = "auto",
    dense_params: Mapping[str, Any] | None = None,
    document_encoder: Path | None = None,
    vector_encoding: VectorEncoding = VECTOR_ENCODING,
    chunk_encoding: ChunkEncoding = CHUNK_ENCODING,
) -> Manifest:
    """Write a complete bundle to `output`, replacing an existing bundle there atomically.

    `vectors` are the unit-normalised document embeddings, row i for `chunks[i]`; `bm25_index`
    must be built from the same chunks in the same order; `encoder_dir` holds model.onnx and
    tokenizer.json (copied as they are). `document_encoder` is the fp32 graph the documents
    were embedded with, when encoder_dir's model.onnx is not it (an int8 query encoder): kept as
    encoder/document.onnx, named by the manifest's `document_encoder`. Inconsistent arguments
    are programming errors and raise ValueError; a target that exists and is not a bundle
    raises InvalidInputError. `vector_encoding` "fp16" (the default) stores the vectors once as
    half-precision codes in dense.faiss, and `chunk_encoding` "zlib-blocks" (the default)
    compresses the chunks 16 to a zlib stream in chunks.z (format version 2); "fp32" and
    "jsonl" write vectors.npy and chunks.jsonl, format version 1 when both are asked for, which
    readers from before version 2 read.
    """
    output = Path(output)
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    _check_writer_inputs(embedding, documents, chunks, matrix, bm25_index, encoder_dir)
    is_bundle = (output / MANIFEST_FILE).is_file()
    if output.exists() and not is_bundle and (output.is_file() or any(output.iterdir())):
        raise InvalidInputError(
            f"refusing to write an index bundle to {output}: it exists and is not an index "
            "bundle (no manifest.json); choose an empty or new directory",
            param="output",
        )

    kind: DenseKind = choose_dense_kind(len(chunks)) if dense_kind == "auto" else dense_kind
    params: dict[str, Any] = dict(HNSW_DEFAULTS) if kind == "hnsw" else {}
    params.update(dense_params or {})

    output.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = output.parent / f".{output.name}.tmp-{token}"
    old = output.parent / f".{output.name}.old-{token}"
    tmp.mkdir()
    try:
        if chunk_encoding == "zlib-blocks":
            lines = [chunk.to_json().encode("utf-8") for chunk in chunks]
            (tmp / CHUNK_BLOCKS_FILE).write_bytes(encode_blocks(lines, CHUNK_BLOCK))
        else:
            with (tmp / CHUNKS_FILE).open("w", encoding="utf-8") as f:
                for chunk in chunks:
                    f.write(chunk.to_json())
                    f.write("\n")
        if vector_encoding == "fp16":
            import faiss

            faiss.write_index(build_fp16_index(matrix, kind, params), str(tmp / DENSE_FILE))
        else:
            np.save(tmp / VECTORS_FILE, matrix, allow_pickle=False)
            if kind == "hnsw":
                import faiss

                faiss.write_index(_build_hnsw(matrix, params), str(tmp / DENSE_FILE))
        version = format_version_of(vector_encoding, chunk_encoding)
        bm25_index.save(tmp / BM25_FILE, compact=version == 2)
        shutil.copytree(encoder_dir, tmp / ENCODER_DIR)
        document: DocumentEncoderInfo | None = None
        if document_encoder is not None:
            shutil.copyfile(document_encoder, tmp / DOCUMENT_ENCODER)
            document = DocumentEncoderInfo(
                path=DOCUMENT_ENCODER,
                sha256=sha256_file(tmp / DOCUMENT_ENCODER),
                bytes=(tmp / DOCUMENT_ENCODER).stat().st_size,
            )
            _fsync_file(tmp / DOCUMENT_ENCODER)

        rels = [rel for rel in _bundle_files(tmp) if rel != DOCUMENT_ENCODER]
        before = stamps(tmp, rels)  # before hashing, as the verification record wants them
        files = {
            rel: FileInfo(sha256=sha256_file(tmp / rel), bytes=before[rel]["bytes"]) for rel in rels
        }
        manifest = Manifest(
            format=FORMAT_NAME,
            format_version=version,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            athenaeum_version=__version__,
            embedding=embedding,
            chunking=dict(chunking),
            dense=DenseInfo(kind=kind, params=params),
            vectors=VectorsInfo(encoding=vector_encoding),
            chunks=ChunksInfo(encoding=chunk_encoding, block=CHUNK_BLOCK),
            bm25=BM25Info(
                k1=bm25_index.params.k1,
                b=bm25_index.params.b,
                stemmer_language=bm25_index.params.language,
                tokenizer_version=bm25_index.params.tokenizer_version,
            ),
            counts=Counts(documents=len(documents), chunks=len(chunks)),
            documents=list(documents),
            files=files,
            document_encoder=document,
        )
        for rel in files:
            _fsync_file(tmp / rel)
        # The manifest is written last: a directory without one is, by definition, unfinished.
        # Compact in format 2: a document's entry is most of the manifest, and indenting it
        # costs about a quarter more bytes that every load reads and parses. Format 1 keeps
        # the indented manifest it always had.
        indent = 2 if version == 1 else None
        manifest_bytes = (manifest.model_dump_json(indent=indent) + "\n").encode("utf-8")
        (tmp / MANIFEST_FILE).write_bytes(manifest_bytes)
        _fsync_file(tmp / MANIFEST_FILE)
        # Every file was hashed just above, from what is on disk: record it, so that loading
        # this copy need not hash it again (a rename keeps each file's inode and times).
        write_record(tmp, manifest_sha256(manifest_bytes), before, by="write_bundle")
        _fsync_dir(tmp)

        if output.exists():
            output.rename(old)
        tmp.rename(output)
        _fsync_dir(output.parent)
    except BaseException:
        # Also on KeyboardInterrupt: leave no temporary directory behind. If the first rename
        # happened but not the second, put the old bundle back.
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not output.exists():
            old.rename(output)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def _check_writer_inputs(
    embedding: EmbeddingInfo,
    documents: Sequence[DocumentInfo],
    chunks: Sequence[ChunkRecord],
    matrix: npt.NDArray[np.float32],
    bm25_index: BM25Postings,
    encoder_dir: Path,
) -> None:
    if matrix.ndim != 2 or matrix.shape != (len(chunks), embedding.dimension):
        raise ValueError(
            f"vectors have shape {matrix.shape}, expected ({len(chunks)}, {embedding.dimension})"
        )
    if not np.isfinite(matrix).all():
        row = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise ValueError(f"vectors row {row} (chunk {chunks[row].id}) has NaN or infinite values")
    if bm25_index.n_docs != len(chunks):
        raise ValueError(f"BM25 index covers {bm25_index.n_docs} chunks, not {len(chunks)}")
    ids = [c.id for c in chunks]
    if len(set(ids)) != len(ids):
        raise ValueError("chunk ids are not unique")
    per_doc: dict[str, int] = {}
    for c in chunks:
        per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
    declared = {d.doc_id: d.chunk_count for d in documents}
    if len(declared) != len(documents):
        raise ValueError("document ids are not unique")
    for doc_id, count in per_doc.items():
        if declared.get(doc_id) != count:
            raise ValueError(
                f"document {doc_id!r} has {count} chunks but declares {declared.get(doc_id)}"
            )
    for name in (ENCODER_MODEL_FILE, ENCODER_TOKENIZER_FILE):
        if not (encoder_dir / name).is_file():
            raise ValueError(f"encoder directory {encoder_dir} has no {name}")


def _build_hnsw(matrix: npt.NDArray[np.float32], params: Mapping[str, Any]) -> faiss.Index:
    import faiss

    index = faiss.IndexHNSWFlat(matrix.shape[1], int(params["M"]), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(params["ef_construction"])
    index.add(matrix)
    return index


def build_fp16_index(
    matrix: npt.NDArray[np.float32], kind: DenseKind, params: Mapping[str, Any]
) -> faiss.Index:
    """The vectors as fp16 scalar-quantizer codes: the flat index itself, or the storage of an
    HNSW graph (which then keeps no other copy of them)."""
    import faiss

    fp16 = faiss.ScalarQuantizer.QT_fp16
    index: faiss.Index
    if kind == "hnsw":
        index = faiss.IndexHNSWSQ(
            matrix.shape[1],
            fp16,  # type: ignore[arg-type]  # the stubs name the class, FAISS takes its enum
            int(params["M"]),
            faiss.METRIC_INNER_PRODUCT,
        )
        index.hnsw.efConstruction = int(params["ef_construction"])
    else:
        index = faiss.IndexScalarQuantizer(matrix.shape[1], fp16, faiss.METRIC_INNER_PRODUCT)
    index.train(matrix)  # fp16 learns nothing; FAISS asks for it all the same
    index.add(matrix)
    return index


def _bundle_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST_FILE
    )


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Makes the renames durable; not every platform or filesystem allows fsync on a directory.
    with contextlib.suppress(OSError):
        _fsync_file(path)
