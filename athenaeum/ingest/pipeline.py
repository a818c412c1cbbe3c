"""Ingest: make the published index hold exactly the documents in the library, without torch.

    athenaeum ingest s3://BUCKET/library --index s3://BUCKET/index [--from BUNDLE_DIR]

One run reconciles the library (an S3 prefix of PDFs, .md, .markdown and .txt files) with the
version the pointer names (athenaeum.storage.published):

1. Take the writer's lease; read the pointer. An index with no version yet starts from a bundle
   built locally (`from_bundle`: its encoders, settings and documents).
2. List the library. A file's sha256 is known from the last run's record (same ETag and size)
   or computed on download. A document whose source is unchanged keeps its chunks and vectors;
   new and changed ones are downloaded and converted (PDFs, with passwords for encrypted ones),
   chunked with the version's own chunking parameters and embedded with its own fp32 document
   encoder (athenaeum.build.onnx_encoder: the code `athenaeum index` embeds with on CPU);
   documents no longer in the library are dropped.
3. Write a new bundle (BM25 rebuilt over every chunk: its statistics are global) and publish it;
   then record what was seen and write the report.

A document id is the file's path in the library, with `.pdf` turned into `.md`: what `athenaeum
convert` then `athenaeum index` of the same folder gives, so a bundle built locally from a
folder and the library made from that folder by `athenaeum push` share their documents.

Every decision depends on the library's contents, not on which events arrived: the same event
twice, or events in any order, end in the same version, and a run with nothing to do publishes
nothing. A document that cannot be converted is named in the report with its reason, and the
others are published; one that is too large is refused the same way. A run given a deadline
stops converting in time to publish what it has, and reports what it left for the next run
(the documents it left keep their previous version meanwhile).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from athenaeum.build.chunking import (
    CHUNKER_VERSION,
    ChunkingParams,
    SourceDocument,
    chunk_document,
    chunk_id,
    embed_text,
    read_text_document,
)
from athenaeum.build.indexer import DocumentRows, chunking_params, document_info, write_documents
from athenaeum.build.onnx_encoder import OnnxDocumentEncoder
from athenaeum.bundle import (
    ENCODER_TOKENIZER_FILE,
    Bundle,
    ChunkRecord,
    DocumentInfo,
    SourceFileInfo,
    load_bundle,
)
from athenaeum.errors import AthenaeumError, InvalidInputError
from athenaeum.storage.library import READ_SUFFIXES_TEXT, is_converted, is_document
from athenaeum.storage.listing import list_objects
from athenaeum.storage.location import S3Location
from athenaeum.storage.published import (
    KEEP_VERSIONS,
    LATEST_REPORT,
    LOCK_TTL_S,
    REPORTS_DIR,
    STATE_FILE,
    Pointer,
    PublishedIndex,
)

logger = logging.getLogger("athenaeum.ingest")

PDF_SUFFIX = ".pdf"
# Left for publishing when a deadline is given: writing and uploading a bundle of 10,000 chunks
# takes seconds, embedding what was converted up to a minute on one vCPU.
PUBLISH_RESERVE_S = 120.0
_DOWNLOAD_CHUNK = 1 << 20

ProgressCallback = Callable[[str, int, int], None]
"""Called as `progress(stage, done, total)`: stages "download", "convert", "embedding"."""


@dataclass(frozen=True)
class LibraryObject:
    key: str  # the S3 key
    rel: str  # the path under the library prefix
    size: int
    etag: str

    @property
    def is_converted(self) -> bool:
        return is_converted(self.rel)


def doc_id_for(rel: str) -> str:
    """The document id a library file becomes: its markdown's path as `athenaeum convert` names
    it (a PDF's with .md for .pdf, another converted document's with .md after its suffix), or
    a markdown or text file's own path."""
    path = PurePosixPath(rel)
    if path.suffix.lower() == PDF_SUFFIX:
        return path.with_suffix(".md").as_posix()
    return f"{rel}.md" if is_converted(rel) else rel


