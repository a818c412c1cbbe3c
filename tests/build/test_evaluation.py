from __future__ import annotations

import math
from pathlib import Path

import pytest

from athenaeum.build.evaluation import (
    BeirDataset,
    evaluate,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.engine import SearchEngine
from tests.conftest import SCIFACT_DIR

QRELS = {"q1": {"d1": 2, "d2": 1}, "q2": {"d3": 1}}


def test_ndcg_by_hand() -> None:
    # q1 ranked [d2, dx, d1]: DCG = 1/log2(2) + 0/log2(3) + 2/log2(4) = 1 + 0 + 1 = 2
    # ideal [d1, d2]: IDCG = 2/log2(2) + 1/log2(3) = 2 + 0.6309298 = 2.6309298
    # nDCG@10 = 2 / 2.6309298 = 0.7601875
    assert ndcg_at_k(["d2", "dx", "d1"], QRELS["q1"]) == pytest.approx(0.7601875, abs=1e-7)
    # @2 cuts d1 off: DCG = 1, IDCG@2 is still 2.6309298 -> 0.3800938
    assert ndcg_at_k(["d2", "dx", "d1"], QRELS["q1"], k=2) == pytest.approx(0.3800938, abs=1e-7)
    # q2 ranked [da, db, d3]: DCG = 1/log2(4) = 0.5, IDCG = 1 -> 0.5
    assert ndcg_at_k(["da", "db", "d3"], QRELS["q2"]) == pytest.approx(0.5)
    assert ndcg_at_k(["d1", "d2"], QRELS["q1"]) == pytest.approx(1.0)
    assert ndcg_at_k([], QRELS["q1"]) == 0.0
    assert math.isclose(1 / math.log2(3), 0.6309298, abs_tol=1e-7)


def test_recall_and_mrr_by_hand() -> None:
    # q1: both relevant docs within 100 -> 2/2; within 2 only d2 -> 1/2.
    assert recall_at_k(["d2", "dx", "d1"], QRELS["q1"]) == 1.0
    assert recall_at_k(["d2", "dx", "d1"], QRELS["q1"], k=2) == 0.5
    # MRR: first relevant at rank 1 -> 1; q2's d3 at rank 3 -> 1/3; cut at 2 -> 0.
    assert mrr_at_k(["d2", "dx", "d1"], QRELS["q1"]) == 1.0
    assert mrr_at_k(["da", "db", "d3"], QRELS["q2"]) == pytest.approx(1 / 3)
    assert mrr_at_k(["da", "db", "d3"], QRELS["q2"], k=2) == 0.0
    # Relevance 0 in the qrels is not relevant.
    assert mrr_at_k(["d0"], {"d0": 0, "d9": 1}) == 0.0


def test_load_beir(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T", "text": "alpha"}\n{"_id": "d2", "text": "beta"}\n'
    )
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "alpha?"}\n{"_id": "q2", "text": "no judgements"}\n'
    )
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\n")
    ds = load_beir(tmp_path)
    assert ds.corpus == {"d1": ("T", "alpha"), "d2": ("", "beta")}
    assert ds.qrels == {"q1": {"d1": 2}}
    assert ds.judged_queries == ["q1"]
    (tmp_path / "queries.jsonl").unlink()
    with pytest.raises(InvalidInputError, match=r"queries\.jsonl is missing"):
        load_beir(tmp_path)


def test_evaluate_on_the_scifact_slice(scifact_bundle: Path) -> None:
    engine = SearchEngine.load(scifact_bundle)
    full = load_beir(SCIFACT_DIR)
    in_bundle = {c.doc_id for c in engine.bundle.chunks}
    # Only queries whose judged documents are all in the 300-document slice.
    qrels = {q: r for q, r in full.qrels.items() if set(r) <= in_bundle}
    ds = BeirDataset(full.path, {}, full.queries, qrels)
    reports = {r.mode: r for r in evaluate(engine, ds)}
    assert set(reports) == {"hybrid", "dense", "bm25"}
    for r in reports.values():
        assert r.queries == len(ds.judged_queries) > 50
        assert 0.0 <= r.mrr_at_10 <= 1.0 and 0.0 <= r.recall_at_100 <= 1.0
        assert 0.0 < r.latency_p50_ms <= r.latency_p99_ms
        # 300 documents make an easy corpus: every mode must do far better than chance.
        assert r.ndcg_at_10 > 0.6
    with pytest.raises(InvalidInputError, match="unknown search mode"):
        evaluate(engine, ds, modes=["splade"])
