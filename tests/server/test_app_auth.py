"""Auth at the HTTP layer: real RSA/EC-signed tokens checked against a JWKS served over HTTP,
API keys, RFC 9728 discovery. The validator's own edge cases live in tests/server/test_auth.py; here
every forged case must come back as a 401 in the error shape with a WWW-Authenticate header,
on REST and MCP alike."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.auth.keys import hash_api_key
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.server.conftest import LiveServer
from tests.server.helpers import assert_error
from tests.server.test_auth import (
    AUDIENCE,
    ISSUER,
    JWKSServer,
    SigningKey,
    b64url,
    claims,
    hand_made,
    make_ec,
    make_rsa,
    wait_until,
)

METADATA = 'resource_metadata="http://testserver/.well-known/oauth-protected-resource"'
API_KEY = "ath-" + "Zq8r2LmX4vT9wK1pN6sY"


@pytest.fixture(scope="module")
def keys() -> tuple[SigningKey, SigningKey]:
    return make_rsa("app-rsa"), make_ec("app-ec")


@pytest.fixture
def jwks_server(keys: tuple[SigningKey, SigningKey]) -> Iterator[JWKSServer]:
    server = JWKSServer(keys=[keys[0].jwk, keys[1].jwk])
    server.start()
    yield server
    server.stop()


def oauth_client(engine: SearchEngine, jwks_url: str, **extra: object) -> TestClient:
    settings = Settings(
        oauth_issuer=ISSUER,
        oauth_audience=AUDIENCE,
        oauth_jwks_url=jwks_url,
        **extra,  # type: ignore[arg-type]
    )
    return TestClient(create_app(settings, FixedEngineProvider(engine)))


@pytest.fixture
def client(scifact_engine: SearchEngine, jwks_server: JWKSServer) -> TestClient:
    return oauth_client(scifact_engine, jwks_server.url)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def search(c: TestClient, headers: dict[str, str]) -> Any:
    return c.post("/search", json={"query": "vitamin D"}, headers=headers)


def test_valid_rsa_and_ec_tokens_are_accepted(
    client: TestClient, keys: tuple[SigningKey, SigningKey]
) -> None:
    for key in keys:
        r = client.post("/search", json={"query": "vitamin D"}, headers=bearer(key.sign(claims())))
        assert r.status_code == 200, r.text
    token = keys[0].sign(claims())
    assert client.get("/v1/models", headers=bearer(token)).status_code == 200
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    r = client.post(
        "/mcp",
        json=rpc,
        headers={
            **bearer(token),
            "Accept": "application/json, text/event-stream",
            "Host": "127.0.0.1:8000",
            "mcp-protocol-version": "2025-06-18",
        },
    )
    assert r.status_code == 200 and len(r.json()["result"]["tools"]) == 2


def test_missing_credentials_point_to_the_resource_metadata(client: TestClient) -> None:
    for path, method in (
        ("/search", "POST"),
        ("/v1/models", "GET"),
        ("/mcp", "POST"),
        ("/chunks/x", "GET"),
        ("/chat/completions", "POST"),
    ):
        r = client.request(method, path, json={})
        e = assert_error(r, 401)
        assert e["type"] == "invalid_request_error"
        # RFC 6750 3.1: no error code when the request had no credentials at all.
        assert r.headers["www-authenticate"] == f"Bearer {METADATA}"


@pytest.mark.parametrize("oauth", [True, False], ids=["oauth-and-keys", "keys-only"])
def test_a_401_points_only_at_metadata_that_exists(
    scifact_engine: SearchEngine, jwks_server: JWKSServer, oauth: bool
) -> None:
    """A 401's `resource_metadata` is fetched as a client would fetch it: with OAuth it answers;
    with API keys alone the header names none (the URL would be a 404)."""
    settings = Settings(api_key_hashes=[hash_api_key(API_KEY)])
    if oauth:
        settings = Settings(
            oauth_issuer=ISSUER,
            oauth_audience=AUDIENCE,
            oauth_jwks_url=jwks_server.url,
            api_key_hashes=[hash_api_key(API_KEY)],
        )
    with TestClient(create_app(settings, FixedEngineProvider(scifact_engine))) as c:
        r = c.post("/search", json={"query": "vitamin D"})
        assert_error(r, 401)
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith("Bearer")
        if not oauth:
            assert "resource_metadata" not in challenge
            assert c.get("/.well-known/oauth-protected-resource").status_code == 404
            return
        url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
        meta = c.get(url)
        # The API itself, whose OAuth relay (RFC 8414 metadata) leads to the issuer.
        assert meta.status_code == 200
        assert meta.json()["authorization_servers"] == ["http://testserver"]


def test_public_paths_need_no_token(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    meta = client.get("/.well-known/oauth-protected-resource").json()
    assert meta["resource"] == "http://testserver"
    assert meta["authorization_servers"] == ["http://testserver"]
    mcp_meta = client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert mcp_meta["resource"] == "http://testserver/mcp"


def _forged(keys: tuple[SigningKey, SigningKey]) -> dict[str, str]:
    rsa_key = keys[0]
    good = rsa_key.sign(claims())
    head, payload, sig = good.split(".")
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tampered_payload = b64url(json.dumps(claims(sub="admin")).encode())
    flipped = sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")
    return {
        "alg none": hand_made({"alg": "none", "kid": rsa_key.kid}, claims(), None),
        "HS256 with the public key": hand_made(
            {"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"}, claims(), public_pem
        ),
        "expired": rsa_key.sign(claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
        "not yet valid": rsa_key.sign(claims(nbf=int(time.time()) + 3600)),
        "wrong issuer": rsa_key.sign(claims(iss="https://evil.example.com/")),
        "wrong audience": rsa_key.sign(claims(aud="https://other.example.com")),
        "unknown kid": make_rsa("not-in-jwks").sign(claims()),
        "tampered payload": f"{head}.{tampered_payload}.{sig}",
        "tampered signature": f"{head}.{payload}.{flipped}",
        "malformed": "not-a-jwt",
        "garbage base64": f"{head}.{base64.b64encode(b'{{{').decode().rstrip('=')}.{sig}",
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "HS256 with the public key",
        "expired",
        "not yet valid",
        "wrong issuer",
        "wrong audience",
        "unknown kid",
        "tampered payload",
        "tampered signature",
        "malformed",
        "garbage base64",
    ],
)
def test_every_forged_token_is_a_401(
    client: TestClient, keys: tuple[SigningKey, SigningKey], case: str
) -> None:
    token = _forged(keys)[case]
    r = client.post("/search", json={"query": "vitamin D"}, headers=bearer(token))
    e = assert_error(r, 401, "invalid_token")
    assert token not in e["message"]
    header = r.headers["www-authenticate"]
    assert header.startswith(f"Bearer {METADATA}") and 'error="invalid_token"' in header


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Token abc", "Bearer", "Bearer a b"])
def test_wrong_authorization_schemes_are_401(client: TestClient, header: str) -> None:
    r = client.post("/search", json={"query": "x"}, headers={"Authorization": header})
    assert_error(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer ")


def test_missing_scope_is_403(
    scifact_engine: SearchEngine, jwks_server: JWKSServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    c = oauth_client(scifact_engine, jwks_server.url, oauth_required_scopes="library.read")
    r = c.post("/search", json={"query": "x"}, headers=bearer(keys[0].sign(claims())))
    assert_error(r, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert 'scope="library.read"' in r.headers["www-authenticate"]
    ok = keys[0].sign(claims(scope="library.read"))
    assert c.post("/search", json={"query": "x"}, headers=bearer(ok)).status_code == 200
    meta = c.get("/.well-known/oauth-protected-resource").json()
    assert meta["scopes_supported"] == ["library.read"]


def test_jwks_down_fails_closed_with_503(
    scifact_engine: SearchEngine, jwks_server: JWKSServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    jwks_server.mode = "error"
    c = oauth_client(scifact_engine, jwks_server.url)
    r = c.post("/search", json={"query": "x"}, headers=bearer(keys[0].sign(claims())))
    assert_error(r, 503, "auth_unavailable")
    assert int(r.headers["retry-after"]) >= 1
    jwks_server.stop()
    c = oauth_client(scifact_engine, jwks_server.url)
    r = c.post("/search", json={"query": "x"}, headers=bearer(keys[0].sign(claims())))
    assert r.status_code in (401, 503)
    assert_error(r, r.status_code)


def test_key_rotation_is_picked_up(
    scifact_engine: SearchEngine, jwks_server: JWKSServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    # The issuer publishes a new key before the server ever sees a token signed with it.
    c = oauth_client(scifact_engine, jwks_server.url)
    new = make_rsa("rotated-2")
    jwks_server.keys = [new.jwk]
    assert search(c, bearer(new.sign(claims()))).status_code == 200


def test_a_new_key_that_cannot_be_looked_up_yet_is_a_503(
    scifact_engine: SearchEngine, jwks_server: JWKSServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    # Just fetched, so the next refresh waits (UNKNOWN_KID_REFRESH_S): a token signed by a key
    # published since then may be good, and is told when to come back instead of refused.
    c = oauth_client(scifact_engine, jwks_server.url)
    assert search(c, bearer(keys[0].sign(claims()))).status_code == 200
    new = make_rsa("published-later")
    jwks_server.keys = [keys[0].jwk, new.jwk]
    r = search(c, bearer(new.sign(claims())))
    assert_error(r, 503, "auth_unavailable")
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert jwks_server.requests == 1


def test_tokens_work_again_soon_after_the_issuer_returns(
    scifact_engine: SearchEngine, jwks_server: JWKSServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    jwks_server.mode = "error"
    c = oauth_client(scifact_engine, jwks_server.url)
    token = keys[0].sign(claims())
    outage_ends = time.monotonic() + 1.5  # fetches fail at 0 s and 1 s; the next may run at 3 s
    while time.monotonic() < outage_ends:
        r = search(c, bearer(token))
        assert_error(r, 503, "auth_unavailable")
        assert 1 <= int(r.headers["retry-after"]) <= 4
        time.sleep(0.1)
    jwks_server.mode = "ok"
    back = time.monotonic()
    while search(c, bearer(token)).status_code != 200:
        assert time.monotonic() - back < 5
        time.sleep(0.1)


def test_a_hanging_issuer_delays_only_the_requests_that_need_its_keys(
    scifact_engine: SearchEngine,
    jwks_server: JWKSServer,
    keys: tuple[SigningKey, SigningKey],
    live_server: Callable[[Any], LiveServer],
) -> None:
    """60 token requests wait on a JWKS that answers after 10 s; meanwhile an API-key search and
    /health answer at their usual speed, and each token request gets a 503 after the timeout."""
    timeout = 2.0
    settings = Settings(
        oauth_issuer=ISSUER,
        oauth_audience=AUDIENCE,
        oauth_jwks_url=jwks_server.url,
        jwks_timeout_s=timeout,
        api_key_hashes=[hash_api_key(API_KEY)],
    )
    server = live_server(create_app(settings, FixedEngineProvider(scifact_engine)))
    query = {"query": "vitamin D"}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post("/search", json=query, headers=bearer(API_KEY)).status_code == 200
    jwks_server.mode = "slow"

    tokens = [keys[0].sign(claims(sub=f"user-{i}")) for i in range(60)]
    limits = httpx.Limits(max_connections=len(tokens))
    with (
        httpx.Client(base_url=server.url, timeout=30, limits=limits) as jwt_client,
        ThreadPoolExecutor(max_workers=len(tokens)) as pool,
    ):

        def with_token(token: str) -> tuple[httpx.Response, float]:
            start = time.monotonic()
            r = jwt_client.post("/search", json=query, headers=bearer(token))
            return r, time.monotonic() - start

        pending = [pool.submit(with_token, token) for token in tokens]
        wait_until(lambda: jwks_server.requests == 1)
        time.sleep(0.5)  # the others queue up behind the fetch
        took: dict[str, float] = {}
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for name, call in (
                ("/health", lambda: c.get("/health")),
                ("API-key /search", lambda: c.post("/search", json=query, headers=bearer(API_KEY))),
            ):
                start = time.monotonic()
                assert call().status_code == 200
                took[name] = time.monotonic() - start
        results = [future.result() for future in pending]
    assert all(seconds < 0.5 for seconds in took.values()), took
    for r, seconds in results:
        assert_error(r, 503, "auth_unavailable")
        assert int(r.headers["retry-after"]) >= 1
        assert seconds < timeout + 1
    assert jwks_server.requests == 1  # one fetch for all of them


def test_api_keys(scifact_engine: SearchEngine) -> None:
    c = TestClient(
        create_app(
            Settings(api_key_hashes=[hash_api_key(API_KEY)]), FixedEngineProvider(scifact_engine)
        )
    )
    assert search(c, bearer(API_KEY)).status_code == 200
    r = c.post("/search", json={"query": "x"}, headers=bearer(API_KEY + "x"))
    assert_error(r, 401)
    # Without OAuth there is no metadata to point at, but the challenge still names it.
    assert r.headers["www-authenticate"].startswith("Bearer ")
    assert_error(c.get("/.well-known/oauth-protected-resource"), 404)


def test_api_keys_and_oauth_together(
    scifact_engine: SearchEngine, jwks_server: JWKSServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    c = oauth_client(scifact_engine, jwks_server.url, api_key_hashes=[hash_api_key(API_KEY)])
    assert search(c, bearer(API_KEY)).status_code == 200
    assert search(c, bearer(keys[1].sign(claims()))).status_code == 200
    assert search(c, bearer("x" * 40)).status_code == 401


def test_settings_refuse_plain_keys_and_placeholders() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sha256"):
        Settings(api_key_hashes=[API_KEY])
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(llm_base_url="http://x", llm_model="m", llm_api_key="changeme")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="all three"):
        Settings(oauth_issuer=ISSUER)