@dataclass
class IngestReport:
    library: str
    index: str
    started_at: str
    finished_at: str = ""
    published: bool = False
    version: str | None = None  # the version served after this run
    previous: str | None = None
    documents_total: int = 0
    documents_added: int = 0
    documents_changed: int = 0
    documents_unchanged: int = 0
    documents_removed: int = 0
    chunks_total: int = 0
    chunks_embedded: int = 0
    pages_converted: int = 0
    # {"key": S3 key, "reason": why}: files that could not be converted (not published) and
    # files that are not documents athenaeum reads.
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    # Keys left for the next run when the deadline came.
    remaining: list[str] = field(default_factory=list)
    # Older versions deleted after this run's publish, and the blobs only they named.
    pruned_versions: list[str] = field(default_factory=list)
    pruned_blobs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format": "athenaeum-ingest-report", **asdict(self)}, indent=2)


class _Clock:
    def __init__(self, report: IngestReport) -> None:
        self.report = report
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.report.seconds[stage] = round(self.report.seconds.get(stage, 0.0) + now - self.last, 3)
        self.last = now


def list_library(
    client: Any, library: S3Location
) -> tuple[list[LibraryObject], list[dict[str, str]]]:
    """The library's documents (sorted by path) and the files skipped, with the reason."""
    prefix = f"{library.prefix}/" if library.prefix else ""
    found: list[LibraryObject] = []
    skipped: list[dict[str, str]] = []
    for obj in list_objects(client, library.bucket, prefix):
        rel = obj.key[len(prefix) :]
        parts = rel.split("/")
        if not rel or any(not part or part.startswith(".") for part in parts):
            continue  # folder markers, hidden files, empty or dot parts: as push skips them
        if not is_document(rel):
            reason = f"not a document athenaeum reads ({READ_SUFFIXES_TEXT})"
            skipped.append({"key": obj.key, "reason": reason})
            continue
        found.append(LibraryObject(obj.key, rel, obj.size, obj.etag))
    found.sort(key=lambda o: o.rel)
    return found, skipped


def _download(client: Any, bucket: str, key: str, dest: Path) -> str:
    """Download to `dest`; returns the sha256 of what was written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    response = client.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        for block in response["Body"].iter_chunks(_DOWNLOAD_CHUNK):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _source_sha(info: DocumentInfo, converted: bool) -> str | None:
    """The sha256 of the file a document was made from: the PDF's for a converted document,
    the text file's own (its content hash) for one indexed as it is."""
    if converted:
        return info.source_file.sha256 if info.source_file is not None else None
    return info.sha256


@dataclass
class _Base:
    """What the version ingest starts from offers: per document, its entry, chunks, vectors."""

    bundle: Bundle
    infos: dict[str, DocumentInfo]
    rows: dict[str, list[int]]

    @classmethod
    def of(cls, bundle: Bundle) -> _Base:
        rows: dict[str, list[int]] = {}
        for row, chunk in enumerate(bundle.chunks):
            rows.setdefault(chunk.doc_id, []).append(row)
        return cls(bundle, {d.doc_id: d for d in bundle.manifest.documents}, rows)

    def reuse(self, doc_id: str, obj: LibraryObject, uri: str) -> DocumentRows:
        """The document `doc_id` of the base as library file `obj`: the same chunks and vectors,
        under the id and source the file gives it (a bundle built from another folder layout),
        its location the library's."""
        info = self.infos[doc_id]
        new_id = doc_id_for(obj.rel)
        chunks = [self.bundle.chunks[r] for r in self.rows.get(doc_id, [])]
        vectors = np.asarray(self.bundle.vectors[self.rows.get(doc_id, [])], dtype=np.float32)
        if new_id != doc_id or info.source != obj.rel:
            chunks = [
                replace(c, doc_id=new_id, id=chunk_id(new_id, c.ordinal, c.text), source=obj.rel)
                for c in chunks
            ]
        source_file = info.source_file
        if source_file is not None:
            source_file = SourceFileInfo(location=uri, sha256=source_file.sha256)
        updated = info.model_copy(
            update={"doc_id": new_id, "source": obj.rel, "source_file": source_file}
        )
        return DocumentRows(updated, chunks, vectors.reshape(len(chunks), -1))


