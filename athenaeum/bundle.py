"""The index bundle: the one directory the build side writes and the serve side loads.

The format is documented in docs/index-format.md. The writer builds the bundle in a temporary
directory beside the target, writes manifest.json last and swaps directories by rename, so an
interrupted build never leaves a half bundle at the target path. The loader refuses anything it
cannot fully vouch for: a missing manifest, an unknown format version, a missing, resized or
(by default) re-hashed file, or counts that disagree.

Lean stack only (numpy, faiss, pydantic): this module is on the serve path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import faiss
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from athenaeum import __version__
from athenaeum.errors import BundleError, InvalidInputError
from athenaeum.lexical import TOKENIZER_VERSION, BM25Index

FORMAT_NAME = "athenaeum-index"
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = frozenset({1})

MANIFEST_FILE = "manifest.json"
CHUNKS_FILE = "chunks.jsonl"
VECTORS_FILE = "vectors.npy"
DENSE_FILE = "dense.faiss"
BM25_FILE = "bm25.npz"
ENCODER_DIR = "encoder"
ENCODER_MODEL_FILE = "model.onnx"
ENCODER_TOKENIZER_FILE = "tokenizer.json"

DenseKind = Literal["flat", "hnsw"]
# Exact search reads every vector per query: at 100k x 384 that is ~60 ms on one busy core here
# (docs/index-format.md), too slow for a search API, so "auto" builds an HNSW graph from there on.
HNSW_THRESHOLD = 100_000
HNSW_DEFAULTS: dict[str, int] = {"M": 32, "ef_construction": 200, "ef_search": 128}

_REBUILD = "rebuild it with `athenaeum index`"


# --- manifest --------------------------------------------------------------------------------


class _Model(BaseModel):
    # Unknown keys are ignored so a later writer may add informative fields within a version.
    model_config = ConfigDict(frozen=True, extra="ignore")


class EmbeddingInfo(_Model):
    model_id: str
    revision: str | None = None
    dimension: int = Field(gt=0)
    pooling: str = "mean"
    normalize: bool = True
    max_seq_length: int = Field(gt=0)
    query_prefix: str = ""
    document_prefix: str = ""
    similarity: Literal["cosine"] = "cosine"
    # encoder/model.onnx's weights: "fp32", or "int8" (dynamically quantized). The vectors are
    # fp32 either way. Informational: the graph is self-describing, so a reader loads any.
    # Absent in bundles written before it existed, which were all fp32.
    encoder_precision: str = "fp32"


class DenseInfo(_Model):
    kind: DenseKind
    params: dict[str, Any] = Field(default_factory=dict)


class BM25Info(_Model):
    k1: float
    b: float
    stemmer_language: str
    tokenizer_version: int


class Counts(_Model):
    documents: int = Field(ge=0)
    chunks: int = Field(ge=0)


class DocumentInfo(_Model):
    doc_id: str
    source: str
    title: str | None = None
    sha256: str
    chunk_count: int = Field(ge=0)


class FileInfo(_Model):
    sha256: str
    bytes: int = Field(ge=0)


class Manifest(_Model):
    format: str
    format_version: int
    created_at: str
    athenaeum_version: str
    embedding: EmbeddingInfo
    chunking: dict[str, Any] = Field(default_factory=dict)
    dense: DenseInfo
    bm25: BM25Info
    counts: Counts
    documents: list[DocumentInfo]
    files: dict[str, FileInfo]


# --- chunks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkRecord:
    """One row of chunks.jsonl; row i is also row i of vectors.npy and chunk i of BM25."""

    id: str
    doc_id: str
    ordinal: int
    text: str
    title: str | None
    source: str
    heading_path: list[str] = field(default_factory=list)
    page_start: int | None = None
    page_end: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkRecord:
        heading_path = data.get("heading_path") or []
        if not isinstance(heading_path, list):
            raise ValueError("heading_path is not a list")
        return cls(
            id=str(data["id"]),
            doc_id=str(data["doc_id"]),
            ordinal=int(data["ordinal"]),
            text=str(data["text"]),
            title=None if data.get("title") is None else str(data["title"]),
            source=str(data["source"]),
            heading_path=[str(h) for h in heading_path],
            page_start=None if data.get("page_start") is None else int(data["page_start"]),
            page_end=None if data.get("page_end") is None else int(data["page_end"]),
        )


# --- writing ---------------------------------------------------------------------------------


def write_bundle(
    output: Path,
    *,
    embedding: EmbeddingInfo,
    chunking: Mapping[str, Any],
    documents: Sequence[DocumentInfo],
    chunks: Sequence[ChunkRecord],
    vectors: npt.ArrayLike,
    bm25_index: BM25Index,
    encoder_dir: Path,
    dense_kind: DenseKind | Literal["auto"] = "auto",
    dense_params: Mapping[str, Any] | None = None,
) -> Manifest:
    """Write a complete bundle to `output`, replacing an existing bundle there atomically.

    `vectors` are the unit-normalised document embeddings, row i for `chunks[i]`; `bm25_index`
    must be built from the same chunks in the same order; `encoder_dir` holds model.onnx and
    tokenizer.json (copied as they are). Inconsistent arguments are programming errors and raise
    ValueError; a target that exists and is not a bundle raises InvalidInputError.
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

    kind: DenseKind
    if dense_kind == "auto":
        kind = "hnsw" if len(chunks) >= HNSW_THRESHOLD else "flat"
    else:
        kind = dense_kind
    params: dict[str, Any] = dict(HNSW_DEFAULTS) if kind == "hnsw" else {}
    params.update(dense_params or {})

    output.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = output.parent / f".{output.name}.tmp-{token}"
    old = output.parent / f".{output.name}.old-{token}"
    tmp.mkdir()
    try:
        with (tmp / CHUNKS_FILE).open("w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(chunk.to_json())
                f.write("\n")
        np.save(tmp / VECTORS_FILE, matrix, allow_pickle=False)
        if kind == "hnsw":
            faiss.write_index(_build_hnsw(matrix, params), str(tmp / DENSE_FILE))
        bm25_index.save(tmp / BM25_FILE)
        shutil.copytree(encoder_dir, tmp / ENCODER_DIR)

        files = {
            rel: FileInfo(sha256=_sha256(tmp / rel), bytes=(tmp / rel).stat().st_size)
            for rel in _bundle_files(tmp)
        }
        manifest = Manifest(
            format=FORMAT_NAME,
            format_version=FORMAT_VERSION,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            athenaeum_version=__version__,
            embedding=embedding,
            chunking=dict(chunking),
            dense=DenseInfo(kind=kind, params=params),
            bm25=BM25Info(
                k1=bm25_index.params.k1,
                b=bm25_index.params.b,
                stemmer_language=bm25_index.params.language,
                tokenizer_version=bm25_index.params.tokenizer_version,
            ),
            counts=Counts(documents=len(documents), chunks=len(chunks)),
            documents=list(documents),
            files=files,
        )
        for rel in files:
            _fsync_file(tmp / rel)
        # The manifest is written last: a directory without one is, by definition, unfinished.
        (tmp / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n", "utf-8")
        _fsync_file(tmp / MANIFEST_FILE)
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
    bm25_index: BM25Index,
    encoder_dir: Path,
) -> None:
    if matrix.ndim != 2 or matrix.shape != (len(chunks), embedding.dimension):
        raise ValueError(
            f"vectors have shape {matrix.shape}, expected ({len(chunks)}, {embedding.dimension})"
        )
    if not np.isfinite(matrix).all():
        raise ValueError("vectors contain NaN or infinite values")
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
    index = faiss.IndexHNSWFlat(matrix.shape[1], int(params["M"]), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(params["ef_construction"])
    index.add(matrix)
    return index


def _bundle_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST_FILE
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Bundle:
    """A loaded, verified bundle, less its query encoder (athenaeum.encoder loads that)."""

    path: Path
    manifest: Manifest
    chunks: list[ChunkRecord]
    vectors: npt.NDArray[np.float32]
    bm25: BM25Index
    dense: faiss.Index

    @property
    def encoder_dir(self) -> Path:
        return self.path / ENCODER_DIR


def corrupted(path: Path, what: str) -> BundleError:
    """The one shape of every "this bundle is damaged" error."""
    return BundleError(f"index bundle {path} is corrupted: {what}; {_REBUILD}")


def read_manifest(path: Path) -> Manifest:
    """Read and check manifest.json: present, valid, of a format and version this code reads."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(
            f"index bundle {path} does not exist or is not a directory; "
            "build one with `athenaeum index`"
        )
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(
            f"index bundle {path} has no {MANIFEST_FILE}: it is not an index bundle, or it was "
            f"written or copied only in part; {_REBUILD} or copy it again"
        )
    try:
        raw = json.loads(manifest_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise corrupted(path, f"{MANIFEST_FILE} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise BundleError(
            f"index bundle {path}: {MANIFEST_FILE} has format {found!r}, expected {FORMAT_NAME!r}"
        )
    version = raw.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_FORMAT_VERSIONS))
        raise BundleError(
            f"index bundle {path} has format_version {version!r}, which athenaeum {__version__} "
            f"cannot read (it reads {supported}); {_REBUILD} with this version of athenaeum"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise corrupted(path, f"{MANIFEST_FILE} field {where}: {first['msg']}") from exc


def verify_files(path: Path, manifest: Manifest, *, check_hashes: bool = True) -> None:
    """Check every file the manifest lists: present, of the right size and (optionally) hash."""
    for rel, info in manifest.files.items():
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise corrupted(path, f"{MANIFEST_FILE} lists a file outside the bundle: {rel}")
        file = path / rel
        if not file.is_file():
            raise corrupted(path, f"{rel} is missing")
        size = file.stat().st_size
        if size != info.bytes:
            raise corrupted(path, f"{rel} has {size} bytes, expected {info.bytes}")
        if check_hashes:
            digest = _sha256(file)
            if digest != info.sha256:
                raise corrupted(
                    path,
                    f"{rel} sha256 mismatch (expected {info.sha256[:12]}…, got {digest[:12]}…)",
                )
    required = [
        CHUNKS_FILE,
        VECTORS_FILE,
        BM25_FILE,
        f"{ENCODER_DIR}/{ENCODER_MODEL_FILE}",
        f"{ENCODER_DIR}/{ENCODER_TOKENIZER_FILE}",
    ]
    if manifest.dense.kind != "flat":
        required.append(DENSE_FILE)
    for rel in required:
        if rel not in manifest.files:
            raise corrupted(path, f"{MANIFEST_FILE} does not list the required file {rel}")


def load_bundle(path: Path, *, check_hashes: bool = True) -> Bundle:
    """Load a bundle after verifying it; every failure is a BundleError naming the problem.

    `check_hashes=False` skips the sha256 pass (sizes and counts are always checked); it saves
    about 0.1 s per 100 MB, see docs/index-format.md.
    """
    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest, check_hashes=check_hashes)
    n = manifest.counts.chunks
    dim = manifest.embedding.dimension

    chunks = _load_chunks(path, n)
    try:
        loaded = np.load(path / VECTORS_FILE, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise corrupted(path, f"{VECTORS_FILE} cannot be read ({exc})") from exc
    if loaded.ndim != 2 or loaded.shape[0] != n:
        raise corrupted(path, f"{VECTORS_FILE} has shape {loaded.shape}, expected ({n}, {dim})")
    if loaded.shape[1] != dim:
        raise corrupted(
            path,
            f"{VECTORS_FILE} has dimension {loaded.shape[1]} but the manifest's embedding "
            f"dimension is {dim}",
        )
    vectors = np.ascontiguousarray(loaded, dtype=np.float32)

    if manifest.bm25.tokenizer_version != TOKENIZER_VERSION:
        raise BundleError(
            f"index bundle {path} was built with BM25 tokenizer version "
            f"{manifest.bm25.tokenizer_version}, this athenaeum uses {TOKENIZER_VERSION}; "
            f"{_REBUILD}"
        )
    try:
        bm25 = BM25Index.load(path / BM25_FILE)
    except (OSError, ValueError, KeyError) as exc:
        raise corrupted(path, f"{BM25_FILE} cannot be read ({exc})") from exc
    if bm25.n_docs != n:
        raise corrupted(path, f"{BM25_FILE} covers {bm25.n_docs} chunks, expected {n}")

    dense: faiss.Index
    if manifest.dense.kind == "flat":
        dense = faiss.IndexFlatIP(dim)
        dense.add(vectors)
    else:
        try:
            dense = faiss.read_index(str(path / DENSE_FILE))
        except RuntimeError as exc:
            raise corrupted(path, f"{DENSE_FILE} cannot be read ({exc})") from exc
        if dense.ntotal != n or dense.d != dim:
            raise corrupted(
                path,
                f"{DENSE_FILE} holds {dense.ntotal} vectors of dimension {dense.d}, "
                f"expected {n} of dimension {dim}",
            )
        hnsw = faiss.downcast_index(dense)
        if isinstance(hnsw, faiss.IndexHNSW):
            hnsw.hnsw.efSearch = int(
                manifest.dense.params.get("ef_search", HNSW_DEFAULTS["ef_search"])
            )
    docs_total = sum(d.chunk_count for d in manifest.documents)
    if len(manifest.documents) != manifest.counts.documents or docs_total != n:
        raise corrupted(
            path,
            f"{MANIFEST_FILE} lists {len(manifest.documents)} documents with {docs_total} chunks, "
            f"but its counts say {manifest.counts.documents} documents and {n} chunks",
        )
    return Bundle(
        path=path, manifest=manifest, chunks=chunks, vectors=vectors, bm25=bm25, dense=dense
    )


def _load_chunks(path: Path, expected: int) -> list[ChunkRecord]:
    chunks: list[ChunkRecord] = []
    try:
        with (path / CHUNKS_FILE).open("r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                try:
                    chunks.append(ChunkRecord.from_dict(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise corrupted(
                        path, f"{CHUNKS_FILE} line {lineno} is not a valid chunk ({exc})"
                    ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise corrupted(path, f"{CHUNKS_FILE} cannot be read ({exc})") from exc
    if len(chunks) != expected:
        raise corrupted(
            path, f"{CHUNKS_FILE} has {len(chunks)} chunks but the manifest counts {expected}"
        )
    if len({c.id for c in chunks}) != len(chunks):
        raise corrupted(path, f"{CHUNKS_FILE} has duplicate chunk ids")
    return chunks
