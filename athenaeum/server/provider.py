"""Where the served engine comes from: a local bundle folder, or an S3 bundle (`s3`) copied to
local disk.

The engine is loaded once per process, lazily, on the first request that needs it: on Lambda
that keeps a failed cold start from killing the container, so the next request simply retries.
A download from S3 is hashed file by file on the way in and records that it was
(athenaeum.bundle.verification), so neither it nor a copy reused by a later process in the same
container is hashed again at load unless ATHENAEUM_INDEX_VERIFY=full.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from athenaeum.errors import BundleError
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.s3 import S3Location, fetch_s3_bundle
from athenaeum.server.settings import Settings

logger = logging.getLogger("athenaeum.index")


class EngineProvider:
    """Loads the configured bundle once and hands the same engine to every request.

    Thread-safe: FastAPI runs sync endpoints in a thread pool, so the first requests of a cold
    process may race; one loads and the others wait for it. A failure is not cached.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine: SearchEngine | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> SearchEngine | None:
        return self._engine

    def get(self) -> SearchEngine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                started = time.perf_counter()
                self._engine = self._load()
                logger.info(
                    json.dumps(
                        {
                            "event": "index_loaded",
                            "bundle": str(self._engine.bundle.path),
                            "chunks": self._engine.facts.chunks,
                            # "record": a verification record vouched for the files; "sha256":
                            # every file was hashed (no current record, or INDEX_VERIFY=full).
                            "verified_by": (
                                "record" if self._engine.bundle.verification.by_record else "sha256"
                            ),
                            "seconds": round(time.perf_counter() - started, 3),
                        }
                    )
                )
            return self._engine

    def _load(self) -> SearchEngine:
        s = self._settings
        if s.index_s3_uri is not None:
            local, _ = fetch_s3_bundle(
                S3Location.parse(s.index_s3_uri), s.index_cache_dir, endpoint_url=s.s3_endpoint_url
            )
            return SearchEngine.load(local, verify=s.index_verify)
        if s.index_dir is not None:
            return SearchEngine.load(s.index_dir, verify=s.index_verify)
        raise BundleError(
            "no index configured: set ATHENAEUM_INDEX_DIR (a bundle folder) or "
            "ATHENAEUM_INDEX_S3_URI (s3://bucket/prefix)"
        )


class FixedEngineProvider(EngineProvider):
    """An already loaded engine (tests, benchmarks, embedding the app in other code)."""

    def __init__(self, engine: SearchEngine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def _load(self) -> SearchEngine:  # pragma: no cover - the engine is always set
        raise AssertionError("unreachable")
