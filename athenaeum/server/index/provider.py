"""Where the served search backend comes from, and which version of the index it is.

Four sources (athenaeum.server.index.source, read from the settings once):

- a bundle folder (`ATHENAEUM_INDEX_DIR`);
- a bundle in S3 (`ATHENAEUM_INDEX_S3_URI` naming a prefix that holds manifest.json), copied to
  local disk and verified on the way in (athenaeum.storage.download);
- a published index (`ATHENAEUM_INDEX_S3_URI` naming a prefix that holds current.json, the
  pointer the ingest function moves; athenaeum.storage.published). It is followed: at most every
  `ATHENAEUM_INDEX_REFRESH_S` seconds a request reads the pointer, and a newer version is
  downloaded, verified and loaded beside the one being served, then swapped in with one
  assignment. A request takes the backend once, so requests in flight finish on the version they
  started with. With `ATHENAEUM_INDEX_DIR` set too (the bundle packaged with the Lambda
  function) that bundle is the starting version, and a newer published one wins;
- an Amazon S3 Vectors index (`ATHENAEUM_INDEX_BACKEND=s3vectors`, `ATHENAEUM_S3VECTORS_INDEX`),
  searched in the service (athenaeum.s3vectors.backend) with the query side of the bundle
  published to it (`ATHENAEUM_INDEX_DIR`: its manifest and query encoder, nothing else is read).
  Nothing is downloaded and there is no pointer to follow: the index in the service is live.

Outside Lambda a new version loads on a background thread while requests go on. On Lambda it
loads within the request that saw the pointer move: a thread would be frozen between
invocations, and a download frozen mid-read times out when the container thaws.

The first load happens lazily, on the first request that needs the index: on Lambda that keeps
a failed cold start from killing the container, so the next request simply retries. A failure
is not cached.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from athenaeum.bundle import MANIFEST_FILE, read_manifest
from athenaeum.bundle.verification import manifest_sha256
from athenaeum.errors import BundleError
from athenaeum.retrieval.backend import SearchBackend
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.index.source import LocalBundle, Published, S3Bundle, VectorsIndex
from athenaeum.server.settings import Settings
from athenaeum.storage.client import s3_client
from athenaeum.storage.download import fetch_s3_bundle
from athenaeum.storage.errors import describe_error
from athenaeum.storage.location import S3Location
from athenaeum.storage.published import Pointer, PublishedIndex

logger = logging.getLogger("athenaeum.index")

BEHIND_METRIC = "ServedVersionBehindSeconds"


@dataclass(frozen=True)
class Served:
    """The backend being served and which version of the index it is: the sha256 of its
    manifest (a published version's id) and, for a published version, when it was published."""

    backend: SearchBackend
    version: str
    published_at: str | None = None

    @property
    def age_s(self) -> float:
        """Seconds since it was published, or, for a bundle never published, since it was
        built."""
        since = self.published_at or self.backend.facts.created_at
        return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(since)).total_seconds())


def _load(path: Path, settings: Settings, published_at: str | None = None) -> Served:
    engine = SearchEngine.load(path, verify=settings.index_verify, threads=settings.encoder_threads)
    if settings.access_policy is not None:
        # Every search is then confined to a caller's collections: the per-chunk table the
        # confinement reads (it parses every chunk) is built with the index, before it serves
        # (a Lambda's initialisation, a new version's load), not by the first request.
        engine.filter_table  # noqa: B018
    return Served(engine, engine.facts.version, published_at)


def _log_loaded(served: Served, seconds: float) -> None:
    facts = served.backend.facts
    record: dict[str, object] = {
        "event": "index_loaded",
        "backend": facts.backend,
        facts.backend: facts.location,
        "version": served.version,
        "chunks": facts.chunks,
    }
    if isinstance(served.backend, SearchEngine):
        # "record": a verification record vouched for the files; "sha256": every file was
        # hashed (no current record, or INDEX_VERIFY=full).
        by_record = served.backend.bundle.verification.by_record
        record["verified_by"] = "record" if by_record else "sha256"
    logger.info(json.dumps({**record, "seconds": round(seconds, 3)}))


def _on_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


