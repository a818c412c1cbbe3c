"""Links that open a cited document's original file at the cited page, without a bearer token.

A link is `{base}/sources/{token}#page=N`, the token one path segment of 38 base64url
characters that packs three things: the key, the start of the file's sha256 (8 bytes), so a link
names a document, never a path, and no request can reach a file the index does not name; the
expiry (4 bytes, Unix seconds); and an HMAC-SHA256 over the key and the expiry (16 bytes) with a
secret of the server's (`ATHENAEUM_LINK_SECRET`, or on AWS a generated Secrets Manager secret),
so a link is scoped to that one file and expires (`link_ttl_s`, one hour by default). Links of
the earlier form, `{base}/sources/{key}?expires=…&signature=…`, the same three in hex, digits
and base64url, still open. `#page=N` opens browsers' PDF viewers at the page. Clicked, the link
is answered one of two ways:

- `LocalSources` (`athenaeum serve`): the server streams the file from where `convert` recorded
  it, or from `--sources DIR`, while its sha256 is still the one the index recorded.
- `S3Sources` (on AWS): the file is in the stack's bucket: in the library (a document the
  ingest function made records its key there) or, uploaded by deploy.sh, under
  `sources/{sha256}/{file name}`; the function answers with a redirect to an S3 presigned GET
  URL, made at that moment and valid for minutes, with the function's read access to that
  prefix and nothing else.

Links are short on purpose: a chat answer's Sources block must fit a `max_tokens` budget, and a
presigned URL made with a Lambda role's session credentials is long (its session token alone is
hundreds of tokens of the index's tokenizer); the redirect keeps it out of the answer. The token
is one segment of base64url because the index's word-piece tokenizer spends fewer tokens on it
than on the same bytes as hex, decimal digits and named query parameters.

A document whose file is unknown, missing or changed gets no link (None), never a broken one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import quote

from starlette.responses import FileResponse, RedirectResponse, Response

from athenaeum.bundle.hashing import sha256_file
from athenaeum.bundle.manifest import DocumentInfo
from athenaeum.errors import (
    AthenaeumError,
    LinkRefusedError,
    LinkSecretUnavailableError,
    NotFoundError,
)
from athenaeum.retrieval import citations
from athenaeum.retrieval.access import ScopedBackend
from athenaeum.retrieval.backend import Hit

logger = logging.getLogger("athenaeum.sources")

SOURCES_PATH = "/sources/"  # public: a link's signature is its credential
SOURCES_ROUTE = SOURCES_PATH + "{key}"
SOURCES_ROOT = "sources"  # the bucket prefix deploy.sh uploads the files to
KEY_CHARS = 16  # hex digits of the file's sha256: 64 bits name a file in one library
SIGNATURE_BYTES = 16  # HMAC-SHA256 truncated to 128 bits (RFC 2104 section 5)
_KEY_BYTES = KEY_CHARS // 2
_EXPIRY_BYTES = 4  # Unix seconds, unsigned: until 2106
TOKEN_CHARS = -(-(_KEY_BYTES + _EXPIRY_BYTES + SIGNATURE_BYTES) * 4 // 3)  # unpadded base64
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_CHARS}}}")
REDIRECT_TTL_S = 300  # a presigned URL behind a link: the browser follows it at once
MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".epub": "application/epub+zip",
}
_WEB_PAGES = (".html", ".htm", ".xhtml")
# A library's web page is shown as a document, never run as this server's page: no scripts,
# forms or requests, in an origin of its own (CSP sandbox), whatever the page holds.
WEB_PAGE_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_MISSING_RETRY_S = 60.0  # how long "not in the bucket" is believed before asking again


@dataclass(frozen=True)
class SourceFile:
    """A document's original file as the index names it."""

    key: str
    name: str  # the file name, for the download
    doc: DocumentInfo

    @property
    def sha256(self) -> str:
        assert self.doc.source_file is not None
        return self.doc.source_file.sha256

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(PurePosixPath(self.name).suffix.lower(), "application/octet-stream")


