"""`athenaeum push`: make the library, an S3 prefix, match a local folder.

What goes up: documents (.pdf, .docx, .pptx, .xlsx, .html, .htm, .xhtml, .epub, .md, .markdown,
.txt, in any case) found recursively under the
folder, each to `PREFIX/<its path relative to the folder>` with `/` between the parts. Hidden
files and folders (dot-names) are left out; every other file is reported as skipped.

Changed means a different sha256. Every object push writes carries the file's sha256 (hex) in
its user metadata `sha256`. ListObjectsV2 returns a key's size and ETag but no metadata, so:

- a document with no object at its key, or an object of another size, is uploaded without
  asking anything more;
- an object of the same size is asked with HeadObject (in parallel): the same `sha256`
  metadata means unchanged. An object without it (put there by another S3 tool) is unchanged
  when its ETag is a single-part MD5 equal to the file's (an ETag is not an MD5 after a
  multipart upload or under SSE-KMS: such an object is uploaded once more, and has the
  metadata from then on).

A manifest object listing the hashes would save the HEADs, but it goes stale as soon as anyone
changes the prefix with another S3 tool, which the library allows; asking only about objects of
the same size keeps a first push, and a push of new or resized files, at one listing.

Integrity: a file below the multipart threshold is sent with its sha256 as `ChecksumSHA256`, so
S3 refuses the PUT unless the bytes it received are the bytes that were hashed. A larger file
goes by multipart (boto3's managed transfer) with a SHA-256 checksum per part, which S3 checks
as each part arrives (S3 keeps no full-object SHA-256 for multipart uploads, only one over the
parts' checksums); when it completes, that composite checksum is compared with one computed
while the file was hashed, so a file that changed during the upload is reported as failed
rather than left recorded under a sha256 its bytes do not have.

Uploads go before deletes, so a renamed file is never missing from the prefix. `delete` removes
only objects push manages, document keys (that pass the include/exclude filters, which protect
remote keys as they select local files) with no local file; anything else under the prefix
(another tool's files, folder markers, keys with `..` or empty segments, which no local path
produces) is left as it is, and nothing outside `PREFIX/` is ever listed or touched.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from athenaeum.errors import (
    AccessDeniedError,
    AthenaeumError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
)
from athenaeum.storage.client import s3_client
from athenaeum.storage.errors import MISSING, describe_error, error_code
from athenaeum.storage.library import MEDIA_TYPES, is_document
from athenaeum.storage.listing import list_objects
from athenaeum.storage.location import S3Location

SHA256_METADATA = "sha256"  # as infra.index.upload records it on the bundle's files
# boto3's own defaults; S3 takes parts of 5 MiB and more.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNKSIZE = 8 * 1024 * 1024
WORKERS = 8  # parallel HEADs, and parallel requests in the transfer manager
_READ = 1 << 20
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
_DENIED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
    }
)

Stage = Literal["hashing", "uploading"]
# (stage, bytes done since the last call, the stage's total bytes); called from worker threads
# while uploading, and with a negative count when a part is retried.
ProgressCallback = Callable[[Stage, int, int], None]


# --- what is where ---------------------------------------------------------------------------


def parse_library_uri(uri: str) -> S3Location:
    """`s3://BUCKET/PREFIX`, refused unless it names both: push never manages a whole bucket."""
    if not uri.startswith("s3://"):
        raise InvalidInputError(f"{uri!r} is not an S3 URI: give s3://BUCKET/PREFIX", param="uri")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise InvalidInputError(f"{uri!r} names no bucket: give s3://BUCKET/PREFIX", param="uri")
    if not prefix:
        raise InvalidInputError(
            f"{uri!r} names no prefix: give s3://BUCKET/PREFIX (for example "
            f"s3://{bucket}/library); push manages one prefix, never a whole bucket",
            param="uri",
        )
    if any(part in ("", ".", "..") for part in prefix.split("/")):
        raise InvalidInputError(
            f"{uri!r}: the prefix may not have empty, '.' or '..' parts", param="uri"
        )
    return S3Location(bucket, prefix)


@dataclass(frozen=True, slots=True)
class LocalDocument:
    rel: str  # the path under the folder, with "/": the key under the prefix
    path: Path
    size: int


@dataclass(frozen=True, slots=True)
class Skipped:
    rel: str
    size: int
    reason: str


NOT_A_DOCUMENT = "not a document"
FILTERED_OUT = "filtered out"


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    # As `athenaeum index` matches: against the relative path (where `*` also crosses `/`) and
    # the bare file name, so both `drafts/*` and `*.txt` do what they look like.
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _selected(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    return (not include or _matches(rel, include)) and not (exclude and _matches(rel, exclude))


def scan(
    directory: Path, *, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[LocalDocument], list[Skipped]]:
    """The documents under `directory` that pass the filters, and every other visible file."""
    _check_folder(directory)
    documents: list[LocalDocument] = []
    skipped: list[Skipped] = []

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename or directory)
        rel = where.relative_to(directory).as_posix() if where != directory else "."
        skipped.append(Skipped(rel, 0, f"folder not readable ({exc.strerror})"))

    # Symlinked folders are not followed (no cycles, nothing outside the folder by surprise);
    # a symlinked file is pushed with its target's bytes, as `aws s3 sync` does.
    for root, folders, files in os.walk(directory, onerror=unreadable):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        here = Path(root)
        parts = here.relative_to(directory).parts
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = here / name
            rel = "/".join((*parts, name))
            try:
                size = path.stat().st_size
            except OSError as exc:
                skipped.append(Skipped(rel, 0, f"not readable ({exc.strerror})"))
                continue
            if not path.is_file():
                skipped.append(Skipped(rel, 0, "not a regular file"))
            elif not is_document(rel):
                skipped.append(Skipped(rel, size, NOT_A_DOCUMENT))
            elif not _selected(rel, include, exclude):
                skipped.append(Skipped(rel, size, FILTERED_OUT))
            elif not _utf8(rel):
                skipped.append(Skipped(rel, size, "name is not valid UTF-8, which S3 keys are"))
            else:
                documents.append(LocalDocument(rel, path, size))
    return documents, skipped


def _check_folder(directory: Path) -> None:
    if not directory.exists():
        raise InvalidInputError(f"{directory} does not exist", param="dir")
    if not directory.is_dir():
        raise InvalidInputError(f"{directory} is not a folder", param="dir")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def managed_rel(key: str, location: S3Location) -> str | None:
    """The relative path of a key under the prefix when it is one push could have written: a
    document, every part a plain visible name. None for anything else."""
    rel = key.removeprefix(location.prefix + "/")
    if rel == key:
        return None
    if any(not part or part.startswith(".") for part in rel.split("/")):
        return None  # "", ".", "..", hidden parts, folder markers ("a/")
    return rel if is_document(rel) else None


# --- hashing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HashedDocument:
    rel: str
    path: Path
    size: int  # as hashed
    sha256: str  # hex
    # base64 of the sha256 over the parts' sha256 digests: what S3 reports for a multipart
    # upload in parts of the size the transfer manager will use. None below the threshold.
    parts_sha256: str | None = None

    @property
    def sha256_base64(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


def part_size(size: int, *, threshold: int, chunksize: int) -> int | None:
    """The part size boto3's transfer manager will use for a file of `size` bytes, or None when
    it sends it in one request."""
    if size < threshold:
        return None
    from s3transfer.utils import ChunksizeAdjuster  # type: ignore[import-untyped]

    adjusted: int = ChunksizeAdjuster().adjust_chunksize(chunksize, size)
    return adjusted


def hash_document(
    doc: LocalDocument, parts: int | None = None, on_bytes: Callable[[int], None] | None = None
) -> HashedDocument:
    """sha256 of the file and, with a part size, the composite checksum over its parts."""
    whole = hashlib.sha256()
    digests: list[bytes] = []
    part = hashlib.sha256()
    in_part = size = 0
    with doc.path.open("rb") as f:
        while True:
            block = f.read(_READ if parts is None else min(_READ, parts - in_part))
            if not block:
                break
            whole.update(block)
            size += len(block)
            if on_bytes is not None:
                on_bytes(len(block))
            if parts is not None:
                part.update(block)
                in_part += len(block)
                if in_part == parts:
                    digests.append(part.digest())
                    part, in_part = hashlib.sha256(), 0
    composite = None
    if parts is not None:
        if in_part:
            digests.append(part.digest())
        composite = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    return HashedDocument(doc.rel, doc.path, size, whole.hexdigest(), composite)


def _md5(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteObject:
    key: str
    size: int
    etag: str


class Change(StrEnum):
    NEW = "new"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Upload:
    key: str
    document: HashedDocument
    change: Change


@dataclass(frozen=True, slots=True)
class Failure:
    key: str
    reason: str


@dataclass(frozen=True)
class PushPlan:
    location: S3Location
    uploads: tuple[Upload, ...]
    unchanged: tuple[HashedDocument, ...]
    orphans: tuple[RemoteObject, ...]  # push's objects with no local file: what delete removes
    skipped: tuple[Skipped, ...]
    failed: tuple[Failure, ...]  # documents that could not be read or compared
    others: int  # objects under the prefix that push does not manage, left as they are


def plan_push(
    client: Any,
    directory: Path,
    location: S3Location,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    multipart_threshold: int = MULTIPART_THRESHOLD,
    multipart_chunksize: int = MULTIPART_CHUNKSIZE,
    on_progress: ProgressCallback | None = None,
) -> PushPlan:
    """What a push would do; reads the folder and the prefix, writes nothing."""
    documents, skipped = scan(directory, include=include, exclude=exclude)
    # The listing first: a missing bucket or a refused listing fails before any file is read.
    remote: dict[str, RemoteObject] = {}
    others = 0
    for obj in _list(client, location):
        rel = managed_rel(obj.key, location)
        if rel is None or not _selected(rel, include, exclude):
            others += 1
        else:
            remote[rel] = obj

    total = sum(d.size for d in documents)
    hashed: list[HashedDocument] = []
    failed: list[Failure] = []
    for doc in documents:
        parts = part_size(doc.size, threshold=multipart_threshold, chunksize=multipart_chunksize)
        try:
            hashed.append(
                hash_document(
                    doc,
                    parts,
                    None if on_progress is None else lambda n: on_progress("hashing", n, total),
                )
            )
        except OSError as exc:
            failed.append(Failure(location.key(doc.rel), f"could not read {doc.path}: {exc}"))

    same_size = [h for h in hashed if h.rel in remote and remote[h.rel].size == h.size]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        verdicts = dict(
            zip(
                (h.rel for h in same_size),
                pool.map(lambda h: _compare(client, location, h), same_size),
                strict=True,
            )
        )
    uploads: list[Upload] = []
    unchanged: list[HashedDocument] = []
    for h in hashed:
        key = location.key(h.rel)
        verdict = verdicts.get(h.rel, Change.CHANGED if h.rel in remote else Change.NEW)
        if isinstance(verdict, Failure):
            failed.append(verdict)
        elif verdict is None:
            unchanged.append(h)
        else:
            uploads.append(Upload(key, h, verdict))
    local = {d.rel for d in documents}
    return PushPlan(
        location=location,
        uploads=tuple(uploads),
        unchanged=tuple(unchanged),
        orphans=tuple(remote[rel] for rel in sorted(remote.keys() - local)),
        skipped=tuple(skipped),
        failed=tuple(failed),
        others=others,
    )


def _list(client: Any, location: S3Location) -> list[RemoteObject]:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        return [
            RemoteObject(obj.key, obj.size, obj.etag)
            for obj in list_objects(client, location.bucket, location.prefix + "/")
        ]
    except (BotoCoreError, ClientError) as exc:
        raise _fatal(exc, location, "list") from exc


def _compare(client: Any, location: S3Location, doc: HashedDocument) -> Change | Failure | None:
    """None when the object at the document's key holds the same bytes."""
    from botocore.exceptions import BotoCoreError, ClientError

    key = location.key(doc.rel)
    try:
        head = client.head_object(Bucket=location.bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in MISSING:
            return Change.NEW  # deleted since it was listed
        return Failure(key, f"could not compare with the object in S3: {describe_error(exc)}")
    except BotoCoreError as exc:
        return Failure(key, f"could not compare with the object in S3: {describe_error(exc)}")
    if int(head.get("ContentLength", -1)) != doc.size:
        return Change.CHANGED  # replaced since it was listed
    recorded = (head.get("Metadata") or {}).get(SHA256_METADATA)
    if recorded:
        return None if str(recorded).lower() == doc.sha256 else Change.CHANGED
    etag = str(head.get("ETag") or "").strip('"').lower()
    try:
        same = bool(_MD5_ETAG.fullmatch(etag)) and etag == _md5(doc.path)
    except OSError as exc:
        return Failure(key, f"could not read {doc.path}: {exc}")
    return None if same else Change.CHANGED


# --- doing it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushReport:
    location: S3Location
    dry_run: bool
    delete: bool
    uploaded: tuple[Upload, ...]  # in a dry run: what would be
    unchanged: tuple[HashedDocument, ...]
    deleted: tuple[RemoteObject, ...]  # in a dry run: what would be; empty without delete
    kept: tuple[RemoteObject, ...]  # push's objects with no local file, kept without delete
    skipped: tuple[Skipped, ...]
    failed: tuple[Failure, ...]
    others: int

    @property
    def ok(self) -> bool:
        return not self.failed


def push(
    directory: Path,
    uri: str,
    *,
    delete: bool = False,
    dry_run: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    client: Any = None,
    multipart_threshold: int = MULTIPART_THRESHOLD,
    multipart_chunksize: int = MULTIPART_CHUNKSIZE,
    on_progress: ProgressCallback | None = None,
) -> PushReport:
    """Make the prefix `uri` match `directory`: upload new and changed documents and, with
    `delete`, delete push's objects that have no local file. A file that fails is reported in
    the result and the others go on; a missing bucket or a refused listing raises."""
    location = parse_library_uri(uri)
    _check_folder(directory)  # before any request
    client = client if client is not None else s3_client(transfer_workers=WORKERS)
    plan = plan_push(
        client,
        directory,
        location,
        include=include,
        exclude=exclude,
        multipart_threshold=multipart_threshold,
        multipart_chunksize=multipart_chunksize,
        on_progress=on_progress,
    )
    kept = () if delete else plan.orphans
    if dry_run:
        return PushReport(
            location,
            True,
            delete,
            plan.uploads,
            plan.unchanged,
            plan.orphans if delete else (),
            kept,
            plan.skipped,
            plan.failed,
            plan.others,
        )
    uploaded, upload_failures = _upload(
        client,
        location,
        plan.uploads,
        threshold=multipart_threshold,
        chunksize=multipart_chunksize,
        on_progress=on_progress,
    )
    deleted: tuple[RemoteObject, ...] = ()
    delete_failures: list[Failure] = []
    if delete:
        deleted, delete_failures = _delete(client, location, plan.orphans)
    return PushReport(
        location,
        False,
        delete,
        uploaded,
        plan.unchanged,
        deleted,
        kept,
        plan.skipped,
        (*plan.failed, *upload_failures, *delete_failures),
        plan.others,
    )


def _upload(
    client: Any,
    location: S3Location,
    uploads: Sequence[Upload],
    *,
    threshold: int,
    chunksize: int,
    on_progress: ProgressCallback | None,
) -> tuple[tuple[Upload, ...], list[Failure]]:
    if not uploads:
        return (), []
    from boto3.s3.transfer import (  # type: ignore[import-untyped]
        ProgressCallbackInvoker,
        TransferConfig,
        create_transfer_manager,
    )

    config = TransferConfig(
        multipart_threshold=threshold,
        multipart_chunksize=chunksize,
        max_concurrency=WORKERS,
        preferred_transfer_client="classic",  # the part size hash_document assumed
    )
    total = sum(u.document.size for u in uploads)
    subscribers = (
        []
        if on_progress is None
        else [ProgressCallbackInvoker(lambda n: on_progress("uploading", n, total))]
    )
    done: list[Upload] = []
    failed: list[Failure] = []
    with create_transfer_manager(client, config) as manager:
        futures = [
            (
                upload,
                manager.upload(
                    str(upload.document.path),
                    location.bucket,
                    upload.key,
                    extra_args=_upload_args(upload.document, threshold),
                    subscribers=subscribers,
                ),
            )
            for upload in uploads
        ]
        for upload, future in futures:
            try:
                future.result()
            except Exception as exc:  # any failure of one file: reported, the rest go on
                failed.append(Failure(upload.key, f"upload failed: {describe_error(exc)}"))
                continue
            problem = (
                _check_multipart(client, location, upload) if upload.document.parts_sha256 else None
            )
            if problem is None:
                done.append(upload)
            else:
                failed.append(Failure(upload.key, problem))
    return tuple(done), failed


def _upload_args(doc: HashedDocument, threshold: int) -> dict[str, Any]:
    args: dict[str, Any] = {
        "Metadata": {SHA256_METADATA: doc.sha256},
        "ContentType": MEDIA_TYPES.get(
            PurePosixPath(doc.rel).suffix.lower(), "application/octet-stream"
        ),
    }
    if doc.size < threshold:
        # The whole file's sha256: S3 refuses the PUT unless the bytes it got hash to it.
        args["ChecksumSHA256"] = doc.sha256_base64
    else:
        # Per part: S3 has no full-object SHA-256 for multipart uploads (given one, the
        # transfer manager would ask for a FULL_OBJECT checksum, which S3 refuses for SHA-256).
        args["ChecksumAlgorithm"] = "SHA256"
    return args


def _check_multipart(client: Any, location: S3Location, upload: Upload) -> str | None:
    """None when the object's checksum is the one computed from the file when it was hashed,
    or when the endpoint reports none; otherwise why not."""
    try:
        head = client.head_object(Bucket=location.bucket, Key=upload.key, ChecksumMode="ENABLED")
    except Exception as exc:
        return f"uploaded, but its checksum could not be read back: {describe_error(exc)}"
    reported = head.get("ChecksumSHA256")
    if not reported:
        return None  # an S3-compatible server that keeps none; each part was still checked
    value = str(reported).split("-", 1)[0]
    if value in (upload.document.parts_sha256, upload.document.sha256_base64):
        return None
    return (
        "the file changed while it was uploaded: the object's checksum is not the one of the "
        "bytes hashed, so its recorded sha256 is wrong; push again"
    )


def _delete(
    client: Any, location: S3Location, orphans: Sequence[RemoteObject]
) -> tuple[tuple[RemoteObject, ...], list[Failure]]:
    deleted: list[RemoteObject] = []
    failed: list[Failure] = []
    for start in range(0, len(orphans), _DELETE_BATCH):
        batch = orphans[start : start + _DELETE_BATCH]
        # Only keys listed under the prefix ever get here; checked again because this deletes.
        assert all(o.key.startswith(location.prefix + "/") for o in batch)
        try:
            response = client.delete_objects(
                Bucket=location.bucket,
                Delete={"Objects": [{"Key": o.key} for o in batch], "Quiet": True},
            )
        except Exception as exc:
            failed.extend(Failure(o.key, f"delete failed: {describe_error(exc)}") for o in batch)
            continue
        errors = {str(e.get("Key")): e for e in response.get("Errors") or []}
        for o in batch:
            error = errors.get(o.key)
            if error is None:
                deleted.append(o)
            else:
                failed.append(
                    Failure(o.key, f"delete failed: {error.get('Code')}: {error.get('Message')}")
                )
    return tuple(deleted), failed


# --- S3's errors in a line -------------------------------------------------------------------


def _fatal(exc: Exception, location: S3Location, action: str) -> AthenaeumError:
    from botocore.exceptions import (
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
    )

    code = error_code(exc)
    where = f"s3://{location.bucket}/{location.prefix}/"
    if code == "NoSuchBucket":
        return NotFoundError(
            f"the bucket {location.bucket!r} does not exist (at this endpoint, for these "
            "credentials)",
            code="no_such_bucket",
        )
    if code in _DENIED:
        return AccessDeniedError(
            f"S3 refused to {action} {where} ({describe_error(exc)}); push needs s3:ListBucket on "
            "the bucket and s3:GetObject and s3:PutObject (with --delete, s3:DeleteObject) on "
            "the prefix"
        )
    if isinstance(exc, NoCredentialsError):
        return AccessDeniedError(
            "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ParamValidationError):
        return InvalidInputError(f"{where}: {describe_error(exc)}", param="uri")
    if isinstance(exc, EndpointConnectionError):
        return ServiceUnavailableError(f"could not reach S3: {describe_error(exc)}")
    return ServiceUnavailableError(f"could not {action} {where}: {describe_error(exc)}")