class EngineProvider:
    """Loads the configured index once and hands the same backend to every request, following
    a published index's pointer when there is one.

    Thread-safe: FastAPI runs sync endpoints in a thread pool, so the first requests of a cold
    process may race; one loads and the others wait for it.
    """

    def __init__(self, settings: Settings, *, s3vectors_client: Any = None) -> None:
        """`s3vectors_client`: the boto3 `s3vectors` client to search with (by default one made
        on the first load, when the settings name an S3 Vectors index)."""
        self._settings = settings
        self._s3vectors_client = s3vectors_client
        self._served: Served | None = None
        self._lock = threading.Lock()
        self._follower: _Follower | None = None

    @property
    def loaded(self) -> SearchBackend | None:
        served = self._served
        return served.backend if served is not None else None

    def get(self) -> SearchBackend:
        return self.current().backend

    def ready(self) -> Served | None:
        """The version to answer with when that needs no work (loaded, and no check of a
        published index's pointer due), else None: then `current()`, which may block."""
        served = self._served
        if served is None or (self._follower is not None and self._follower.due()):
            return None
        return served

    def current(self) -> Served:
        """The version to answer the current request with (take it once per request)."""
        served = self._served
        if served is None:
            with self._lock:
                if self._served is None:
                    started = time.perf_counter()
                    self._served = self._load()
                    _log_loaded(self._served, time.perf_counter() - started)
                served = self._served
        elif self._follower is not None:
            self._follower.tick(self)
            served = self._served
        assert served is not None
        return served

    def swap(self, served: Served) -> None:
        """Serve `served` from now on (one assignment: a request sees the old or the new)."""
        self._served = served

    def _load(self) -> Served:
        source = self._settings.index_source
        match source:
            case LocalBundle(path):
                return _load(path, self._settings)
            case S3Bundle(location):
                return self._load_s3_bundle(location)
            case Published(location, start):
                return self._load_published(location, start)
            case VectorsIndex(index, query_side):
                return self._load_s3vectors(index, query_side)
            case None:
                raise BundleError(
                    "no index configured: set ATHENAEUM_INDEX_DIR (a bundle folder) or "
                    "ATHENAEUM_INDEX_S3_URI (s3://bucket/prefix)"
                )

    def _load_s3vectors(self, index: str, query_side: Path) -> Served:
        from athenaeum.s3vectors.backend import S3VectorsSearch, s3vectors_client
        from athenaeum.s3vectors.publish import VectorIndex

        if self._s3vectors_client is None:
            self._s3vectors_client = s3vectors_client()
        backend = S3VectorsSearch.load(
            query_side,
            VectorIndex.parse(index),
            client=self._s3vectors_client,
            threads=self._settings.encoder_threads,
        )
        return Served(backend, backend.facts.version)

    def _fetch(self, location: S3Location) -> Served:
        s = self._settings
        local, _ = fetch_s3_bundle(location, s.index_cache_dir, endpoint_url=s.s3_endpoint_url)
        return _load(local, s)

    def _read_pointer(self, location: S3Location) -> tuple[PublishedIndex, Pointer | None]:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        store = PublishedIndex(location, s3_client(self._settings.s3_endpoint_url))
        try:
            return store, store.read_pointer()
        except (BotoCoreError, ClientError) as exc:
            raise BundleError(
                f"could not read the index pointer at {location.uri}: {describe_error(exc)}; "
                "the next request retries"
            ) from exc

    def _load_s3_bundle(self, location: S3Location) -> Served:
        store, pointer = self._read_pointer(location)
        if pointer is None:
            # Not a published index: a bundle kept in S3 as it is, loaded once.
            return self._fetch(location)
        self._follower = _Follower(store, self._settings, pointer)
        return self._follower.load(pointer)

    def _load_published(self, location: S3Location, start: LocalBundle | S3Bundle) -> Served:
        store, pointer = self._read_pointer(location)
        self._follower = _Follower(store, self._settings, pointer)
        if isinstance(start, S3Bundle):
            # The starting bundle deploy.sh put in S3, until a version is published.
            return self._fetch(start.location) if pointer is None else self._follower.load(pointer)
        s = self._settings
        # The packaged bundle, unless the pointer names a version published after it was built
        # (told from its manifest, without loading it).
        if pointer is None:
            return _load(start.path, s)
        manifest_path = start.path / MANIFEST_FILE
        if manifest_path.is_file():
            if manifest_sha256(manifest_path.read_bytes()) == pointer.version:
                return _load(start.path, s, pointer.published_at)
            if not _Follower.published_after(pointer, read_manifest(start.path).created_at):
                return _load(start.path, s)
        return self._follower.load(pointer)


