"""Search filters on a real library: documents, folders, pages and front-matter metadata narrow
what every retriever ranks, before fusion; malformed filters are 400s that name the part."""

from __future__ import annotations

from typing import Any

import pytest

from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.engine import SEARCH_MODES, SearchEngine
from athenaeum.retrieval.filters import SearchFilter
from tests.conftest import PdfLibrary

QUERY = "child injuries report agency investigation"


def sources(engine: SearchEngine, flt: dict[str, Any] | None, mode: str = "hybrid") -> set[str]:
    return {h.chunk.source for h in engine.search(QUERY, top_k=50, mode=mode, filter=flt)}


def test_the_library_has_what_the_filters_test(pdf_engine: SearchEngine) -> None:
    docs = {d.source: d for d in pdf_engine.bundle.manifest.documents}
    assert set(docs) == {
        "scotus-transcript-p1.pdf",
        "multicolumn.pdf",
        "reports/150109DSP-Milw-505-90D.pdf",
        "reports/mistitled_outlines_example.pdf",
    }
    assert docs["reports/150109DSP-Milw-505-90D.pdf"].metadata == {
        "category": "child welfare",
        "year": 2015,
    }
    # convert's own fields are not metadata
    assert "sha256" not in docs["multicolumn.pdf"].metadata
    assert len(sources(pdf_engine, None)) == 4


@pytest.mark.parametrize("mode", SEARCH_MODES)
@pytest.mark.parametrize(
    ("documents", "expected"),
    [
        (["multicolumn.pdf"], {"multicolumn.pdf"}),  # a file name
        (["MULTICOLUMN.PDF"], {"multicolumn.pdf"}),  # case-insensitive
        (
            ["reports/"],
            {"reports/150109DSP-Milw-505-90D.pdf", "reports/mistitled_outlines_example.pdf"},
        ),
        (["reports/150109*"], {"reports/150109DSP-Milw-505-90D.pdf"}),  # a glob
        (
            ["scotus*", "*outlines*"],
            {"scotus-transcript-p1.pdf", "reports/mistitled_outlines_example.pdf"},
        ),
    ],
)
def test_documents_filter_in_every_mode(
    pdf_engine: SearchEngine, mode: str, documents: list[str], expected: set[str]
) -> None:
    found = sources(pdf_engine, {"documents": documents}, mode)
    if mode == "bm25":  # BM25 returns only chunks sharing a term with the query
        assert found <= expected
    else:
        assert found == expected


def test_filter_fills_top_k_before_fusion(pdf_engine: SearchEngine) -> None:
    """The filtered document's chunks are ranked among themselves, so top_k is filled even when
    an unfiltered search would rank other documents above every one of them."""
    target = "multicolumn.pdf"
    n_chunks = sum(c.source == target for c in pdf_engine.bundle.chunks)
    assert n_chunks >= 3
    unfiltered = pdf_engine.search(QUERY, top_k=3)
    assert all(h.chunk.source != target for h in unfiltered)  # the point of the test
    hits = pdf_engine.search(QUERY, top_k=3, filter={"documents": [target]})
    assert len(hits) == 3 and all(h.chunk.source == target for h in hits)


def test_pages_filter_keeps_overlapping_chunks(pdf_engine: SearchEngine) -> None:
    hits = pdf_engine.search(QUERY, top_k=50, mode="dense", filter={"pages": {"from": 2, "to": 3}})
    assert hits
    for h in hits:
        assert h.chunk.page_start is not None and h.chunk.page_end is not None
        assert h.chunk.page_end >= 2 and h.chunk.page_start <= 3
    on_page_2 = {
        c.id
        for c in pdf_engine.bundle.chunks
        if c.page_start and c.page_start <= 2 <= (c.page_end or 0)
    }
    assert on_page_2 & {h.chunk.id for h in hits}
    only_from_4 = pdf_engine.search(QUERY, top_k=50, mode="dense", filter={"pages": {"from": 4}})
    assert only_from_4 and all((h.chunk.page_end or 0) >= 4 for h in only_from_4)
    assert {h.chunk.source for h in only_from_4} == {"reports/mistitled_outlines_example.pdf"}


