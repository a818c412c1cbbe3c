"""Dependencies shared by the routers, as `Annotated` aliases so handlers stay one-liners."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.types import Scope

from athenaeum.errors import UntrustedHostError
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.provider import EngineProvider, Served
from athenaeum.server.security import WELL_KNOWN
from athenaeum.server.settings import Settings
from athenaeum.server.sources import SignedLinks, SourceLinker


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def engine_provider(request: Request) -> EngineProvider:
    provider: EngineProvider = request.app.state.engine_provider
    return provider


def served(request: Request) -> Served:
    # Sync on purpose: FastAPI runs it in the thread pool, so a cold load (seconds, or an S3
    # download) never blocks the event loop; a failure raises BundleError, a 503. Taken once
    # per request (FastAPI caches a dependency within a request): a request runs on one
    # version of the index even when a newer one is swapped in meanwhile.
    return engine_provider(request).current()


def engine(current: Annotated[Served, Depends(served)]) -> SearchEngine:
    return current.engine


def source_links(request: Request, engine: SearchEngine) -> SignedLinks:
    """The links to original files for the engine being served (athenaeum.server.sources)."""
    linker: SourceLinker = request.app.state.source_linker
    return linker.of(engine.bundle, engine.bundle.manifest.documents)


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
    """The RFC 9728 metadata URL for a 401's WWW-Authenticate, or None for an untrusted host
    (the 401 then names no metadata)."""
    try:
        return public_base_url(settings, scope) + WELL_KNOWN
    except UntrustedHostError:
        return None


def base_url(request: Request) -> str:
    return public_base_url(app_settings(request), request.scope)


def _source_links(
    request: Request, engine: Annotated[SearchEngine, Depends(engine)]
) -> SignedLinks:
    return source_links(request, engine)


SettingsDep = Annotated[Settings, Depends(app_settings)]
ServedDep = Annotated[Served, Depends(served)]
EngineDep = Annotated[SearchEngine, Depends(engine)]
BaseUrlDep = Annotated[str, Depends(base_url)]
SourceLinksDep = Annotated[SignedLinks, Depends(_source_links)]
