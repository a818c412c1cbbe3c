"""Reading a bundle: nothing is served that the loader cannot vouch for.

It refuses a missing manifest, an unknown format version, a missing or resized file, a file
whose sha256 differs from the manifest's (unless a verification record vouches that the files
were hashed where they landed and have not changed since: athenaeum.bundle.verification),
counts and shapes that disagree and vectors that are not finite; every refusal is a
BundleError naming the bundle and the problem.

The vectors are memory-mapped, and chunks are parsed when first read unless the bundle is
verified in full: a cold start reads only what its first answer needs.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import ValidationError

from athenaeum import __version__
from athenaeum.bundle.bm25 import BM25Postings
from athenaeum.bundle.chunk import BlockRows, ChunkStore
from athenaeum.bundle.format import (
    BM25_FILE,
    CHUNK_BLOCKS_FILE,
    CHUNKS_FILE,
    DENSE_FILE,
    DOCUMENT_ENCODER,
    ENCODER_DIR,
    ENCODER_MODEL,
    FORMAT_NAME,
    HNSW_DEFAULTS,
    MANIFEST_FILE,
    SUPPORTED_FORMAT_VERSIONS,
    TOKENIZER_VERSION,
    VECTORS_FILE,
    required_files,
)
from athenaeum.bundle.hashing import sha256_file
from athenaeum.bundle.manifest import FileInfo, Manifest
from athenaeum.bundle.vectors import StoredVectors, prefetch_faiss, read_resident
from athenaeum.bundle.verification import (
    Scope,
    check_record,
    manifest_sha256,
    stamps,
    write_record,
)
from athenaeum.errors import BundleError

if TYPE_CHECKING:
    import faiss

logger = logging.getLogger("athenaeum.index")

_REBUILD = "rebuild it with `athenaeum index`"

# "auto": skip the sha256 pass when a verification record vouches for the files as they are;
# "full": hash every file and check every chunk whatever the record says.
VerifyMode = Literal["auto", "full"]


@dataclass(frozen=True)
class Verification:
    """How a loaded bundle's files were vouched for."""

    manifest_sha256: str
    # None when a verification record vouched for the files; otherwise each file's stamp taken
    # just before it was hashed, which is what `record_verification` writes.
    hashed: Mapping[str, Mapping[str, int]] | None

    @property
    def by_record(self) -> bool:
        return self.hashed is None


@dataclass
class Bundle:
    """A loaded, verified bundle, less its query encoder (athenaeum.retrieval.encoder loads
    that)."""

    path: Path
    manifest: Manifest
    chunks: ChunkStore
    # Memory-mapped, read-only: fp16 codes inside dense.faiss, or a version 1 bundle's fp32
    # vectors.npy (athenaeum.bundle.vectors).
    vectors: StoredVectors
    bm25: BM25Postings
    verification: Verification
    # The stored approximate index (dense.faiss, HNSW); None for "flat" bundles, which the
    # engine searches exactly over `vectors`.
    ann: faiss.Index | None = None
    _flat: faiss.Index | None = field(default=None, repr=False)

    @property
    def encoder_dir(self) -> Path:
        return self.path / ENCODER_DIR

    def document_encoder(self) -> Path:
        """The fp32 graph the documents were embedded with, checked against the manifest: what
        embeds documents added to this bundle (athenaeum.ingest). Raises BundleError when this
        copy has none to offer."""
        recorded = self.manifest.document_encoder
        if recorded is None:
            if self.manifest.embedding.encoder_precision == "fp32":
                return self.path / ENCODER_MODEL  # the query encoder is that graph
            raise BundleError(
                f"index bundle {self.path} has an int8 query encoder and no document encoder "
                f"({DOCUMENT_ENCODER}): it was written before bundles kept one. Run "
                "`athenaeum index` on it again (it adds the encoder without embedding anything)"
            )
        path = self.path.joinpath(*PurePosixPath(recorded.path).parts)
        if not path.is_file():
            raise BundleError(
                f"index bundle {self.path} lacks its document encoder {recorded.path} (a serving "
                "copy leaves it out); use the bundle `athenaeum index` wrote"
            )
        if path.stat().st_size != recorded.bytes or sha256_file(path) != recorded.sha256:
            raise corrupted(self.path, f"{recorded.path} does not match the manifest's sha256")
        return path

    @property
    def dense(self) -> faiss.Index:
        """The dense index as FAISS: the stored graph, the fp16 flat index, or for a version 1
        flat bundle an exact IndexFlatIP over its vectors, built on first use."""
        if self.ann is not None:
            return self.ann
        if self.vectors.flat is not None:
            return self.vectors.flat
        if self._flat is None:
            import faiss

            flat = faiss.IndexFlatIP(self.vectors.shape[1])
            flat.add(self.vectors.all())
            self._flat = flat
        return self._flat

    @dense.setter
    def dense(self, index: faiss.Index) -> None:
        self.ann = index


