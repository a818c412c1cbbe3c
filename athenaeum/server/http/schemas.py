"""Request and response bodies of the REST endpoints; they are also the OpenAPI schema.

A passage and a chunk are the bundle's one chunk model (athenaeum.bundle.chunk) as the wire shows
it, with the link athenaeum.retrieval.citations makes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from athenaeum.bundle import ChunkRecord
from athenaeum.retrieval import citations
from athenaeum.retrieval.backend import MAX_TOP_K, Hit, SearchMode
from athenaeum.retrieval.filters import MAX_PATTERNS
from athenaeum.retrieval.text import check_texts


class RequestBody(BaseModel):
    """A request body (REST or MCP tool arguments): every string in it, object keys and
    fields the model ignores included, is text the tokenizer can take, else a 400 whose
    `param` is the string's path (athenaeum.retrieval.text)."""

    @model_validator(mode="before")
    @classmethod
    def _readable_text(cls, data: Any) -> Any:
        # An InvalidInputError is not a ValueError: pydantic lets it through to the one
        # error handler, with its param, instead of folding it into a validation error.
        check_texts(data)
        return data


class PageRange(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: int | None = Field(default=None, alias="from", ge=1, description="First page.")
    to: int | None = Field(default=None, ge=1, description="Last page.")


MetadataValue = str | int | float | bool


class SearchFilterModel(BaseModel):
    """Narrows a search before ranking; every part given must match."""

    model_config = ConfigDict(extra="forbid")

    collections: list[str] | None = Field(
        default=None,
        max_length=MAX_PATTERNS,
        description='Collections to search, by name ("hr", "engineering"): a document\'s '
        "collection is the first folder of its path in the library. GET /collections lists "
        "those you may read.",
    )
    documents: list[str] | None = Field(
        default=None,
        max_length=MAX_PATTERNS,
        description='File names, paths or globs: "guide.pdf", "reports/*.pdf", or a folder '
        'ending in "/" ("reports/"). Case-insensitive.',
    )
    pages: PageRange | None = Field(
        default=None,
        description="Only passages whose pages overlap this range (for a deck its slides, for a "
        "workbook its sheets, by number).",
    )
    metadata: dict[str, MetadataValue | list[MetadataValue]] | None = Field(
        default=None,
        description='Front-matter fields of the documents: {"author": "Jane Doe", "year": '
        "[2020, 2021]}; a list matches any of its values.",
    )


class SearchRequest(RequestBody):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, description="What to look for, in natural language or keywords."
    )
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K, description="How many passages to return.")
    mode: SearchMode = Field(
        default="hybrid",
        description="hybrid: embeddings and BM25 fused (best in general); dense: embeddings "
        "only; bm25: keywords only.",
    )
    filter: SearchFilterModel | None = Field(
        default=None,
        description="Search only some collections, documents, pages or metadata values.",
    )


class Passage(BaseModel):
    id: str = Field(description="Stable chunk id; GET /chunks/{id} returns it.")
    text: str
    score: float = Field(description="Relevance; compare within one response only.")
    source: str = Field(description="The source document (the PDF or file it came from).")
    title: str | None
    page_start: int | None
    page_end: int | None
    location: str | None = Field(
        default=None,
        description='Where the passage is, as cited: "p. 3", "pp. 3-5", "slide 7", "sheet '
        'Budget!A1:F40" or a section path ("Chapter 3 > Methods"); null when the document has '
        "no such places.",
    )
    heading_path: list[str] = Field(description="Headings above the passage, outermost first.")
    url: str = Field(description="A link to this passage (GET /chunks/{id}, with a token).")
    source_url: str | None = Field(
        default=None,
        description="A link that opens the original file at the passage's page, without a "
        "token; it expires (one hour by default). Null when the server has no copy of the file.",
    )

    @classmethod
    def from_hit(cls, hit: Hit, base_url: str, source_url: str | None = None) -> Passage:
        c = hit.chunk
        return cls(
            id=c.id,
            text=c.text,
            score=hit.score,
            source=c.source,
            title=c.title,
            page_start=c.page_start,
            page_end=c.page_end,
            location=citations.pages(c),
            heading_path=list(c.heading_path),
            url=citations.link(base_url, c.id),
            source_url=source_url,
        )


class SearchResponse(BaseModel):
    object: Literal["search_results"] = "search_results"
    query: str
    mode: str
    results: list[Passage]
    omitted: int = Field(
        default=0,
        description="Lower-ranked passages left out to keep the response under 90,000 "
        "characters (ChatGPT refuses larger ones); fetch fewer or narrow the query to see them.",
    )


class Collection(BaseModel):
    name: str = Field(description="The collection's name, as filter.collections takes it.")
    documents: int = Field(description="How many of its documents you may read.")


class CollectionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Collection] = Field(description="The collections you may read, by name.")
    root_documents: int = Field(
        description="Documents in no collection (at the library's root), which every caller "
        "may read."
    )


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
    location: str | None = Field(default=None, description="Where the chunk is, as cited.")
    url: str
    source_url: str | None = Field(
        default=None, description="The original file at the chunk's page, as in search results."
    )

    @classmethod
    def from_record(
        cls, record: ChunkRecord, base_url: str, source_url: str | None = None
    ) -> Chunk:
        return cls(
            id=record.id,
            doc_id=record.doc_id,
            ordinal=record.ordinal,
            text=record.text,
            title=record.title,
            source=record.source,
            heading_path=list(record.heading_path),
            page_start=record.page_start,
            page_end=record.page_end,
            location=citations.pages(record),
            url=citations.link(base_url, record.id),
            source_url=source_url,
        )


class IndexFacts(BaseModel):
    backend: Literal["bundle", "s3vectors"] = Field(
        description="Where the chunks are searched: a bundle loaded by this server, or an "
        "Amazon S3 Vectors index."
    )
    vector_index: str | None = Field(
        default=None,
        description="The Amazon S3 Vectors index searched (s3vectors://BUCKET/INDEX), when "
        "the backend is s3vectors.",
    )
    format_version: int
    created_at: str
    athenaeum_version: str
    model: str = Field(description="The embedding model the index was built with.")
    dimension: int
    documents: int | None = Field(
        description="How many documents the index holds; null where an access policy keeps "
        "collections apart (/collections counts what the caller may read)."
    )
    chunks: int | None = Field(
        description="How many passages the index holds; null where an access policy keeps "
        "collections apart."
    )
    dense_kind: str
    index_version: str = Field(
        description="The sha256 of the index's manifest: a published version's id."
    )
    published_at: str | None = Field(
        default=None,
        description="When this version was published (a published index), else null.",
    )
    age_s: float = Field(
        description="Seconds since this version was published, or, for an index never "
        "published, since it was built."
    )


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


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


# The one error shape (athenaeum.errors.error_body), as the OpenAPI schema states it.
class ErrorResponse(BaseModel):
    error: ErrorDetail


_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request",
    401: "Missing or invalid credentials",
    403: "Valid credentials without the required scope",
    404: "Not found",
    413: "Request body too large",
    415: "The body is not sent as JSON (Content-Type: application/json)",
    429: "The language model is rate limited",
    502: "The language model failed",
    503: "The index (or an upstream it needs) is unavailable; retry later",
}
# What every authenticated operation may answer besides its success.
COMMON_ERRORS = (400, 401, 403, 413, 503)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses."""
    return {
        status: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }
