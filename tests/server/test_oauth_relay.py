"""The OAuth relay against stand-in providers served by real uvicorn servers: it contacts only
the issuer's discovery document and the endpoints that document names on the issuer's origin
(or on a host a setting names), whatever a request says; it passes client credentials and the
provider's answers (errors included) through; and it bounds what it waits for and reads.

The whole flow against a real OpenID provider is in tests/server/test_oauth_relay_e2e.py."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from athenaeum.server.auth.relay import MAX_RESPONSE_BYTES
from athenaeum.server.http.app import create_app
from athenaeum.server.settings import Settings
from tests.server.conftest import LiveServer
from tests.server.helpers import LOCAL_URL, assert_error

CALLBACK = "https://chatgpt.com/aip/g-0123456789abcdef/oauth/callback"
API = "https://athenaeum.test/api"


class Recorder:
    """What a stand-in server does and gets: a provider, or a trap nobody may call."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.discovery: dict[str, Any] = {}
        self.token_answer: Callable[[], Response] = lambda: JSONResponse(
            {"access_token": "at", "token_type": "Bearer", "expires_in": 60}
        )
        self.delay_s = 0.0

    async def handle(self, request: Request) -> Response:
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "headers": dict(request.headers),
                "body": (await request.body()).decode(),
            }
        )
        if request.url.path == "/.well-known/openid-configuration":
            return JSONResponse(self.discovery)
        if self.delay_s:
            await anyio.sleep(self.delay_s)
        return self.token_answer()


class Switch:
    """A server that hands each request to the current test's Recorder: the servers start
    once per module."""

    def __init__(self) -> None:
        self.current = Recorder()

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            return await self.current.handle(request)

        return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


@pytest.fixture(scope="module")
def switches() -> Iterator[tuple[Switch, str, Switch, str]]:
    provider, trap = Switch(), Switch()
    with LiveServer(provider.app()) as p, LiveServer(trap.app()) as t:
        # The trap on `localhost`: another host than 127.0.0.1, as far as origins go.
        yield provider, p.url, trap, f"http://localhost:{t.port}"


@pytest.fixture
def servers(switches: tuple[Switch, str, Switch, str]) -> tuple[Recorder, str, Recorder, str]:
    provider_switch, provider_url, trap_switch, trap_url = switches
    provider_switch.current, trap_switch.current = Recorder(), Recorder()
    provider = provider_switch.current
    provider.discovery = {
        "issuer": provider_url,
        "authorization_endpoint": f"{provider_url}/authorize",
        "token_endpoint": f"{provider_url}/token",
        "jwks_uri": f"{provider_url}/jwks",
        "scopes_supported": ["openid", "library.read"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }
    return provider, provider_url, trap_switch.current, trap_url


def relay_client(issuer: str, **settings: Any) -> TestClient:
    config = Settings(
        oauth_issuer=issuer,
        oauth_audience=API,
        oauth_jwks_url=f"{issuer}/jwks",
        oauth_required_scopes=["library.read"],
        **settings,
    )
    return TestClient(create_app(config), base_url=LOCAL_URL)


AUTHORIZE = {
    "response_type": "code",
    "client_id": "gpt",
    "redirect_uri": CALLBACK,
    "scope": "openid library.read",
    "state": "s-123",
}
TOKEN = {
    "grant_type": "authorization_code",
    "code": "the-code",
    "redirect_uri": CALLBACK,
    "client_id": "gpt",
    "client_secret": "the-secret",
}


def test_metadata_names_the_api_as_authorization_server(servers: Any) -> None:
    _, provider_url, _, _ = servers
    client = relay_client(provider_url)
    r = client.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "issuer": LOCAL_URL,
        "authorization_endpoint": f"{LOCAL_URL}/oauth/authorize",
        "token_endpoint": f"{LOCAL_URL}/oauth/token",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["library.read", "openid"],
        "code_challenge_methods_supported": ["S256"],
    }
    resource = client.get("/.well-known/oauth-protected-resource").json()
    assert resource["authorization_servers"] == [LOCAL_URL]
    # Without the relay, the provider is the authorization server, and the routes are 404s.
    off = relay_client(provider_url, oauth_relay=False)
    assert off.get("/.well-known/oauth-protected-resource").json()["authorization_servers"] == [
        provider_url
    ]
    for method, path in (
        ("GET", "/.well-known/oauth-authorization-server"),
        ("GET", "/oauth/authorize"),
        ("POST", "/oauth/token"),
    ):
        assert_error(off.request(method, path), 404)


