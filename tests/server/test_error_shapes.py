"""Every error a client can get from the app is in the one error shape: the MCP transport's
refusals too (JSON-RPC errors stay JSON-RPC), no redirects for a trailing slash, HEAD where GET
is answered, and a client that leaves mid-request is logged as 499, not as a server error."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.server.helpers import MCP_HEADERS, assert_error, rpc


@pytest.mark.parametrize("path", ["/chunks/", "/mcp/", "/search/", "/health/"])
def test_a_trailing_slash_is_a_404_not_a_redirect(client: TestClient, path: str) -> None:
    r = client.request("POST" if path != "/health/" else "GET", path, follow_redirects=False)
    assert r.status_code != 307
    assert_error(r, r.status_code)
    assert r.status_code in (404, 405)


@pytest.mark.parametrize("path", ["/health", "/models", "/v1/models", "/openapi.json"])
def test_head_is_answered_where_get_is(client: TestClient, path: str) -> None:
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Accept": "text/html", "Content-Type": "application/json"},
        {"Accept": "application/json, text/event-stream", "Content-Type": "text/plain"},
        {**MCP_HEADERS, "Origin": "https://evil.example"},
    ],
)
def test_mcp_transport_refusals_are_json(client: TestClient, headers: dict[str, str]) -> None:
    r = client.post("/mcp", content=json.dumps(rpc("tools/list")), headers=headers)
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"].startswith("application/json"), r.text
    body = r.json()
    if "jsonrpc" not in body:  # the transport's own refusal, in the API's error shape
        assert "MCP transport" in assert_error(r, r.status_code)["message"]


def test_a_foreign_origin_is_refused_in_the_error_shape(client: TestClient) -> None:
    r = client.post(
        "/mcp",
        content=json.dumps(rpc("tools/list")),
        headers={**MCP_HEADERS, "Origin": "https://evil.example"},
    )
    error = assert_error(r, 403)
    assert "MCP transport" in error["message"] and "Origin" in error["message"]


def test_json_rpc_errors_stay_json_rpc(client: TestClient) -> None:
    r = client.post(
        "/mcp",
        json=rpc("no/such/method"),
        headers={**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"},
    )
    body = r.json()
    assert body.get("jsonrpc") == "2.0" and "error" in body and "code" in body["error"]


def test_a_client_leaving_mid_body_is_logged_as_499(
    scifact_engine: SearchEngine,
    live_server: Callable[[Any], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = live_server(
        create_app(Settings(insecure_no_auth=True), FixedEngineProvider(scifact_engine))
    )
    port = int(server.url.rsplit(":", 1)[1])
    caplog.set_level(logging.INFO, logger="athenaeum.access")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 500\r\n\r\n{"query": '
        )
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [
            json.loads(r.getMessage())
            for r in caplog.records
            if '"event": "request"' in r.getMessage()
        ]
        if any(line["route"] == "/search" for line in lines):
            break
        time.sleep(0.1)
    search = [line for line in lines if line["route"] == "/search"]
    assert search and search[-1]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
