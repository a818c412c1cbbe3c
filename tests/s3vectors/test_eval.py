"""Evaluation through the S3 Vectors code path, on the stand-in of the service holding the
SciFact slice: in dense mode every judged query's documents rank exactly as the bundle ranks
them (the same vectors, the same metric), so the metrics are equal too; and `athenaeum eval
--s3vectors` runs the same evaluation as users run it (only the boto3 client is the stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from athenaeum.build.evaluation import (
    Ranker,
    bundle_ranker,
    corpus_id,
    document_ranking,
    evaluate_ranker,
    hits_ranker,
    load_beir,
)
from athenaeum.cli.main import app
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.s3vectors.backend import S3VectorsSearch
from tests.conftest import SCIFACT_DIR
from tests.s3vectors.conftest import TARGET, VECTOR_INDEX, published

# Two documents whose cosines are equal may come back in either order: the bundle breaks an
# exact tie by row, the stand-in sorts distances it computes in another way. And the two do not
# compute quite the same number: the bundle stores fp16 codes, whose norms differ from 1 by up
# to 6e-5 (measured on this bundle), and scores their inner product with the query, where
# S3 Vectors' cosine divides by the norm: at most 5.3e-5 apart, measured. Scores this close
# are a tie; a document out of place by more is a real difference.
TIE = 1e-4


def _cosines(engine: SearchEngine, query: str) -> dict[str, float]:
    """Every document's cosine with the query, as the bundle computes it (the referee)."""
    vectors = np.asarray(engine.bundle.vectors)
    sims = (vectors @ engine.encoder.encode([query])[0]).tolist()
    scores: dict[str, float] = {}
    for chunk, sim in zip(engine.bundle.chunks, sims, strict=True):
        doc = corpus_id(chunk)
        scores[doc] = max(sim, scores.get(doc, -np.inf))
    return scores


def _out_of_place(ranking: list[str], scores: dict[str, float], query_id: str) -> list[str]:
    """The documents of `ranking` that are not where the referee's scores put them: at each
    place, the referee's score must be that place's score in its own order, within TIE."""
    best = sorted((s for d, s in scores.items() if d != query_id), reverse=True)
    return [d for d, s in zip(ranking, best, strict=False) if abs(scores[d] - s) > TIE]


def _settled(ranking: list[str], scores: dict[str, float], depth: int) -> list[str]:
    """`ranking` with the order inside ties settled: each run of documents tied on the
    referee's scores in id order, and the last run dropped when it ties with the best document
    past `depth` (which of those made the cut is a tie too). Two rankings that differ only in
    ties settle to the same list."""
    ordered = sorted(scores.values(), reverse=True)
    cut = ordered[depth] if len(ordered) > depth else -np.inf
    runs: list[list[str]] = []
    for doc in ranking:
        if runs and abs(scores[runs[-1][-1]] - scores[doc]) <= TIE:
            runs[-1].append(doc)
        else:
            runs.append([doc])
    if runs and scores[runs[-1][-1]] - cut <= TIE:
        runs.pop()
    return [doc for run in runs for doc in sorted(run)]


def test_ties_settle_and_a_real_difference_stays() -> None:
    scores = {"a": 0.9, "b": 0.5, "c": 0.5 + 1e-8, "d": 0.3, "e": 0.3 - 1e-8, "f": 0.1}
    assert _settled(["a", "c", "b", "d"], scores, 4) == _settled(["a", "b", "c", "e"], scores, 4)
    assert _settled(["a", "c", "b", "d"], scores, 4) == ["a", "b", "c"]
    assert _out_of_place(["a", "c", "b", "e"], scores, "q") == []
    # A document where another belongs, or two out of order, is no tie.
    assert _out_of_place(["a", "b", "d", "c"], scores, "q") == ["d", "c"]
    assert _settled(["a", "d", "b", "c"], scores, 4) != _settled(["a", "b", "c", "d"], scores, 4)
    assert _settled(["a", "b", "f"], scores, 3) != _settled(["a", "b", "c"], scores, 3)


def test_dense_ranks_every_query_as_the_bundle_does(scifact_engine: SearchEngine) -> None:
    standin = published(scifact_engine)
    search = S3VectorsSearch(
        TARGET,
        client=standin,
        encoder=scifact_engine.encoder,
        manifest=scifact_engine.bundle.manifest,
        version=scifact_engine.facts.version,
    )
    data = load_beir(SCIFACT_DIR)
    bundle = bundle_ranker(scifact_engine)
    service = hits_ranker(lambda query, mode, depth: search.rank(query, mode=mode, depth=depth))
    referee = {
        data.queries[q]: _cosines(scifact_engine, data.queries[q]) for q in data.judged_queries
    }
    # Each side's ranking of every query, asked once: the metrics below score these.
    answered: dict[str, dict[str, list[str]]] = {"ours": {}, "theirs": {}}
    differ = []
    for qid in data.judged_queries:
        query = data.queries[qid]
        answered["ours"][query] = service(query, "dense", 100)
        answered["theirs"][query] = bundle(query, "dense", 100)
        ours = document_ranking(answered["ours"][query], qid)
        theirs = document_ranking(answered["theirs"][query], qid)
        scores = referee[query]
        if _out_of_place(ours, scores, qid) or (
            _settled(ours, scores, 100) != _settled(theirs, scores, 100)
        ):
            differ.append(qid)
        assert len(ours) == 100
    assert differ == []
    assert standin.calls["QueryVectors"] == len(data.judged_queries) == 300

    def settled(side: str) -> Ranker:
        def rank(query: str, mode: str, depth: int) -> list[str]:
            assert (mode, depth) == ("dense", 100)
            return _settled(answered[side][query], referee[query], depth)

        return rank

    [theirs_report] = evaluate_ranker(settled("theirs"), data, ["dense"])
    [ours_report] = evaluate_ranker(settled("ours"), data, ["dense"])
    assert (
        ours_report.queries,
        ours_report.ndcg_at_10,
        ours_report.recall_at_100,
        ours_report.mrr_at_10,
    ) == (
        theirs_report.queries,
        theirs_report.ndcg_at_10,
        theirs_report.recall_at_100,
        theirs_report.mrr_at_10,
    )
    assert ours_report.ndcg_at_10 > 0.3  # a real ranking, not two equally empty ones


def test_athenaeum_eval_on_the_s3vectors_index(
    scifact_bundle: Path, scifact_engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin = published(scifact_engine)
    monkeypatch.setattr("athenaeum.s3vectors.backend.s3vectors_client", lambda **kw: standin)
    base = ["eval", str(SCIFACT_DIR), "--index", str(scifact_bundle), "--mode", "dense", "--json"]
    bundle = CliRunner().invoke(app, base)
    service = CliRunner().invoke(app, [*base, "--s3vectors", VECTOR_INDEX])
    assert bundle.exit_code == 0, bundle.output
    assert service.exit_code == 0, service.output
    theirs, ours = json.loads(bundle.stdout), json.loads(service.stdout)
    assert (theirs["backend"], ours["backend"], ours["s3vectors"]) == (
        "bundle",
        "s3vectors",
        VECTOR_INDEX,
    )
    [their_mode], [our_mode] = theirs["modes"], ours["modes"]
    for metric in ("queries", "ndcg_at_10", "recall_at_100", "mrr_at_10"):
        assert our_mode[metric] == their_mode[metric], metric
    assert standin.calls["QueryVectors"] == our_mode["queries"]

    missing = CliRunner().invoke(app, ["eval", str(SCIFACT_DIR), "--s3vectors", VECTOR_INDEX])
    assert missing.exit_code != 0 and "--s3vectors needs --index" in missing.output
