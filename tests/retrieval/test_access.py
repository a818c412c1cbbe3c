"""Collections and a caller's view of the index: a document's collection, the confinement inside
the bundle's retrievers (the same ranking as searching only the readable documents), a caller's
view answering what they may not read as what does not exist, and S3 Vectors' expression of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from athenaeum.build.chunking import read_text_document
from athenaeum.bundle import DocumentInfo
from athenaeum.bundle.format import ROOT_COLLECTION
from athenaeum.errors import InvalidInputError, NotFoundError
from athenaeum.retrieval.access import ScopedBackend, collections_of
from athenaeum.retrieval.engine import WIDE_FILTER_SHARE, SearchEngine
from athenaeum.retrieval.filters import SearchFilter
from athenaeum.s3vectors.publish import chunk_metadata
from athenaeum.s3vectors.query import filter_expression

NAMES = ("alpha", "beta", "gamma", "delta", "epsilon")
QUERIES = (
    "vitamin D deficiency and bone health",
    "gene expression in cancer cells",
    "antibiotic resistance in bacteria",
)


def _doc(doc_id: str, **metadata: object) -> DocumentInfo:
    return DocumentInfo(
        doc_id=doc_id, source=doc_id, sha256="0" * 64, chunk_count=1, metadata=metadata
    )


def test_a_documents_collection_is_its_first_folder_or_its_front_matters() -> None:
    assert _doc("hr/policies/leave.md").collection == "hr"
    assert _doc("handbook.md").collection == ROOT_COLLECTION
    assert _doc("4983").collection == ROOT_COLLECTION  # a BEIR id is no path
    assert _doc("handbook.md", collection="legal").collection == "legal"
    assert _doc("hr/x.md", collection="legal").collection == "legal"
    # A front matter that names no valid collection never puts a document at the root.
    for bad in (["hr"], "", "a/b", 7):
        collection = _doc("x.md", collection=bad).collection
        assert collection != ROOT_COLLECTION and collection not in ("hr", "a")


def test_the_indexer_refuses_a_collection_that_is_no_name(tmp_path: Path) -> None:
    page = tmp_path / "memo.md"
    page.write_text("---\ncollection: [hr, legal]\n---\n\n# Memo\n\nText.\n")
    with pytest.raises(InvalidInputError, match="'collection' is not a collection"):
        read_text_document(page, "memo.md")
    page.write_text("---\ncollection: legal\n---\n\n# Memo\n\nText.\n")
    assert read_text_document(page, "memo.md").metadata["collection"] == "legal"


@pytest.fixture(scope="module")
def engine(scifact_engine: SearchEngine) -> SearchEngine:
    """The SciFact slice with its documents spread over five collections (by front matter)."""
    bundle = scifact_engine.bundle
    documents = [
        d.model_copy(update={"metadata": {**d.metadata, "collection": NAMES[i % 5]}})
        for i, d in enumerate(bundle.manifest.documents)
    ]
    manifest = bundle.manifest.model_copy(update={"documents": documents})
    return SearchEngine(dataclasses.replace(bundle, manifest=manifest), scifact_engine.encoder)


def _rows_of(engine: SearchEngine, collections: set[str]) -> np.ndarray:
    by_doc = {d.doc_id: d.collection for d in engine.documents}
    return np.array([by_doc[c.doc_id] in collections for c in engine.bundle.chunks])


@pytest.mark.parametrize("readable", [{"alpha", "beta", "gamma", "delta"}, {"beta"}])
def test_confinement_ranks_exactly_the_readable_chunks(
    engine: SearchEngine, readable: set[str]
) -> None:
    # Four collections of five pass the wide-filter share (every vector scored, the rest set
    # aside); one does not (the passing vectors gathered first). Both rank the same as exact
    # search over the readable chunks alone.
    allowed = _rows_of(engine, readable)
    assert (allowed.sum() * WIDE_FILTER_SHARE >= len(allowed)) == (len(readable) == 4)
    within = SearchFilter().within(frozenset(readable))
    vectors = np.asarray(engine.bundle.vectors)
    for query in QUERIES:
        hits = engine.search(query, top_k=10, mode="dense", filter=within)
        sims = vectors @ engine.encoder.encode([query])[0]
        sims[~allowed] = -np.inf
        expected = np.argsort(-sims, kind="stable")[:10]
        assert [h.chunk.id for h in hits] == [engine.bundle.chunks[int(r)].id for r in expected]
        for mode in ("hybrid", "bm25"):
            confined = engine.search(query, top_k=20, mode=mode, filter=within)
            assert confined and all(
                _rows_of(engine, readable)[engine._by_id[h.chunk.id]] for h in confined
            )
            # The same as the caller asking for those collections themselves.
            asked = engine.search(
                query, top_k=20, mode=mode, filter={"collections": sorted(readable)}
            )
            assert [h.chunk.id for h in confined] == [h.chunk.id for h in asked]


def test_a_callers_filter_is_intersected_with_what_they_may_read(engine: SearchEngine) -> None:
    readable = frozenset({"beta", "gamma"})
    within = SearchFilter.parse({"collections": ["beta"]}).within(readable)
    hits = engine.search(QUERIES[0], top_k=30, filter=within)
    assert hits and all(_doc_collection(engine, h.chunk.doc_id) == "beta" for h in hits)
    # Asking for one they may not read is asking for one that does not exist.
    with pytest.raises(InvalidInputError, match="no collection 'alpha'; the collections are beta"):
        engine.search(
            QUERIES[0], filter=SearchFilter.parse({"collections": ["alpha"]}).within(readable)
        )
    # Confining twice keeps the narrower.
    assert SearchFilter().within(frozenset({"a", "b"})).within(frozenset({"b", "c"})).readable == {
        "b"
    }


def _doc_collection(engine: SearchEngine, doc_id: str) -> str:
    return next(d.collection for d in engine.documents if d.doc_id == doc_id)


def test_a_callers_view_answers_what_they_may_not_read_as_what_does_not_exist(
    engine: SearchEngine,
) -> None:
    view = ScopedBackend(engine, frozenset({ROOT_COLLECTION, "alpha"}))
    mine = [d for d in engine.documents if d.collection == "alpha"]
    assert list(view.documents) == mine
    assert view.facts.documents == len(mine)
    assert view.facts.chunks == sum(d.chunk_count for d in mine)
    assert collections_of(view.documents) == {"alpha": len(mine)}
    denied = next(c for c in engine.bundle.chunks if _doc_collection(engine, c.doc_id) == "beta")
    with pytest.raises(NotFoundError) as refused:
        view.get_chunk(denied.id)
    with pytest.raises(NotFoundError) as missing:
        view.get_chunk("0123456789abcdef")
    assert refused.value.message.replace(denied.id, "?") == missing.value.message.replace(
        "0123456789abcdef", "?"
    )
    assert view.get_chunk(next(c for c in engine.bundle.chunks if c.doc_id == mine[0].doc_id).id)
    # A filter naming a denied collection, or document, reads as naming none that exists; the
    # hint names only what the caller may read.
    with pytest.raises(InvalidInputError) as caught:
        view.search("x", filter={"collections": ["beta"]})
    assert caught.value.message.endswith("the collections are alpha")
    beta_doc = next(d for d in engine.documents if d.collection == "beta")
    with pytest.raises(InvalidInputError) as caught:
        view.search("x", filter={"documents": [beta_doc.doc_id]})
    message = caught.value.message
    assert "no document in this index matches" in message
    hint = message.split("the closest: ")[-1].split("for example: ")[-1].split(", ")
    assert hint and set(hint) <= {d.source for d in mine}, message
    hits = view.search(QUERIES[1], top_k=50, mode="bm25")
    assert hits and all(_doc_collection(engine, h.chunk.doc_id) == "alpha" for h in hits)


def test_s3vectors_holds_and_filters_the_collection() -> None:
    from athenaeum.bundle import ChunkRecord

    chunk = ChunkRecord(id="c", doc_id="hr/a.md", ordinal=0, text="t", title=None, source="hr/a.md")
    assert chunk_metadata(chunk, _doc("hr/a.md"))["collection"] == "hr"
    root = dataclasses.replace(chunk, doc_id="a.md", source="a.md")
    assert chunk_metadata(root, _doc("a.md"))["collection"] == "/"
    documents = [_doc("hr/a.md"), _doc("a.md"), _doc("legal/b.md")]
    expression = filter_expression(
        SearchFilter.parse({"collections": ["hr"]}).within(frozenset({ROOT_COLLECTION, "hr"})),
        documents,
    )
    assert expression == {
        "$and": [
            {"collection": {"$in": ["/", "hr"]}},
            {"collection": {"$in": ["hr"]}},
        ]
    }
    only = filter_expression(SearchFilter().within(frozenset({ROOT_COLLECTION})), documents)
    assert only == {"collection": {"$in": ["/"]}}
    with pytest.raises(InvalidInputError, match="no collection 'legal'"):
        filter_expression(
            SearchFilter.parse({"collections": ["legal"]}).within(frozenset({ROOT_COLLECTION})),
            documents,
        )