_DECLARED_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)|^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""",
    re.IGNORECASE,
)


def page_charset(path: Path) -> str:
    """The charset a web page declares (a byte-order mark, `<meta charset>`, an XML declaration),
    else UTF-8 if it reads as UTF-8, else Windows-1252, as browsers assume of legacy pages."""
    with path.open("rb") as handle:
        head = handle.read(8192)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    declared = _DECLARED_CHARSET.search(head)
    if declared:
        return (declared.group(1) or declared.group(2)).decode("ascii").lower()
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the sample
            return "windows-1252"
    return "utf-8"


def page_fragment(name: str, page: int | None, anchor: str | None = None) -> str:
    """What opens the file where the passage is: `#page=N` in a PDF viewer, the section's id on
    a web page; nothing for a format a browser downloads."""
    lowered = name.lower()
    if page is not None and lowered.endswith(".pdf"):
        return f"#page={page}"
    if anchor and lowered.endswith(_WEB_PAGES):
        return "#" + quote(anchor, safe="-._~!$&'()*+,;=:@/?")
    return ""


def source_key(prefix: str, sha256: str, name: str) -> str:
    """Where a source file lives in the bucket: content-addressed, under its own prefix."""
    return f"{prefix.strip('/')}/{sha256}/{name}"


def content_disposition(name: str) -> str:
    """Content-Disposition that shows the file in the browser under its own name (RFC 6266)."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "'")
    return f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


class SourceLinks(Protocol):
    def link(
        self, doc_id: str, page: int | None, base_url: str, anchor: str | None = None
    ) -> str | None:
        """A link that opens the document's original file at `page` (or the section `anchor`
        names), or None."""
        ...


class ReadableLinks:
    """Links made only for the documents a caller may read (athenaeum.retrieval.access): a
    link is never made for another, whatever asks for one."""

    def __init__(self, links: SourceLinks, view: ScopedBackend) -> None:
        self._links = links
        self._view = view

    def link(
        self, doc_id: str, page: int | None, base_url: str, anchor: str | None = None
    ) -> str | None:
        if not self._view.holds(doc_id):
            return None
        return self._links.link(doc_id, page, base_url, anchor)


def citation_links(hits: list[Hit], sources: SourceLinks, base: str) -> list[str]:
    """Each hit's link: its original file at the page where the server has it, else the chunk
    view (which an API client opens with its token)."""
    return [
        sources.link(h.chunk.doc_id, h.chunk.page_start, base, h.chunk.anchor)
        or citations.link(base, h.chunk.id)
        for h in hits
    ]


