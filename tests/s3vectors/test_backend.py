"""The S3 Vectors search path against the stand-in (tests/s3vectors/standin.py) and botocore's
Stubber: the same ranking as the bundle for dense search (same vectors, same metric), the
filters, the chunks, and the service's errors as 503s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from athenaeum.build.evaluation import load_beir
from athenaeum.errors import NotFoundError, ServiceUnavailableError
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.s3vectors.backend import S3VectorsSearch
from athenaeum.s3vectors.publish import VectorIndex, publish
from tests.conftest import SCIFACT_DIR, PdfLibrary
from tests.s3vectors.standin import MemoryState, S3VectorsStandIn

TARGET = VectorIndex("library-vectors", "athenaeum")


def _published(engine: SearchEngine) -> tuple[S3VectorsStandIn, S3VectorsSearch]:
    standin = S3VectorsStandIn()
    publish(engine.bundle, TARGET, client=standin, state=MemoryState())
    search = S3VectorsSearch(
        TARGET,
        client=standin,
        encoder=engine.encoder,
        manifest=engine.bundle.manifest,
        version=engine.facts.version,
    )
    return standin, search


def test_dense_search_ranks_as_the_bundle_does(scifact_engine: SearchEngine) -> None:
    standin, search = _published(scifact_engine)
    assert len(standin.vectors) == len(scifact_engine.bundle.chunks)
    ds = load_beir(SCIFACT_DIR)
    queries = [ds.queries[q] for q in ds.judged_queries][:40]
    for query in queries:
        ours = [h.chunk.id for h in search.search(query, top_k=10, mode="dense")]
        bundle = [h.chunk.id for h in scifact_engine.search(query, top_k=10, mode="dense")]
        assert ours == bundle, query
    hit = search.search(queries[0], top_k=1, mode="dense")[0]
    assert hit.chunk == scifact_engine.get_chunk(hit.chunk.id)
    assert hit.score == pytest.approx(
        scifact_engine.search(queries[0], top_k=1, mode="dense")[0].score, abs=1e-5
    )


def test_text_and_hybrid_search_and_filters(pdf_engine: SearchEngine) -> None:
    _, search = _published(pdf_engine)
    bm25 = search.search("petitioner", top_k=3, mode="bm25")
    assert bm25 and bm25[0].chunk.doc_id == "scotus-transcript-p1.md" and bm25[0].score > 0
    hybrid = search.search("oral argument of the petitioner", top_k=5, mode="hybrid")
    assert hybrid[0].chunk.doc_id == "scotus-transcript-p1.md"
    only = search.search(
        "report", top_k=10, mode="hybrid", filter={"documents": ["reports/"], "pages": {"to": 1}}
    )
    assert only and all(h.chunk.doc_id.startswith("reports/") for h in only)
    assert all(h.chunk.page_start is not None and h.chunk.page_start <= 1 for h in only)
    court = search.search("argument", top_k=10, mode="dense", filter={"metadata": {"year": 2012}})
    assert {h.chunk.doc_id for h in court} == {"scotus-transcript-p1.md"}
    first = hybrid[0].chunk
    assert search.get_chunk(first.id) == pdf_engine.get_chunk(first.id)
    with pytest.raises(NotFoundError):
        search.get_chunk("no-such-chunk#0")


def _stubbed_search(pdf_library: PdfLibrary) -> tuple[Any, Stubber, S3VectorsSearch]:
    import boto3  # type: ignore[import-untyped]

    engine = SearchEngine.load(Path(pdf_library.bundle))
    client = boto3.client(
        "s3vectors", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    search = S3VectorsSearch(
        TARGET,
        client=client,
        encoder=engine.encoder,
        manifest=engine.bundle.manifest,
        version=engine.facts.version,
        sleep=lambda s: None,
    )
    return client, Stubber(client), search


def test_service_errors_are_503s_and_throttling_is_retried(pdf_library: PdfLibrary) -> None:
    _, stubber, search = _stubbed_search(pdf_library)
    with stubber:
        stubber.add_client_error("query_vectors", "TooManyRequestsException", http_status_code=429)
        stubber.add_response(
            "query_vectors",
            {
                "vectors": [{"key": "a#0", "metadata": {"text": "t", "doc_id": "a.md"}}],
                "distanceMetric": "cosine",
            },
        )
        assert [h.chunk.id for h in search.search("x", mode="bm25")] == ["a#0"]
        stubber.add_client_error("query_vectors", "AccessDeniedException", http_status_code=403)
        with pytest.raises(ServiceUnavailableError, match="AccessDeniedException"):
            search.search("x", mode="bm25")
        stubber.assert_no_pending_responses()
