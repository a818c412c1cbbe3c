"""`/search` and `/chunks/{id}`: the index over plain HTTP."""

from __future__ import annotations

from fastapi import APIRouter, Response

from athenaeum.retrieval.access import collections_of
from athenaeum.server.http.deps import BackendDep, BaseUrlDep, SettingsDep, SourceLinksDep
from athenaeum.server.http.schemas import (
    COMMON_ERRORS,
    Chunk,
    Collection,
    CollectionList,
    Passage,
    SearchRequest,
    SearchResponse,
)
from athenaeum.server.http.schemas import error_responses as errors
from athenaeum.server.http.searching import Searcher

# A GPT action's response must stay under 100,000 characters (OpenAI's production notes for GPT
# actions); what is left below that is room for what a proxy adds.
MAX_RESPONSE_CHARS = 90_000

SEARCH_DESCRIPTION = (
    "Search the library for passages relevant to a question. Returns the best passages with "
    "their source document, pages, headings and a citation URL. Cite sources by title and page."
)

# /search: mounted at the root and under /v1.
router = APIRouter(tags=["search"])
# /chunks/{id} and /collections: at the root only.
chunks_router = APIRouter(tags=["search"])


@router.post(
    "/search",
    name="searchLibrary",
    summary="Search the library",
    description=SEARCH_DESCRIPTION,
    responses=errors(*COMMON_ERRORS, 415),
    response_model=SearchResponse,
)
def search(
    body: SearchRequest,
    backend: BackendDep,
    settings: SettingsDep,
    base: BaseUrlDep,
    sources: SourceLinksDep,
) -> Response:
    searcher = Searcher.of(backend, settings.max_query_chars, body.filter)
    hits = searcher(body.query, body.top_k, body.mode)
    results = [
        Passage.from_hit(
            h, base, sources.link(h.chunk.doc_id, h.chunk.page_start, base, h.chunk.anchor)
        )
        for h in hits
    ]
    # Serialized here from the model just built and validated: returned as the model, FastAPI
    # would validate it a second time, in another trip through the thread pool.
    response = SearchResponse(query=body.query, mode=body.mode, results=results)
    return Response(fit_response(response), media_type="application/json")


def fit_response(response: SearchResponse, budget: int = MAX_RESPONSE_CHARS) -> str:
    """`response` as JSON of at most `budget` characters: the best-ranked passages that fit,
    the number left out in `omitted`. The first passage is always kept (a chunk is at most what
    the embedding model reads, far below the budget)."""
    parts = [p.model_dump_json() for p in response.results]
    envelope = len(
        response.model_copy(update={"results": [], "omitted": len(parts)}).model_dump_json()
    )
    size, kept = envelope, 0
    for part in parts:
        size += len(part) + (1 if kept else 0)
        if kept and size > budget:
            break
        kept += 1
    fitted = response.model_copy(
        update={"results": response.results[:kept], "omitted": len(parts) - kept}
    )
    return fitted.model_dump_json()


@chunks_router.get(
    "/chunks/{chunk_id:path}",
    name="getChunk",
    summary="Fetch a passage",
    description="One passage by the id that search returned, with its full text and metadata.",
    responses=errors(*COMMON_ERRORS, 404),
)
def get_chunk(
    chunk_id: str, backend: BackendDep, base: BaseUrlDep, sources: SourceLinksDep
) -> Chunk:
    record = backend.get_chunk(chunk_id)
    return Chunk.from_record(
        record, base, sources.link(record.doc_id, record.page_start, base, record.anchor)
    )


@chunks_router.get(
    "/collections",
    name="listCollections",
    summary="List the collections you may read",
    description="The collections of the library that this caller may read, with how many "
    "documents each holds; filter.collections narrows a search to some of them.",
    responses=errors(*COMMON_ERRORS),
)
def list_collections(backend: BackendDep) -> CollectionList:
    documents = backend.documents
    found = collections_of(documents)
    return CollectionList(
        data=[Collection(name=name, documents=count) for name, count in found.items()],
        root_documents=len(documents) - sum(found.values()),
    )