class SignedLinks:
    """Signed, expiring links to the documents' files; subclasses say whether a file is there
    to link to, and how a click is answered."""

    def __init__(
        self,
        documents: Sequence[DocumentInfo],
        *,
        secret: Callable[[], bytes],
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.files: dict[str, SourceFile] = {}
        self._by_doc: dict[str, SourceFile] = {}
        for doc in documents:
            if doc.source_file is None:
                continue
            key = doc.source_file.sha256[:KEY_CHARS]
            # Identical files are one file; every document made from it links to it.
            found = self.files.setdefault(key, SourceFile(key, PurePosixPath(doc.source).name, doc))
            self._by_doc[doc.doc_id] = found
        self._secret = secret
        self._ttl_s = ttl_s
        self._clock = clock

    def available(self, source: SourceFile) -> bool:
        raise NotImplementedError

    def respond(self, source: SourceFile) -> Response:
        raise NotImplementedError

    def link(
        self, doc_id: str, page: int | None, base_url: str, anchor: str | None = None
    ) -> str | None:
        source = self._by_doc.get(doc_id)
        if source is None or not self.available(source):
            return None
        expires = min(int(self._clock()) + self._ttl_s, 2 ** (8 * _EXPIRY_BYTES) - 1)
        try:
            signature = self._sign(source.key, expires)
        except AthenaeumError as exc:  # the secret could not be read: no links, not a 500
            logger.warning("no source links: %s", exc.message)
            return None
        token = base64.urlsafe_b64encode(
            bytes.fromhex(source.key)
            + expires.to_bytes(_EXPIRY_BYTES, "big")
            + base64.urlsafe_b64decode(signature + "==")
        )
        return (
            f"{base_url}{SOURCES_PATH}{token.rstrip(b'=').decode()}"
            f"{page_fragment(source.name, page, anchor)}"
        )

    def open_path(self, segment: str, expires: str, signature: str) -> Response:
        """The answer to a click on `{base}/sources/{segment}`: a token, or a key with the
        expiry and signature as query parameters (the earlier form)."""
        if expires or signature or not _TOKEN.fullmatch(segment):
            return self.open(segment, expires, signature)
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
            # The last character's unused bits set: one link, one spelling.
            raise LinkRefusedError("the link is malformed", param="signature")
        key, rest = raw[:_KEY_BYTES], raw[_KEY_BYTES:]
        expiry, mac = rest[:_EXPIRY_BYTES], rest[_EXPIRY_BYTES:]
        return self.open(
            key.hex(),
            str(int.from_bytes(expiry, "big")),
            base64.urlsafe_b64encode(mac).rstrip(b"=").decode(),
        )

    def open(self, key: str, expires: str, signature: str) -> Response:
        """The answer to a click: LinkRefusedError (403) for a link that is not valid, or has
        expired; NotFoundError (404) for a file that is no longer there."""
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
        if source is None or not self.available(source):
            raise NotFoundError("the linked file is no longer available on this server")
        return self.respond(source)

    def _sign(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        mac = hmac.new(self._secret(), message, hashlib.sha256).digest()[:SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


# --- local ------------------------------------------------------------------------------------


class LocalSources(SignedLinks):
    """Serves the files itself (see the module docstring)."""

    def __init__(
        self,
        documents: Sequence[DocumentInfo],
        *,
        secret: Callable[[], bytes],
        ttl_s: int,
        sources_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(documents, secret=secret, ttl_s=ttl_s, clock=clock)
        self._dir = sources_dir.resolve() if sources_dir is not None else None
        self._verified: dict[str, tuple[Path, int, int]] = {}  # key -> path, size, mtime_ns
        self._lock = threading.Lock()

    def available(self, source: SourceFile) -> bool:
        return self.path(source) is not None

    def respond(self, source: SourceFile) -> Response:
        path = self.path(source)
        if path is None:
            raise NotFoundError("the linked file is no longer available on this server")
        headers = {
            "Content-Disposition": content_disposition(source.name),
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        }
        media_type = source.media_type
        if source.name.lower().endswith(_WEB_PAGES):
            headers["Content-Security-Policy"] = WEB_PAGE_POLICY
            # The page's own charset: a text/* response otherwise goes out as UTF-8, which
            # would garble a page written in Shift_JIS or Windows-1252.
            media_type = f"{media_type}; charset={page_charset(path)}"
        return FileResponse(path, media_type=media_type, headers=headers)

    def path(self, source: SourceFile) -> Path | None:
        """Where the file is now, if it is there and still has the recorded sha256 (hashed once,
        then again only when its size or modification time changes)."""
        candidate = self._candidate(source)
        if candidate is None:
            return None
        try:
            stat = candidate.stat()
        except OSError:
            return None
        if self._verified.get(source.key) == (candidate, stat.st_size, stat.st_mtime_ns):
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


# --- S3 ---------------------------------------------------------------------------------------


class S3Sources(SignedLinks):
    """Redirects to presigned URLs of the copies deploy.sh uploaded (see the module docstring)."""

    def __init__(
        self,
        documents: Sequence[DocumentInfo],
        *,
        client: Any,
        bucket: str,
        prefix: str = SOURCES_ROOT,
        secret: Callable[[], bytes],
        ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(documents, secret=secret, ttl_s=ttl_s, clock=clock)
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._present: set[str] = set()
        self._missing: dict[str, float] = {}  # key -> when it was found missing

    def _object_key(self, source: SourceFile) -> str:
        # A document ingested from the library (by the ingest function) records its file's place in
        # this bucket; a bundle's other documents are under their sha256 (deploy.sh's upload).
        file = source.doc.source_file
        location = file.location if file is not None else None
        mine = f"s3://{self._bucket}/"
        if location is not None and location.startswith(mine):
            return location[len(mine) :]
        return source_key(self._prefix, source.sha256, source.name)

    def available(self, source: SourceFile) -> bool:
        if source.key in self._present:
            return True
        missed = self._missing.get(source.key)
        if missed is not None and time.monotonic() - missed < _MISSING_RETRY_S:
            return False
        key = self._object_key(source)
        try:
            self._client.head_object(Bucket=self._bucket, Key=key)
        except Exception as exc:  # 404, or 403 (no s3:ListBucket turns a 404 into a 403)
            logger.info(
                "no source file for %s at s3://%s/%s: %s", source.doc.doc_id, self._bucket, key, exc
            )
            self._missing[source.key] = time.monotonic()
            return False
        self._present.add(source.key)
        return True

    def respond(self, source: SourceFile) -> Response:
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": self._object_key(source),
                "ResponseContentType": source.media_type,
                "ResponseContentDisposition": content_disposition(source.name),
            },
            ExpiresIn=REDIRECT_TTL_S,
        )
        # 302, not 301/308: the target is made for this click and expires.
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


# --- the secret --------------------------------------------------------------------------------


def fixed_secret(value: bytes) -> Callable[[], bytes]:
    return lambda: value


def random_secret() -> Callable[[], bytes]:
    """A secret for this process only: its links stop working when it ends, which for a local
    server is what one expects."""
    return fixed_secret(secrets.token_bytes(32))


class SecretsManagerSecret:
    """The link secret kept in a Secrets Manager secret (on AWS, one the stack generates), read
    on first use and kept; a failed read raises (503 for a click; no links meanwhile) and the
    next use reads again."""

    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id
        self._value: bytes | None = None

    def __call__(self) -> bytes:
        if self._value is None:
            from athenaeum.server.secrets import read_secret

            self._value = read_secret(
                self.secret_id,
                purpose="the source-link secret",
                error=LinkSecretUnavailableError,
            ).encode()
        return self._value


# --- per index --------------------------------------------------------------------------------


class SourceLinker:
    """The links of the index being served: made once per loaded backend, from the settings."""

    def __init__(
        self,
        *,
        sources_dir: Path | None,
        sources_s3_uri: str | None,
        secret: Callable[[], bytes],
        ttl_s: int,
        s3_endpoint_url: str | None = None,
    ) -> None:
        self._sources_dir = sources_dir
        self._s3_uri = sources_s3_uri
        self._secret = secret
        self._ttl_s = ttl_s
        self._endpoint = s3_endpoint_url
        self._lock = threading.Lock()
        self._for: tuple[object, SignedLinks] | None = None

    def cached(self, documents_owner: object) -> SignedLinks | None:
        """The links already made for `documents_owner`, or None."""
        current = self._for
        return current[1] if current is not None and current[0] is documents_owner else None

    def of(self, documents_owner: object, documents: Sequence[DocumentInfo]) -> SignedLinks:
        """The links for `documents`, made on the first call for each `documents_owner` (the
        loaded search backend) and reused after."""
        current = self._for
        if current is not None and current[0] is documents_owner:
            return current[1]
        with self._lock:
            if self._for is None or self._for[0] is not documents_owner:
                self._for = (documents_owner, self._make(documents))
            return self._for[1]

    def _make(self, documents: Sequence[DocumentInfo]) -> SignedLinks:
        if self._s3_uri is not None:
            from athenaeum.storage.client import s3_client
            from athenaeum.storage.location import S3Location

            location = S3Location.parse(self._s3_uri, what="ATHENAEUM_SOURCES_S3_URI")
            return S3Sources(
                documents,
                client=s3_client(self._endpoint),
                bucket=location.bucket,
                prefix=location.prefix,
                secret=self._secret,
                ttl_s=self._ttl_s,
            )
        return LocalSources(
            documents, secret=self._secret, ttl_s=self._ttl_s, sources_dir=self._sources_dir
        )
