"""The app with the S3 Vectors backend (ATHENAEUM_INDEX_BACKEND=s3vectors), in-process, on the
stand-in of the service holding the SciFact slice: /search in every mode and with every filter,
/chunks, chat citations, MCP, /health; the service's errors as 503s with a retry hint, and
throttling retried. The server reads only the bundle's query side: never its vectors, chunks or
BM25, and nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.stub import Stubber
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from athenaeum.bundle import MANIFEST_FILE
from athenaeum.bundle.query_side import query_side_files
from athenaeum.retrieval import citations
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.s3vectors.backend import S3VectorsSearch
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import EngineProvider, FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.fresh import FORBID, FORBIDDEN, run_fresh
from tests.s3vectors.conftest import TARGET, VECTOR_INDEX
from tests.s3vectors.standin import S3VectorsStandIn
from tests.server.helpers import MCP_HEADERS, assert_error, rpc

QUERY = "vitamin D deficiency and bone health"


def s3vectors_settings(query_side: Path, **extra: Any) -> Settings:
    return Settings(
        insecure_no_auth=True,
        index_backend="s3vectors",
        s3vectors_index=VECTOR_INDEX,
        index_dir=query_side,
        **extra,
    )


@pytest.fixture(scope="module")
def client(
    query_side: Path, shelved_standin: S3VectorsStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    cache = tmp_path_factory.mktemp("cache") / "index"
    settings = s3vectors_settings(query_side, index_cache_dir=cache)
    provider = EngineProvider(settings, s3vectors_client=shelved_standin)
    yield TestClient(create_app(settings, provider))
    assert not cache.exists()  # nothing was downloaded


@pytest.fixture(scope="module")
def backend(client: TestClient) -> S3VectorsSearch:
    """The backend the app loaded (for what a route's answer should be)."""
    assert client.get("/health").status_code == 200
    loaded = client.app.state.engine_provider.loaded  # type: ignore[attr-defined]
    assert isinstance(loaded, S3VectorsSearch)
    return loaded


def _search(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    r = client.post("/search", json={"query": QUERY, "top_k": 10, **body})
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def test_the_query_side_is_all_it_reads(query_side: Path, shelved_bundle: Path) -> None:
    from athenaeum.bundle import read_manifest

    on_disk = sorted(
        p.relative_to(query_side).as_posix() for p in query_side.rglob("*") if p.is_file()
    )
    assert on_disk == sorted([MANIFEST_FILE, *query_side_files(read_manifest(shelved_bundle))])


def test_health_shows_the_backend(client: TestClient, query_side: Path) -> None:
    r = client.get("/health")
    assert r.status_code == 200, r.text
    index = r.json()["index"]
    assert index["backend"] == "s3vectors" and index["vector_index"] == VECTOR_INDEX
    assert (index["documents"], index["chunks"], index["dimension"]) == (300, 300, 384)
    assert index["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    manifest = (query_side / MANIFEST_FILE).read_bytes()
    assert index["index_version"] == hashlib.sha256(manifest).hexdigest()
    assert str(query_side) not in r.text  # no server paths


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_in_each_mode(
    client: TestClient,
    shelved_standin: S3VectorsStandIn,
    shelved_engine: SearchEngine,
    mode: str,
) -> None:
    results = _search(client, mode=mode)
    sent = shelved_standin.last["QueryVectors"]
    assert ("queryVector" in sent, "queryTexts" in sent) == {
        "dense": (True, False),
        "bm25": (False, True),
        "hybrid": (True, True),
    }[mode]
    assert sent["topK"] == 10 and "filter" not in sent
    assert len(results) == 10 and "vitamin d" in results[0]["text"].lower()
    first = results[0]
    assert first["url"] == f"http://testserver/chunks/{quote(first['id'], safe='')}"
    bundle_chunk = shelved_engine.get_chunk(first["id"])
    assert (first["text"], first["page_start"], first["page_end"], first["title"]) == (
        bundle_chunk.text,
        bundle_chunk.page_start,
        bundle_chunk.page_end,
        bundle_chunk.title,
    )
    if mode == "dense":  # the same vectors, the same metric: the bundle's ranking
        expected = shelved_engine.search(QUERY, top_k=10, mode="dense")
        assert [x["id"] for x in results] == [h.chunk.id for h in expected]
        assert [x["score"] for x in results] == pytest.approx([h.score for h in expected], abs=1e-5)


FILTERS: list[dict[str, Any]] = [
    {"documents": ["4983", "1*"]},
    {"pages": {"from": 2, "to": 3}},
    {"pages": {"from": 5}},
    {"metadata": {"year": 2020}},
    {"metadata": {"topics": ["MEDICINE"]}},
    {"documents": ["2*", "3*"], "pages": {"to": 2}, "metadata": {"year": [2019, "2021"]}},
]


@pytest.mark.parametrize("flt", FILTERS)
def test_search_filters_select_what_the_bundle_selects(
    client: TestClient,
    shelved_standin: S3VectorsStandIn,
    shelved_engine: SearchEngine,
    flt: dict[str, Any],
) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        r = client.post("/search", json={"query": QUERY, "top_k": 50, "mode": mode, "filter": flt})
        assert r.status_code == 200, r.text
        results, omitted = r.json()["results"], r.json()["omitted"]
        assert "filter" in shelved_standin.last["QueryVectors"]
        # Everything returned passes the filter as the bundle applies it ...
        assert results and {x["id"] for x in results} <= _passing(shelved_engine, flt), mode
        # ... and dense ranks exactly as the bundle does under the same filter (the response
        # holds the best-ranked that fit in its size, and counts the others in `omitted`).
        if mode == "dense":
            expected = [h.chunk.id for h in shelved_engine.search(QUERY, 50, "dense", flt)]
            assert [x["id"] for x in results] == expected[: len(results)]
            assert len(results) + omitted == len(expected)


def _passing(engine: SearchEngine, flt: dict[str, Any]) -> set[str]:
    from athenaeum.retrieval.filters import SearchFilter

    mask = SearchFilter.parse(flt).mask(engine.filter_table)
    assert mask is not None
    return {engine.bundle.chunks[i].id for i in range(len(mask)) if mask[i]}


def test_bad_and_empty_filters(client: TestClient, shelved_standin: S3VectorsStandIn) -> None:
    r = client.post("/search", json={"query": QUERY, "filter": {"metadata": {"author": "x"}}})
    error = assert_error(r, 400)
    assert error["param"] == "filter.metadata.author" and "year" in error["message"]
    assert assert_error(
        client.post("/search", json={"query": QUERY, "filter": {"folder": "x"}}), 400
    )["param"] == ("filter.folder")
    before = shelved_standin.calls["QueryVectors"]
    for mode in ("dense", "bm25", "hybrid"):
        r = client.post(
            "/search", json={"query": QUERY, "mode": mode, "filter": {"documents": ["nothing-x"]}}
        )
        assert assert_error(r, 400)["param"] == "filter.documents"
    assert shelved_standin.calls["QueryVectors"] == before  # refused before any call


def test_chunks_by_id(client: TestClient, shelved_engine: SearchEngine) -> None:
    hit = _search(client, top_k=1)[0]
    r = client.get(hit["url"])
    assert r.status_code == 200, r.text
    chunk = r.json()
    expected = shelved_engine.get_chunk(hit["id"])
    assert (chunk["id"], chunk["doc_id"], chunk["text"], chunk["ordinal"]) == (
        expected.id,
        expected.doc_id,
        expected.text,
        expected.ordinal,
    )
    assert assert_error(client.get("/chunks/no-such-chunk%230"), 404, "not_found")["param"] == "id"
    assert_error(client.get("/chunks/" + "x" * 1500), 404, "not_found")


def test_chat_completions_cite_the_retrieved_passages(
    client: TestClient, backend: S3VectorsSearch
) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "athenaeum-index-retrieval",
            "messages": [{"role": "user", "content": QUERY}],
        },
    )
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["message"]["content"]
    top = backend.search(QUERY, top_k=5)
    assert len(top) == 5
    _, numbers = citations.sources([hit.chunk for hit in top])
    for number, hit in zip(numbers, top, strict=True):
        assert citations.heading(number, hit.chunk) in content
    assert "Sources:" in content and "/chunks/" in content
    # Tokens of the bundle's own tokenizer, from the query side.
    assert r.json()["usage"]["completion_tokens"] == backend.tokens.count(content)

    filtered = client.post(
        "/v1/chat/completions",
        json={
            "model": "athenaeum-index-retrieval",
            "messages": [{"role": "user", "content": QUERY}],
            "filter": {"metadata": {"author": "x"}},
        },
    )
    assert assert_error(filtered, 400)["param"] == "filter.metadata.author"


def test_mcp_search_and_fetch(client: TestClient, backend: S3VectorsSearch) -> None:
    def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        r = client.post(
            "/mcp",
            json=rpc("tools/call", {"name": name, "arguments": arguments}),
            headers={**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"},
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()["result"]
        assert not result.get("isError"), result
        return result

    found = call("search", {"query": QUERY, "filter": {"metadata": {"year": 2020}}})
    ids = [x["id"] for x in found["structuredContent"]["results"]]
    expected = backend.search(QUERY, top_k=10, filter={"metadata": {"year": 2020}})
    assert ids == [h.chunk.id for h in expected] and len(ids) == 10
    fetched = call("fetch", {"id": ids[0]})["structuredContent"]
    assert fetched["id"] == ids[0] and fetched["text"] == expected[0].chunk.text
    assert fetched["metadata"]["doc_id"] == expected[0].chunk.doc_id


# --- the service's errors -----------------------------------------------------------------------


@pytest.fixture
def stubbed(shelved_engine: SearchEngine) -> Iterator[tuple[Stubber, TestClient]]:
    """The app on a real boto3 client whose answers are stubbed: every request it makes is
    validated against botocore's service model."""
    import boto3  # type: ignore[import-untyped]

    real = boto3.client(
        "s3vectors", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    search = S3VectorsSearch(
        TARGET,
        client=real,
        encoder=shelved_engine.encoder,
        manifest=shelved_engine.bundle.manifest,
        version=shelved_engine.facts.version,
        sleep=lambda s: None,
    )
    app = create_app(Settings(insecure_no_auth=True), FixedEngineProvider(search))
    with Stubber(real) as stubber:
        yield stubber, TestClient(app)
        stubber.assert_no_pending_responses()


FOUND = {
    "vectors": [{"key": "4983#0", "metadata": {"text": "Vitamin D", "doc_id": "4983"}}],
    "distanceMetric": "cosine",
}


def test_service_errors_are_503s_with_a_retry_hint(stubbed: tuple[Stubber, TestClient]) -> None:
    stubber, client = stubbed
    stubber.add_client_error("query_vectors", "AccessDeniedException", http_status_code=403)
    r = client.post("/search", json={"query": QUERY, "mode": "bm25"})
    error = assert_error(r, 503, "vector_index_unavailable")
    assert "AccessDeniedException" in error["message"] and VECTOR_INDEX in error["message"]
    assert int(r.headers["Retry-After"]) >= 1

    for _ in range(4):  # throttled past the retries
        stubber.add_client_error("query_vectors", "TooManyRequestsException", http_status_code=429)
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "athenaeum-index-retrieval",
            "messages": [{"role": "user", "content": QUERY}],
        },
    )
    assert "TooManyRequestsException" in assert_error(r, 503, "vector_index_unavailable")["message"]
    assert "Retry-After" in r.headers

    stubber.add_client_error("get_vectors", "InternalServerException", http_status_code=500)
    for _ in range(3):
        stubber.add_client_error("get_vectors", "ServiceUnavailableException", http_status_code=503)
    assert_error(client.get("/chunks/4983%230"), 503, "vector_index_unavailable")


def test_throttling_is_retried(stubbed: tuple[Stubber, TestClient]) -> None:
    stubber, client = stubbed
    stubber.add_client_error("query_vectors", "TooManyRequestsException", http_status_code=429)
    stubber.add_client_error("query_vectors", "ServiceUnavailableException", http_status_code=503)
    stubber.add_response("query_vectors", FOUND)
    assert [x["id"] for x in _search(client, mode="bm25")] == ["4983#0"]
    stubber.add_client_error("get_vectors", "TooManyRequestsException", http_status_code=429)
    stubber.add_response("get_vectors", {"vectors": [{"key": "4983#0", "metadata": {}}]})
    assert client.get("/chunks/4983%230").json()["id"] == "4983#0"


def test_an_unreachable_service_is_a_503(query_side: Path) -> None:
    import boto3
    from botocore.config import Config  # type: ignore[import-untyped]

    # A closed port on this machine: the connection is refused at once.
    unreachable = boto3.client(
        "s3vectors",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )
    settings = s3vectors_settings(query_side)
    client = TestClient(
        create_app(settings, EngineProvider(settings, s3vectors_client=unreachable))
    )
    assert client.get("/health").status_code == 200  # the query side loads without the service
    r = client.post("/search", json={"query": QUERY})
    assert "could not be reached" in assert_error(r, 503, "vector_index_unavailable")["message"]
    assert "Retry-After" in r.headers


# --- settings and the CLI -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"index_backend": "s3vectors"}, "needs ATHENAEUM_S3VECTORS_INDEX"),
        ({"index_backend": "s3vectors", "s3vectors_index": VECTOR_INDEX}, "ATHENAEUM_INDEX_DIR"),
        ({"s3vectors_index": VECTOR_INDEX, "index_dir": "."}, "ATHENAEUM_INDEX_BACKEND is bundle"),
        ({"s3vectors_index": "s3://bucket/index"}, "s3vectors://VECTOR_BUCKET/INDEX"),
        (
            {
                "index_backend": "s3vectors",
                "s3vectors_index": VECTOR_INDEX,
                "index_dir": ".",
                "index_s3_uri": "s3://bucket/index",
            },
            "unset ATHENAEUM_INDEX_S3_URI",
        ),
    ],
)
def test_settings_refuse_an_incomplete_s3vectors_backend(
    extra: dict[str, Any], message: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        Settings(**extra)


def test_the_environment_selects_the_backend(
    query_side: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATHENAEUM_INDEX_BACKEND", "s3vectors")
    monkeypatch.setenv("ATHENAEUM_S3VECTORS_INDEX", VECTOR_INDEX)
    monkeypatch.setenv("ATHENAEUM_INDEX_DIR", str(query_side))
    settings = Settings()
    assert settings.index_backend == "s3vectors" and settings.s3vectors_index == VECTOR_INDEX


def test_serve_takes_an_s3vectors_index(query_side: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from athenaeum.cli.main import app

    served: list[Settings] = []
    monkeypatch.setattr("athenaeum.server.local.serve", lambda s, **kw: served.append(s))
    monkeypatch.setenv("ATHENAEUM_INDEX_S3_URI", "s3://bucket/from-the-environment")
    ok = CliRunner().invoke(app, ["serve", "--index", str(query_side), "--s3vectors", VECTOR_INDEX])
    assert ok.exit_code == 0, ok.output
    [settings] = served
    assert (settings.index_backend, settings.s3vectors_index, settings.index_dir) == (
        "s3vectors",
        VECTOR_INDEX,
        query_side,
    )
    assert settings.index_s3_uri is None  # the flag wins over the environment
    bad = CliRunner().invoke(
        app, ["serve", "--index", "s3://bucket/index", "--s3vectors", VECTOR_INDEX]
    )
    assert bad.exit_code != 0 and "local folder" in bad.output
    bad = CliRunner().invoke(app, ["serve", "--index", str(query_side), "--s3vectors", "s3://b/i"])
    assert bad.exit_code != 0 and "s3vectors://VECTOR_BUCKET/INDEX" in bad.output


# --- the Lambda handler, without the build stack --------------------------------------------------

LAMBDA = (
    FORBID
    + """
import copy, os
bundle, query_side, event_file = sys.argv[2:5]
os.environ.update({
    "ATHENAEUM_INDEX_BACKEND": "s3vectors",
    "ATHENAEUM_S3VECTORS_INDEX": "s3vectors://library-vectors/athenaeum",
    "ATHENAEUM_INDEX_DIR": query_side,
    "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
})
from athenaeum.bundle import load_bundle
from athenaeum.s3vectors.publish import VectorIndex, publish
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.index.provider import EngineProvider
from athenaeum.server.settings import get_settings
from tests.s3vectors.standin import S3VectorsStandIn

class State:
    def read(self):
        return None
    def write(self, state):
        pass

standin = S3VectorsStandIn()
publish(load_bundle(bundle), VectorIndex.parse(os.environ["ATHENAEUM_S3VECTORS_INDEX"]),
        client=standin, state=State())
settings = get_settings()
handler = build_handler(settings, EngineProvider(settings, s3vectors_client=standin))
template = json.loads(open(event_file).read())

class Context:
    aws_request_id = "s3vectors"

def call(method, path, body=None, headers=None):
    event = copy.deepcopy(template)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = json.dumps(body) if body is not None else None
    event["headers"].pop("content-length", None)
    event["headers"].update(headers or {})
    return handler(event, Context())

health = call("GET", "/health")
statuses = [
    health["statusCode"],
    call("POST", "/search", {"query": "vitamin D", "mode": "hybrid"})["statusCode"],
    call("POST", "/v1/chat/completions", {"model": "athenaeum-index-retrieval",
         "messages": [{"role": "user", "content": "vitamin D"}]})["statusCode"],
    call("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
         "params": {"name": "search", "arguments": {"query": "vitamin D"}}},
         {"accept": "application/json, text/event-stream",
          "mcp-protocol-version": "2025-06-18"})["statusCode"],
]
print(json.dumps({
    "statuses": statuses,
    "backend": json.loads(health["body"])["index"]["backend"],
    "calls": sorted(standin.calls),
    "forbidden_loaded": forbidden_loaded(),
}))
"""
)


def test_the_lambda_handler_searches_s3vectors_without_the_build_stack(
    shelved_bundle: Path, query_side: Path
) -> None:
    repo = Path(__file__).resolve().parents[2]
    out, _ = run_fresh(
        LAMBDA,
        json.dumps(FORBIDDEN),
        str(shelved_bundle),
        str(query_side),
        str(repo / "tests" / "events" / "http_v2.json"),
        cwd=repo,
        timeout=180,
    )
    assert out["forbidden_loaded"] == []
    assert out["statuses"] == [200, 200, 200, 200] and out["backend"] == "s3vectors"
    # What the server itself called (the rest is the publishing above): the two actions the
    # function's IAM policy grants.
    assert set(out["calls"]) - {"GetIndex", "CreateIndex", "PutVectors"} == {"QueryVectors"}
