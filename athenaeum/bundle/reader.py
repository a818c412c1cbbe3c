"""Reading a bundle: nothing is served that the loader cannot vouch for.

It refuses a missing manifest, an unknown format version, a missing, resized or (by default)
re-hashed file, counts that disagree and vectors that are not finite; every refusal is a
BundleError naming the bundle and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import faiss
import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from athenaeum import __version__
from athenaeum.bundle.chunk import ChunkRecord
from athenaeum.bundle.format import (
    BM25_FILE,
    CHUNKS_FILE,
    DENSE_FILE,
    ENCODER_DIR,
    FORMAT_NAME,
    HNSW_DEFAULTS,
    MANIFEST_FILE,
    REQUIRED_FILES,
    SUPPORTED_FORMAT_VERSIONS,
    VECTORS_FILE,
)
from athenaeum.bundle.hashing import sha256_file
from athenaeum.bundle.manifest import Manifest
from athenaeum.errors import BundleError
from athenaeum.retrieval.lexical import TOKENIZER_VERSION, BM25Index

_REBUILD = "rebuild it with `athenaeum index`"


@dataclass
class Bundle:
    """A loaded, verified bundle, less its query encoder (athenaeum.retrieval.encoder loads
    that)."""

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
            digest = sha256_file(file)
            if digest != info.sha256:
                raise corrupted(
                    path,
                    f"{rel} sha256 mismatch (expected {info.sha256[:12]}…, got {digest[:12]}…)",
                )
    required = list(REQUIRED_FILES)
    if manifest.dense.kind != "flat":
        required.append(DENSE_FILE)
    for rel in required:
        if rel not in manifest.files:
            raise corrupted(path, f"{MANIFEST_FILE} does not list the required file {rel}")


def load_bundle(path: Path, *, check_hashes: bool = True) -> Bundle:
    """Load a bundle after verifying it; every failure is a BundleError naming the problem.

    `check_hashes=False` skips the sha256 pass (sizes and counts are always checked), for a
    copy whose files were verified where it landed; docs/index-format.md says what it costs.
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
    # A NaN row scores NaN against every query, which FAISS never ranks: dense search would
    # quietly return nothing. About 0.4 ms for 10,000 x 384 floats, against ~13 ms to hash them.
    if not np.isfinite(vectors).all():
        row = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise corrupted(
            path, f"{VECTORS_FILE} row {row} (chunk {chunks[row].id}) has NaN or infinite values"
        )

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
    listed = {d.doc_id for d in manifest.documents}
    stray = next((c.doc_id for c in chunks if c.doc_id not in listed), None)
    if stray is not None:
        raise corrupted(
            path,
            f"{CHUNKS_FILE} has chunks of document {stray!r}, which {MANIFEST_FILE} does not list",
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
