"""Searches as S3 Vectors QueryVectors requests: each mode and filter checked by botocore
against the service model (a Stubber client validates the parameters it is called with)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from botocore.stub import Stubber

from athenaeum.bundle import load_bundle
from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.filters import SearchFilter
from athenaeum.s3vectors.publish import VectorIndex
from athenaeum.s3vectors.query import (
    MAX_TEXT_CHARS,
    filter_expression,
    query_params,
    query_text,
)
from tests.conftest import PdfLibrary

TARGET = VectorIndex("library-vectors", "athenaeum")
VECTOR = np.full(384, 1 / np.sqrt(384), dtype=np.float32)


def _client() -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3vectors",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_each_mode_is_a_valid_request(mode: str, pdf_library: PdfLibrary) -> None:
    documents = load_bundle(pdf_library.bundle).manifest.documents
    search_filter = SearchFilter.parse(
        {"documents": ["reports/*"], "pages": {"from": 2, "to": 3}, "metadata": {"Year": 2015}}
    )
    expression = filter_expression(search_filter, documents)
    params = query_params(
        TARGET, query="child welfare", vector=VECTOR, top_k=5, mode=mode, expression=expression
    )
    assert ("queryVector" in params) == (mode != "bm25")
    assert ("queryTexts" in params) == (mode != "dense")
    client = _client()
    with Stubber(client) as stubber:
        stubber.add_response(
            "query_vectors",
            {
                "vectors": [{"key": "a#0", "distance": 0.1, "metadata": {"text": "x"}}],
                "distanceMetric": "cosine",
            },
            params,
        )
        answer = client.query_vectors(**params)  # validated against the model
    assert answer["vectors"][0]["key"] == "a#0"


def test_filters_become_metadata_expressions(pdf_library: PdfLibrary) -> None:
    documents = load_bundle(pdf_library.bundle).manifest.documents
    assert filter_expression(None, documents) is None
    assert filter_expression(SearchFilter.parse({}), documents) is None
    only = filter_expression(SearchFilter.parse({"documents": ["reports/"]}), documents)
    assert only == {
        "doc_id": {
            "$in": ["reports/150109DSP-Milw-505-90D.md", "reports/mistitled_outlines_example.md"]
        }
    }
    both = filter_expression(
        SearchFilter.parse({"pages": {"from": 2}, "metadata": {"tags": ["Outline", "x"]}}),
        documents,
    )
    assert both == {"$and": [{"page_end": {"$gte": 2}}, {"fm_tags": {"$in": ["outline", "x"]}}]}
    # A pattern that matches no document is refused, as the bundle refuses it, before any
    # expression is built.
    with pytest.raises(InvalidInputError, match=r"matches 'nope\.pdf'") as unmatched:
        filter_expression(SearchFilter.parse({"documents": ["nope.pdf"]}), documents)
    assert unmatched.value.param == "filter.documents"
    # A field no document has is refused, as the bundle refuses it.
    with pytest.raises(InvalidInputError, match="author") as refused:
        filter_expression(SearchFilter.parse({"metadata": {"author": "x"}}), documents)
    assert refused.value.param == "filter.metadata.author"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="mode must be one of"):
        query_params(TARGET, query="q", vector=VECTOR, top_k=5, mode="fuzzy", expression=None)


def test_a_long_query_s_text_part_is_cut_to_what_the_service_takes() -> None:
    query = "vitamin deficiency " * 120  # 2,280 characters
    params = query_params(
        TARGET, query=query, vector=VECTOR, top_k=5, mode="hybrid", expression=None
    )
    text = params["queryTexts"][0]["text"]
    assert len(text) <= MAX_TEXT_CHARS and query.startswith(text)
    assert text.split()[-1] in ("vitamin", "deficiency")  # whole words only
    assert query_text("x" * 2000) == "x" * MAX_TEXT_CHARS  # one long word: cut where it must be
    assert query_text("short query") == "short query"
    client = _client()
    with Stubber(client) as stubber:
        stubber.add_response("query_vectors", {"vectors": [], "distanceMetric": "cosine"}, params)
        client.query_vectors(**params)  # validated against the model: text within its limit
