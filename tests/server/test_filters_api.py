"""Filters over the wire: /search, MCP `search` and chat's `filter` extension field narrow
retrieval the same way, and a malformed filter is a 400 (a tool error in MCP) naming it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from tests.server.helpers import MCP_HEADERS, assert_error, open_client, rpc

QUERY = "child injuries report agency investigation"
REPORTS = {"reports/150109DSP-Milw-505-90D.pdf", "reports/mistitled_outlines_example.pdf"}


@pytest.fixture
def client(pdf_engine: SearchEngine) -> TestClient:
    """The open app, serving the PDF library."""
    return open_client(pdf_engine)


def search(client: TestClient, flt: Any, **extra: Any) -> Any:
    return client.post("/search", json={"query": QUERY, "top_k": 50, "filter": flt, **extra})


def test_search_documents_pages_and_metadata(client: TestClient) -> None:
    r = search(client, {"documents": ["reports/"]})
    assert r.status_code == 200, r.text
    assert {p["source"] for p in r.json()["results"]} == REPORTS

    r = search(client, {"pages": {"from": 2, "to": 2}}, mode="dense")
    pages = [(p["page_start"], p["page_end"]) for p in r.json()["results"]]
    assert pages and all(start <= 2 <= end for start, end in pages)

    r = search(client, {"metadata": {"category": "court"}})
    assert {p["source"] for p in r.json()["results"]} == {"scotus-transcript-p1.pdf"}

    error = assert_error(search(client, {"documents": ["mistitled.pdf"]}), 400)
    assert error["param"] == "filter.documents"
    assert "; the closest: reports/mistitled_outlines_example.pdf, " in error["message"]


@pytest.mark.parametrize(
    ("flt", "param"),
    [
        ({"folder": "reports/"}, "filter.folder"),
        ({"pages": {"from": 0}}, "filter.pages.from"),
        ({"pages": {"from": 3, "to": 1}}, "filter.pages"),
        ({"metadata": {"author": "Jane"}}, "filter.metadata.author"),
        ({"metadata": {"year": {"gt": 1}}}, "filter.metadata.year"),
    ],
)
def test_search_refuses_a_bad_filter_with_400(client: TestClient, flt: Any, param: str) -> None:
    error = assert_error(search(client, flt), 400)
    assert error["param"] is not None and error["param"].startswith(param)
    assert param.rsplit(".", 1)[-1] in error["message"]


def _mcp_search(client: TestClient, arguments: dict[str, Any]) -> dict[str, Any]:
    r = client.post(
        "/mcp",
        json=rpc("tools/call", {"name": "search", "arguments": arguments}),
        headers={**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"},
    )
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()["result"]
    return result


def test_mcp_search_takes_the_same_filter(client: TestClient, pdf_engine: SearchEngine) -> None:
    result = _mcp_search(client, {"query": QUERY, "filter": {"documents": ["reports/*"]}})
    assert not result.get("isError")
    ids = [r["id"] for r in result["structuredContent"]["results"]]
    assert ids and {pdf_engine.get_chunk(i).source for i in ids} <= REPORTS
    expected = pdf_engine.search(QUERY, top_k=10, filter={"documents": ["reports/*"]})
    assert ids == [h.chunk.id for h in expected]

    empty = _mcp_search(client, {"query": QUERY, "filter": {"pages": {"from": 900}}})
    assert empty["structuredContent"]["results"] == []

    bad = _mcp_search(client, {"query": QUERY, "filter": {"metadata": {"author": "x"}}})
    assert bad["isError"] and "author" in bad["content"][0]["text"]
    typo = _mcp_search(client, {"query": QUERY, "filter": {"documents": ["multicolumns.pdf"]}})
    assert typo["isError"] and "the closest: multicolumn.pdf" in typo["content"][0]["text"]
    tools = client.post("/mcp", json=rpc("tools/list"), headers={**MCP_HEADERS})
    schema = {t["name"]: t for t in tools.json()["result"]["tools"]}["search"]["inputSchema"]
    assert "filter" in schema["properties"] and schema["required"] == ["query"]


def test_chat_filter_extension_field(client: TestClient) -> None:
    def ask(flt: Any) -> Any:
        return client.post(
            "/v1/chat/completions",
            json={
                "model": "athenaeum-index-retrieval",
                "messages": [{"role": "user", "content": QUERY}],
                "filter": flt,
            },
        )

    r = ask({"documents": ["scotus-transcript-p1.pdf"]})
    assert r.status_code == 200, r.text
    answer = r.json()["choices"][0]["message"]["content"]
    sources = answer.split("Sources:", 1)[1]
    assert "scotus-transcript-p1.pdf" in sources
    assert "150109DSP" not in answer and "multicolumn.pdf" not in answer

    r = ask({"pages": {"from": 900}})
    assert "no passages" in r.json()["choices"][0]["message"]["content"]
    assert assert_error(ask({"documents": ["none.pdf"]}), 400)["param"] == "filter.documents"

    error = assert_error(ask({"metadata": {"author": "x"}}), 400)
    assert error["param"] == "filter.metadata.author"


def test_chat_filter_holds_for_both_searches_of_a_follow_up(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "athenaeum-index-retrieval",
            "messages": [
                {"role": "user", "content": QUERY},
                {"role": "assistant", "content": "…"},
                {"role": "user", "content": "and who was charged?"},
            ],
            "filter": {"documents": ["scotus-transcript-p1.pdf"]},
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-athenaeum-query-method"] == "fallback"
    sources = r.json()["choices"][0]["message"]["content"].split("Sources:", 1)[1]
    assert "scotus-transcript-p1.pdf" in sources and "150109DSP" not in sources