def ingest(
    library: S3Location,
    index: S3Location,
    *,
    client: Any,
    work_dir: Path,
    from_bundle: Path | None = None,
    passwords: Sequence[str] = (),
    owner: str = "athenaeum ingest",
    deadline: float | None = None,
    max_pages: int | None = None,
    progress: ProgressCallback | None = None,
    keep_versions: int = KEEP_VERSIONS,
) -> IngestReport:
    """Reconcile `library` into a new version of the published index at `index` (see the
    module's docstring). `deadline` is a time.monotonic() value by which to have published;
    `max_pages` refuses larger PDFs; after a publish, versions beyond the newest
    `keep_versions` are pruned (PublishedIndex.prune). Raises AthenaeumError for what stops
    the whole run (no version and no `from_bundle`, a conflicting writer, an unreadable
    version)."""
    report = IngestReport(
        library=library.uri,
        index=index.uri,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    store = PublishedIndex(index, client)
    run_dir = Path(work_dir) / f"run-{uuid.uuid4().hex[:12]}"
    run_dir.mkdir(parents=True)
    try:
        # A run with a deadline (an invocation) holds the lease no longer than it can live: a
        # run killed at its timeout blocks the next one for a minute, not for LOCK_TTL_S.
        ttl = LOCK_TTL_S if deadline is None else max(60.0, deadline - time.monotonic() + 60.0)
        with store.lock(owner, ttl_s=ttl):
            options = _Options(
                from_bundle, tuple(passwords), deadline, max_pages, progress, keep_versions
            )
            _run(store, library, report, run_dir, options)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    report.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    _save_report(store, report)
    return report


class _LazyEncoder:
    """The version's document encoder, loaded (90 MB for MiniLM) only when something is to be
    chunked or embedded."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self._encoder: OnnxDocumentEncoder | None = None

    def get(self) -> OnnxDocumentEncoder:
        if self._encoder is None:
            embedding = self.bundle.manifest.embedding
            self._encoder = OnnxDocumentEncoder(
                self.bundle.document_encoder(),
                self.bundle.encoder_dir / ENCODER_TOKENIZER_FILE,
                max_seq_length=embedding.max_seq_length,
                document_prefix=embedding.document_prefix,
            )
        return self._encoder

    def count_tokens(self, text: str) -> int:
        return self.get().count_tokens(text)

    def embed_documents(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.bundle.manifest.embedding.dimension), np.float32)
        return self.get().embed_documents(texts, progress=progress)


@dataclass(frozen=True)
class _Options:
    from_bundle: Path | None
    passwords: tuple[str, ...]
    deadline: float | None
    max_pages: int | None
    progress: ProgressCallback | None
    keep_versions: int


@dataclass
class _Plan:
    """What becomes of each library file: `parts` reuse the base version's rows (`claimed`
    names the base documents reused), `to_convert` are new or changed."""

    parts: dict[str, DocumentRows] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    to_convert: list[tuple[str, LibraryObject]] = field(default_factory=list)

    def reuse(self, base: _Base, base_id: str, doc_id: str, obj: LibraryObject, uri: str) -> None:
        self.parts[doc_id] = base.reuse(base_id, obj, uri)
        self.claimed.add(base_id)


def _run(
    store: PublishedIndex,
    library: S3Location,
    report: IngestReport,
    run_dir: Path,
    options: _Options,
) -> None:
    clock = _Clock(report)
    versions_dir = run_dir.parent / "versions"
    pointer, bundle = _open_base(store, report, versions_dir, options.from_bundle)
    clock.lap("open")

    objects, report.skipped = list_library(store.client, library)
    state = _read_state(store, pointer)
    by_id = _by_document(objects, report)
    clock.lap("list")

    downloads, shas = _fetch_unknown(store, library, by_id, state, run_dir, options.progress)
    clock.lap("download")

    base = _Base.of(bundle)
    plan = _plan(base, bundle, library, by_id, shas, report)
    encoder = _LazyEncoder(bundle)
    params = chunking_params(dict(bundle.manifest.chunking))
    fresh = _convert_changed(
        store, plan, base, library, downloads, shas, encoder, params, run_dir, options, report
    )
    clock.lap("convert")

    _embed(fresh, plan, encoder, params, report, options.progress)
    clock.lap("embedding")

    kept = {part.info.doc_id for part in plan.parts.values()}
    report.documents_removed = len(set(base.infos) - plan.claimed - kept)
    ordered = [plan.parts[doc_id] for doc_id in sorted(plan.parts)]
    report.documents_total = len(ordered)
    report.chunks_total = sum(len(p.chunks) for p in ordered)

    if pointer is not None and _same_documents(ordered, bundle):
        _write_state(store, pointer.version, by_id, shas)
        clock.lap("publish")
        return
    out = run_dir / "bundle"
    write_documents(
        out,
        ordered,
        embedding=bundle.manifest.embedding,
        recipe=dict(bundle.manifest.chunking),
        count=encoder.count_tokens,
        encoder_dir=bundle.encoder_dir,
        document_encoder=(
            bundle.document_encoder() if bundle.manifest.document_encoder is not None else None
        ),
    )
    clock.lap("write")
    published: Pointer = store.publish(out, expected=pointer, by=report.library)
    report.published = True
    report.version = published.version
    _write_state(store, published.version, by_id, shas)
    _keep_only(versions_dir, out, published.version)
    clock.lap("publish")
    _prune(store, report, options.keep_versions)
    clock.lap("prune")


def _open_base(
    store: PublishedIndex, report: IngestReport, versions_dir: Path, from_bundle: Path | None
) -> tuple[Pointer | None, Bundle]:
    """The pointer and the version it names (or the starting bundle, for an index with no
    version yet), refused if another chunker version made it."""
    pointer = store.read_pointer()
    if pointer is None:
        if from_bundle is None:
            raise InvalidInputError(
                f"{store.uri} holds no published version yet; start it from a bundle built "
                "locally with --from BUNDLE_DIR (deploy.sh does this on the first deploy)",
                param="from",
            )
        bundle = load_bundle(Path(from_bundle), verify="full")
    else:
        if from_bundle is not None:
            logger.info(
                json.dumps({"event": "ingest_from_ignored", "why": "the index has a version"})
            )
        # Kept under work_dir between runs (a warm Lambda container reuses its /tmp): the next
        # run starts from the version this one publishes, or reuses this copy.
        bundle = load_bundle(store.fetch(pointer.version, versions_dir, document_encoder=True))
        report.previous = pointer.version
    report.version = pointer.version if pointer is not None else None
    version = bundle.manifest.chunking.get("version")
    if version != CHUNKER_VERSION:
        raise InvalidInputError(
            f"the index was chunked by chunker version {version} and this "
            f"athenaeum chunks with version {CHUNKER_VERSION}: rebuild it with `athenaeum "
            "index` and publish that (docs/deployment.md, 'Updating')"
        )
    return pointer, bundle


def _by_document(
    objects: Sequence[LibraryObject], report: IngestReport
) -> dict[str, LibraryObject]:
    """The library's files by the document id each becomes; a second file that would become
    the same document is reported and left out."""
    by_id: dict[str, LibraryObject] = {}
    for obj in objects:
        doc_id = doc_id_for(obj.rel)
        if doc_id in by_id:
            report.failed.append(
                {
                    "key": obj.key,
                    "reason": f"{by_id[doc_id].rel} already becomes document {doc_id}; rename one",
                }
            )
            continue
        by_id[doc_id] = obj
    return by_id


def _fetch_unknown(
    store: PublishedIndex,
    library: S3Location,
    by_id: dict[str, LibraryObject],
    state: dict[str, dict[str, Any]],
    run_dir: Path,
    progress: ProgressCallback | None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Every file's sha256: from the last run's record where the ETag and size are those it
    saw, else by downloading the file (returned with where it went)."""
    downloads: dict[str, Path] = {}
    shas: dict[str, str] = {}
    unknown = [o for o in by_id.values() if not _known(state, o)]
    for done, obj in enumerate(unknown, 1):
        dest = run_dir / "library" / obj.rel
        shas[obj.rel] = _download(store.client, library.bucket, obj.key, dest)
        downloads[obj.rel] = dest
        if progress is not None:
            progress("download", done, len(unknown))
    for obj in by_id.values():
        if obj.rel not in shas:
            shas[obj.rel] = str(state[obj.rel]["sha256"])
    return downloads, shas


