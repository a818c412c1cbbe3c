"""Any text in any text field, on /search, chat (string or parts, streamed or not) and MCP:
never a 5xx. Text the tokenizer cannot take (a lone surrogate, a NUL) is a 400 naming the field,
and a body that is not UTF-8 is a 400, each in the one error shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.retrieval.text import problem
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.server.test_app import assert_error
from tests.server.test_mcp import MCP_HEADERS

RETRIEVAL = "athenaeum-index-retrieval"
# Every code point, lone surrogates included (hypothesis leaves them out unless told), with the
# two refused ones often enough that every run meets them.
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), min_size=1, max_size=40),
    st.tuples(st.text(max_size=10), st.sampled_from(["\ud800", "\udfff", "\x00"])).map("".join),
)
PROPERTY = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same examples every run, so a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(scope="module")
def client(scifact_engine: SearchEngine) -> TestClient:
    app = create_app(Settings(insecure_no_auth=True), FixedEngineProvider(scifact_engine))
    return TestClient(app, base_url="http://127.0.0.1:8000")


def post(client: TestClient, path: str, body: Any, **headers: str) -> Any:
    # As a client that escapes non-ASCII sends it: "\ud800" arrives as that JSON escape.
    content = json.dumps(body, ensure_ascii=True)
    return client.post(
        path, content=content, headers={"Content-Type": "application/json", **headers}
    )


def expect(response: Any, text: str, param: str) -> None:
    """A 400 naming `param` when the text is refused, else no error of the server's own."""
    assert response.status_code < 500, response.text
    if problem(text) is not None:
        error = assert_error(response, 400, "invalid_text")
        assert error["param"] == param
    elif response.status_code >= 400:
        assert_error(response, response.status_code)


Place = Callable[[str], tuple[dict[str, Any], str]]
SEARCH_PLACES: dict[str, Place] = {
    "query": lambda t: ({"query": t}, "query"),
    "documents": lambda t: ({"query": "x", "filter": {"documents": [t]}}, "filter.documents.0"),
    "metadata value": lambda t: (
        {"query": "x", "filter": {"metadata": {"year": t}}},
        "filter.metadata.year",
    ),
}


@pytest.mark.parametrize("place", list(SEARCH_PLACES))
@PROPERTY
@given(text=TEXT)
def test_search_takes_any_text_without_a_5xx(client: TestClient, place: str, text: str) -> None:
    body, param = SEARCH_PLACES[place](text)
    expect(post(client, "/search", body), text, param)


@PROPERTY
@given(text=TEXT, stream=st.booleans(), parts=st.booleans())
def test_chat_takes_any_text_without_a_5xx(
    client: TestClient, text: str, stream: bool, parts: bool
) -> None:
    content: Any = [{"type": "text", "text": text}] if parts else text
    body = {
        "model": RETRIEVAL,
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    }
    r = post(client, "/v1/chat/completions", body)
    expect(r, text, "messages.0.content.0.text" if parts else "messages.0.content")
    if r.status_code == 200 and stream:
        assert r.text.rstrip().endswith("data: [DONE]")
        assert '"error"' not in r.text


@PROPERTY
@given(text=TEXT)
def test_mcp_search_takes_any_text_without_a_5xx(client: TestClient, text: str) -> None:
    call = {"name": "search", "arguments": {"query": text}}
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
    r = post(client, "/mcp", rpc, **MCP_HEADERS, **{"mcp-protocol-version": "2025-06-18"})
    assert r.status_code < 500, r.text
    reply = r.json()
    if any("\ud800" <= c <= "\udfff" for c in text):
        # The SDK's JSON parser refuses a lone surrogate escape itself: a JSON-RPC parse error.
        assert r.status_code == 400 and reply["error"]["code"] == -32700
    elif problem(text) is not None:
        result = reply["result"]
        assert result["isError"] and "query contains a NUL" in result["content"][0]["text"]
    elif "result" in reply:
        assert "structuredContent" in reply["result"] or reply["result"]["isError"]


BODIES: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "search": ("/search", lambda raw: b'{"query": "' + raw + b'"}'),
    "chat": (
        "/v1/chat/completions",
        lambda raw: (
            b'{"model": "' + RETRIEVAL.encode() + b'", "messages": '
            b'[{"role": "user", "content": "' + raw + b'"}]}'
        ),
    ),
}


@pytest.mark.parametrize("route", list(BODIES))
@settings(PROPERTY, max_examples=60)
@given(raw=st.binary(min_size=1, max_size=20))
def test_any_bytes_in_a_body_are_never_a_5xx(client: TestClient, route: str, raw: bytes) -> None:
    path, body = BODIES[route]
    r = client.post(path, content=body(raw), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert_error(r, r.status_code)


@pytest.mark.parametrize(("route", "param"), [("search", "query"), ("chat", "messages.0.content")])
def test_invalid_utf8_is_a_400_naming_the_field(client: TestClient, route: str, param: str) -> None:
    path, body = BODIES[route]
    content = body(b"caf\xe9 \xff")
    r = client.post(path, content=content, headers={"Content-Type": "application/json"})
    error = assert_error(r, 400, "invalid_text")
    assert error["param"] == param
    offset = content.index(b"\xe9")
    assert (
        error["message"] == f"{param} is not valid UTF-8 (byte 0xe9 at offset {offset} of the body)"
    )
    # Not JSON either: the byte and its offset, without a field.
    r = client.post(path, content=b'{"query": \xff', headers={"Content-Type": "application/json"})
    error = assert_error(r, 400, "invalid_text")
    assert error["param"] is None
    assert (
        error["message"]
        == "the request body is not valid UTF-8 (byte 0xff at offset 10 of the body)"
    )


def test_chat_names_the_field_a_lone_surrogate_is_in(client: TestClient) -> None:
    body = {"model": RETRIEVAL, "messages": [{"role": "user", "content": "reset \ud800"}]}
    error = assert_error(post(client, "/v1/chat/completions", body), 400, "invalid_text")
    assert error["param"] == "messages.0.content"
    assert error["message"] == (
        "messages.0.content contains a lone surrogate (U+D800) at character 6, which is not "
        "valid Unicode text"
    )