def corrupted(path: Path, what: str) -> BundleError:
    """The one shape of every "this bundle is damaged" error."""
    return BundleError(f"index bundle {path} is corrupted: {what}; {_REBUILD}")


def read_manifest(path: Path) -> Manifest:
    """Read and check manifest.json: present, valid, of a format and version this code reads."""
    path = Path(path)
    return _parse_manifest(path, _manifest_bytes(path))


def _manifest_bytes(path: Path) -> bytes:
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
        return manifest_path.read_bytes()
    except OSError as exc:
        raise corrupted(path, f"{MANIFEST_FILE} cannot be read ({exc})") from exc


def _parse_manifest(path: Path, data: bytes) -> Manifest:
    # The fast path: pydantic parses and validates the JSON in one pass, about a third faster
    # than json.loads and then validating (0.73 s against 1.0 s for 400,000 chunks' manifest;
    # its document list is most of a large bundle's load). Anything it does not accept, or a
    # format or version this reader does not read, takes the slow path below, which says what
    # is wrong in the same words as ever.
    try:
        manifest = Manifest.model_validate_json(data)
    except ValidationError:
        pass
    else:
        if manifest.format == FORMAT_NAME and manifest.format_version in SUPPORTED_FORMAT_VERSIONS:
            return manifest
    try:
        raw = json.loads(data)
    except ValueError as exc:  # bad JSON or bad UTF-8
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


def check_file(path: Path, rel: str, info: FileInfo, *, check_hashes: bool = True) -> None:
    """Check one file the manifest lists: inside the bundle, present, of its size and
    (optionally) its sha256; a BundleError that names it otherwise."""
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


def verify_files(path: Path, manifest: Manifest, *, check_hashes: bool = True) -> None:
    """Check every file the manifest lists: present, of the right size and (optionally) hash."""
    for rel, info in manifest.files.items():
        check_file(path, rel, info, check_hashes=check_hashes)
    kind = manifest.dense.kind
    for rel in required_files(manifest.vectors.encoding, kind, manifest.chunks.encoding):
        if rel not in manifest.files:
            raise corrupted(path, f"{MANIFEST_FILE} does not list the required file {rel}")


