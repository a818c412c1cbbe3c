"""Searching an S3 Vectors index the way the bundle's engine is searched: `search` (modes,
filters) and `get_chunk`, returning the same `Hit` and `ChunkRecord` objects.

The query is embedded by the same ONNX query encoder the bundle carries, so query and
document vectors come from one model whichever backend holds the documents. Scores: dense is
the cosine similarity (1 - the service's cosine distance); bm25 and hybrid are the service's
own (its BM25 score, its fused rank score). Throttling and transient errors are retried with
backoff; any other error from the service is a 503 that names it, never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from athenaeum.bundle import ChunkRecord, DocumentInfo
from athenaeum.errors import NotFoundError, ServiceUnavailableError
from athenaeum.retrieval.engine import Hit, check_top_k
from athenaeum.retrieval.filters import SearchFilter
from athenaeum.s3vectors.publish import RETRIED, TEXT_KEY, VectorIndex
from athenaeum.s3vectors.query import filter_expression, query_params

MAX_ATTEMPTS = 4


class QueryEncoder(Protocol):
    def encode_one(self, query: str) -> npt.NDArray[np.float32]: ...


def chunk_of(key: str, metadata: Mapping[str, Any]) -> ChunkRecord:
    """The chunk a vector's metadata describes (athenaeum.s3vectors.publish wrote it)."""
    headings = metadata.get("headings") or []
    return ChunkRecord(
        id=key,
        doc_id=str(metadata.get("doc_id", "")),
        ordinal=int(metadata.get("ordinal", 0)),
        text=str(metadata.get(TEXT_KEY, "")),
        title=str(metadata["title"]) if metadata.get("title") else None,
        source=str(metadata.get("source", "")),
        heading_path=[str(h) for h in headings] if isinstance(headings, list) else [],
        page_start=int(metadata["page_start"]) if "page_start" in metadata else None,
        page_end=int(metadata["page_end"]) if "page_end" in metadata else None,
    )


class S3VectorsSearch:
    def __init__(
        self,
        target: VectorIndex,
        *,
        client: Any,
        encoder: QueryEncoder,
        documents: Sequence[DocumentInfo],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.client = client
        self.encoder = encoder
        self.documents = list(documents)
        self._sleep = sleep

    def _call(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        for attempt in range(MAX_ATTEMPTS):
            try:
                return getattr(self.client, operation)(**params)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in RETRIED and attempt < MAX_ATTEMPTS - 1:
                    self._sleep(0.2 * 2**attempt)
                    continue
                raise ServiceUnavailableError(
                    f"the vector index {self.target.uri} answered {code or 'an error'}; "
                    "retry in a moment"
                ) from exc
            except BotoCoreError as exc:
                raise ServiceUnavailableError(
                    f"the vector index {self.target.uri} could not be reached "
                    f"({type(exc).__name__}); retry in a moment"
                ) from exc
        raise AssertionError("unreachable")

    def search(
        self,
        query: str,
        top_k: int = 5,
        mode: str = "hybrid",
        filter: SearchFilter | Mapping[str, object] | None = None,
    ) -> list[Hit]:
        check_top_k(top_k)
        search_filter = SearchFilter.parse(filter)
        vector = self.encoder.encode_one(query) if mode != "bm25" else None
        params = query_params(
            self.target,
            query=query,
            vector=vector,
            top_k=top_k,
            mode=mode,
            expression=filter_expression(search_filter, self.documents),
        )
        if mode != "dense":
            params["returnScores"] = True
        answer = self._call("query_vectors", **params)
        hits = []
        for found in answer.get("vectors", []):
            if mode == "dense":
                score = 1.0 - float(found.get("distance", 1.0))
            elif mode == "bm25":
                bm25 = found.get("scores", {}).get("bm25Scores") or [{}]
                score = float(bm25[0].get("score", 0.0))
            else:
                score = float(found.get("scores", {}).get("fused", 0.0))
            hits.append(Hit(chunk_of(found["key"], found.get("metadata") or {}), score))
        return hits

    def get_chunk(self, chunk_id: str) -> ChunkRecord:
        answer = self._call(
            "get_vectors",
            vectorBucketName=self.target.bucket,
            indexName=self.target.index,
            keys=[chunk_id],
            returnMetadata=True,
        )
        for found in answer.get("vectors", []):
            if found.get("key") == chunk_id:
                return chunk_of(chunk_id, found.get("metadata") or {})
        raise NotFoundError(f"no chunk with id {chunk_id!r} in this index", param="id")
