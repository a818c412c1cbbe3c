from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from athenaeum.build.evaluation import (
    BeirDataset,
    document_ranking,
    evaluate,
    identical_id_queries,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from athenaeum.cli.main import app
from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.engine import SearchEngine
from tests.conftest import SCIFACT_DIR

if TYPE_CHECKING:
    from athenaeum.build.embedding import Embedder

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
    with pytest.raises(InvalidInputError, match="the folder does not exist"):
        load_beir(tmp_path / "no-such-dataset")


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


def test_document_ranking_dedupes_and_leaves_out_the_query_itself() -> None:
    chunks_docs = ["d2", "q1", "d2", "d1", "q1"]
    assert document_ranking(chunks_docs) == ["d2", "q1", "d1"]
    assert document_ranking(chunks_docs, "q1") == ["d2", "d1"]
    assert document_ranking(chunks_docs, "q9") == ["d2", "q1", "d1"]


# A BEIR dataset whose query q1 is also a corpus document (as in ArguAna or Quora): the query
# finds itself first in every mode, and its one relevant document second.
QUERY_AS_DOCUMENT = "Vitamin D supplements reduce the risk of hip fractures in older women."
TINY_CORPUS = [
    {"_id": "q1", "title": "", "text": QUERY_AS_DOCUMENT},
    {
        "_id": "d1",
        "title": "Vitamin D and fracture risk in older women",
        "text": "Daily vitamin D supplements lowered the rate of hip fractures among older "
        "women in a randomised trial.",
    },
    {
        "_id": "d2",
        "title": "Soil bacteria",
        "text": "Nitrogen-fixing bacteria in the roots of legumes enrich farmland soil.",
    },
]


@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory, minilm_embedder: Embedder) -> Path:
    from athenaeum.build.indexer import build_index

    root = tmp_path_factory.mktemp("tiny-beir")
    (root / "qrels").mkdir()
    lines = "".join(json.dumps(d) + "\n" for d in TINY_CORPUS)
    (root / "corpus.jsonl").write_text(lines, encoding="utf-8")
    query = json.dumps({"_id": "q1", "text": QUERY_AS_DOCUMENT})
    (root / "queries.jsonl").write_text(query + "\n", encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    build_index([root / "corpus.jsonl"], root / "index", embedder=minilm_embedder)
    return root


def test_identical_ids_are_left_out_as_beir_does(tiny_beir: Path) -> None:
    engine = SearchEngine.load(tiny_beir / "index")
    ds = load_beir(tiny_beir)
    assert identical_id_queries(ds) == ["q1"]
    for mode in ("hybrid", "dense", "bm25"):
        docs = [h.chunk.doc_id for h in engine.search(QUERY_AS_DOCUMENT, top_k=2, mode=mode)]
        assert docs == ["q1", "d1"], mode
    # Default: q1 itself is dropped, so d1 is first. Kept: d1 is second.
    for r in evaluate(engine, ds):
        assert (r.ndcg_at_10, r.mrr_at_10, r.recall_at_100) == (1.0, 1.0, 1.0), r.mode
    for r in evaluate(engine, ds, ignore_identical_ids=False):
        assert r.ndcg_at_10 == pytest.approx(1 / math.log2(3)) and r.mrr_at_10 == 0.5, r.mode


def test_eval_cli_flag_keeps_identical_ids(tiny_beir: Path) -> None:
    base = ["eval", str(tiny_beir), "--index", str(tiny_beir / "index"), "--mode", "bm25"]
    default = CliRunner().invoke(app, [*base, "--json"])
    kept = CliRunner().invoke(app, [*base, "--keep-identical-ids", "--json"])
    assert default.exit_code == 0 and kept.exit_code == 0, default.output + kept.output
    default_json, kept_json = json.loads(default.stdout), json.loads(kept.stdout)
    assert default_json["ignore_identical_ids"] is True
    assert kept_json["ignore_identical_ids"] is False
    assert default_json["modes"][0]["mrr_at_10"] == 1.0
    assert kept_json["modes"][0]["mrr_at_10"] == 0.5
