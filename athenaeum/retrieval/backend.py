"""The one search interface the serve side talks to, whichever backend holds the chunks: a bundle
loaded in the process (athenaeum.retrieval.engine.SearchEngine) or an Amazon S3 Vectors index
(athenaeum.s3vectors.backend.S3VectorsSearch). Routes, chat, MCP, citations and filters use only
`SearchBackend`, and the checks every search makes, whichever backend answers it, are here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from athenaeum.bundle import ChunkRecord, DocumentInfo, Manifest
from athenaeum.errors import InvalidInputError, NotFoundError
from athenaeum.retrieval.filters import SearchFilter
from athenaeum.retrieval.text import check_text
from athenaeum.retrieval.tokens import TokenCounter

SearchMode = Literal["hybrid", "dense", "bm25"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
BackendKind = Literal["bundle", "s3vectors"]
# The one limit on results per search, for the CLI, /search, MCP and chat alike.
MAX_TOP_K = 50
# The longest query any caller may search. The server refuses longer ones itself, at its
# `max_query_chars` setting, which may not exceed this.
MAX_QUERY_CHARS = 10_000


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and its score; the score's meaning depends on the search mode."""

    chunk: ChunkRecord
    score: float


@dataclass(frozen=True)
class IndexFacts:
    """What /health and the CLI say about the index being searched."""

    backend: BackendKind
    # The bundle's folder (never shown to clients), or the S3 Vectors index's address.
    location: str
    # The sha256 of the bundle's manifest.json: a published version's id.
    version: str
    format_version: int
    created_at: str
    athenaeum_version: str
    model_id: str
    dimension: int
    documents: int
    chunks: int
    dense_kind: str

    @classmethod
    def of(
        cls,
        manifest: Manifest,
        *,
        backend: BackendKind,
        location: str,
        version: str,
        dense_kind: str,
    ) -> IndexFacts:
        """The facts of an index built as `manifest` says, searched where `location` says."""
        return cls(
            backend=backend,
            location=location,
            version=version,
            format_version=manifest.format_version,
            created_at=manifest.created_at,
            athenaeum_version=manifest.athenaeum_version,
            model_id=manifest.embedding.model_id,
            dimension=manifest.embedding.dimension,
            documents=manifest.counts.documents,
            chunks=manifest.counts.chunks,
            dense_kind=dense_kind,
        )


class SearchBackend(Protocol):
    """What the serve side needs of an index: search, a chunk by id, the documents (source
    links, citations, filters), facts for /health, and the tokenizer chat budgets count in."""

    @property
    def documents(self) -> Sequence[DocumentInfo]: ...

    @property
    def facts(self) -> IndexFacts: ...

    @property
    def tokens(self) -> TokenCounter: ...

    def search(
        self,
        query: str,
        top_k: int = 5,
        mode: str = "hybrid",
        filter: SearchFilter | Mapping[str, object] | None = None,
    ) -> list[Hit]: ...

    def get_chunk(self, chunk_id: str) -> ChunkRecord: ...


def missing_chunk(chunk_id: str) -> NotFoundError:
    """The one answer for a chunk id that is not in the index, or that is not the caller's to
    read (athenaeum.retrieval.access): the two are indistinguishable."""
    return NotFoundError(f"no chunk with id {chunk_id!r} in this index", param="id")


def check_top_k(top_k: object) -> None:
    """The one check of a search's `top_k`, whichever backend searches."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInputError(
            f"top_k must be an integer from 1 to {MAX_TOP_K}, got {top_k!r}", param="top_k"
        )


def check_mode(mode: object) -> None:
    if mode not in SEARCH_MODES:
        raise InvalidInputError(
            f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}", param="mode"
        )


def check_query(query: object) -> str:
    """The query as searched (stripped), or an InvalidInputError saying what is wrong."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("query must be a non-empty string", param="query")
    check_text(query, "query")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInputError(
            f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}",
            param="query",
        )
    return query.strip()
