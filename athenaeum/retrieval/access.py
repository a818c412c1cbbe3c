"""A search backend as one caller sees it: only the documents of the collections they may read.

The server decides what a caller may read (athenaeum.server.access: a policy over the caller's
groups) and wraps the backend it serves in a `ScopedBackend` for that request. Everything the
serve side asks of a backend then goes through the scope:

- `search` confines the caller's filter to the readable collections (`SearchFilter.within`),
  which each backend applies inside its retrievers, before fusion: a mask over the bundle's
  chunks, a metadata condition in S3 Vectors. The hits are checked again on the way out;
- `get_chunk` answers a chunk of a document the caller may not read exactly as it answers an
  id that does not exist;
- `documents` and `facts` hold and count only the readable documents, so that links, filter
  hints and counts never name or count the others.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from athenaeum.bundle import ChunkRecord, DocumentInfo
from athenaeum.bundle.format import ROOT_COLLECTION
from athenaeum.retrieval.backend import Hit, IndexFacts, SearchBackend, missing_chunk
from athenaeum.retrieval.filters import SearchFilter
from athenaeum.retrieval.tokens import TokenCounter

logger = logging.getLogger(__name__)


def collections_of(documents: Sequence[DocumentInfo]) -> dict[str, int]:
    """Each collection of `documents` (the root's aside) with its number of documents, by
    name."""
    counts: dict[str, int] = {}
    for document in documents:
        if document.collection != ROOT_COLLECTION:
            counts[document.collection] = counts.get(document.collection, 0) + 1
    return dict(sorted(counts.items()))


class ScopedBackend:
    """`backend` (a athenaeum.retrieval.backend.SearchBackend) confined to the documents of the
    collections in `readable`; ROOT_COLLECTION stands for the documents at the library's root."""

    def __init__(
        self,
        backend: SearchBackend,
        readable: frozenset[str],
        visible: Mapping[str, DocumentInfo] | None = None,
    ) -> None:
        """`visible`, when given, is the readable documents by id, listed already (a view is
        made per request; what a reach may read can be listed once, across requests)."""
        self.backend = backend
        self.readable = readable
        self._visible = (
            visible
            if visible is not None
            else {d.doc_id: d for d in backend.documents if d.collection in readable}
        )

    @property
    def documents(self) -> Sequence[DocumentInfo]:
        return list(self._visible.values())

    def holds(self, doc_id: str) -> bool:
        """Whether the document `doc_id` is one the caller may read."""
        return doc_id in self._visible

    @property
    def facts(self) -> IndexFacts:
        visible = self._visible.values()
        return replace(
            self.backend.facts,
            documents=len(visible),
            chunks=sum(d.chunk_count for d in visible),
        )

    @property
    def tokens(self) -> TokenCounter:
        return self.backend.tokens

    def search(
        self,
        query: str,
        top_k: int = 5,
        mode: str = "hybrid",
        filter: SearchFilter | Mapping[str, object] | None = None,
    ) -> list[Hit]:
        confined = SearchFilter.parse(filter).within(self.readable)
        hits = self.backend.search(query, top_k, mode, confined)
        kept = [h for h in hits if h.chunk.doc_id in self._visible]
        if len(kept) != len(hits):
            # The backend applies the confinement itself; a hit outside it is a defect (an
            # S3 Vectors index published before collections, say), and is never shown.
            logger.error(
                "ACCESS_FILTER_BYPASSED: the %s backend returned %d hit(s) outside the "
                "caller's collections; they were dropped",
                self.backend.facts.backend,
                len(hits) - len(kept),
            )
        return kept

    def get_chunk(self, chunk_id: str) -> ChunkRecord:
        chunk = self.backend.get_chunk(chunk_id)
        if chunk.doc_id not in self._visible:
            raise missing_chunk(chunk_id)
        return chunk
