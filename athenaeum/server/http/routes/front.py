"""The front door, `GET /`: a page for a person in a browser, a JSON description for a client;
and `GET /docs`, the API reference. Public, like /health, and saying no more of the index than
/health does (athenaeum.server.http.pages renders both pages)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from athenaeum import __version__
from athenaeum.errors import AthenaeumError, UntrustedHostError
from athenaeum.server.auth.discovery import WELL_KNOWN
from athenaeum.server.http import pages, searching
from athenaeum.server.http.deps import (
    SettingsDep,
    app_settings,
    engine_provider,
    public_base_url,
)
from athenaeum.server.http.routes.meta import public_model_name
from athenaeum.server.settings import Settings

router = APIRouter(tags=["meta"])

MCP_PATH = "/mcp"
DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"


class IndexStatus(BaseModel):
    loaded: bool = Field(description="Whether the index is loaded (/health says why not).")
    documents: int | None = None
    chunks: int | None = None
    model: str | None = Field(default=None, description="The embedding model, by its name.")
    index_version: str | None = Field(
        default=None, description="The sha256 of the index's manifest, as /health names it."
    )
    created_at: str | None = None


class Endpoint(BaseModel):
    method: str
    path: str
    summary: str
    public: bool = Field(description="Whether it answers without credentials.")


class AuthInfo(BaseModel):
    required: bool = Field(description="Whether calls other than the public ones need a token.")
    credentials: list[str] = Field(
        description="The credentials accepted: `api_key` (made by `athenaeum keys`), `oauth` "
        "(an access token from the identity provider)."
    )
    header: str | None = Field(description="How to send a credential.")
    resource_metadata: str | None = Field(
        description="The OAuth protected resource metadata (RFC 9728), when OAuth is configured."
    )


class About(BaseModel):
    name: str
    version: str
    description: str
    index: IndexStatus
    auth: AuthInfo
    endpoints: list[Endpoint]
    links: dict[str, str] = Field(
        description="The API reference (`docs`), the OpenAPI schema, /health, the MCP endpoint "
        "and the base URL for OpenAI-compatible clients."
    )


def wants_html(accept: str | None) -> bool:
    """Whether the client prefers HTML: a browser names text/html ahead of JSON; curl's `*/*`,
    an SDK's `application/json` or no Accept at all get JSON."""
    weights: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media.lower()] = max(q, weights.get(media.lower(), 0.0))
    html_q = weights.get("text/html", 0.0)
    return html_q > 0 and html_q > weights.get("application/json", 0.0)


def credentials(settings: Settings) -> list[str]:
    """The credentials a bearer token may be; none when the server runs open. Behind the
    stack's authorizer, API keys always (the stack makes a key set) and OAuth where configured."""
    if not settings.auth_configured:
        return []
    keys = settings.api_keys_enabled or settings.trust_gateway_authorizer
    return (["api_key"] if keys else []) + (["oauth"] if settings.oauth_enabled else [])


def links(settings: Settings, request: Request) -> dict[str, str]:
    """Absolute links where the server knows its public URL (on API Gateway the stage is part of
    it), else paths from the root."""
    try:
        base = public_base_url(settings, request.scope)
    except UntrustedHostError:
        base = ""
    made = {
        "self": base + "/",
        "docs": base + DOCS_PATH,
        "openapi": base + OPENAPI_PATH,
        "health": base + "/health",
        "mcp": base + MCP_PATH,
        "openai": base + "/v1",
        "search": base + "/search",
    }
    if settings.oauth_enabled:
        made["resource_metadata"] = base + WELL_KNOWN
    return made


async def _index_status(request: Request) -> IndexStatus:
    try:
        current = await searching.served(engine_provider(request))
    except AthenaeumError:
        return IndexStatus(loaded=False)
    facts = current.backend.facts
    # Public, like /health: under an access policy, no counts.
    counted = app_settings(request).access is None
    return IndexStatus(
        loaded=True,
        documents=facts.documents if counted else None,
        chunks=facts.chunks if counted else None,
        model=public_model_name(facts.model_id),
        index_version=current.version,
        created_at=facts.created_at,
    )


def _endpoints(schema: dict[str, Any], *, open_server: bool, oauth: bool) -> list[Endpoint]:
    found = [
        Endpoint(
            method=method.upper(),
            path=path,
            summary=op.get("summary", ""),
            public=open_server or not op.get("security"),
        )
        for path, item in schema.get("paths", {}).items()
        for method, op in item.items()
        if method in ("get", "post") and (oauth or not path.startswith(WELL_KNOWN))
    ]
    found.append(
        Endpoint(
            method="POST",
            path=MCP_PATH,
            summary="MCP (streamable HTTP): the search and fetch tools",
            public=open_server,
        )
    )
    return found


@router.get(
    "/",
    name="about",
    summary="What this API is",
    description="This API's name, version, whether its index is loaded, its endpoints, the "
    "credentials it accepts and links to its documentation. A browser (Accept: text/html) gets "
    "the same as a page.",
    response_model=About,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def about(request: Request, settings: SettingsDep) -> Response:
    index = await _index_status(request)
    made = links(settings, request)
    accepted = credentials(settings)
    if wants_html(request.headers.get("accept")):
        door = pages.FrontDoor(
            name=request.app.title,
            version=__version__,
            description=request.app.description,
            index=pages.IndexSummary(**index.model_dump()),
            credentials=accepted,
            links=made,
        )
        return HTMLResponse(pages.front_page(door), headers=pages.PAGE_HEADERS)
    body = About(
        name=request.app.title,
        version=__version__,
        description=request.app.description,
        index=index,
        auth=AuthInfo(
            required=bool(accepted),
            credentials=accepted,
            header="Authorization: Bearer <token>" if accepted else None,
            resource_metadata=made.get("resource_metadata"),
        ),
        endpoints=_endpoints(
            request.app.openapi(), open_server=not accepted, oauth=settings.oauth_enabled
        ),
        links={k: v for k, v in made.items() if k != "search"},
    )
    return JSONResponse(body.model_dump(), headers={"Vary": "Accept"})


@router.get(DOCS_PATH, include_in_schema=False)
async def docs(request: Request, settings: SettingsDep) -> HTMLResponse:
    made = links(settings, request)
    page = pages.reference_page(
        request.app.openapi(),
        {"home": made["self"], "openapi": made["openapi"], "mcp": made["mcp"]},
    )
    return HTMLResponse(page, headers=pages.PAGE_HEADERS)
