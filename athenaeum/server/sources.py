"""Links that open a cited document's original file at the cited page, without a bearer token.

A link names a document by an opaque key (the start of its source file's sha256), never by a
path, so no request can reach a file the index does not name. It is scoped to that one file and
expires (`link_ttl_s`, default one hour). Two ways to serve the file:

- `LocalSources` (`athenaeum serve`): the server streams the file itself from where `convert`
  recorded it, or from `--sources DIR`; the link is `/sources/{key}/{file name}` with an expiry
  and an HMAC-SHA256 signature over both, made with a server secret. A file is linked only while
  its sha256 is the one the index recorded, so an edited or replaced file gets no link.
- `S3Sources` (on AWS): the file is in the index bucket under `sources/{sha256}/{file name}`
  (deploy.sh uploads it), and the link is an S3 presigned GET URL. The function can read that
  prefix and nothing else in it.

A document whose file is unknown, missing or changed gets no link (None), never a broken one.
PDF links end in `#page=N`, which browsers' PDF viewers open at that page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import quote

from athenaeum.bundle.hashing import sha256_file
from athenaeum.bundle.manifest import DocumentInfo
from athenaeum.errors import LinkRefusedError, NotFoundError
from athenaeum.retrieval import citations
from athenaeum.retrieval.engine import Hit

logger = logging.getLogger("athenaeum.sources")

SOURCES_PATH = "/sources/"  # public: a link's signature is its credential
SOURCES_ROUTE = SOURCES_PATH + "{key}/{name}"
KEY_CHARS = 32  # of the source's sha256: 128 bits, plenty to name a file in one library
MEDIA_TYPES = {".pdf": "application/pdf", ".md": "text/markdown", ".txt": "text/plain"}
_MISSING_RETRY_S = 60.0  # how long "not in the bucket" is believed before asking again


@dataclass(frozen=True)
class SourceFile:
    """A document's original file as the index names it."""

    key: str
    name: str  # the file name, for the link and the download
    doc: DocumentInfo

    @property
    def sha256(self) -> str:
        assert self.doc.source_file is not None
        return self.doc.source_file.sha256

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(PurePosixPath(self.name).suffix.lower(), "application/octet-stream")


def source_files(documents: Sequence[DocumentInfo]) -> dict[str, SourceFile]:
    """Every document with a recorded source file, by its key; the first of two identical files
    wins (they are the same bytes)."""
    found: dict[str, SourceFile] = {}
    for doc in documents:
        if doc.source_file is None:
            continue
        key = doc.source_file.sha256[:KEY_CHARS]
        found.setdefault(key, SourceFile(key, PurePosixPath(doc.source).name, doc))
    return found


def page_fragment(name: str, page: int | None) -> str:
    return f"#page={page}" if page is not None and name.lower().endswith(".pdf") else ""


class SourceLinks(Protocol):
    def link(self, doc_id: str, page: int | None, base_url: str) -> str | None:
        """A link that opens the document's original file at `page`, or None."""
        ...


class NoSources:
    """Links to nothing: every document goes without."""

    def link(self, doc_id: str, page: int | None, base_url: str) -> str | None:
        return None


class _ByDocument:
    def __init__(self, documents: Sequence[DocumentInfo]) -> None:
        self.files = source_files(documents)
        self._by_doc = {f.doc.doc_id: f for f in self.files.values()}
        for doc in documents:  # a duplicate file's other documents link to the kept copy
            if doc.source_file is not None and doc.doc_id not in self._by_doc:
                self._by_doc[doc.doc_id] = self.files[doc.source_file.sha256[:KEY_CHARS]]

    def of(self, doc_id: str) -> SourceFile | None:
        return self._by_doc.get(doc_id)


def citation_links(hits: list[Hit], sources: SourceLinks, base: str) -> list[str]:
    """Each hit's link: its original file at the page where the server has it, else the chunk
    view (which an API client opens with its token)."""
    return [
        sources.link(h.chunk.doc_id, h.chunk.page_start, base) or citations.link(base, h.chunk.id)
        for h in hits
    ]


# --- local ------------------------------------------------------------------------------------