def _plan(
    base: _Base,
    bundle: Bundle,
    library: S3Location,
    by_id: dict[str, LibraryObject],
    shas: dict[str, str],
    report: IngestReport,
) -> _Plan:
    """Match each file with a document of the base: by id, else (a bundle built from another
    folder layout) by the source file's sha256; the others are to be converted."""
    by_sha: dict[str, str] = {}
    for info in bundle.manifest.documents:
        sha = info.source_file.sha256 if info.source_file is not None else info.sha256
        by_sha.setdefault(sha, info.doc_id)
    plan = _Plan()
    for doc_id, obj in by_id.items():
        uri = f"s3://{library.bucket}/{obj.key}"
        old = base.infos.get(doc_id)
        if old is not None and _source_sha(old, obj.is_converted) == shas[obj.rel]:
            plan.reuse(base, doc_id, doc_id, obj, uri)
            report.documents_unchanged += 1
            continue
        other = by_sha.get(shas[obj.rel])
        if old is None and other is not None and other not in by_id and other not in plan.claimed:
            plan.reuse(base, other, doc_id, obj, uri)
            report.documents_unchanged += 1
            continue
        plan.to_convert.append((doc_id, obj))
    return plan


def _convert_changed(
    store: PublishedIndex,
    plan: _Plan,
    base: _Base,
    library: S3Location,
    downloads: dict[str, Path],
    shas: dict[str, str],
    encoder: _LazyEncoder,
    params: ChunkingParams,
    run_dir: Path,
    options: _Options,
    report: IngestReport,
) -> list[tuple[SourceDocument, list[ChunkRecord]]]:
    """Convert and chunk what is new or changed, until the deadline leaves only the time to
    publish: what is left then keeps its previous version, if it has one."""
    fresh: list[tuple[SourceDocument, list[ChunkRecord]]] = []
    for done, (doc_id, obj) in enumerate(plan.to_convert, 1):
        if options.deadline is not None and time.monotonic() > options.deadline - PUBLISH_RESERVE_S:
            for left_id, left in plan.to_convert[done - 1 :]:
                report.remaining.append(left.key)
                if left_id in base.infos:  # keeps its previous version until the next run
                    plan.reuse(base, left_id, left_id, left, f"s3://{library.bucket}/{left.key}")
            break
        path = downloads.get(obj.rel)
        if path is None:  # known by its record, but changed: cannot be; download to be sure
            path = run_dir / "library" / obj.rel
            shas[obj.rel] = _download(store.client, library.bucket, obj.key, path)
        uri = f"s3://{library.bucket}/{obj.key}"
        doc = _read_document(doc_id, obj, path, uri, run_dir, options, report)
        if options.progress is not None:
            options.progress("convert", done, len(plan.to_convert))
        if doc is None:
            # Not convertible: named in the report. Its previous version, if any, is dropped:
            # the library no longer holds the file that version was made from.
            continue
        fresh.append((doc, chunk_document(doc, encoder.count_tokens, params)))
        if doc_id in base.infos:
            report.documents_changed += 1
        else:
            report.documents_added += 1
    return fresh


