"""`/health`, `/models` and the RFC 9728 metadata that tells OAuth clients where to log in."""

from __future__ import annotations

import time
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from fastapi import APIRouter, Request

from athenaeum import __version__
from athenaeum.errors import NotFoundError
from athenaeum.server.auth.discovery import WELL_KNOWN, protected_resource_metadata
from athenaeum.server.http.deps import ServedDep, SettingsDep, public_base_url
from athenaeum.server.http.schemas import ErrorResponse, Health, IndexFacts, Model, ModelList
from athenaeum.server.http.schemas import error_responses as errors
from athenaeum.server.settings import Settings

RETRIEVAL_MODEL = "athenaeum-index-retrieval"
GENERATION_MODEL = "athenaeum-index-rag"
# Model objects need a creation time; the process start is as honest as any.
_STARTED = int(time.time())

# /health and the metadata: public, at the root only.
router = APIRouter(tags=["meta"])
# /models: mounted at the root and under /v1, as the OpenAI SDK expects.
models_router = APIRouter(tags=["openai"])


def model_ids(settings: Settings) -> list[str]:
    return [RETRIEVAL_MODEL, GENERATION_MODEL] if settings.llm_enabled else [RETRIEVAL_MODEL]


def public_model_name(model_id: str) -> str:
    """The embedding model as /health may show it: a hub id ("org/name") as it is, a local
    folder by its name only; the build machine's paths are nobody's business."""
    path = PureWindowsPath(model_id) if "\\" in model_id else PurePosixPath(model_id)
    looks_local = path.is_absolute() or model_id.startswith((".", "~")) or "\\" in model_id
    if looks_local or len(path.parts) > 2:
        # The package folder of a model shipped inside a wheel is called "model": name its
        # parent too.
        name = path.name
        return f"{path.parent.name}/{name}" if name == "model" and path.parent.name else name
    return model_id


@router.get(
    "/health",
    name="health",
    summary="Health and index facts",
    description="Whether the server is up and its index loaded, with facts about the index.",
    responses=errors(503),
)
def health(current: ServedDep, settings: SettingsDep) -> Health:
    f = current.backend.facts
    # Public: under an access policy, no count that would tell one caller of another's
    # collections.
    counted = settings.access is None
    return Health(
        version=__version__,
        index=IndexFacts(
            backend=f.backend,
            # The service's index by its address; a bundle's folder is the server's business.
            vector_index=f.location if f.backend == "s3vectors" else None,
            format_version=f.format_version,
            created_at=f.created_at,
            athenaeum_version=f.athenaeum_version,
            model=public_model_name(f.model_id),
            dimension=f.dimension,
            documents=f.documents if counted else None,
            chunks=f.chunks if counted else None,
            dense_kind=f.dense_kind,
            index_version=current.version,
            published_at=current.published_at,
            age_s=round(current.age_s, 1),
        ),
        models=model_ids(settings),
    )


@models_router.get(
    "/models",
    name="listModels",
    summary="List models",
    description="The chat models this server answers with, in the OpenAI list format.",
    responses=errors(401, 403),
)
def list_models(settings: SettingsDep) -> ModelList:
    return ModelList(
        data=[Model(id=m, created=_STARTED, owned_by="athenaeum") for m in model_ids(settings)]
    )


_NO_OAUTH: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "OAuth is not configured"}
}


def _metadata(settings: Settings, request: Request, suffix: str = "") -> dict[str, Any]:
    if not (settings.oauth_issuer and settings.oauth_enabled):
        raise NotFoundError("this server does not use OAuth; it has no protected resource metadata")
    base = public_base_url(settings, request.scope)
    # With the relay, this API is the authorization server clients talk to (RFC 8414 metadata
    # at its own /.well-known/oauth-authorization-server); the issuer stays the tokens' `iss`.
    server = base if settings.oauth_relay_enabled else settings.oauth_issuer
    return protected_resource_metadata(base + suffix, server, settings.oauth_required_scopes)


@router.get(
    WELL_KNOWN,
    name="protectedResourceMetadata",
    summary="OAuth protected resource metadata",
    description="RFC 9728 metadata naming the OAuth issuer that grants access to this API.",
    responses=_NO_OAUTH,
)
def resource_metadata(request: Request, settings: SettingsDep) -> dict[str, Any]:
    return _metadata(settings, request)


@router.get(
    WELL_KNOWN + "/mcp",
    name="protectedResourceMetadataMcp",
    summary="OAuth protected resource metadata for /mcp",
    description="RFC 9728 metadata for the MCP endpoint (the path-suffixed form MCP "
    "clients ask for first).",
    responses=_NO_OAUTH,
)
def resource_metadata_mcp(request: Request, settings: SettingsDep) -> dict[str, Any]:
    return _metadata(settings, request, "/mcp")
