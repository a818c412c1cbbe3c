"""Who may call the API: OAuth JWTs, API keys (from `athenaeum keys` or hashes in the
environment), or API Gateway's authorizer verdict.

Authentication is an ASGI middleware rather than a FastAPI dependency so that it guards the
MCP endpoint (a plain ASGI app) exactly as it guards the REST routes. A few paths are public:
`/health`, the RFC 9728 metadata that tells clients where to log in, the OAuth relay's
endpoints and metadata (where they get their first token), and the API docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from athenaeum.errors import (
    AthenaeumError,
    AuthenticationError,
    AuthNotConfiguredError,
    BearerError,
)
from athenaeum.server.auth.bearer import parse_bearer, www_authenticate
from athenaeum.server.auth.discovery import WELL_KNOWN
from athenaeum.server.auth.groups import CONTEXT_KEY, groups_from_context
from athenaeum.server.auth.jwt import jwt_validator
from athenaeum.server.auth.keys import APIKeyStore
from athenaeum.server.auth.keystores import live_keyring
from athenaeum.server.auth.principal import Principal
from athenaeum.server.auth.relay import RELAY_PATHS
from athenaeum.server.http.error_handlers import from_exception
from athenaeum.server.http.sources import SOURCES_PATH
from athenaeum.server.settings import Settings

# "/" is the front door (athenaeum.server.http.routes.front).
PUBLIC_PATHS = frozenset({"/", "/health", WELL_KNOWN, "/openapi.json", "/docs"})


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jwt = jwt_validator(settings)
        self.keys = APIKeyStore(settings.api_key_hashes) if settings.api_key_hashes else None
        # The key set `athenaeum keys` manages, re-read when it changes (a file) or every
        # api_keys_refresh_s (a secret).
        self.keyring = live_keyring(
            keys_file=settings.api_keys_file,
            keys_secret=settings.api_keys_secret,
            refresh_s=settings.api_keys_refresh_s,
            required_scopes=settings.oauth_required_scopes,
        )
        self.open = not settings.auth_configured and settings.insecure_no_auth

    def _gateway(self, scope: Scope) -> Principal | None:
        if not self.settings.trust_gateway_authorizer:
            return None
        event = scope.get("aws.event")
        if not isinstance(event, dict):
            return None
        context = (event.get("requestContext") or {}).get("authorizer")
        if not isinstance(context, dict) or not context:
            return None
        return principal_from_authorizer(context)

    async def authenticate(self, scope: Scope) -> Principal | None:
        """The caller, or None when the server runs open; raises the 401/403/503 errors."""
        if self.open:
            return None
        gateway = self._gateway(scope)
        if gateway is not None:
            return gateway
        if self.jwt is None and self.keys is None and self.keyring is None:
            if self.settings.trust_gateway_authorizer:
                raise AuthenticationError(
                    "no API Gateway authorizer context on this request, and no other credentials "
                    "are accepted",
                    bearer_error=None,
                )
            raise AuthNotConfiguredError(
                "this server has no authentication configured: create an API key with "
                "`athenaeum keys create`, or set ATHENAEUM_OAUTH_*, or "
                "ATHENAEUM_INSECURE_NO_AUTH=true for a private network"
            )
        token = parse_bearer(Headers(scope=scope).get("authorization"))
        if self.keys is not None and self.keys.verify(token):
            return self.keys.authenticate(token)
        if self.keyring is not None and (self.jwt is None or "." not in token):
            # Keys never hold a dot and JWTs always do: a JWT is not hashed and compared.
            # Reading the key set may touch the disk or the network: not on the event loop.
            ring = self.keyring.cached()
            if ring is None:
                ring = await anyio.to_thread.run_sync(self.keyring.current)
            return ring.authenticate(token)
        if self.jwt is not None:
            # Not in a worker thread: while the issuer hangs, requests waiting for its keys
            # would fill the pool that sync routes (/health, /search) need.
            return await self.jwt.validate_async(token)
        raise AuthenticationError("the API key is not valid")


def principal_from_authorizer(context: Mapping[str, Any]) -> Principal:
    """API Gateway passes a TOKEN authorizer's context as strings (REST v1) or under
    `lambda` (HTTP API v2); JWT authorizers of HTTP APIs put the claims under `jwt.claims`."""
    inner = context.get("lambda") if isinstance(context.get("lambda"), dict) else None
    jwt_claims = (
        (context.get("jwt") or {}).get("claims") if isinstance(context.get("jwt"), dict) else None
    )
    values: Mapping[str, Any] = inner or jwt_claims or context
    subject = str(
        values.get("sub") or values.get("principalId") or context.get("principalId") or "gateway"
    )
    raw_scope = values.get("scope") or values.get("scopes") or ""
    scopes = raw_scope.split() if isinstance(raw_scope, str) else [str(s) for s in raw_scope]
    return Principal(
        subject=subject,
        scopes=frozenset(scopes),
        client_id=str(values["client_id"]) if values.get("client_id") else None,
        issuer=str(values.get("iss") or "api-gateway"),
        audience=(),
        expires_at=None,
        # Only what this project's authorizer put there (its context is the one source of
        # groups on AWS: a token's claims are never read again here).
        groups=groups_from_context(values.get(CONTEXT_KEY)),
    )


class AuthMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator, metadata_url: Any) -> None:
        self.app = app
        self.authenticator = authenticator
        # A callable from the scope to the RFC 9728 URL: it depends on the request's host when
        # no public base URL is configured.
        self.metadata_url = metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in PUBLIC_PATHS
            or scope["path"].startswith(WELL_KNOWN + "/")
            or scope["path"].startswith(SOURCES_PATH)
            or scope["path"] in RELAY_PATHS
        ):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.authenticator.authenticate(scope)
        except AthenaeumError as exc:
            headers: dict[str, str] = {}
            if isinstance(exc, BearerError):
                headers["WWW-Authenticate"] = www_authenticate(
                    self.metadata_url(scope),
                    error=exc.bearer_error,
                    description=exc.message if exc.bearer_error else None,
                    scope=" ".join(exc.required_scopes) or None,
                )
            await from_exception(exc, headers)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