def _embed(
    fresh: list[tuple[SourceDocument, list[ChunkRecord]]],
    plan: _Plan,
    encoder: _LazyEncoder,
    params: ChunkingParams,
    report: IngestReport,
    progress: ProgressCallback | None,
) -> None:
    """Embed the fresh documents' chunks, in one pass, into the plan's parts."""
    texts = [
        embed_text(c.text, c.title, c.heading_path, encoder.count_tokens, params)
        for _, chunks in fresh
        for c in chunks
    ]
    vectors = encoder.embed_documents(
        texts, progress=(lambda d, t: progress("embedding", d, t)) if progress else None
    )
    cursor = 0
    for doc, chunks in fresh:
        block: npt.NDArray[np.float32] = vectors[cursor : cursor + len(chunks)]
        cursor += len(chunks)
        plan.parts[doc.doc_id] = DocumentRows(document_info(doc, len(chunks)), chunks, block)
    report.chunks_embedded = len(texts)


def _prune(store: PublishedIndex, report: IngestReport, keep: int) -> None:
    """Prune old versions; the version is published either way, so a failure is a warning."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        pruned = store.prune(keep=keep)
    except (AthenaeumError, BotoCoreError, ClientError) as exc:
        report.warnings.append({"key": store.uri, "warning": f"old versions not pruned: {exc}"})
        return
    report.pruned_versions = pruned.versions
    report.pruned_blobs = pruned.blobs


def _keep_only(versions_dir: Path, bundle: Path, version: str) -> None:
    """Keep the bundle just published as the local copy of its version (the next run starts
    from it; a rename keeps its verification record valid) and drop older copies."""
    versions_dir.mkdir(parents=True, exist_ok=True)
    target = versions_dir / f"version-{version[:16]}"
    for old in versions_dir.iterdir():
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    if not target.exists():
        bundle.rename(target)


def _read_document(
    doc_id: str,
    obj: LibraryObject,
    path: Path,
    uri: str,
    run_dir: Path,
    options: _Options,
    report: IngestReport,
) -> SourceDocument | None:
    """The library file at `path` as a document to chunk; None (and a line in the report) when
    it cannot be converted."""
    if not obj.is_converted:
        document = read_text_document(path, doc_id)
        if document.source_file is None:  # links open the file in the library
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            document = replace(document, source_file=SourceFileInfo(location=uri, sha256=sha))
        return document
    from athenaeum.build.convert import ConvertOptions, Job, Status, convert_file

    markdown = run_dir / "markdown" / doc_id
    convert_options = ConvertOptions(
        passwords=options.passwords,
        overwrite=True,
        password_hint="add it to the ingest passwords secret",  # noqa: S106 (advice)
        ocr_hint=(
            "the ingest function does not OCR: convert it with `athenaeum convert --ocr` and "
            "put the markdown in the library instead"
        ),
        max_pages=options.max_pages,
    )
    result = convert_file(Job(path, markdown, obj.rel, location=uri), convert_options)
    for warning in result.warnings:
        report.warnings.append({"key": obj.key, "warning": warning})
    if result.status is not Status.CONVERTED:
        report.failed.append({"key": obj.key, "reason": result.reason})
        return None
    if result.unit == "page":
        report.pages_converted += result.pages
    document = read_text_document(markdown, doc_id)
    path.unlink(missing_ok=True)
    return document


def _same_documents(parts: Sequence[DocumentRows], bundle: Bundle) -> bool:
    """Whether `parts` are the base version's documents as they are (nothing to publish): a
    document's entry holds its content hash, chunk count, id and location, and a document
    whose entry is unchanged was reused with its chunks and vectors."""
    return [p.info for p in parts] == list(bundle.manifest.documents)


def _known(state: dict[str, dict[str, Any]], obj: LibraryObject) -> bool:
    seen = state.get(obj.rel)
    return seen is not None and seen.get("etag") == obj.etag and seen.get("size") == obj.size


def _read_state(store: PublishedIndex, pointer: Pointer | None) -> dict[str, dict[str, Any]]:
    """What the last run saw, when it describes the version served now (else nothing)."""
    if pointer is None:
        return {}
    try:
        state = store.get_json(STATE_FILE)
    except AthenaeumError:
        return {}
    if not isinstance(state, dict) or state.get("version") != pointer.version:
        return {}
    objects = state.get("objects")
    return objects if isinstance(objects, dict) else {}


def _write_state(
    store: PublishedIndex, version: str, by_id: dict[str, LibraryObject], shas: dict[str, str]
) -> None:
    objects = {
        obj.rel: {"etag": obj.etag, "size": obj.size, "sha256": shas[obj.rel]}
        for obj in by_id.values()
        if obj.rel in shas
    }
    store.put_json(STATE_FILE, {"version": version, "objects": objects})


def _save_report(store: PublishedIndex, report: IngestReport) -> None:
    body = json.loads(report.to_json())
    stamp = report.finished_at.replace(":", "").replace("-", "").replace("+0000", "Z")
    name = f"{REPORTS_DIR}/{stamp}-{(report.version or 'none')[:12]}.json"
    store.put_json(name, body)
    store.put_json(LATEST_REPORT, body)
