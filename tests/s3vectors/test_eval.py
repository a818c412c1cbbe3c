"""Evaluation through the S3 Vectors code path, on the stand-in of the service holding the
SciFact slice: in dense mode every judged query's documents rank exactly as the bundle ranks
them (the same vectors, the same metric), so the metrics are equal too; and `athenaeum eval
--s3vectors` runs the same evaluation as users run it (only the boto3 client is the stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from athenaeum.build.evaluation import (
    bundle_ranker,
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
    differ = []
    for qid in data.judged_queries:
        query = data.queries[qid]
        ours = document_ranking(service(query, "dense", 100), qid)
        if ours != document_ranking(bundle(query, "dense", 100), qid):
            differ.append(qid)
        assert len(ours) == 100
    assert differ == []
    assert standin.calls["QueryVectors"] == len(data.judged_queries) == 300

    [theirs] = evaluate_ranker(bundle, data, ["dense"])
    [ours] = evaluate_ranker(service, data, ["dense"])
    assert (ours.queries, ours.ndcg_at_10, ours.recall_at_100, ours.mrr_at_10) == (
        theirs.queries,
        theirs.ndcg_at_10,
        theirs.recall_at_100,
        theirs.mrr_at_10,
    )
    assert ours.ndcg_at_10 > 0.3  # a real ranking, not two equally empty ones


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
