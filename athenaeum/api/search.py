"""`/search`, `/chunks/{id}`, `/health` and `/models`: the index over plain HTTP."""

from __future__ import annotations

import time

from fastapi import APIRouter

from athenaeum import __version__
from athenaeum.api.deps import BaseUrlDep, EngineDep, SettingsDep
from athenaeum.api.errors import ErrorResponse
from athenaeum.api.schemas import (
    Chunk,
    Health,
    IndexFacts,
    Model,
    ModelList,
    SearchRequest,
    SearchResponse,
    chunk,
    passage,
)
from athenaeum.errors import InvalidInputError
from athenaeum.settings import Settings

ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Invalid request"),
        (401, "Missing or invalid credentials"),
        (403, "Valid credentials without the required scope"),
        (413, "Request body too large"),
        (503, "The index (or an upstream it needs) is unavailable; retry later"),
    )
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "Not found"}
}

RETRIEVAL_MODEL = "athenaeum-index-retrieval"
GENERATION_MODEL = "athenaeum-index-rag"
# Model objects need a creation time; the process start is as honest as any.
_STARTED = int(time.time())

router = APIRouter()


def model_ids(settings: Settings) -> list[str]:
    return [RETRIEVAL_MODEL, GENERATION_MODEL] if settings.llm_enabled else [RETRIEVAL_MODEL]


@router.get(
    "/health",
    summary="Health and index facts",
    description="Whether the server is up and its index loaded, with facts about the index.",
    operation_id="health",
    responses={503: ERRORS[503]},
    tags=["meta"],
)
def health(engine: EngineDep, settings: SettingsDep) -> Health:
    f = engine.facts
    return Health(
        version=__version__,
        index=IndexFacts(
            format_version=f.format_version,
            created_at=f.created_at,
            athenaeum_version=f.athenaeum_version,
            model=f.model_id,
            dimension=f.dimension,
            documents=f.documents,
            chunks=f.chunks,
            dense_kind=f.dense_kind,
        ),
        models=model_ids(settings),
    )


def _list_models(settings: Settings) -> ModelList:
    return ModelList(
        data=[Model(id=m, created=_STARTED, owned_by="athenaeum") for m in model_ids(settings)]
    )


@router.get(
    "/models",
    summary="List models",
    description="The chat models this server answers with, in the OpenAI list format.",
    operation_id="listModels",
    responses={k: v for k, v in ERRORS.items() if k in (401, 403)},
    tags=["openai"],
)
def list_models(settings: SettingsDep) -> ModelList:
    return _list_models(settings)


@router.get(
    "/v1/models",
    summary="List models (OpenAI path)",
    description="The same as GET /models, under the /v1 prefix the OpenAI SDK uses.",
    operation_id="listModelsV1",
    responses={k: v for k, v in ERRORS.items() if k in (401, 403)},
    tags=["openai"],
)
def list_models_v1(settings: SettingsDep) -> ModelList:
    return _list_models(settings)


def _search(
    body: SearchRequest, engine: EngineDep, settings: SettingsDep, base: BaseUrlDep
) -> SearchResponse:
    if len(body.query) > settings.max_query_chars:
        raise InvalidInputError(
            f"query is {len(body.query)} characters long; the limit is {settings.max_query_chars}",
            param="query",
        )
    if not body.query.strip():
        raise InvalidInputError("query must contain more than whitespace", param="query")
    results = engine.search(body.query, top_k=body.top_k, mode=body.mode)
    return SearchResponse(
        query=body.query, mode=body.mode, results=[passage(r, base) for r in results]
    )


SEARCH_DESCRIPTION = (
    "Search the library for passages relevant to a question. Returns the best passages with "
    "their source document, pages, headings and a citation URL. Cite sources by title and page."
)


@router.post(
    "/search",
    summary="Search the library",
    description=SEARCH_DESCRIPTION,
    operation_id="searchLibrary",
    responses=ERRORS,
    tags=["search"],
)
def search(
    body: SearchRequest, engine: EngineDep, settings: SettingsDep, base: BaseUrlDep
) -> SearchResponse:
    return _search(body, engine, settings, base)


@router.post(
    "/v1/search",
    summary="Search the library (/v1 path)",
    description="The same as POST /search.",
    operation_id="searchLibraryV1",
    responses=ERRORS,
    tags=["search"],
)
def search_v1(
    body: SearchRequest, engine: EngineDep, settings: SettingsDep, base: BaseUrlDep
) -> SearchResponse:
    return _search(body, engine, settings, base)


@router.get(
    "/chunks/{chunk_id:path}",
    summary="Fetch a passage",
    description="One passage by the id that search returned, with its full text and metadata.",
    operation_id="getChunk",
    responses={**ERRORS, **NOT_FOUND},
    tags=["search"],
)
def get_chunk(chunk_id: str, engine: EngineDep, base: BaseUrlDep) -> Chunk:
    return chunk(engine.get_chunk(chunk_id), base)
