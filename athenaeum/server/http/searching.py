"""The one search path: `/search`, the MCP `search` tool and chat retrieval all search through
here, so that each takes the index one way (as the caller may see it: `caller_backend`), parses
a filter one way, and checks a query against one limit with one answer.

The limit is the `max_query_chars` setting, and a query over it is refused, never cut: an
InvalidInputError naming `query`, which is a 400 on HTTP and a tool error on MCP. Chat sends no
query of its own: it searches for queries it derives from the conversation
(athenaeum.server.answers.followup), which that module keeps within the same limit.

The retrieval layer, which reads no settings, keeps a ceiling of its own for every caller
(athenaeum.retrieval.backend.MAX_QUERY_CHARS, the CLI's and evaluation's too); the setting may
not exceed it, so a query this module lets through is never refused below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.backend import Hit, SearchBackend, SearchMode
from athenaeum.retrieval.filters import SearchFilter
from athenaeum.server.access import readable_for, scoped
from athenaeum.server.auth.principal import Principal
from athenaeum.server.http.schemas import SearchFilterModel
from athenaeum.server.index.provider import EngineProvider, Served
from athenaeum.server.settings import Settings


async def served(provider: EngineProvider) -> Served:
    """The version of the index to answer a request with; take it once per request, so that a
    request runs on one version even when a newer one is swapped in meanwhile.

    A cold load (seconds, or an S3 download) or a check of a published index's pointer runs in
    the thread pool, never on the event loop; a failure raises BundleError, a 503."""
    ready = provider.ready()
    return ready if ready is not None else await run_in_threadpool(provider.current)


def readable(settings: Settings, scope: Mapping[str, Any]) -> frozenset[str] | None:
    """The collections the request's caller may read (athenaeum.server.access), or None: there
    is no access policy, and every caller reads everything. The caller is the principal the
    authentication middleware put in the request's state; a request without one (a server run
    open) holds no groups."""
    policy = settings.access
    if policy is None:
        return None
    principal = (scope.get("state") or {}).get("principal")
    return readable_for(policy, principal.groups if isinstance(principal, Principal) else ())


async def caller_backend(
    provider: EngineProvider, settings: Settings, scope: Mapping[str, Any]
) -> SearchBackend:
    """The index being served, as the request's caller may see it: what every route that
    returns text or a link searches (/search, /chunks, chat, MCP, /collections)."""
    return scoped((await served(provider)).backend, readable(settings, scope))


def parse_filter(model: SearchFilterModel | None) -> SearchFilter | None:
    """A request's `filter` as the backends take it; an InvalidInputError names the bad part."""
    if model is None:
        return None
    return SearchFilter.parse(model.model_dump(by_alias=True, exclude_none=True))


def check_query(query: str, max_chars: int) -> None:
    if len(query) > max_chars:
        raise InvalidInputError(
            f"query is {len(query)} characters long; the limit is {max_chars}", param="query"
        )
    if not query.strip():
        raise InvalidInputError("query must contain more than whitespace", param="query")


@dataclass(frozen=True)
class Searcher:
    """Searches one request's backend, within the query limit, through the request's filter.

    Blocking (an encoder run, or a call to S3 Vectors): async callers call it in the thread
    pool."""

    backend: SearchBackend
    max_query_chars: int
    filter: SearchFilter | None = None

    @classmethod
    def of(
        cls, backend: SearchBackend, max_query_chars: int, filter: SearchFilterModel | None
    ) -> Searcher:
        return cls(backend, max_query_chars, parse_filter(filter))

    def __call__(self, query: str, top_k: int, mode: SearchMode = "hybrid") -> list[Hit]:
        check_query(query, self.max_query_chars)
        return self.backend.search(query, top_k, mode, self.filter)
