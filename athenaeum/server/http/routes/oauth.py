"""The OAuth relay's routes: `/oauth/authorize`, `/oauth/token` and their RFC 8414 metadata
(athenaeum.server.auth.relay). Public: a client uses them to get its first token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from athenaeum.errors import NotFoundError
from athenaeum.server.auth.relay import (
    AUTHORIZE_PATH,
    METADATA_PATH,
    TOKEN_PATH,
    OAuthError,
    OAuthRelay,
    authorization_server_metadata,
)
from athenaeum.server.http.deps import SettingsDep, public_base_url
from athenaeum.server.settings import Settings

# OAuth protocol endpoints, described by their metadata, not by the API's schema.
router = APIRouter(include_in_schema=False)

# RFC 6749 section 5.1: token responses must not be cached, and so neither their errors.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def relay_of(request: Request, settings: Settings) -> OAuthRelay:
    """The app's relay, made on first use (it reads the provider's discovery document then)."""
    if not settings.oauth_relay_enabled or settings.oauth_issuer is None:
        raise NotFoundError(
            "this server does not relay OAuth (ATHENAEUM_OAUTH_ISSUER unset, or "
            "ATHENAEUM_OAUTH_RELAY=false)"
        )
    relay: OAuthRelay | None = getattr(request.app.state, "oauth_relay", None)
    if relay is None:
        relay = OAuthRelay(
            settings.oauth_issuer,
            timeout_s=settings.oauth_relay_timeout_s,
            extra_hosts=settings.oauth_relay_hosts,
            audience=settings.oauth_authorize_audience,
            redirect_uris=settings.oauth_redirect_uris,
        )
        request.app.state.oauth_relay = relay
    return relay


@router.get(METADATA_PATH, name="authorizationServerMetadata")
async def metadata(request: Request, settings: SettingsDep) -> dict[str, Any]:
    relay = relay_of(request, settings)
    return authorization_server_metadata(
        public_base_url(settings, request.scope),
        await relay.endpoints(),
        settings.oauth_required_scopes,
    )


@router.get(AUTHORIZE_PATH, name="oauthAuthorize")
async def authorize(request: Request, settings: SettingsDep) -> Response:
    relay = relay_of(request, settings)
    location = await relay.authorization_redirect(request.query_params.multi_items())
    return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})


@router.post(TOKEN_PATH, name="oauthToken")
async def token(request: Request, settings: SettingsDep) -> Response:
    relay = relay_of(request, settings)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if media != "application/x-www-form-urlencoded":
            raise OAuthError(
                400,
                "invalid_request",
                "the token request must be sent as application/x-www-form-urlencoded "
                "(RFC 6749 section 3.2)",
            )
        answer = await relay.token(await request.body(), request.headers.get("authorization"))
    except OAuthError as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers=NO_STORE)
    headers = dict(NO_STORE)
    if answer.www_authenticate:
        headers["WWW-Authenticate"] = answer.www_authenticate
    return Response(
        answer.body, status_code=answer.status, media_type="application/json", headers=headers
    )
