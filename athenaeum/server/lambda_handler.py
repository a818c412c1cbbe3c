"""The AWS Lambda entry point: Mangum wrapping the same app that `athenaeum serve` runs.

    handler = athenaeum.server.lambda_handler.handler

Lifespan is off (Lambda has no shutdown hook and the app needs no startup work); the app is
built on the first invocation and kept for the life of the container, and the index is loaded
by the first request that needs it (a failed load is a 503 that the next request retries).
The generating model's API key, when ATHENAEUM_LLM_API_KEY_SECRET names a Secrets Manager
secret, is read while the app is built; if that fails, the generating model answers 503 and
the next request to it reads again, while the rest of the API works (athenaeum.server.secrets).
Mangum buffers responses, so a `stream: true` chat request gets its whole SSE body at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mangum import Mangum
from pydantic import ValidationError

from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import EngineProvider
from athenaeum.server.secrets import preload_llm_key, with_secret_llm_key
from athenaeum.server.settings import Settings, get_settings

_handler: Mangum | None = None


def build_handler(settings: Settings, engine_provider: EngineProvider | None = None) -> Mangum:
    # The Lambda runtime's root logger passes WARNING and up; the per-request JSON lines and
    # index load events are INFO and are what CloudWatch should show.
    logging.getLogger("athenaeum").setLevel(logging.INFO)
    settings = with_secret_llm_key(settings)
    preload_llm_key(settings)
    return Mangum(create_app(settings, engine_provider), lifespan="off")


def preload() -> None:
    """Build the handler and load the index now, in the container's init phase
    (ATHENAEUM_PRELOAD_INDEX): Lambda gives init a full CPU, SnapStart snapshots its result and
    provisioned concurrency runs it before traffic. A failed load is only logged: the first
    request that needs the index retries it and answers 503 if it fails again."""
    global _handler
    settings = get_settings()
    provider = EngineProvider(settings)
    try:
        provider.get()
    except Exception as exc:  # BundleError, S3 errors: the request path retries and reports
        logging.getLogger("athenaeum").warning(
            json.dumps({"event": "index_preload_failed", "error": str(exc)})
        )
    _handler = build_handler(settings, provider)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _handler
    if _handler is None:
        _handler = build_handler(get_settings())
    response: dict[str, Any] = _handler(event, context)
    return response


def _preload_requested() -> bool:
    try:
        return get_settings().preload_index
    except ValidationError:
        return False  # the first request reports the bad settings, as without preloading


if _preload_requested():
    preload()
