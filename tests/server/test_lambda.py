"""The Mangum handler on real API Gateway payloads: REST API v1 (with a TOKEN authorizer's
context) and HTTP API v2, for every route, in-process as Lambda would call it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server import lambda_handler
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.settings import Settings, get_settings
from tests.fresh import run_fresh
from tests.server.helpers import (
    EVENTS,
    Context,
    body_of,
    parse_sse,
    rpc,
    stream_text,
    v1_event,
)

V2 = json.loads((EVENTS / "http_v2.json").read_text())
V1_BASE = "https://70ixmpl4fl.execute-api.us-east-2.amazonaws.com/prod"
V2_BASE = "https://r3pmxmplak.execute-api.us-east-2.amazonaws.com"
QUERY = "vitamin D deficiency"
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-06-18",
}


def v2_event(
    method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(V2)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = None if body is None else json.dumps(body)
    event["headers"].pop("content-length")
    if body is not None:
        event["headers"]["content-length"] = str(len(event["body"].encode()))
    event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
    return event


@pytest.fixture(scope="module")
def handler(scifact_engine: SearchEngine) -> Any:
    settings = Settings(
        trust_gateway_authorizer=True,
        oauth_issuer="https://issuer.example.com/",
        oauth_audience="https://athenaeum.example.com",
        oauth_jwks_url="https://issuer.example.com/.well-known/jwks.json",
    )
    return build_handler(settings, FixedEngineProvider(scifact_engine))


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for k, v in (response.get("multiValueHeaders") or {}).items():
        headers[k.lower()] = v[0]
    return headers


@pytest.mark.parametrize("make, base", [(v1_event, V1_BASE), (v2_event, V2_BASE)])
def test_every_route_through_mangum(
    handler: Any, scifact_engine: SearchEngine, make: Any, base: str
) -> None:
    ctx = Context()

    r = handler(make("GET", "/health"), ctx)
    assert r["statusCode"] == 200 and body_of(r)["index"]["chunks"] == 300
    for path in ("/models", "/v1/models"):
        r = handler(make("GET", path), ctx)
        assert r["statusCode"] == 200 and body_of(r)["object"] == "list"

    expected = [x.chunk.id for x in scifact_engine.search(QUERY, top_k=3)]
    for path in ("/search", "/v1/search"):
        r = handler(make("POST", path, {"query": QUERY, "top_k": 3}), ctx)
        assert r["statusCode"] == 200, r["body"]
        results = body_of(r)["results"]
        assert [x["id"] for x in results] == expected
        # Links carry the stage: API Gateway's URL, not the stage-less path Mangum sees.
        assert results[0]["url"] == f"{base}/chunks/{quote(expected[0], safe='')}"

    r = handler(make("GET", f"/chunks/{quote(expected[0], safe='')}"), ctx)
    assert r["statusCode"] == 200 and body_of(r)["id"] == expected[0]

    chat = {"model": "athenaeum-index-retrieval", "messages": [{"role": "user", "content": QUERY}]}
    for path in ("/chat/completions", "/v1/chat/completions"):
        r = handler(make("POST", path, chat), ctx)
        assert r["statusCode"] == 200 and "[1]" in body_of(r)["choices"][0]["message"]["content"]

    # Lambda cannot stream: the whole SSE body arrives at once and is complete and valid.
    stream = {**chat, "stream": True, "stream_options": {"include_usage": True}}
    r = handler(make("POST", "/v1/chat/completions", stream), ctx)
    assert r["statusCode"] == 200
    assert headers_of(r)["content-type"].startswith("text/event-stream")
    chunks = parse_sse(r["body"])
    assert "[1]" in stream_text(chunks) and chunks[-1]["usage"]["total_tokens"] > 0

    r = handler(make("GET", "/.well-known/oauth-protected-resource"), ctx)
    assert r["statusCode"] == 200 and body_of(r)["resource"] == base

    # MCP: repeated invocations of the same warm handler, each request on its own.
    initialize = rpc(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "lambda-test", "version": "1"},
        },
    )
    for _ in range(2):
        r = handler(make("POST", "/mcp", initialize, MCP_HEADERS), ctx)
        assert r["statusCode"] == 200, r["body"]
        assert body_of(r)["result"]["serverInfo"]["name"] == "athenaeum"
        r = handler(make("POST", "/mcp", rpc("tools/list", {}, 2), MCP_HEADERS), ctx)
        assert {t["name"] for t in body_of(r)["result"]["tools"]} == {"search", "fetch"}
        call = rpc("tools/call", {"name": "search", "arguments": {"query": QUERY}}, 3)
        r = handler(make("POST", "/mcp", call, MCP_HEADERS), ctx)
        hits = body_of(r)["result"]["structuredContent"]["results"]
        assert hits[0]["url"].startswith(base + "/chunks/")
        call = rpc("tools/call", {"name": "fetch", "arguments": {"id": hits[0]["id"]}}, 4)
        r = handler(make("POST", "/mcp", call, MCP_HEADERS), ctx)
        assert body_of(r)["result"]["structuredContent"]["id"] == hits[0]["id"]

    # Errors keep their shape and status through Mangum.
    r = handler(make("POST", "/search", {"query": ""}), ctx)
    assert r["statusCode"] == 400 and body_of(r)["error"]["param"] == "query"
    r = handler(make("GET", "/nowhere"), ctx)
    assert r["statusCode"] == 404 and body_of(r)["error"]["code"] == "not_found"


def test_request_id_comes_from_lambda(handler: Any) -> None:
    r = handler(v1_event("GET", "/models"), Context(aws_request_id="abc-123"))
    assert headers_of(r)["x-request-id"] == "abc-123"


def test_without_authorizer_context_a_token_is_required(handler: Any) -> None:
    r = handler(v1_event("POST", "/search", {"query": QUERY}, authorizer=False), Context())
    assert r["statusCode"] == 401
    assert body_of(r)["error"]["type"] == "invalid_request_error"
    challenge = headers_of(r)["www-authenticate"]
    assert challenge == f'Bearer resource_metadata="{V1_BASE}/.well-known/oauth-protected-resource"'


def test_authorizer_context_is_not_trusted_unless_configured(scifact_engine: SearchEngine) -> None:
    strict: Any = build_handler(
        Settings(
            oauth_issuer="https://issuer.example.com/",
            oauth_audience="https://athenaeum.example.com",
            oauth_jwks_url="https://issuer.example.com/.well-known/jwks.json",
        ),
        FixedEngineProvider(scifact_engine),
    )
    r = strict(v1_event("POST", "/search", {"query": QUERY}), Context())
    assert r["statusCode"] == 401


def test_module_handler_builds_from_the_environment(
    scifact_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATHENAEUM_INDEX_DIR", str(scifact_bundle))
    monkeypatch.setenv("ATHENAEUM_TRUST_GATEWAY_AUTHORIZER", "true")
    monkeypatch.setattr(lambda_handler, "_handler", None)
    get_settings.cache_clear()
    try:
        r = lambda_handler.handler(v2_event("POST", "/search", {"query": QUERY}), Context())
        assert r["statusCode"] == 200 and len(body_of(r)["results"]) == 5
        first = lambda_handler._handler
        lambda_handler.handler(v2_event("GET", "/health"), Context())
        assert lambda_handler._handler is first  # built once per container
    finally:
        get_settings.cache_clear()


PRELOAD_SCRIPT = """
import json, logging, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
start = time.perf_counter()
import athenaeum.server.lambda_handler as lh
engine = lh._handler is not None and lh._handler.app  # built during import
loaded = bool(engine)
event = json.load(open(sys.argv[1]))
event.update(path="/search", httpMethod="POST", body=json.dumps({"query": "vitamin D"}))
event["pathParameters"] = {"proxy": "search"}
print("FIRST REQUEST", file=sys.stderr, flush=True)
response = lh.handler(event, None)
print(json.dumps({"built_at_import": loaded, "status": response["statusCode"]}))
"""


def _run_preload(bundle: Path, tmp_path: Path) -> tuple[dict[str, Any], str]:
    import os

    env = {
        **os.environ,
        "ATHENAEUM_PRELOAD_INDEX": "true",
        "ATHENAEUM_INDEX_DIR": str(bundle),
        "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
        "ATHENAEUM_OAUTH_ISSUER": "https://issuer.test/",
        "ATHENAEUM_OAUTH_AUDIENCE": "https://athenaeum.test",
        "ATHENAEUM_OAUTH_JWKS_URL": "https://issuer.test/jwks",
    }
    answer, log = run_fresh(
        PRELOAD_SCRIPT, str(EVENTS / "rest_v1_authorizer.json"), env=env, cwd=tmp_path
    )
    return answer, log


def test_preload_loads_the_index_while_the_container_initialises(
    scifact_bundle: Path, tmp_path: Path
) -> None:
    answer, log = _run_preload(scifact_bundle, tmp_path)
    assert answer == {"built_at_import": True, "status": 200}
    # Loaded once, during import: the request found it ready.
    assert log.count('"event": "index_loaded"') == 1
    assert log.index('"event": "index_loaded"') < log.index("FIRST REQUEST")


def test_a_failed_preload_is_retried_by_the_first_request(tmp_path: Path) -> None:
    answer, log = _run_preload(tmp_path / "no-such-bundle", tmp_path)
    assert answer == {"built_at_import": True, "status": 503}
    assert "index_preload_failed" in log
