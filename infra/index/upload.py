"""Uploads an index bundle to the stack's bucket, for bundles too large for CloudFormation to copy,
and the original files the bundle was built from, which citations link to.

    uv run python -m infra.index.upload --bucket NAME --index DIR [--prefix index/<id>] [--prune]
    uv run python -m infra.index.upload --bucket NAME --index DIR --sources-only [--sources-dir D]

Each file the manifest lists goes to PREFIX/<path> with its sha256 in the object's metadata; a
file already there with the same size and sha256 is skipped, so an interrupted upload resumes.
The manifest goes last: the function reads it first, and a prefix without one is unfinished.
`--prune` then deletes every other bundle under the bucket's `index/` (older deployments): the
`index/<bundle id>/` prefixes only, never the published index beside them (`index/current.json`,
`index/versions/`, `index/blobs/`, ...), which the ingest function owns.

`--sources` (or `--sources-only`) uploads each original file the bundle's manifest names to
`sources/<sha256>/<file name>`, found where `convert` recorded it or under `--sources-dir`, and
only after checking its sha256 against the manifest's; a file that is missing or changed is
reported and skipped (its citations then carry no link), never uploaded in its changed form.
With `--prune`, source files no longer named by this bundle are deleted.

Credentials, region and endpoint come from the usual AWS settings (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL_S3 for an S3-compatible server).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from athenaeum.bundle import read_manifest
from athenaeum.bundle.format import MANIFEST_FILE
from athenaeum.bundle.hashing import sha256_file
from athenaeum.errors import AthenaeumError
from athenaeum.server.http.sources import MEDIA_TYPES, SOURCES_ROOT, source_key
from athenaeum.storage.client import s3_client
from athenaeum.storage.listing import list_folders, list_objects

INDEX_ROOT = "index"
BUNDLE_ID_CHARS = 16
# What a bundle's own prefix looks like under index/; anything else there is the published index.
_BUNDLE_PREFIX = re.compile(rf"{INDEX_ROOT}/[0-9a-f]{{{BUNDLE_ID_CHARS}}}/")
SHA256_METADATA = "sha256"


class UploadError(RuntimeError):
    """The bundle could not be uploaded; the message says which file and why."""


def bundle_id(index_dir: Path) -> str:
    """The bundle's identity: the start of its manifest's sha256 (the manifest lists every
    file's sha256, so any change to the bundle changes it)."""
    manifest = index_dir / MANIFEST_FILE
    if not manifest.is_file():
        raise UploadError(f"no index bundle at {index_dir} (no {MANIFEST_FILE})")
    return hashlib.sha256(manifest.read_bytes()).hexdigest()[:BUNDLE_ID_CHARS]


def bundle_prefix(index_dir: Path) -> str:
    return f"{INDEX_ROOT}/{bundle_id(index_dir)}"


@dataclass(frozen=True, slots=True)
class BundleFile:
    rel: str
    sha256: str
    size: int


def listed_files(index_dir: Path) -> list[BundleFile]:
    try:
        manifest = json.loads((index_dir / MANIFEST_FILE).read_text("utf-8"))
        files = [
            BundleFile(rel, str(info["sha256"]), int(info["bytes"]))
            for rel, info in manifest["files"].items()
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UploadError(
            f"{index_dir / MANIFEST_FILE} is not a valid index manifest: {exc}"
        ) from exc
    for item in files:
        path = index_dir.joinpath(*PurePosixPath(item.rel).parts)
        if not path.is_file() or path.stat().st_size != item.size:
            raise UploadError(
                f"{path} is missing or not the size its manifest lists; rebuild the bundle "
                "with `athenaeum index`"
            )
    return files


@dataclass(frozen=True, slots=True)
class UploadReport:
    uploaded: int
    skipped: int
    bytes_uploaded: int
    pruned: tuple[str, ...] = ()


def upload_bundle(
    client: Any, index_dir: Path, bucket: str, prefix: str, *, workers: int = 8
) -> UploadReport:
    prefix = prefix.strip("/")
    files = listed_files(index_dir)

    def send(item: BundleFile) -> int:
        key = f"{prefix}/{item.rel}"
        if _already_there(client, bucket, key, item):
            return -1
        try:
            client.upload_file(
                str(index_dir.joinpath(*PurePosixPath(item.rel).parts)),
                bucket,
                key,
                ExtraArgs={"Metadata": {SHA256_METADATA: item.sha256}},
            )
        except Exception as exc:  # boto3 raises S3UploadFailedError, ClientError, ...
            raise UploadError(f"could not upload {item.rel} to s3://{bucket}/{key}: {exc}") from exc
        return item.size

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(send, files))
    manifest_key = f"{prefix}/{MANIFEST_FILE}"
    try:
        client.upload_file(str(index_dir / MANIFEST_FILE), bucket, manifest_key)
    except Exception as exc:
        raise UploadError(
            f"could not upload the manifest to s3://{bucket}/{manifest_key}: {exc}"
        ) from exc
    sent = [size for size in results if size >= 0]
    return UploadReport(
        uploaded=len(sent), skipped=len(results) - len(sent), bytes_uploaded=sum(sent)
    )


def _already_there(client: Any, bucket: str, key: str, item: BundleFile) -> bool:
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception:  # 404, or anything else: upload it
        return False
    metadata = head.get("Metadata") or {}
    return bool(
        head.get("ContentLength") == item.size and metadata.get(SHA256_METADATA) == item.sha256
    )


@dataclass(frozen=True, slots=True)
class SourceFileToUpload:
    path: Path
    key: str
    sha256: str


@dataclass(frozen=True, slots=True)
class SourcesReport:
    uploaded: int
    skipped: int
    bytes_uploaded: int
    not_uploaded: tuple[str, ...]  # "<source>: <why>", one per file that gets no link
    pruned: int = 0


def bundle_sources(
    index_dir: Path,
    *,
    prefix: str = SOURCES_ROOT,
    sources_dir: Path | None = None,
    library: bool = False,
) -> tuple[list[SourceFileToUpload], list[str]]:
    """The source files the bundle names, found and checked, and why any other is left out.

    Keys are `prefix/<sha256>/<file name>`, or with `library` the document's own path under
    `prefix` (`library/reports/a.pdf`: where the ingest function expects the file a document
    `reports/a.md` was made from)."""
    try:
        manifest = read_manifest(index_dir)
    except AthenaeumError as exc:
        raise UploadError(exc.message) from exc
    found: dict[str, SourceFileToUpload] = {}
    problems: list[str] = []
    for doc in manifest.documents:
        recorded = doc.source_file
        slot = f"{prefix}/{doc.source}" if library else recorded.sha256 if recorded else ""
        if recorded is None or slot in found:
            continue  # not converted from a file, or the same bytes as one already found
        if sources_dir is not None:
            path: Path | None = sources_dir.joinpath(*PurePosixPath(doc.source).parts)
        else:
            path = Path(recorded.location) if recorded.location else None
        if path is None:
            problems.append(f"{doc.source}: convert recorded no location (give --sources-dir)")
            continue
        if not path.is_file():
            problems.append(f"{doc.source}: not found at {path}")
            continue
        if sha256_file(path) != recorded.sha256:
            problems.append(f"{doc.source}: {path} has changed since it was indexed")
            continue
        key = (
            slot if library else source_key(prefix, recorded.sha256, PurePosixPath(doc.source).name)
        )
        found[slot] = SourceFileToUpload(path, key, recorded.sha256)
    return list(found.values()), problems


def upload_sources(
    client: Any,
    index_dir: Path,
    bucket: str,
    *,
    prefix: str = SOURCES_ROOT,
    sources_dir: Path | None = None,
    prune_others: bool = False,
    workers: int = 8,
    library: bool = False,
) -> SourcesReport:
    files, problems = bundle_sources(
        index_dir, prefix=prefix, sources_dir=sources_dir, library=library
    )

    def send(item: SourceFileToUpload) -> int:
        size = item.path.stat().st_size
        if _already_there(client, bucket, item.key, BundleFile(item.key, item.sha256, size)):
            return -1
        media = MEDIA_TYPES.get(item.path.suffix.lower(), "application/octet-stream")
        try:
            client.upload_file(
                str(item.path),
                bucket,
                item.key,
                ExtraArgs={"Metadata": {SHA256_METADATA: item.sha256}, "ContentType": media},
            )
        except Exception as exc:
            raise UploadError(
                f"could not upload {item.path} to s3://{bucket}/{item.key}: {exc}"
            ) from exc
        return size

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(send, files))
    pruned = 0
    if prune_others:
        keep = {item.key for item in files}
        stale = [k for k in _keys(client, bucket, prefix.strip("/") + "/") if k not in keep]
        for batch in _batches(iter(stale), 1000):
            client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
        pruned = len(stale)
    sent = [size for size in results if size >= 0]
    return SourcesReport(
        uploaded=len(sent),
        skipped=len(results) - len(sent),
        bytes_uploaded=sum(sent),
        not_uploaded=tuple(problems),
        pruned=pruned,
    )