def test_authorize_redirects_to_the_providers_endpoint_with_the_audience(servers: Any) -> None:
    _, provider_url, trap, trap_url = servers
    client = relay_client(provider_url, oauth_authorize_audience=API)
    query = {
        **AUTHORIZE,
        # None of these may choose where the browser goes or which API the token is for.
        "authorization_endpoint": f"{trap_url}/authorize",
        "audience": "https://evil.example/api",
        "resource": "https://evil.example/api",
        "code_challenge": "abc",
        "code_challenge_method": "S256",
    }
    r = client.get(
        "/oauth/authorize",
        params=query,
        headers={"Host": "127.0.0.1:8000", "X-Forwarded-Host": urlsplit(trap_url).netloc},
        follow_redirects=False,
    )
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{provider_url}/authorize"
    params = parse_qs(location.query)
    assert params["audience"] == [API] and "resource" not in params
    for name in ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge"):
        assert params[name] == [query[name]]
    assert params["authorization_endpoint"] == [f"{trap_url}/authorize"]  # inert: just a param
    assert trap.requests == []


@pytest.mark.parametrize(
    "query, param",
    [
        ({**AUTHORIZE, "response_type": "token"}, "response_type"),
        ({k: v for k, v in AUTHORIZE.items() if k != "redirect_uri"}, "redirect_uri"),
        ({**AUTHORIZE, "redirect_uri": "https://evil.example/cb"}, "redirect_uri"),
    ],
)
def test_authorize_refuses_without_redirecting(
    servers: Any, query: dict[str, str], param: str
) -> None:
    _, provider_url, _, _ = servers
    client = relay_client(
        provider_url,
        oauth_redirect_uris=["https://chatgpt.com/aip/*/oauth/callback"],
    )
    r = client.get("/oauth/authorize", params=query, follow_redirects=False)
    assert_error(r, 400)
    assert r.json()["error"]["param"] == param


