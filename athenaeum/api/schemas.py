"""Request and response bodies of the REST endpoints; they are also the OpenAPI schema."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from athenaeum.bundle import ChunkRecord
from athenaeum.search import SearchResult

MAX_TOP_K = 50


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, description="What to look for, in natural language or keywords."
    )
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K, description="How many passages to return.")
    mode: Literal["hybrid", "dense", "bm25"] = Field(
        default="hybrid",
        description="hybrid: embeddings and BM25 fused (best in general); dense: embeddings "
        "only; bm25: keywords only.",
    )


class Passage(BaseModel):
    id: str = Field(description="Stable chunk id; GET /chunks/{id} returns it.")
    text: str
    score: float = Field(description="Relevance; compare within one response only.")
    source: str = Field(description="The source document (the PDF or file it came from).")
    title: str | None
    page_start: int | None
    page_end: int | None
    heading_path: list[str] = Field(description="Headings above the passage, outermost first.")
    url: str = Field(description="A link to this passage, for citations.")


class SearchResponse(BaseModel):
    object: Literal["search_results"] = "search_results"
    query: str
    mode: str
    results: list[Passage]


class Chunk(BaseModel):
    id: str
    doc_id: str
    ordinal: int = Field(description="Position of the chunk within its document, from 0.")
    text: str
    title: str | None
    source: str
    heading_path: list[str]
    page_start: int | None
    page_end: int | None
    url: str


class IndexFacts(BaseModel):
    format_version: int
    created_at: str
    athenaeum_version: str
    model: str = Field(description="The embedding model the index was built with.")
    dimension: int
    documents: int
    chunks: int
    dense_kind: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    index: IndexFacts
    models: list[str]


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


def chunk_url(base_url: str, chunk_id: str) -> str:
    from urllib.parse import quote

    # Chunk ids contain "#" and "/" (doc path + ordinal); both must be escaped in a path segment.
    return f"{base_url}/chunks/{quote(chunk_id, safe='')}"


def passage(result: SearchResult, base_url: str) -> Passage:
    return Passage(
        id=result.chunk_id,
        text=result.text,
        score=result.score,
        source=result.source,
        title=result.title,
        page_start=result.page_start,
        page_end=result.page_end,
        heading_path=result.heading_path,
        url=chunk_url(base_url, result.chunk_id),
    )


def chunk(record: ChunkRecord, base_url: str) -> Chunk:
    return Chunk(
        id=record.id,
        doc_id=record.doc_id,
        ordinal=record.ordinal,
        text=record.text,
        title=record.title,
        source=record.source,
        heading_path=list(record.heading_path),
        page_start=record.page_start,
        page_end=record.page_end,
        url=chunk_url(base_url, record.id),
    )
