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
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from athenaeum import __version__
from athenaeum.bundle.bm25 import BM25Postings
from athenaeum.bundle.chunk import ChunkStore
from athenaeum.bundle.format import (
    BM25_FILE,
    CHUNKS_FILE,
    DENSE_FILE,
    DOCUMENT_ENCODER,
    ENCODER_DIR,
    ENCODER_MODEL,
    FORMAT_NAME,
    HNSW_DEFAULTS,
    MANIFEST_FILE,
    REQUIRED_FILES,
    SUPPORTED_FORMAT_VERSIONS,
    TOKENIZER_VERSION,
    VECTORS_FILE,
)
from athenaeum.bundle.hashing import sha256_file
from athenaeum.bundle.manifest import FileInfo, Manifest
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
    vectors: npt.NDArray[np.float32]  # memory-mapped, read-only
    bm25: BM25Postings
    verification: Verification
    # The stored approximate index (dense.faiss, HNSW); None for "flat" bundles, which the
    # engine searches exactly over `vectors` with numpy.
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
        """The dense index as FAISS: the stored graph, or for a flat bundle an exact
        IndexFlatIP over the vectors, built on first use (the engine itself does not need it)."""
        if self.ann is not None:
            return self.ann
        if self._flat is None:
            import faiss

            flat = faiss.IndexFlatIP(self.vectors.shape[1])
            flat.add(np.ascontiguousarray(self.vectors))
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
    required = list(REQUIRED_FILES)
    if manifest.dense.kind != "flat":
        required.append(DENSE_FILE)
    for rel in required:
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

    chunks = _load_chunks(path, n)
    if not verification.by_record:
        chunks.parse_all()
        _check_chunks(path, manifest, chunks)
    vectors = _load_vectors(path, n, dim, chunks)

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

    ann = None if manifest.dense.kind == "flat" else _load_ann(path, manifest, n, dim)
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


def _load_vectors(path: Path, n: int, dim: int, chunks: ChunkStore) -> npt.NDArray[np.float32]:
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
    vectors = np.ascontiguousarray(np.asarray(loaded), dtype=np.float32)
    # A NaN row scores NaN against every query and is never ranked: dense search would quietly
    # answer with nothing. Checked at every load, record or not: a few ms for 10,000 x 384
    # floats (it reads the mapped pages that the first search reads anyway).
    if not np.isfinite(vectors).all():
        row = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise corrupted(
            path, f"{VECTORS_FILE} row {row} (chunk {chunks[row].id}) has NaN or infinite values"
        )
    return vectors


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
    if dense.ntotal != n or dense.d != dim:
        raise corrupted(
            path,
            f"{DENSE_FILE} holds {dense.ntotal} vectors of dimension {dense.d}, "
            f"expected {n} of dimension {dim}",
        )
    hnsw = faiss.downcast_index(dense)
    if isinstance(hnsw, faiss.IndexHNSW):
        hnsw.hnsw.efSearch = int(manifest.dense.params.get("ef_search", HNSW_DEFAULTS["ef_search"]))
    return dense


def _load_chunks(path: Path, expected: int) -> ChunkStore:
    try:
        data = (path / CHUNKS_FILE).read_bytes()
    except OSError as exc:
        raise corrupted(path, f"{CHUNKS_FILE} cannot be read ({exc})") from exc

    def invalid(lineno: int, exc: Exception) -> BundleError:
        return corrupted(path, f"{CHUNKS_FILE} line {lineno} is not a valid chunk ({exc})")

    chunks = ChunkStore(data, invalid=invalid)
    if len(chunks) != expected:
        raise corrupted(
            path, f"{CHUNKS_FILE} has {len(chunks)} chunks but the manifest counts {expected}"
        )
    return chunks


def _check_chunks(path: Path, manifest: Manifest, chunks: ChunkStore) -> None:
    """What needs every chunk parsed: unique ids, and every chunk's document listed."""
    if len({c.id for c in chunks}) != len(chunks):
        raise corrupted(path, f"{CHUNKS_FILE} has duplicate chunk ids")
    listed = {d.doc_id for d in manifest.documents}
    stray = next((c.doc_id for c in chunks if c.doc_id not in listed), None)
    if stray is not None:
        raise corrupted(
            path,
            f"{CHUNKS_FILE} has chunks of document {stray!r}, which {MANIFEST_FILE} does not list",
        )