class FixedEngineProvider(EngineProvider):
    """An already loaded backend (tests, benchmarks, embedding the app in other code)."""

    def __init__(self, engine: SearchBackend) -> None:
        super().__init__(Settings.model_construct())  # unused: nothing is ever loaded
        self._served = Served(engine, engine.facts.version)

    def _load(self) -> Served:  # pragma: no cover - the backend is always set
        raise AssertionError("unreachable")


class _Follower:
    """Reads a published index's pointer at most every `index_refresh_s` seconds and brings a
    newer version in."""

    def __init__(self, store: PublishedIndex, settings: Settings, pointer: Pointer | None) -> None:
        self.store = store
        self.settings = settings
        self.cache_dir = settings.index_cache_dir / "published"
        self.last_check = time.monotonic()
        self.seen = pointer
        self._checking = threading.Lock()
        self._loading: threading.Thread | None = None

    @staticmethod
    def published_after(pointer: Pointer, created_at: str, published_at: str | None = None) -> bool:
        since = published_at or created_at
        return pointer.published >= datetime.fromisoformat(since)

    @staticmethod
    def newer(pointer: Pointer, served: Served) -> bool:
        """Whether the pointer names a version to serve instead of `served`: another version,
        published after `served` was (or, for a bundle never published, built)."""
        if pointer.version == served.version:
            return False
        created_at = served.backend.facts.created_at
        return _Follower.published_after(pointer, created_at, served.published_at)

    def load(self, pointer: Pointer) -> Served:
        started = time.perf_counter()
        path = self.store.fetch(pointer.version, self.cache_dir)
        served = _load(path, self.settings, pointer.published_at)
        _log_loaded(served, time.perf_counter() - started)
        return served

    def due(self) -> bool:
        return time.monotonic() - self.last_check >= self.settings.index_refresh_s

    def tick(self, provider: EngineProvider) -> None:
        now = time.monotonic()
        if now - self.last_check < self.settings.index_refresh_s:
            return
        if not self._checking.acquire(blocking=False):
            return  # another request is checking
        try:
            self.last_check = now
            self._check(provider)
        finally:
            self._checking.release()

    def _check(self, provider: EngineProvider) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        served = provider._served
        assert served is not None
        try:
            pointer = self.store.read_pointer()
        except (BotoCoreError, ClientError, BundleError) as exc:
            logger.warning(json.dumps({"event": "index_pointer_unreadable", "error": str(exc)}))
            return
        self.seen = pointer
        if pointer is None or not self.newer(pointer, served):
            self._emit_behind(0.0)
            return
        self._emit_behind(max(0.0, (datetime.now(UTC) - pointer.published).total_seconds()))
        if _on_lambda():
            self._swap_to(provider, pointer)
        elif self._loading is None or not self._loading.is_alive():
            self._loading = threading.Thread(
                target=self._swap_to, args=(provider, pointer), name="index-load", daemon=True
            )
            self._loading.start()

    def _swap_to(self, provider: EngineProvider, pointer: Pointer) -> None:
        old = provider._served
        if old is not None and not self.newer(pointer, old):
            # A check that read the pointer before another one's swap landed: that version is
            # served already, and swapping it again would prune the copy it just replaced.
            return
        try:
            new = self.load(pointer)
        except Exception as exc:  # a bad version keeps the old one serving; the next check retries
            logger.warning(
                json.dumps(
                    {"event": "index_swap_failed", "version": pointer.version, "error": str(exc)}
                )
            )
            return
        provider.swap(new)
        logger.info(
            json.dumps(
                {
                    "event": "index_swapped",
                    "from": old.version if old is not None else None,
                    "to": new.version,
                }
            )
        )
        # A followed index is a bundle: its facts' location is its local copy.
        kept = [new, *([old] if old is not None else [])]
        self._prune(keep={Path(served.backend.facts.location) for served in kept})

    def _prune(self, keep: set[Path]) -> None:
        """Drop local copies of versions neither served nor just replaced (the replaced one's
        requests may still be reading it)."""
        if not self.cache_dir.is_dir():
            return
        for path in self.cache_dir.iterdir():
            if path.name.startswith("version-") and path not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def _emit_behind(self, seconds: float) -> None:
        """CloudWatch embedded metric format on stdout (a log line that is only JSON, which
        the Lambda runtime's log prefix would otherwise break)."""
        namespace = self.settings.metric_namespace
        if not namespace:
            return
        record: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": [[]],
                        "Metrics": [{"Name": BEHIND_METRIC, "Unit": "Seconds"}],
                    }
                ],
            },
            BEHIND_METRIC: round(seconds, 1),
        }
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
