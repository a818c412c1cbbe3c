"""The app factory: one FastAPI app for `athenaeum serve`, the Lambda handler and the tests.

    create_app(settings, engine_provider=None) -> FastAPI

The index is not loaded here: the provider loads it on the first request that needs it (and
`serve` asks for it before listening, so a bad bundle fails at the command line). See
docs/api.md for the endpoints and docs/settings.md for the settings.

Lean stack only: this module is on the serve path (uvicorn is imported by `serve` alone).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.routing import Route

from athenaeum import __version__
from athenaeum.api import errors
from athenaeum.api.chat import router as chat_router
from athenaeum.api.deps import public_base_url
from athenaeum.api.mcp import MCPEndpoint
from athenaeum.api.middleware import BodyLimitMiddleware, RequestLogMiddleware
from athenaeum.api.search import router as search_router
from athenaeum.api.security import WELL_KNOWN, Authenticator, AuthMiddleware
from athenaeum.auth import protected_resource_metadata
from athenaeum.errors import InvalidInputError, NotFoundError
from athenaeum.index_source import EngineProvider
from athenaeum.secrets import with_secret_llm_key
from athenaeum.settings import Settings, get_settings

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
        # Swagger UI at /docs is handy locally; ReDoc would be a second copy of the same thing.
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine_provider = provider

    errors.install(app)
    app.include_router(search_router)
    app.include_router(chat_router)
    app.router.routes.append(
        Route("/mcp", endpoint=MCPEndpoint(settings, provider), include_in_schema=False)
    )

    def metadata(request: Request, suffix: str = "") -> dict[str, Any]:
        if not (settings.oauth_issuer and settings.oauth_enabled):
            raise NotFoundError(
                "this server does not use OAuth; it has no protected resource metadata"
            )
        return protected_resource_metadata(
            public_base_url(settings, request.scope) + suffix,
            settings.oauth_issuer,
            settings.oauth_required_scopes,
        )

    @app.get(
        WELL_KNOWN,
        summary="OAuth protected resource metadata",
        description="RFC 9728 metadata naming the OAuth issuer that grants access to this API.",
        operation_id="protectedResourceMetadata",
        responses={404: {"model": errors.ErrorResponse, "description": "OAuth is not configured"}},
        tags=["meta"],
    )
    def resource_metadata(request: Request) -> dict[str, Any]:
        return metadata(request)

    @app.get(
        WELL_KNOWN + "/mcp",
        summary="OAuth protected resource metadata for /mcp",
        description="RFC 9728 metadata for the MCP endpoint (the path-suffixed form MCP "
        "clients ask for first).",
        operation_id="protectedResourceMetadataMcp",
        responses={404: {"model": errors.ErrorResponse, "description": "OAuth is not configured"}},
        tags=["meta"],
    )
    def resource_metadata_mcp(request: Request) -> dict[str, Any]:
        return metadata(request, "/mcp")

    # Added innermost first: the request log is outermost so that it times and catches all.
    app.add_middleware(
        AuthMiddleware,
        authenticator=Authenticator(settings),
        metadata_url=lambda scope: public_base_url(settings, scope) + WELL_KNOWN,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
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
            expose_headers=["WWW-Authenticate", "X-Request-ID"],
        )
    app.add_middleware(RequestLogMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


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
    public = {"/health", WELL_KNOWN, WELL_KNOWN + "/mcp"}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            if path not in public:
                operation["security"] = [{"bearerAuth": []}]
    app.openapi_schema = schema
    return schema


# --- `athenaeum serve` -----------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 8000, insecure_no_auth: bool = False
) -> None:
    """Run the app under uvicorn after loading the index (so a bad bundle fails here)."""
    import uvicorn

    if not settings.auth_configured:
        if not is_loopback(host) and not insecure_no_auth:
            raise InvalidInputError(
                f"refusing to listen on {host} without authentication: configure OAuth "
                "(ATHENAEUM_OAUTH_*) or API keys (ATHENAEUM_API_KEY_HASHES), or pass "
                "--insecure-no-auth if this network is private",
                param="host",
            )
        # Listening on loopback only is the protection when nothing else is configured.
        settings = settings.model_copy(update={"insecure_no_auth": True})
    provider = EngineProvider(settings)
    provider.get()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uvicorn.run(
        create_app(settings, provider),
        host=host,
        port=port,
        log_level="warning",
        # The app writes its own JSON access log; uvicorn's would log query strings.
        access_log=False,
        proxy_headers=False,
    )