def _open(path: Path, verify: VerifyMode) -> tuple[Manifest, Verification]:
    """Read the manifest and check every file it lists: present, of its size, and either
    vouched for by a current verification record (`verify="auto"`) or hashed now."""
    data = _manifest_bytes(path)
    manifest = _parse_manifest(path, data)
    digest = manifest_sha256(data)
    reason = check_record(path, digest, manifest.files) if verify == "auto" else None
    if verify == "auto" and reason is None:
        verify_files(path, manifest, check_hashes=False)
        return manifest, Verification(manifest_sha256=digest, hashed=None)
    started = time.perf_counter()
    try:
        # Stamped before hashing: a file written meanwhile no longer matches its stamp.
        before = stamps(path, manifest.files)
    except OSError:
        before = {}  # a missing file: verify_files names it
    verify_files(path, manifest, check_hashes=True)
    logger.info(
        json.dumps(
            {
                "event": "index_hashed",
                "bundle": str(path),
                "why": reason or "full verification asked for",
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    )
    return manifest, Verification(manifest_sha256=digest, hashed=before)


def load_bundle(path: Path, *, verify: VerifyMode = "auto") -> Bundle:
    """Load a bundle after verifying it; every failure is a BundleError naming the problem.

    With a current verification record (`verify="auto"`) the sha256 pass is skipped and chunks
    are parsed when first read; otherwise every file is hashed and every chunk parsed and
    checked. Sizes, counts, shapes and finite vectors are checked either way.
    docs/index-format.md says what each costs.
    """
    path = Path(path)
    manifest, verification = _open(path, verify)
    return _read(path, manifest, verification)


def record_verification(bundle: Bundle, *, by: str, scope: Scope = "local") -> Path:
    """Write the verification record of a bundle whose files were just hashed (loaded with
    `verify="full"`), so that later loads of this copy skip the sha256 pass."""
    hashed = bundle.verification.hashed
    if hashed is None:
        raise ValueError("only a bundle whose files were hashed at load can be recorded")
    return write_record(
        bundle.path, bundle.verification.manifest_sha256, hashed, by=by, scope=scope
    )


def verify_bundle(path: Path, *, by: str, scope: Scope = "local") -> Bundle:
    """Verify the bundle at `path` in full (every hash, every chunk) and, when it passes, write
    its verification record."""
    bundle = load_bundle(path, verify="full")
    record_verification(bundle, by=by, scope=scope)
    return bundle


def _read(path: Path, manifest: Manifest, verification: Verification) -> Bundle:
    """The contents of a bundle whose files `_open` checked."""
    n = manifest.counts.chunks
    dim = manifest.embedding.dimension

    if manifest.vectors.encoding == "fp16" or manifest.dense.kind != "flat":
        prefetch_faiss()  # imported while the chunks and postings are read
    chunks = _load_chunks(path, manifest, n)
    if not verification.by_record:
        chunks.parse_all()
        _check_chunks(path, manifest, chunks)
    if manifest.bm25.tokenizer_version != TOKENIZER_VERSION:
        raise BundleError(
            f"index bundle {path} was built with BM25 tokenizer version "
            f"{manifest.bm25.tokenizer_version}, this athenaeum uses {TOKENIZER_VERSION}; "
            f"{_REBUILD}"
        )
    try:
        bm25 = BM25Postings.load(path / BM25_FILE)
    except (OSError, ValueError, KeyError) as exc:
        raise corrupted(path, f"{BM25_FILE} cannot be read ({exc})") from exc
    if bm25.n_docs != n:
        raise corrupted(path, f"{BM25_FILE} covers {bm25.n_docs} chunks, expected {n}")

    if manifest.vectors.encoding == "fp16":
        vectors = _load_codes(path, manifest, n, dim)
        ann = vectors.index if manifest.dense.kind != "flat" else None
    else:
        vectors = _load_vectors(path, n, dim)
        ann = None if manifest.dense.kind == "flat" else _load_ann(path, manifest, n, dim)
    # A NaN row scores NaN against every query and is never ranked: dense search would quietly
    # answer with nothing. Checked at every load, record or not: a few ms for 10,000 x 384
    # values (it reads the mapped pages that the first search reads anyway).
    bad = vectors.first_not_finite()
    if bad is not None:
        name = DENSE_FILE if manifest.vectors.encoding == "fp16" else VECTORS_FILE
        raise corrupted(
            path, f"{name} row {bad} (chunk {chunks[bad].id}) has NaN or infinite values"
        )

    docs_total = sum(d.chunk_count for d in manifest.documents)
    if len(manifest.documents) != manifest.counts.documents or docs_total != n:
        raise corrupted(
            path,
            f"{MANIFEST_FILE} lists {len(manifest.documents)} documents with {docs_total} chunks, "
            f"but its counts say {manifest.counts.documents} documents and {n} chunks",
        )
    return Bundle(
        path=path,
        manifest=manifest,
        chunks=chunks,
        vectors=vectors,
        bm25=bm25,
        verification=verification,
        ann=ann,
    )


def _load_vectors(path: Path, n: int, dim: int) -> StoredVectors:
    """A version 1 bundle's fp32 vectors.npy."""
    try:
        # Memory-mapped: the pages are read when first searched, and shared by every process
        # that serves the same file. The writer replaces a bundle by renaming, never in place.
        loaded = np.load(path / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
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
    # A plain ndarray view of the map (a copy only if the file is not C-ordered float32).
    return StoredVectors.of_fp32(np.ascontiguousarray(np.asarray(loaded), dtype=np.float32))


def _load_codes(path: Path, manifest: Manifest, n: int, dim: int) -> StoredVectors:
    """A version 2 bundle's vectors: the fp16 codes in dense.faiss. A flat bundle's are read
    into huge pages (read_resident: every query scans them all); an HNSW graph and its codes are
    memory-mapped (IO_FLAG_MMAP_IFC: a walk reads a few thousand codes, read when first visited
    and shared by every process that serves the file, as vectors.npy's were)."""
    import faiss

    # One query searches one vector: FAISS's OpenMP team only adds hand-off cost and fights
    # onnxruntime's threads for the cores (docs/benchmarks.md has the latencies). Concurrency
    # comes from concurrent requests.
    faiss.omp_set_num_threads(1)
    memory = None
    try:
        if manifest.dense.kind == "flat":
            index, memory = read_resident(path / DENSE_FILE)
        else:
            index = faiss.read_index(str(path / DENSE_FILE), faiss.IO_FLAG_MMAP_IFC)
    except (RuntimeError, OSError) as exc:
        raise corrupted(path, f"{DENSE_FILE} cannot be read ({exc})") from exc
    _check_index_shape(path, index, n, dim)
    try:
        vectors = StoredVectors.of_index(index, dim, memory)
    except ValueError as exc:
        raise corrupted(path, f"{DENSE_FILE}: {exc}") from exc
    graph = faiss.downcast_index(index)
    if isinstance(graph, faiss.IndexHNSW) != (manifest.dense.kind == "hnsw"):
        raise corrupted(
            path, f"{DENSE_FILE} is not the {manifest.dense.kind} index the manifest names"
        )
    if isinstance(graph, faiss.IndexHNSW):
        graph.hnsw.efSearch = _ef_search(manifest)
    return vectors


def _check_index_shape(path: Path, index: faiss.Index, n: int, dim: int) -> None:
    if index.ntotal != n or index.d != dim:
        raise corrupted(
            path,
            f"{DENSE_FILE} holds {index.ntotal} vectors of dimension {index.d}, "
            f"expected {n} of dimension {dim}",
        )


def _ef_search(manifest: Manifest) -> int:
    return int(manifest.dense.params.get("ef_search", HNSW_DEFAULTS["ef_search"]))


def _load_ann(path: Path, manifest: Manifest, n: int, dim: int) -> faiss.Index:
    import faiss  # only bundles with an approximate index need FAISS at all

    # One query searches one vector: FAISS's OpenMP team only adds hand-off cost and fights
    # onnxruntime's threads for the cores (docs/benchmarks.md has the latencies). Concurrency
    # comes from concurrent requests.
    faiss.omp_set_num_threads(1)
    try:
        dense = faiss.read_index(str(path / DENSE_FILE))
    except RuntimeError as exc:
        raise corrupted(path, f"{DENSE_FILE} cannot be read ({exc})") from exc
    _check_index_shape(path, dense, n, dim)
    hnsw = faiss.downcast_index(dense)
    if isinstance(hnsw, faiss.IndexHNSW):
        hnsw.hnsw.efSearch = _ef_search(manifest)
    return dense


def _load_chunks(path: Path, manifest: Manifest, expected: int) -> ChunkStore:
    blocks = manifest.chunks.encoding == "zlib-blocks"
    name = CHUNK_BLOCKS_FILE if blocks else CHUNKS_FILE

    def invalid(row: int, exc: Exception) -> BundleError:
        where = f"row {row}" if blocks else f"line {row}"
        return corrupted(path, f"{name} {where} is not a valid chunk ({exc})")

    try:
        if blocks:
            source = BlockRows(_map(path / name), expected, manifest.chunks.block)
            stored = source.stored_rows()  # inflates the last block only
            chunks = ChunkStore(source, invalid=invalid)
        else:
            chunks = ChunkStore((path / name).read_bytes(), invalid=invalid)
            stored = len(chunks)
    except OSError as exc:
        raise corrupted(path, f"{name} cannot be read ({exc})") from exc
    except (ValueError, zlib.error) as exc:
        raise corrupted(path, f"{name} is not chunk blocks: {exc}") from exc
    if stored != expected:
        raise corrupted(path, f"{name} has {stored} chunks but the manifest counts {expected}")
    return chunks


def _map(file: Path) -> bytes | mmap.mmap:
    """The file's bytes as a read-only memory map (pages read when first touched, shared by
    every process serving the file), or as bytes when it is empty (which cannot be mapped)."""
    with file.open("rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _check_chunks(path: Path, manifest: Manifest, chunks: ChunkStore) -> None:
    """What needs every chunk parsed: unique ids, and every chunk's document listed."""
    if len({c.id for c in chunks}) != len(chunks):
        raise corrupted(path, f"{_chunks_file(manifest)} has duplicate chunk ids")
    listed = {d.doc_id for d in manifest.documents}
    stray = next((c.doc_id for c in chunks if c.doc_id not in listed), None)
    if stray is not None:
        raise corrupted(
            path,
            f"{_chunks_file(manifest)} has chunks of document {stray!r}, which {MANIFEST_FILE} "
            "does not list",
        )


def _chunks_file(manifest: Manifest) -> str:
    return CHUNK_BLOCKS_FILE if manifest.chunks.encoding == "zlib-blocks" else CHUNKS_FILE
