"""A bundle kept in S3, copied to local disk and verified on the way in.

The bundle is downloaded into a private temporary directory beside its cache path, every file
checked against the sha256 and size the manifest records, a verification record written
(athenaeum.bundle.verification: the loader then need not hash the files a second time), and
only then renamed into place; a truncated or corrupted object is refused and nothing
half-written is ever loaded. A complete copy left by an earlier process in the same container
(Lambda keeps /tmp while warm) is reused when its manifest is byte-identical to the remote one
and its record still vouches for its files; otherwise it is downloaded again.

Also the copy of a published version (athenaeum.storage.published), through `materialize`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Collection
from pathlib import Path, PurePosixPath
from typing import Any

from athenaeum.bundle.format import MANIFEST_FILE
from athenaeum.bundle.verification import check_record, manifest_sha256, stamps, write_record
from athenaeum.errors import BundleError, MissingDependencyError
from athenaeum.storage.client import s3_client
from athenaeum.storage.errors import describe_error
from athenaeum.storage.location import S3Location

logger = logging.getLogger("athenaeum.index")

_CHUNK = 1 << 20


def cache_path(location: S3Location, cache_dir: Path) -> Path:
    digest = hashlib.sha256(location.uri.encode()).hexdigest()[:16]
    return cache_dir / f"bundle-{digest}"


def fetch_s3_bundle(
    location: S3Location, cache_dir: Path, *, endpoint_url: str | None = None
) -> tuple[Path, bool]:
    """Make a complete, verified copy of the bundle at `location` under `cache_dir`.

    Returns the local path and whether this call downloaded it (False when an earlier copy with
    the same manifest was reused; its verification record says whether it is still intact).
    """
    try:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("boto3", "s3") from exc

    client = s3_client(endpoint_url)
    target = cache_path(location, cache_dir)
    try:
        manifest_bytes = _get_bytes(client, location.bucket, location.key(MANIFEST_FILE))
    except (BotoCoreError, ClientError) as exc:
        raise BundleError(
            f"could not read the index manifest {location.uri}/{MANIFEST_FILE}: "
            f"{describe_error(exc)}; the next request retries"
        ) from exc
    files = manifest_files(manifest_bytes, location.uri)

    keys = {rel: (location.key(rel), sha256, size) for rel, (sha256, size) in files.items()}
    downloaded = materialize(
        client, location.bucket, manifest_bytes, keys, target, uri=location.uri
    )
    if downloaded:
        logger.info(
            json.dumps({"event": "index_downloaded", "uri": location.uri, "files": len(files)})
        )
    return target, downloaded


def materialize(
    client: Any,
    bucket: str,
    manifest_bytes: bytes,
    keys: dict[str, tuple[str, str, int]],
    target: Path,
    *,
    uri: str,
    recorded: Collection[str] | None = None,
) -> bool:
    """Make `target` a complete, verified copy of a bundle: `manifest_bytes` and, for each of
    its files, `{rel: (key, sha256, size)}` in `bucket`. Returns False when `target` already was
    one (same manifest, and its verification record still vouches for its files).

    Downloaded into a private folder beside `target`, each file checked against its sha256 and
    size on the way in, the manifest written last, a verification record written, and only then
    renamed into place: nothing half-written is ever at `target`. The record vouches for
    `recorded` (default: every file), which must be the manifest's `files`: a file downloaded
    beside them (the document encoder) is checked on its way in all the same.
    """
    record_files = set(keys) if recorded is None else set(recorded)
    from botocore.exceptions import BotoCoreError, ClientError

    existing = target / MANIFEST_FILE
    if existing.is_file() and existing.read_bytes() == manifest_bytes:
        # Reused only while its record vouches for every file: a copy damaged since it was
        # downloaded is downloaded again rather than refused at every request.
        stale = check_record(target, manifest_sha256(manifest_bytes), record_files)
        if stale is None and not all((target / rel).is_file() for rel in keys):
            stale = "a file beside the manifest's is missing"
        if stale is None:
            logger.info(json.dumps({"event": "index_reused", "path": str(target)}))
            return False
        logger.info(json.dumps({"event": "index_redownload", "path": str(target), "why": stale}))

    cache_dir = target.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    tmp = cache_dir / f".{target.name}.tmp-{token}"
    tmp.mkdir()
    try:
        for rel, (key, sha256, size) in keys.items():
            dest = tmp.joinpath(*PurePosixPath(rel).parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                _download_verified(client, bucket, key, dest, sha256, size, uri=f"{uri}/{rel}")
            except (BotoCoreError, ClientError) as exc:
                raise BundleError(
                    f"could not download {uri}/{rel}: {describe_error(exc)}; "
                    "the next request retries"
                ) from exc
        # The manifest goes in last, as the writer does: a folder without one is unfinished.
        (tmp / MANIFEST_FILE).write_bytes(manifest_bytes)
        # Every file was hashed on its way in: recorded, so that the load skips a second pass.
        digest = manifest_sha256(manifest_bytes)
        write_record(tmp, digest, stamps(tmp, record_files), by="s3 download")
        if target.exists():
            old = cache_dir / f".{target.name}.old-{token}"
            target.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def manifest_files(manifest_bytes: bytes, uri: str) -> dict[str, tuple[str, int]]:
    """`{rel: (sha256, bytes)}` of the files a manifest lists; BundleError for a manifest that
    cannot be read or names a path outside the bundle. `uri` is where it came from."""
    try:
        manifest = json.loads(manifest_bytes)
        files = {
            str(rel): (str(info["sha256"]), int(info["bytes"]))
            for rel, info in manifest["files"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(
            f"{uri}/{MANIFEST_FILE} is not a valid index manifest ({exc}); upload the bundle again"
        ) from exc
    for rel in files:
        parts = PurePosixPath(rel).parts
        # The manifest names the files to write; a hostile one must not escape the cache.
        if not parts or rel.startswith("/") or ".." in parts or "\\" in rel:
            raise BundleError(f"{uri}/{MANIFEST_FILE} names an unsafe path {rel!r}")
    return files


def _get_bytes(client: Any, bucket: str, key: str) -> bytes:
    response = client.get_object(Bucket=bucket, Key=key)
    body: bytes = response["Body"].read()
    return body


def _download_verified(
    client: Any, bucket: str, key: str, dest: Path, sha256: str, size: int, *, uri: str
) -> None:
    response = client.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256()
    written = 0
    with dest.open("wb") as out:
        for block in response["Body"].iter_chunks(_CHUNK):
            digest.update(block)
            written += len(block)
            if written > size:
                break
            out.write(block)
    if written != size:
        raise BundleError(
            f"{uri} is {'larger' if written > size else 'smaller'} than the manifest says "
            f"({size} bytes); the upload is incomplete or corrupted, refusing it"
        )
    if digest.hexdigest() != sha256:
        raise BundleError(
            f"{uri} does not match the sha256 in the manifest; the upload is corrupted, refusing it"
        )
