"""The S3 Vectors search backend (athenaeum.retrieval.backend.SearchBackend): `search` (modes,
filters) and `get_chunk` over an Amazon S3 Vectors index that `athenaeum publish` filled,
returning the same `Hit` and `ChunkRecord` objects as the bundle's engine.

It needs only the bundle's query side (athenaeum.bundle.query_side: the manifest and the ONNX
query encoder), never its vectors, chunks or BM25, which the service holds. The query is
embedded by that encoder, so query and document vectors come from one model whichever backend
holds the documents. It calls two actions: QueryVectors and GetVectors.

Scores: dense is the cosine similarity (1 - the service's cosine distance); bm25 and hybrid are
the service's own (its BM25 score, its fused rank score). Throttling and transient errors are
retried with backoff; any other error from the service, or one that outlasts the retries, is a
503 with a Retry-After header that names it, never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from athenaeum.bundle import MANIFEST_FILE, ChunkRecord, DocumentInfo, Manifest
from athenaeum.bundle.query_side import load_query_side
from athenaeum.bundle.verification import manifest_sha256
from athenaeum.errors import MissingDependencyError, VectorIndexUnavailableError
from athenaeum.retrieval.backend import (
    Hit,
    IndexFacts,
    check_mode,
    check_query,
    check_top_k,
    missing_chunk,
)
from athenaeum.retrieval.encoder import OnnxQueryEncoder
from athenaeum.retrieval.filters import SearchFilter
from athenaeum.retrieval.tokens import TokenCounter
from athenaeum.s3vectors.definition import ANCHOR_KEY, LOCATION_KEY, SECTION_LOCATION
from athenaeum.s3vectors.publish import RETRIED, TEXT_KEY, VectorIndex
from athenaeum.s3vectors.query import filter_expression, query_params

MAX_ATTEMPTS = 4
# The most results one QueryVectors call returns: how deep `rank` (evaluation) can go.
MAX_DEPTH = 100
MAX_KEY_CHARS = 1024  # of a vector's key, in the service model
# The actions this backend calls (an IAM policy for the server grants these and no others).
ACTIONS = ("s3vectors:QueryVectors", "s3vectors:GetVectors")


class QueryEncoder(Protocol):
    tokenizer: Tokenizer

    def encode_one(self, query: str) -> npt.NDArray[np.float32]: ...


def s3vectors_client(*, endpoint_url: str | None = None) -> Any:
    """A boto3 `s3vectors` client with short timeouts and no retries of its own: `S3VectorsSearch`
    retries throttling itself, once, with backoff, inside API Gateway's 29 seconds."""
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - boto3 is in the dev group and on Lambda
        raise MissingDependencyError("boto3", "s3") from exc
    config = Config(
        connect_timeout=3, read_timeout=10, retries={"total_max_attempts": 1, "mode": "standard"}
    )
    return boto3.client("s3vectors", endpoint_url=endpoint_url, config=config)


def chunk_of(key: str, metadata: Mapping[str, Any]) -> ChunkRecord:
    """The chunk a vector's metadata describes (athenaeum.s3vectors.publish wrote it)."""
    headings = metadata.get("headings") or []
    heading_path = [str(h) for h in headings] if isinstance(headings, list) else []
    place = metadata.get(LOCATION_KEY)
    location = " > ".join(heading_path) if place == SECTION_LOCATION else place
    return ChunkRecord(
        id=key,
        doc_id=str(metadata.get("doc_id", "")),
        ordinal=int(metadata.get("ordinal", 0)),
        text=str(metadata.get(TEXT_KEY, "")),
        title=str(metadata["title"]) if metadata.get("title") else None,
        source=str(metadata.get("source", "")),
        heading_path=heading_path,
        page_start=int(metadata["page_start"]) if "page_start" in metadata else None,
        page_end=int(metadata["page_end"]) if "page_end" in metadata else None,
        location=str(location) if location else None,
        anchor=str(metadata[ANCHOR_KEY]) if metadata.get(ANCHOR_KEY) else None,
    )


class S3VectorsSearch:
    def __init__(
        self,
        target: VectorIndex,
        *,
        client: Any,
        encoder: QueryEncoder,
        manifest: Manifest,
        version: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`manifest` is that of the bundle published to `target`, `version` its sha256."""
        self.target = target
        self.client = client
        self.encoder = encoder
        self.manifest = manifest
        self.version = version
        self._sleep = sleep

    @classmethod
    def load(
        cls,
        query_side: Path,
        target: VectorIndex,
        *,
        client: Any,
        threads: int | None = None,
        check_hashes: bool = True,
    ) -> S3VectorsSearch:
        """The backend for `target` from the query side of the bundle published to it (a
        query-side copy, or the whole bundle, of which only the manifest and the query encoder
        are read); raises BundleError when that is unusable."""
        query_side = Path(query_side)
        manifest = load_query_side(query_side, check_hashes=check_hashes)
        version = manifest_sha256((query_side / MANIFEST_FILE).read_bytes())
        encoder = OnnxQueryEncoder.of_bundle(query_side, manifest, threads=threads)
        return cls(target, client=client, encoder=encoder, manifest=manifest, version=version)

    @property
    def documents(self) -> Sequence[DocumentInfo]:
        return self.manifest.documents

    @property
    def facts(self) -> IndexFacts:
        m = self.manifest
        return IndexFacts.of(
            m,
            backend="s3vectors",
            location=self.target.uri,
            version=self.version,
            dense_kind="s3vectors",
        )

    @cached_property
    def tokens(self) -> TokenCounter:
        return TokenCounter(self.encoder.tokenizer)

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
                raise VectorIndexUnavailableError(
                    f"the vector index {self.target.uri} answered {code or 'an error'}; "
                    "retry in a moment"
                ) from exc
            except BotoCoreError as exc:
                raise VectorIndexUnavailableError(
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
        return self.rank(query, mode=mode, depth=top_k, filter=filter)

    def rank(
        self,
        query: str,
        *,
        mode: str = "hybrid",
        depth: int = MAX_DEPTH,
        filter: SearchFilter | Mapping[str, object] | None = None,
    ) -> list[Hit]:
        """The best `depth` chunks, up to MAX_DEPTH (evaluation ranks deeper than a search's
        `top_k` may go)."""
        if not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"depth must be from 1 to {MAX_DEPTH}, got {depth}")
        query = check_query(query)
        check_mode(mode)
        expression = filter_expression(SearchFilter.parse(filter), self.documents)
        params = query_params(
            self.target,
            query=query,
            vector=self.encoder.encode_one(query) if mode != "bm25" else None,
            top_k=depth,
            mode=mode,
            expression=expression,
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
        missing = missing_chunk(chunk_id)
        if not 1 <= len(chunk_id) <= MAX_KEY_CHARS:
            raise missing  # no vector has such a key: the service would refuse to look
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
        raise missing
