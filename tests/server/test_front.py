"""The front door (`GET /`: a page for a browser, JSON for a client), the API reference at
`/docs`, and the 401's metadata link, which leads to a 200."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.auth.keys import hash_api_key
from athenaeum.server.http.app import create_app
from athenaeum.server.http.routes.front import wants_html
from athenaeum.server.index.provider import EngineProvider, FixedEngineProvider
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.settings import Settings
from tests.server.helpers import LOCAL_URL, Context, v1_event

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
KEY = "ath-" + "front-door-key-Lq55"
OAUTH = {
    "oauth_issuer": "https://issuer.example.com/",
    "oauth_audience": "athenaeum",
    "oauth_jwks_url": "https://issuer.example.com/jwks.json",
}


def _client(engine: SearchEngine, **settings: Any) -> TestClient:
    app = create_app(Settings(**settings), FixedEngineProvider(engine))
    return TestClient(app, base_url=LOCAL_URL)


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
    ],
)
def test_a_browser_gets_html_and_anything_else_json(accept: str | None, html: bool) -> None:
    assert wants_html(accept) is html


def test_an_api_client_gets_a_json_description_without_credentials(
    scifact_engine: SearchEngine, scifact_bundle: Path
) -> None:
    client = _client(scifact_engine, api_key_hashes=[hash_api_key(KEY)])
    r = client.get("/", headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["vary"] == "Accept"
    about = r.json()
    assert about["name"] == "Athenaeum" and about["version"]
    health = client.get("/health").json()["index"]
    assert about["index"] == {
        "loaded": True,
        "documents": health["documents"],
        "chunks": health["chunks"],
        "model": health["model"],
        "index_version": health["index_version"],
        "created_at": health["created_at"],
    }
    assert about["auth"] == {
        "required": True,
        "credentials": ["api_key"],
        "header": "Authorization: Bearer <token>",
        "resource_metadata": None,
    }
    endpoints = {(e["method"], e["path"]): e["public"] for e in about["endpoints"]}
    assert endpoints[("POST", "/search")] is False and endpoints[("GET", "/health")] is True
    assert endpoints[("GET", "/")] is True and ("POST", "/mcp") in endpoints
    # Without OAuth its metadata is a 404: not listed.
    assert not [path for _, path in endpoints if path.startswith("/.well-known/")]
    assert about["links"]["docs"] == f"{LOCAL_URL}/docs"
    assert about["links"]["mcp"] == f"{LOCAL_URL}/mcp"
    # Every link it gives answers, without credentials where it says so.
    for name in ("docs", "openapi", "health", "self"):
        assert client.get(about["links"][name]).status_code == 200, name
    assert str(scifact_bundle) not in r.text and KEY not in r.text
    # curl's default Accept, and none, get JSON too.
    assert client.get("/", headers={"Accept": "*/*"}).json() == about


def test_a_browser_gets_a_page_that_says_what_this_is_and_where_to_go(
    scifact_engine: SearchEngine, scifact_bundle: Path
) -> None:
    client = _client(scifact_engine, api_key_hashes=[hash_api_key(KEY)], **OAUTH)
    r = client.get("/", headers={"Accept": BROWSER})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    page = r.text
    assert "The index is loaded" in page and "300 documents" in page
    for href in ("/docs", "/openapi.json", "/health"):
        assert f'href="{LOCAL_URL}{href}"' in page, href
    assert f"{LOCAL_URL}/mcp" in page and "athenaeum openapi --server-url" in page
    assert (
        "docs/chatgpt.md" in page
        and "athenaeum keys create NAME</code>) or an OAuth access token" in page
    )
    # Nothing from elsewhere, and nothing of the machine.
    assert not re.search(r"<(script|img|link|iframe)\b", page)
    assert str(scifact_bundle) not in page and "issuer.example.com" not in page
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert hrefs and all(h.startswith(LOCAL_URL) for h in hrefs), hrefs


def test_the_front_door_says_when_the_index_is_not_loaded(tmp_path: Path) -> None:
    settings = Settings(insecure_no_auth=True, index_dir=tmp_path / "missing")
    client = TestClient(create_app(settings, EngineProvider(settings)), base_url=LOCAL_URL)
    assert client.get("/health").status_code == 503
    r = client.get("/")
    assert r.status_code == 200 and r.json()["index"]["loaded"] is False
    assert r.json()["auth"]["required"] is False
    page = client.get("/", headers={"Accept": BROWSER}).text
    assert "not loaded" in page and str(tmp_path) not in page and str(tmp_path) not in r.text


def test_docs_is_a_reference_of_every_operation_with_nothing_from_elsewhere(
    scifact_engine: SearchEngine,
) -> None:
    client = _client(scifact_engine, api_key_hashes=[hash_api_key(KEY)])
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    schema = client.get("/openapi.json").json()
    page = r.text
    for path, item in schema["paths"].items():
        for method, op in item.items():
            assert f"{method.upper()} {path}</code>" in page, (method, path)
            assert f'id="{op["operationId"]}"' in page
    for name in schema["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    # Every link inside the page leads to an anchor that exists, or to the app itself.
    anchors = set(re.findall(r'id="([^"]+)"', page))
    for href in re.findall(r'href="([^"]+)"', page):
        if href.startswith("#"):
            assert href[1:] in anchors, href
        else:
            assert href.startswith(LOCAL_URL), href
    assert not re.search(r"<(script|img|link|iframe)\b", page)
    assert "/docs" not in schema["paths"]


def test_the_lambda_handler_serves_the_front_door_with_stage_links(
    scifact_engine: SearchEngine,
) -> None:
    """Through API Gateway (REST v1), where the root resource has no authorizer: links carry
    the stage, which the request's own path lacks."""
    handler = build_handler(
        Settings(trust_gateway_authorizer=True, **OAUTH), FixedEngineProvider(scifact_engine)
    )
    stage = "https://70ixmpl4fl.execute-api.us-east-2.amazonaws.com/prod"
    event = v1_event("GET", "/", headers={"Accept": BROWSER}, authorizer=False)
    event["pathParameters"] = None
    event["resource"] = "/"
    r = handler(event, Context())
    assert r["statusCode"] == 200, r["body"]
    assert r["headers"]["content-type"].startswith("text/html")
    assert f'href="{stage}/docs"' in r["body"] and "The index is loaded" in r["body"]
    r = handler(v1_event("GET", "/", authorizer=False) | {"resource": "/"}, Context())
    assert r["statusCode"] == 200
    # Behind the stack's authorizer: its key set, and the OAuth issuer configured here.
    assert '"credentials":["api_key","oauth"]' in r["body"].replace(" ", "")
    assert f'"{stage}/mcp"' in r["body"]
    docs = handler(v1_event("GET", "/docs", authorizer=False), Context())
    assert docs["statusCode"] == 200 and f'href="{stage}/openapi.json"' in docs["body"]


def test_the_401_s_metadata_link_answers_200(
    scifact_engine: SearchEngine, live_server: Callable[..., Any]
) -> None:
    """Follow WWW-Authenticate's resource_metadata from a 401, as an MCP client does; with API
    keys alone there is no link to follow (it would be a 404)."""
    for settings, has_link in (
        (Settings(api_key_hashes=[hash_api_key(KEY)], **OAUTH), True),
        (Settings(api_key_hashes=[hash_api_key(KEY)]), False),
    ):
        server = live_server(create_app(settings, FixedEngineProvider(scifact_engine)), settings)
        for path in ("/search", "/mcp", "/v1/models"):
            r = httpx.post(f"{server.url}{path}", json={})
            assert r.status_code == 401
            challenge = r.headers["www-authenticate"]
            found = re.search(r'resource_metadata="([^"]+)"', challenge)
            assert bool(found) is has_link, challenge
            if found:
                metadata = httpx.get(found.group(1))
                assert metadata.status_code == 200, found.group(1)
                # The API itself, whose OAuth relay is the authorization server clients use.
                assert metadata.json()["authorization_servers"] == [server.url]
