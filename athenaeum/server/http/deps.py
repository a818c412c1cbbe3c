"""Dependencies shared by the routers, as `Annotated` aliases so handlers stay one-liners."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from athenaeum.errors import UntrustedHostError
from athenaeum.retrieval.access import ScopedBackend
from athenaeum.retrieval.backend import SearchBackend
from athenaeum.server.access import scoped
from athenaeum.server.auth.discovery import WELL_KNOWN
from athenaeum.server.http import searching
from athenaeum.server.http.sources import ReadableLinks, SignedLinks, SourceLinker, SourceLinks
from athenaeum.server.index.provider import EngineProvider, Served
from athenaeum.server.settings import Settings


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def engine_provider(request: Request) -> EngineProvider:
    provider: EngineProvider = request.app.state.engine_provider
    return provider


# The dependencies below are `async` when they do no blocking work: FastAPI runs a sync one in
# the thread pool, a hop that every request would pay for (docs/benchmarks.md, "API throughput").


async def served(request: Request) -> Served:
    # Taken once per request: FastAPI caches a dependency within a request.
    return await searching.served(engine_provider(request))


async def index_backend(current: Annotated[Served, Depends(served)]) -> SearchBackend:
    """The whole index, whoever asks: only for what needs no caller (/health, whose facts hide
    what an access policy hides, and /sources, whose signed links are their own credential)."""
    return current.backend


async def backend(request: Request, current: Annotated[Served, Depends(served)]) -> SearchBackend:
    """The index as the request's caller may see it (athenaeum.server.access): what every route
    that returns text or a link takes."""
    return scoped(current.backend, searching.readable(app_settings(request), request.scope))


async def _settings(request: Request) -> Settings:
    return app_settings(request)


def index_links(request: Request, backend: SearchBackend) -> SignedLinks:
    """The links to original files of the index being served (athenaeum.server.http.sources):
    made once for the whole index, which every caller's view of it shares."""
    linker: SourceLinker = request.app.state.source_linker
    whole = backend.backend if isinstance(backend, ScopedBackend) else backend
    return linker.of(whole, whole.documents)


def source_links(request: Request, backend: SearchBackend) -> SourceLinks:
    """The links a response to the caller whose view `backend` is may carry: only to the
    documents they may read."""
    return caller_links(index_links(request, backend), backend)


def caller_links(links: SourceLinks, backend: SearchBackend) -> SourceLinks:
    """`links` that link only to documents `backend` (a caller's view) holds."""
    return ReadableLinks(links, backend) if isinstance(backend, ScopedBackend) else links


def public_base_url(settings: Settings, scope: Scope) -> str:
    """Where links in responses point: the configured public URL; else, behind API Gateway's
    default execute-api domain, that domain plus the stage (Mangum strips the stage from the
    path, so the request's own URL would lack it); else the request's own base URL, when its
    host is a trusted one (UntrustedHostError otherwise: a Host header is the client's to
    choose, and links must not point wherever it says)."""
    if settings.public_base_url:
        return settings.public_base_url
    event = scope.get("aws.event")
    if isinstance(event, dict):
        context = event.get("requestContext") or {}
        domain, stage = context.get("domainName"), context.get("stage")
        if isinstance(domain, str) and ".execute-api." in domain:
            if isinstance(stage, str) and stage and stage != "$default":
                return f"https://{domain}/{stage}"
            return f"https://{domain}"
    request = Request(scope)
    host = (request.url.hostname or "").strip("[]").lower()
    if host not in {h.strip("[]").lower() for h in settings.trusted_hosts}:
        raise UntrustedHostError(
            f"this server does not make links for the host {host!r}; set "
            "ATHENAEUM_PUBLIC_BASE_URL to its public URL, or add the host to "
            "ATHENAEUM_TRUSTED_HOSTS"
        )
    return str(request.base_url).rstrip("/")


def metadata_url(settings: Settings, scope: Scope) -> str | None:
    """The RFC 9728 metadata URL for a 401's WWW-Authenticate, or None where there is none to
    point at: without OAuth (API keys alone; the URL would answer 404) or for an untrusted host.
    The 401 then names no metadata."""
    if not settings.oauth_enabled:
        return None
    try:
        return public_base_url(settings, scope) + WELL_KNOWN
    except UntrustedHostError:
        return None


def base_url(request: Request) -> str:
    return public_base_url(app_settings(request), request.scope)


async def _base_url(request: Request) -> str:
    return base_url(request)


async def _source_links(
    request: Request,
    whole: Annotated[SearchBackend, Depends(index_backend)],
    current: Annotated[SearchBackend, Depends(backend)],
) -> SourceLinks:
    linker: SourceLinker = request.app.state.source_linker
    made = linker.cached(whole)
    if made is None:
        # The first request for an index makes its links (on AWS, reading the link secret).
        made = await run_in_threadpool(index_links, request, whole)
    return caller_links(made, current)


SettingsDep = Annotated[Settings, Depends(_settings)]
ServedDep = Annotated[Served, Depends(served)]
BackendDep = Annotated[SearchBackend, Depends(backend)]
BaseUrlDep = Annotated[str, Depends(_base_url)]
SourceLinksDep = Annotated[SourceLinks, Depends(_source_links)]
IndexBackendDep = Annotated[SearchBackend, Depends(index_backend)]
