"""A published index: bundle versions in S3 behind a pointer that ingest moves and serving follows.

    PREFIX/current.json              the pointer: which version is served, since when
    PREFIX/versions/<id>.json        a version's manifest.json; <id> is the sha256 of its bytes
    PREFIX/blobs/<sha256>            every file of every version, stored once under its sha256
    PREFIX/reports/<time>-<id>.json  what one ingest did (reports/latest.json: the last one)
    PREFIX/state/library.json        what the last ingest saw in the library (athenaeum.ingest)
    PREFIX/lock.json                 the writer's lease: one writer at a time

Old versions are pruned after each publish (`PublishedIndex.prune`): the newest few stay, and so
does every version and blob written within the last hour, which a server that read the pointer
just before it moved may still be fetching; blobs that no remaining version names go.

Publishing uploads the blobs a version needs (those already there are skipped: a version shares
its encoder and most of its unchanged files' bytes with the one before), then its manifest, and
only then moves the pointer, with a conditional write (If-Match on the pointer it started from,
If-None-Match for the first version): a crash at any step before leaves the previous version
served, and a writer that lost a race is refused instead of overwriting the winner's version.

A version is content-addressed: its id is the sha256 of its manifest, which holds the sha256 of
every file, so a reader checks the manifest against the id and each blob against the manifest
(athenaeum.storage.download.materialize) and never serves bytes the writer did not publish.

boto3 only (the Lambda runtime has it): serving follows the pointer, ingest and deploy publish.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from athenaeum.bundle.format import MANIFEST_FILE
from athenaeum.bundle.verification import manifest_sha256
from athenaeum.errors import AthenaeumError, BundleError
from athenaeum.storage.download import manifest_files, materialize
from athenaeum.storage.errors import CONFLICT, MISSING, describe_error, error_code
from athenaeum.storage.listing import Listed, list_objects
from athenaeum.storage.location import S3Location

logger = logging.getLogger("athenaeum.index")

POINTER_FILE = "current.json"
VERSIONS_DIR = "versions"
BLOBS_DIR = "blobs"
REPORTS_DIR = "reports"
LATEST_REPORT = f"{REPORTS_DIR}/latest.json"
STATE_FILE = "state/library.json"
LOCK_FILE = "lock.json"
POINTER_FORMAT = "athenaeum-pointer"
# A lease outlives the longest ingest (a Lambda invocation runs at most 15 minutes); a writer
# that died holding it is replaced once it has expired.
LOCK_TTL_S = 20 * 60
# Versions kept after a publish (the served one among them), and how long a version or blob is
# kept whatever its rank: longer than any server takes to fetch the version it just read.
KEEP_VERSIONS = 5
PRUNE_GRACE_S = 60 * 60


class PublishConflictError(AthenaeumError):
    """Another writer moved the pointer, or holds the lock, first."""


@dataclass(frozen=True)
class Pruned:
    """What `PublishedIndex.prune` deleted."""

    versions: list[str]
    blobs: int
    bytes: int


@dataclass(frozen=True)
class Pointer:
    version: str
    published_at: str
    documents: int
    chunks: int
    previous: str | None = None
    published_by: str = ""
    etag: str = ""  # the object's, for the conditional write that replaces it; not stored

    def to_json(self) -> bytes:
        body = {"format": POINTER_FORMAT, **asdict(self)}
        del body["etag"]
        return (json.dumps(body, indent=2) + "\n").encode("utf-8")

    @property
    def published(self) -> datetime:
        return datetime.fromisoformat(self.published_at)


def version_id(manifest_bytes: bytes) -> str:
    return manifest_sha256(manifest_bytes)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PublishedIndex:
    """The published index under `location`, through a boto3 S3 `client`."""

    def __init__(self, location: S3Location, client: Any) -> None:
        self.location = location
        self.client = client

    @property
    def uri(self) -> str:
        return self.location.uri

    def key(self, rel: str) -> str:
        return self.location.key(rel)

    # --- small JSON objects ------------------------------------------------------------------

    def get_bytes(self, rel: str) -> tuple[bytes, str] | None:
        """An object's bytes and ETag, or None when there is none."""
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=self.key(rel))
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return None
            raise
        return response["Body"].read(), str(response.get("ETag", ""))

    def get_json(self, rel: str) -> Any:
        found = self.get_bytes(rel)
        if found is None:
            return None
        try:
            return json.loads(found[0])
        except ValueError as exc:
            raise BundleError(f"{self.uri}/{rel} is not valid JSON ({exc})") from exc

    def put_json(self, rel: str, value: Any) -> None:
        self.client.put_object(
            Bucket=self.location.bucket,
            Key=self.key(rel),
            Body=(json.dumps(value, indent=2) + "\n").encode("utf-8"),
            ContentType="application/json",
        )

    # --- the pointer ---------------------------------------------------------------------------

    def read_pointer(self) -> Pointer | None:
        """The version served now, or None when nothing was ever published here."""
        found = self.get_bytes(POINTER_FILE)
        if found is None:
            return None
        data, etag = found
        try:
            raw = json.loads(data)
            if raw.get("format") != POINTER_FORMAT:
                raise ValueError(f"format is {raw.get('format')!r}, not {POINTER_FORMAT!r}")
            pointer = Pointer(
                version=str(raw["version"]),
                published_at=str(raw["published_at"]),
                documents=int(raw["documents"]),
                chunks=int(raw["chunks"]),
                previous=None if raw.get("previous") is None else str(raw["previous"]),
                published_by=str(raw.get("published_by", "")),
                etag=etag,
            )
            pointer.published  # noqa: B018 (a time that does not parse is refused here)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BundleError(
                f"{self.uri}/{POINTER_FILE} is not a valid index pointer ({exc}); "
                "publish again with `athenaeum ingest`"
            ) from exc
        return pointer

    def _move_pointer(self, pointer: Pointer, expected: Pointer | None) -> Pointer:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": expected.etag} if expected is not None else {"IfNoneMatch": "*"}
        try:
            response = self.client.put_object(
                Bucket=self.location.bucket,
                Key=self.key(POINTER_FILE),
                Body=pointer.to_json(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as exc:
            if error_code(exc) in CONFLICT:
                raise PublishConflictError(
                    f"another writer published to {self.uri} first; nothing was changed, and "
                    "the next ingest starts from its version"
                ) from exc
            raise
        return Pointer(**{**asdict(pointer), "etag": str(response.get("ETag", ""))})

    # --- publishing ----------------------------------------------------------------------------

    def publish(self, bundle: Path, *, expected: Pointer | None, by: str) -> Pointer:
        """Publish the bundle folder `bundle` as a new version and point to it, provided the
        pointer is still `expected` (None: there is none yet). Raises PublishConflictError
        when it is not; a failure part way leaves the pointer where it was."""
        manifest_bytes = (bundle / MANIFEST_FILE).read_bytes()
        version = version_id(manifest_bytes)
        for rel, (sha256, size) in _all_files(manifest_bytes, bundle.as_posix()).items():
            self._put_blob(bundle / rel, sha256, size)
        self.client.put_object(
            Bucket=self.location.bucket,
            Key=self.key(f"{VERSIONS_DIR}/{version}.json"),
            Body=manifest_bytes,
            ContentType="application/json",
        )
        manifest = json.loads(manifest_bytes)
        pointer = Pointer(
            version=version,
            published_at=_now(),
            documents=int(manifest["counts"]["documents"]),
            chunks=int(manifest["counts"]["chunks"]),
            previous=expected.version if expected is not None else None,
            published_by=by,
        )
        moved = self._move_pointer(pointer, expected)
        logger.info(json.dumps({"event": "index_published", "uri": self.uri, "version": version}))
        return moved

    def _put_blob(self, path: Path, sha256: str, size: int) -> None:
        from botocore.exceptions import ClientError

        key = self.key(f"{BLOBS_DIR}/{sha256}")
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=key)
            if int(head.get("ContentLength", -1)) == size:
                return  # content-addressed: the same bytes are already there
        except ClientError as exc:
            if error_code(exc) not in MISSING:
                raise
        self.client.upload_file(
            str(path), self.location.bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"}
        )

    # --- pruning --------------------------------------------------------------------------------

    def prune(
        self,
        *,
        keep: int = KEEP_VERSIONS,
        grace_s: float = PRUNE_GRACE_S,
        now: datetime | None = None,
    ) -> Pruned:
        """Delete the versions beyond the newest `keep`, then the blobs no remaining version
        names. Never the version the pointer names, nor a version or blob written within the
        last `grace_s` seconds (a server that read the pointer just before it moved may still be
        fetching that version). Call it holding the writer's lease; a version that cannot be
        read stops it before any blob is deleted."""
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        now = now or datetime.now(UTC)
        pointer = self.read_pointer()
        if pointer is None:
            return Pruned([], 0, 0)
        versions = sorted(
            (
                (obj.last_modified, name.removesuffix(".json"), obj.key)
                for name, obj in self._list(f"{VERSIONS_DIR}/")
                if name.endswith(".json")
            ),
            reverse=True,
        )
        kept = {pointer.version}
        doomed = []
        for rank, (modified, version, key) in enumerate(versions):
            if rank < keep or (now - modified).total_seconds() < grace_s:
                kept.add(version)
            elif version not in kept:
                doomed.append((version, key))
        named: set[str] = set()
        for version in kept:
            named.update(
                sha for sha, _ in _all_files(self.manifest_bytes(version), self.uri).values()
            )
        self._delete([key for _, key in doomed])
        blobs = [
            obj
            for name, obj in self._list(f"{BLOBS_DIR}/")
            if name not in named and (now - obj.last_modified).total_seconds() >= grace_s
        ]
        self._delete([obj.key for obj in blobs])
        pruned = Pruned(sorted(v for v, _ in doomed), len(blobs), sum(obj.size for obj in blobs))
        if doomed or blobs:
            logger.info(json.dumps({"event": "index_pruned", "uri": self.uri, **asdict(pruned)}))
        return pruned

    def _list(self, rel: str) -> list[tuple[str, Listed]]:
        """(name under `rel`, the listing's entry) of every object under `rel`."""
        prefix = self.key(rel)
        return [
            (obj.key[len(prefix) :], obj)
            for obj in list_objects(self.client, self.location.bucket, prefix)
        ]

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            answer = self.client.delete_objects(
                Bucket=self.location.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise BundleError(
                    f"could not delete {first.get('Key')} from {self.uri}: "
                    f"{first.get('Code')} {first.get('Message', '')}".strip()
                )

    # --- reading a version ---------------------------------------------------------------------

    def manifest_bytes(self, version: str) -> bytes:
        found = self.get_bytes(f"{VERSIONS_DIR}/{version}.json")
        if found is None:
            raise BundleError(f"{self.uri} has no version {version} (versions/{version}.json)")
        data = found[0]
        if version_id(data) != version:
            raise BundleError(
                f"{self.uri}/{VERSIONS_DIR}/{version}.json does not hash to its name; the "
                "version is corrupted, refusing it"
            )
        return data

    def fetch(self, version: str, cache_dir: Path, *, document_encoder: bool = False) -> Path:
        """A complete, verified local copy of `version` under `cache_dir` (reused when an
        earlier one is intact). `document_encoder` also fetches the bundle's document encoder,
        which serving never needs."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            data = self.manifest_bytes(version)
        except (BotoCoreError, ClientError) as exc:
            raise BundleError(
                f"could not read version {version} of {self.uri}: {describe_error(exc)}"
            ) from exc
        listed = manifest_files(data, f"{self.uri}/{VERSIONS_DIR}/{version}")
        files = _all_files(data, self.uri) if document_encoder else listed
        keys = {
            rel: (self.key(f"{BLOBS_DIR}/{sha}"), sha, size) for rel, (sha, size) in files.items()
        }
        target = Path(cache_dir) / f"version-{version[:16]}"
        materialize(
            self.client, self.location.bucket, data, keys, target, uri=self.uri, recorded=listed
        )
        return target

    # --- the writer's lease --------------------------------------------------------------------

    @contextmanager
    def lock(self, owner: str, *, ttl_s: float = LOCK_TTL_S) -> Iterator[str]:
        """Hold the writer's lease for the `with` block; PublishConflictError when another
        writer holds a lease that has not expired. A lease left by a writer that died expires
        after `ttl_s` and is then taken over."""
        from botocore.exceptions import ClientError

        token = f"{owner}:{uuid.uuid4().hex[:12]}"
        body = json.dumps(
            {"owner": owner, "token": token, "acquired_at": _now(), "expires": time.time() + ttl_s}
        ).encode()
        for _ in range(2):
            try:
                self.client.put_object(
                    Bucket=self.location.bucket,
                    Key=self.key(LOCK_FILE),
                    Body=body,
                    IfNoneMatch="*",
                )
                break
            except ClientError as exc:
                if error_code(exc) not in CONFLICT:
                    raise
            held = self.get_bytes(LOCK_FILE)
            if held is None:
                continue  # released meanwhile: try again
            try:
                lease = json.loads(held[0])
                expires = float(lease["expires"])
            except (ValueError, KeyError, TypeError):
                expires = 0.0  # unreadable: treat as expired
                lease = {}
            if expires > time.time():
                raise PublishConflictError(
                    f"another ingest ({lease.get('owner', 'unknown')}, since "
                    f"{lease.get('acquired_at', '?')}) is writing to {self.uri}; try again when "
                    "it has finished"
                )
            self._delete_lock_if(held[1])
        else:
            raise PublishConflictError(f"could not take the writer's lease on {self.uri}")
        try:
            yield token
        finally:
            held = self.get_bytes(LOCK_FILE)
            if held is not None and json.loads(held[0]).get("token") == token:
                self._delete_lock_if(held[1])

    def _delete_lock_if(self, etag: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.delete_object(
                Bucket=self.location.bucket, Key=self.key(LOCK_FILE), IfMatch=etag
            )
        except ClientError as exc:
            if error_code(exc) not in CONFLICT | MISSING:
                raise


def _all_files(manifest_bytes: bytes, uri: str) -> dict[str, tuple[str, int]]:
    """The manifest's files and, when it has one, its document encoder."""
    files = manifest_files(manifest_bytes, uri)
    encoder = json.loads(manifest_bytes).get("document_encoder")
    if isinstance(encoder, dict):
        try:
            path = PurePosixPath(str(encoder["path"]))
            entry = (str(encoder["sha256"]), int(encoder["bytes"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"{uri}: the manifest's document_encoder is malformed ({exc})"
            ) from exc
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise BundleError(f"{uri}: the manifest names an unsafe path {str(path)!r}")
        files[path.as_posix()] = entry
    return files
