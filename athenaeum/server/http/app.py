"""The app factory: one FastAPI app for `athenaeum serve`, the Lambda handler and the tests.

    create_app(settings, engine_provider=None) -> FastAPI

The index is not loaded here: the provider loads it on the first request that needs it (and
`athenaeum serve` asks for it before listening, so a bad bundle fails at the command line). See
docs/api.md for the endpoints and docs/settings.md for the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi

from athenaeum import __version__
from athenaeum.server.answers import followup
from athenaeum.server.auth.discovery import WELL_KNOWN
from athenaeum.server.auth.middleware import Authenticator, AuthMiddleware
from athenaeum.server.http import error_handlers, routes
from athenaeum.server.http.deps import metadata_url
from athenaeum.server.http.middleware import BodyLimitMiddleware, RequestLogMiddleware
from athenaeum.server.http.sources import (
    SOURCES_ROUTE,
    SecretsManagerSecret,
    SourceLinker,
    fixed_secret,
    random_secret,
)
from athenaeum.server.index.provider import EngineProvider
from athenaeum.server.secrets import with_secret_llm_key
from athenaeum.server.settings import Settings, get_settings

logger = logging.getLogger("athenaeum")

DESCRIPTION = (
    "Search a document library and ask it questions. `POST /search` returns passages with "
    "citations; `/chat/completions` is OpenAI-compatible; `/mcp` serves the `search` and "
    "`fetch` tools over MCP (streamable HTTP)."
)


def create_app(
    settings: Settings | None = None, engine_provider: EngineProvider | None = None
) -> FastAPI:
    # A key kept in Secrets Manager is read on first use (the Lambda handler reads it earlier).
    settings = with_secret_llm_key(settings or get_settings())
    provider = engine_provider or EngineProvider(settings)
    app = FastAPI(
        title="Athenaeum",
        version=__version__,
        description=DESCRIPTION,
        # /docs is the app's own reference page (routes/front.py), which needs no script or
        # asset from elsewhere; Swagger UI and ReDoc load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
        # /chunks/ and /mcp/ are 404s in the error shape, not empty-bodied 307s to elsewhere.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.engine_provider = provider
    app.state.source_linker = SourceLinker(
        sources_dir=settings.sources_dir,
        sources_s3_uri=settings.sources_s3_uri,
        secret=_link_secret(settings),
        ttl_s=settings.link_ttl_s,
        s3_endpoint_url=settings.s3_endpoint_url,
    )

    error_handlers.install(app)
    routes.mount(app, settings, provider)

    # Added innermost first: the request log is outermost so that it times and catches all.
    # The body is read (and its size and pace checked) only after authentication: a client
    # without credentials gets its 401 before it may send a byte of body.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
        deadline_s=settings.body_deadline_s,
    )
    app.add_middleware(
        AuthMiddleware,
        authenticator=Authenticator(settings),
        metadata_url=lambda scope: metadata_url(settings, scope),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Mcp-Session-Id",
                "Mcp-Protocol-Version",
            ],
            expose_headers=[
                "WWW-Authenticate",
                "X-Request-ID",
                followup.QUERY_HEADER,
                followup.METHOD_HEADER,
            ],
        )
    app.add_middleware(RequestLogMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _link_secret(settings: Settings) -> Callable[[], bytes]:
    if settings.link_secret is not None:
        return fixed_secret(settings.link_secret.get_secret_value().encode())
    if settings.link_secret_arn is not None:
        return SecretsManagerSecret(settings.link_secret_arn)
    return random_secret()


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, made truthful: validation errors are 400s in the error shape (not
    FastAPI's 422 `HTTPValidationError`), and every operation but the public ones needs a
    bearer token."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "An OAuth access token (JWT) or an API key.",
        }
    }
    public = {"/", "/health", WELL_KNOWN, WELL_KNOWN + "/mcp", SOURCES_ROUTE}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            if path not in public:
                operation["security"] = [{"bearerAuth": []}]
    app.openapi_schema = schema
    return schema