class LocalSources(_ByDocument):
    """Serves the files itself through signed links (see the module docstring)."""

    def __init__(
        self,
        documents: Sequence[DocumentInfo],
        *,
        secret: bytes,
        ttl_s: int,
        sources_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(documents)
        if len(secret) < 16:
            raise ValueError("the link secret must be at least 16 bytes")
        self._secret = secret
        self._ttl_s = ttl_s
        self._dir = sources_dir.resolve() if sources_dir is not None else None
        self._clock = clock
        self._verified: dict[str, tuple[Path, int, int]] = {}  # key -> path, size, mtime_ns
        self._lock = threading.Lock()

    def path(self, source: SourceFile) -> Path | None:
        """Where the file is now, if it is there and still has the recorded sha256."""
        candidate = self._candidate(source)
        if candidate is None:
            return None
        try:
            stat = candidate.stat()
        except OSError:
            return None
        seen = self._verified.get(source.key)
        if seen == (candidate, stat.st_size, stat.st_mtime_ns):
            return candidate
        try:
            digest = sha256_file(candidate)
        except OSError:
            return None
        if digest != source.sha256:
            logger.warning(
                "not linking %s: %s has changed since it was indexed", source.doc.doc_id, candidate
            )
            return None
        with self._lock:
            self._verified[source.key] = (candidate, stat.st_size, stat.st_mtime_ns)
        return candidate

    def _candidate(self, source: SourceFile) -> Path | None:
        if self._dir is not None:
            # The source path as indexed, under --sources; it must stay inside that folder.
            path = (self._dir / source.doc.source).resolve()
            return path if path.is_relative_to(self._dir) and path.is_file() else None
        location = source.doc.source_file.location if source.doc.source_file else None
        if not location:
            return None
        path = Path(location)
        return path if path.is_absolute() and path.is_file() else None

    def link(self, doc_id: str, page: int | None, base_url: str) -> str | None:
        source = self.of(doc_id)
        if source is None or self.path(source) is None:
            return None
        expires = int(self._clock()) + self._ttl_s
        signature = self._sign(source.key, expires)
        return (
            f"{base_url}/sources/{source.key}/{quote(source.name, safe='')}"
            f"?expires={expires}&signature={signature}{page_fragment(source.name, page)}"
        )

    def open(self, key: str, expires: str, signature: str) -> tuple[SourceFile, Path]:
        """The file a link names, after checking its signature and expiry: LinkRefusedError
        (403) for a bad or expired link, NotFoundError (404) for a file no longer there."""
        if not expires.isdigit() or len(expires) > 12:
            raise LinkRefusedError("the link's expiry is malformed", param="expires")
        expected = self._sign(key, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise LinkRefusedError(
                "the link's signature is not valid: it was altered, or made by another server "
                "or with another secret",
                param="signature",
            )
        if int(expires) < self._clock():
            raise LinkRefusedError(
                "the link has expired; search again for a fresh one", param="expires"
            )
        source = self.files.get(key)
        path = self.path(source) if source is not None else None
        if source is None or path is None:
            raise NotFoundError("the linked file is no longer available on this server")
        return source, path

    def _sign(self, key: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def link_secret(configured: str | None) -> bytes:
    """The configured secret, else a random one for this process (links then stop working when
    the server restarts, which for a local server is what one expects)."""
    if configured:
        return configured.encode()
    return secrets.token_bytes(32)


# --- S3 ---------------------------------------------------------------------------------------

SOURCES_ROOT = "sources"


def source_key(prefix: str, sha256: str, name: str) -> str:
    """Where a source file lives in the bucket: content-addressed, under its own prefix."""
    return f"{prefix.strip('/')}/{sha256}/{name}"


class S3Sources(_ByDocument):
    """Presigned GET URLs to the copies deploy.sh uploaded (see the module docstring)."""

    def __init__(
        self,
        documents: Sequence[DocumentInfo],
        *,
        client: Any,
        bucket: str,
        prefix: str = SOURCES_ROOT,
        ttl_s: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(documents)
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._clock = clock
        self._present: set[str] = set()
        self._missing: dict[str, float] = {}  # key -> when it was found missing

    def _there(self, source: SourceFile, key: str) -> bool:
        if source.key in self._present:
            return True
        missed = self._missing.get(source.key)
        if missed is not None and self._clock() - missed < _MISSING_RETRY_S:
            return False
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except Exception as exc:  # 404, or 403 (no s3:ListBucket turns a 404 into a 403)
            logger.info(
                "no source file for %s in s3://%s/%s: %s", source.doc.doc_id, self._bucket, key, exc
            )
            self._missing[source.key] = self._clock()
            return False
        self._present.add(source.key)
        return True

    def link(self, doc_id: str, page: int | None, base_url: str) -> str | None:
        source = self.of(doc_id)
        if source is None:
            return None
        key = source_key(self._prefix, source.sha256, source.name)
        if not self._there(source, key):
            return None
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentType": source.media_type,
                "ResponseContentDisposition": content_disposition(source.name),
            },
            ExpiresIn=self._ttl_s,
        )
        return url + page_fragment(source.name, page)


def content_disposition(name: str) -> str:
    """Content-Disposition that shows the file in the browser under its own name (RFC 6266)."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'")
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


# --- per engine -------------------------------------------------------------------------------


class SourceLinker:
    """The links of the engine being served: made once per loaded bundle, from the settings."""

    def __init__(
        self,
        *,
        sources_dir: Path | None,
        sources_s3_uri: str | None,
        secret: bytes,
        ttl_s: int,
        s3_endpoint_url: str | None = None,
    ) -> None:
        self._sources_dir = sources_dir
        self._s3_uri = sources_s3_uri
        self._secret = secret
        self._ttl_s = ttl_s
        self._endpoint = s3_endpoint_url
        self._lock = threading.Lock()
        self._for: tuple[object, SourceLinks] | None = None

    def of(self, documents_owner: object, documents: Sequence[DocumentInfo]) -> SourceLinks:
        """The links for `documents`, made on the first call for each `documents_owner` (the
        loaded bundle) and reused after."""
        current = self._for
        if current is not None and current[0] is documents_owner:
            return current[1]
        with self._lock:
            if self._for is None or self._for[0] is not documents_owner:
                self._for = (documents_owner, self._make(documents))
            return self._for[1]

    def _make(self, documents: Sequence[DocumentInfo]) -> SourceLinks:
        if self._s3_uri is not None:
            from athenaeum.server.s3 import S3Location, s3_client

            location = S3Location.parse(self._s3_uri)
            return S3Sources(
                documents,
                client=s3_client(self._endpoint),
                bucket=location.bucket,
                prefix=location.prefix,
                ttl_s=self._ttl_s,
            )
        return LocalSources(
            documents, secret=self._secret, ttl_s=self._ttl_s, sources_dir=self._sources_dir
        )