def test_metadata_filter(pdf_engine: SearchEngine) -> None:
    assert sources(pdf_engine, {"metadata": {"category": "Court"}}) == {"scotus-transcript-p1.pdf"}
    assert sources(pdf_engine, {"metadata": {"year": "2015"}}) == {
        "reports/150109DSP-Milw-505-90D.pdf"
    }
    assert sources(pdf_engine, {"metadata": {"year": [2012, 2015]}}) == {
        "scotus-transcript-p1.pdf",
        "reports/150109DSP-Milw-505-90D.pdf",
    }
    # a list-valued field matches on any of its items
    assert sources(pdf_engine, {"metadata": {"tags": "sample"}}) == {
        "reports/mistitled_outlines_example.pdf"
    }
    # every part must match
    both = {"documents": ["reports/"], "metadata": {"category": "court"}}
    assert pdf_engine.search(QUERY, top_k=5, filter=both) == []


def test_a_filter_nothing_passes_is_an_empty_result(pdf_engine: SearchEngine) -> None:
    assert pdf_engine.search(QUERY, filter={"pages": {"from": 500}}) == []


def test_a_document_pattern_that_matches_nothing_names_the_closest(
    pdf_engine: SearchEngine,
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        pdf_engine.search(QUERY, filter={"documents": ["scotus-transcript.pdf"]})
    assert caught.value.param == "filter.documents"
    assert caught.value.message == (
        "filter.documents: no document in this index matches 'scotus-transcript.pdf'; "
        "the closest: scotus-transcript-p1.pdf, multicolumn.pdf"
    )
    # One pattern of several that matches nothing is refused too (a typo would narrow silently).
    with pytest.raises(InvalidInputError, match="matches 'reprots/'"):
        pdf_engine.search(QUERY, filter={"documents": ["multicolumn.pdf", "reprots/"]})
    with pytest.raises(InvalidInputError, match=r"it has 4, for example: multicolumn\.pdf"):
        pdf_engine.search(QUERY, filter={"documents": ["zzzz"]})


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"document": ["a.pdf"]}, "filter.document"),
        ({"documents": 3}, "filter.documents"),
        ({"documents": [""]}, "filter.documents"),
        ({"pages": {"from": 0}}, "filter.pages.from"),
        ({"pages": {"from": 5, "to": 2}}, "filter.pages"),
        ({"pages": {"first": 2}}, "filter.pages"),
        ({"pages": [1, 2]}, "filter.pages"),
        ({"metadata": {"year": {"gt": 2000}}}, "filter.metadata.year"),
        ({"metadata": "year=2015"}, "filter.metadata"),
        ("reports/", "filter"),
    ],
)
def test_malformed_filters_are_refused(raw: Any, param: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        SearchFilter.parse(raw)
    assert caught.value.param == param
    assert caught.value.status_code == 400


def test_unknown_metadata_field_is_refused_by_name(pdf_engine: SearchEngine) -> None:
    with pytest.raises(InvalidInputError) as caught:
        pdf_engine.search(QUERY, filter={"metadata": {"author": "Jane"}})
    assert caught.value.param == "filter.metadata.author"
    assert "'author'" in caught.value.message and "category" in caught.value.message


def test_filtered_hnsw_search_is_exact_on_narrow_filters(
    pdf_library: PdfLibrary, tmp_path: Any
) -> None:
    """Under an approximate index a narrow filter is searched exactly over the passing chunks,
    so it finds what the flat index finds."""
    import faiss

    flat = SearchEngine.load(pdf_library.bundle)
    graph = SearchEngine.load(pdf_library.bundle)
    index = faiss.IndexHNSWFlat(graph.bundle.vectors.shape[1], 8, faiss.METRIC_INNER_PRODUCT)
    index.add(graph.bundle.vectors)
    graph.bundle.dense = index
    flt = {"documents": ["multicolumn.pdf"]}
    expected = [h.chunk.id for h in flat.search(QUERY, top_k=5, mode="dense", filter=flt)]
    assert [h.chunk.id for h in graph.search(QUERY, top_k=5, mode="dense", filter=flt)] == expected


@pytest.mark.parametrize(
    ("field", "advice"),
    [
        ("source", "filter by documents (--document in the CLI)"),
        ("Title", "put its words in the query"),
        ("pages", "filter by pages (--pages in the CLI)"),
        ("sha256", "not filtered by their hash"),
        ("converter_version", "converted the same way"),
    ],
)
def test_a_field_convert_writes_is_not_metadata_and_says_what_to_use(
    pdf_engine: SearchEngine, field: str, advice: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        pdf_engine.search(QUERY, filter={"metadata": {field: "x"}})
    assert caught.value.param == f"filter.metadata.{field}"
    assert f"{field!r} is a field `convert` writes about the conversion" in caught.value.message
    assert advice in caught.value.message
