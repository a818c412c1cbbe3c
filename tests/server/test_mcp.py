"""MCP at /mcp: the official client against a live server, and the raw protocol in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.server.helpers import MCP_HEADERS, assert_error, open_client, rpc

QUERY = "vitamin D deficiency and bone health"
LIMIT: int = Settings.model_fields["max_query_chars"].default


async def _session_calls(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(headers=headers or {}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        found = await session.call_tool("search", {"query": QUERY})
        first_id = found.structured_content["results"][0]["id"] if found.structured_content else ""
        fetched = await session.call_tool("fetch", {"id": first_id})
        missing = await session.call_tool("fetch", {"id": "no-such-chunk"})
        invalid = await session.call_tool("search", {"query": ""})
        blank = await session.call_tool("search", {"query": "   "})
        too_long = await session.call_tool("search", {"query": "x" * (LIMIT + 1)})
        at_limit = await session.call_tool("search", {"query": ((QUERY + " ") * LIMIT)[:LIMIT]})
        return {
            "tools": tools,
            "search": found,
            "fetch": fetched,
            "missing": missing,
            "invalid": invalid,
            "blank": blank,
            "too_long": too_long,
            "at_limit": at_limit,
        }


def test_official_mcp_client_lists_searches_and_fetches(
    scifact_engine: SearchEngine, live_server: Callable[[Any], Any]
) -> None:
    server = live_server(
        create_app(Settings(insecure_no_auth=True), FixedEngineProvider(scifact_engine))
    )
    out = anyio.run(_session_calls, server.url + "/mcp")

    tools = {t.name: t for t in out["tools"].tools}
    assert set(tools) == {"search", "fetch"}
    assert tools["search"].input_schema["required"] == ["query"]
    assert tools["fetch"].input_schema["required"] == ["id"]
    assert tools["search"].annotations is not None and tools["search"].annotations.read_only_hint

    search = out["search"]
    assert not search.is_error
    # ChatGPT's contract: one text item holding the JSON, and the same object as structured.
    assert len(search.content) == 1 and search.content[0].type == "text"
    assert json.loads(search.content[0].text) == search.structured_content
    results = search.structured_content["results"]
    expected = [r.chunk.id for r in scifact_engine.search(QUERY, top_k=10)]
    assert [r["id"] for r in results] == expected
    assert all(set(r) == {"id", "title", "url"} for r in results)
    assert results[0]["url"] == f"{server.url}/chunks/{quote(results[0]['id'], safe='')}"

    fetched = out["fetch"]
    assert not fetched.is_error
    doc = fetched.structured_content
    assert json.loads(fetched.content[0].text) == doc
    assert set(doc) == {"id", "title", "text", "url", "metadata"}
    chunk = scifact_engine.get_chunk(results[0]["id"])
    assert doc["id"] == chunk.id and doc["text"] == chunk.text
    assert doc["metadata"]["source"] == chunk.source
    # The cited URL resolves over plain HTTP to the same passage.
    assert httpx.get(doc["url"]).json()["text"] == chunk.text

    assert out["missing"].is_error and "no-such-chunk" in out["missing"].content[0].text
    assert out["invalid"].is_error
    # A query over the limit is refused as /search refuses it (a 400 there), never cut short.
    assert out["too_long"].is_error and out["too_long"].content[0].text == (
        f"query is {LIMIT + 1} characters long; the limit is {LIMIT}"
    )
    assert out["blank"].is_error and "whitespace" in out["blank"].content[0].text
    assert not out["at_limit"].is_error and out["at_limit"].structured_content["results"]


def test_mcp_is_stateless_across_requests(scifact_engine: SearchEngine) -> None:
    # Each POST stands alone (as on Lambda): tools/call works without an initialize first and
    # without a session id, many times over.
    c = open_client(scifact_engine)
    for i in range(3):
        r = c.post(
            "/mcp",
            json=rpc("tools/call", {"name": "search", "arguments": {"query": QUERY}}, i),
            headers={**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert "mcp-session-id" not in r.headers
        result = r.json()["result"]
        assert len(result["structuredContent"]["results"]) == 10


def test_dns_rebinding_protection_admits_only_known_hosts(scifact_engine: SearchEngine) -> None:
    body = rpc("tools/list")
    headers = {**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"}
    provider = FixedEngineProvider(scifact_engine)
    local = TestClient(create_app(Settings(insecure_no_auth=True), provider))
    assert local.post("/mcp", json=body, headers={**headers, "Host": "127.0.0.1:8000"}).is_success
    assert local.post(
        "/mcp", json=body, headers={**headers, "Host": "evil.example"}
    ).status_code == (421)
    public = TestClient(
        create_app(
            Settings(insecure_no_auth=True, public_base_url="https://library.example.org"),
            provider,
        )
    )
    assert public.post(
        "/mcp", json=body, headers={**headers, "Host": "library.example.org"}
    ).is_success


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_mcp_get_and_delete_are_405_not_a_hanging_stream(
    scifact_engine: SearchEngine, method: str
) -> None:
    c = open_client(scifact_engine)
    r = c.request(method, "/mcp", headers={"Accept": "application/json, text/event-stream"})
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