def test_token_passes_credentials_and_answers_through(servers: Any) -> None:
    provider, provider_url, trap, trap_url = servers
    client = relay_client(provider_url)
    evil = urlsplit(trap_url).netloc
    # The secret in the body (the GPT editor's default "POST request").
    r = client.post(
        "/oauth/token",
        data={**TOKEN, "token_endpoint": f"{trap_url}/token", "resource": "https://evil/"},
        headers={"X-Forwarded-Host": evil, "Forwarded": f"host={evil}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["access_token"] == "at"
    assert r.headers["cache-control"] == "no-store"
    sent = provider.requests[-1]
    assert (sent["method"], sent["path"]) == ("POST", "/token")
    assert parse_qs(sent["body"]) == {
        **{k: [v] for k, v in TOKEN.items()},
        "token_endpoint": [f"{trap_url}/token"],
    }
    assert "authorization" not in sent["headers"]
    assert evil not in str(sent["headers"])

    # The secret in a Basic header ("Basic authorization header"): passed on unchanged.
    basic = "Basic " + base64.b64encode(b"gpt:the-secret").decode()
    refresh = {"grant_type": "refresh_token", "refresh_token": "rt"}
    r = client.post("/oauth/token", data=refresh, headers={"Authorization": basic})
    assert r.status_code == 200
    assert provider.requests[-1]["headers"]["authorization"] == basic
    assert parse_qs(provider.requests[-1]["body"]) == {k: [v] for k, v in refresh.items()}

    # The provider's RFC 6749 errors come back with their status and challenge.
    provider.token_answer = lambda: JSONResponse(
        {"error": "invalid_client", "error_description": "no such client"},
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="provider"'},
    )
    r = client.post("/oauth/token", data=TOKEN)
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_client", "error_description": "no such client"}
    assert r.headers["www-authenticate"] == 'Basic realm="provider"'
    assert trap.requests == []


@pytest.mark.parametrize(
    "data, content_type, error",
    [
        ({**TOKEN, "grant_type": "client_credentials"}, None, "unsupported_grant_type"),
        ({**TOKEN, "grant_type": "password"}, None, "unsupported_grant_type"),
        ({"code": "c"}, None, "invalid_request"),
        (None, "application/json", "invalid_request"),
    ],
)
def test_token_refuses_what_it_does_not_relay(
    servers: Any, data: dict[str, str] | None, content_type: str | None, error: str
) -> None:
    provider, provider_url, _, _ = servers
    client = relay_client(provider_url)
    if content_type is None:
        r = client.post("/oauth/token", data=data)
    else:
        r = client.post("/oauth/token", json=TOKEN, headers={"Content-Type": content_type})
    assert r.status_code == 400
    assert set(r.json()) == {"error", "error_description"} and r.json()["error"] == error
    assert [x["path"] for x in provider.requests if x["path"] == "/token"] == []


@pytest.mark.parametrize("endpoint", ["token_endpoint", "authorization_endpoint"])
def test_a_discovery_document_naming_another_host_is_refused(servers: Any, endpoint: str) -> None:
    provider, provider_url, trap, trap_url = servers
    provider.discovery[endpoint] = f"{trap_url}/{endpoint}"
    client = relay_client(provider_url)
    r = client.post("/oauth/token", data=TOKEN)
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert "another host than the issuer" in r.json()["error_description"]
    error = assert_error(client.get("/oauth/authorize", params=AUTHORIZE), 503)
    assert "ATHENAEUM_OAUTH_RELAY_HOSTS" in error["message"]
    assert trap.requests == []

    # Named in the setting, that host is used (Cognito's hosted UI is on another host).
    allowed = relay_client(provider_url, oauth_relay_hosts=[urlsplit(trap_url).netloc])
    if endpoint == "token_endpoint":
        assert allowed.post("/oauth/token", data=TOKEN).status_code == 200
        assert [x["path"] for x in trap.requests] == ["/token_endpoint"]
    else:
        r = allowed.get("/oauth/authorize", params=AUTHORIZE, follow_redirects=False)
        assert r.headers["location"].startswith(f"{trap_url}/authorization_endpoint?")


@pytest.mark.parametrize(
    "change",
    [
        {"issuer": "https://other.example"},
        {"token_endpoint": "ftp://127.0.0.1/token"},
        {"token_endpoint": None},
    ],
)
def test_a_discovery_document_that_does_not_hold_is_refused(
    servers: Any, change: dict[str, Any]
) -> None:
    provider, provider_url, _, _ = servers
    provider.discovery.update(change)
    r = relay_client(provider_url).post("/oauth/token", data=TOKEN)
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert [x["path"] for x in provider.requests] == ["/.well-known/openid-configuration"]


def test_redirects_are_not_followed_and_answers_are_bounded(servers: Any) -> None:
    provider, provider_url, trap, trap_url = servers
    client = relay_client(provider_url, oauth_relay_timeout_s=0.3)
    provider.token_answer = lambda: RedirectResponse(f"{trap_url}/token", status_code=307)
    r = client.post("/oauth/token", data=TOKEN)
    assert r.status_code == 502 and r.json()["error"] == "temporarily_unavailable"
    assert trap.requests == []

    provider.token_answer = lambda: JSONResponse({"pad": "x" * MAX_RESPONSE_BYTES})
    r = client.post("/oauth/token", data=TOKEN)
    assert r.status_code == 503 and "larger than" in r.json()["error_description"]

    provider.token_answer = lambda: Response("<html>oops</html>", media_type="text/html")
    assert client.post("/oauth/token", data=TOKEN).status_code == 502

    provider.token_answer = lambda: JSONResponse({"access_token": "late"})
    provider.delay_s = 1.0
    started = time.monotonic()
    r = client.post("/oauth/token", data=TOKEN)
    assert r.status_code == 503 and "timed out" in r.json()["error_description"]
    assert time.monotonic() - started < 0.9


def test_nothing_secret_is_logged(servers: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, provider_url, _, _ = servers
    client = relay_client(provider_url)
    caplog.set_level("DEBUG")
    client.get("/oauth/authorize", params=AUTHORIZE, follow_redirects=False)
    client.post("/oauth/token", data=TOKEN)
    client.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "rt-9f8e"})
    # Every line but the test client's own log of the URLs it asked for.
    logged = "\n".join(
        m for m in (r.getMessage() for r in caplog.records) if LOCAL_URL + "/" not in m
    )
    assert "/oauth/token" in logged  # the request log is there
    for secret in ("the-secret", "the-code", "rt-9f8e", '"at"', "s-123"):
        assert secret not in logged