def other_bundles(client: Any, bucket: str, keep_prefix: str) -> list[str]:
    """The `index/<bundle id>/` prefixes in the bucket other than `keep_prefix` (never the
    published index's own prefixes beside them)."""
    keep = keep_prefix.strip("/") + "/"
    found = []
    for prefix in list_folders(client, bucket, f"{INDEX_ROOT}/"):
        if not _BUNDLE_PREFIX.fullmatch(prefix) or prefix == keep:
            continue
        # Only prefixes that still hold objects (some S3 implementations list prefixes whose
        # objects are all behind delete markers); the first page answers that.
        if next(list_objects(client, bucket, prefix), None) is not None:
            found.append(prefix)
    return found


def prune(client: Any, bucket: str, keep_prefix: str) -> tuple[str, ...]:
    """Deletes every other bundle under `index/`; the bucket's versioning keeps the deleted
    objects as noncurrent versions until its lifecycle rule expires them."""
    pruned = other_bundles(client, bucket, keep_prefix)
    for prefix in pruned:
        for batch in _batches(_keys(client, bucket, prefix), 1000):
            client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
    return tuple(pruned)


def _keys(client: Any, bucket: str, prefix: str) -> Iterator[str]:
    for obj in list_objects(client, bucket, prefix):
        yield obj.key


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.index.upload", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", help="default: index/<bundle id> of --index")
    parser.add_argument("--index", type=Path, required=True, help="the bundle folder")
    parser.add_argument("--prune", action="store_true", help="delete other bundles afterwards")
    parser.add_argument("--prune-only", action="store_true", help="only delete other bundles")
    parser.add_argument(
        "--sources", action="store_true", help="also upload the original files to sources/"
    )
    parser.add_argument(
        "--sources-only", action="store_true", help="only upload the original files"
    )
    parser.add_argument(
        "--sources-dir",
        type=Path,
        help="where the original files are, if not where `athenaeum convert` recorded them",
    )
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)

    client = s3_client(transfer_workers=args.workers)
    try:
        if args.sources or args.sources_only:
            sources = upload_sources(
                client,
                args.index,
                args.bucket,
                sources_dir=args.sources_dir,
                prune_others=args.prune,
                workers=args.workers,
            )
            print(
                f"sources: {sources.uploaded} files ({sources.bytes_uploaded / 1048576:.1f} MiB) "
                f"uploaded to s3://{args.bucket}/{SOURCES_ROOT}/, {sources.skipped} already "
                f"there, {sources.pruned} no longer named deleted"
            )
            for problem in sources.not_uploaded:
                print(f"warning: not uploaded, its citations get no link: {problem}")
            if args.sources_only:
                return 0
        prefix = args.prefix or bundle_prefix(args.index)
        if not args.prune_only:
            report = upload_bundle(client, args.index, args.bucket, prefix, workers=args.workers)
            print(
                f"index: {report.uploaded} files ({report.bytes_uploaded / 1048576:.1f} MiB) "
                f"uploaded to s3://{args.bucket}/{prefix}/, {report.skipped} already there"
            )
        if args.prune or args.prune_only:
            for old in prune(client, args.bucket, prefix):
                print(f"index: deleted the older bundle s3://{args.bucket}/{old}")
    except UploadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
