"""ChatGPT's OAuth flow through the relay, end to end, against the local OpenID provider
(tests/oidc/provider.mjs), and a client that uses the GPT action as ChatGPT does.

The client imports the schema `athenaeum openapi` writes, signs in through the API's own
`/oauth/authorize` (a browser following the redirect through the provider's login and consent
pages to ChatGPT's callback), exchanges the code at the API's `/oauth/token` with its client id
and secret (in the body, the GPT editor's default, or in a Basic header), then calls every
operation of the schema with a JSON body and the bearer token and nothing else, checks each
answer against the schema, refreshes, and calls again. Once against `athenaeum serve` (uvicorn
configured as the command configures it), once against the Lambda handler on API Gateway REST
v1 events, each authenticated request carrying the context the real TOKEN authorizer gave for
the token."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import httpx
import jwt
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from typer.testing import CliRunner

from athenaeum.cli.main import app as cli
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.settings import Settings
from infra.authorizer import handler as authorizer
from tests.infra.test_authorizer import invoke
from tests.server.conftest import LiveServer
from tests.server.helpers import Context, v1_event
from tests.server.test_oidc_e2e import API, REQUIRED_SCOPE, OIDCProvider, engine, provider

pytestmark = pytest.mark.slow

__all__ = ["engine", "provider"]  # the fixtures, shared with test_oidc_e2e

# ChatGPT's callback for the GPT (provider.mjs registers it for both chatgpt-* clients).
CALLBACK = "https://chatgpt.com/aip/g-3f1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d/oauth/callback"
V1_BASE = "https://70ixmpl4fl.execute-api.us-east-2.amazonaws.com/prod"
SCOPE = f"openid {REQUIRED_SCOPE}"
DOCUMENT = "urn:athenaeum:gpt-action"

# A transport: (method, path below the server URL, query, headers, body) -> (status, headers,
# body); the same client runs over HTTP and over Lambda events.
Send = Callable[
    [str, str, dict[str, str], dict[str, str], bytes | None], tuple[int, dict[str, str], bytes]
]


def sign_in(authorize_url: str) -> dict[str, list[str]]:
    """A person's browser: from the provider's authorization URL through its login and consent
    pages to ChatGPT's callback, whose query (code, state) it returns."""
    with httpx.Client(timeout=10, follow_redirects=False) as browser:
        url = authorize_url
        for _ in range(12):
            if url.startswith(CALLBACK):
                return parse_qs(urlsplit(url).query)
            r = browser.get(url)
            if r.status_code == 200:
                # oidc-provider's development pages: a login form, then a consent form, each
                # posting back to the page's own URL.
                login = 'name="login"' in r.text
                form = (
                    {"prompt": "login", "login": "alice", "password": "pw"}
                    if login
                    else {"prompt": "consent"}
                )
                r = browser.post(url, data=form)
            assert r.is_redirect, (r.status_code, r.text[:500])
            url = urljoin(url, r.headers["location"])
    raise AssertionError("the sign-in never reached the callback")


class ChatGPT:
    """What a GPT action does with the OAuth settings of the GPT editor and the schema."""

    def __init__(
        self, schema: dict[str, Any], send: Send, client_id: str, secret: str, *, basic: bool
    ) -> None:
        self.schema = schema
        self.send = send
        self.client_id, self.secret, self.basic = client_id, secret, basic
        self.base_path = urlsplit(schema["servers"][0]["url"]).path
        # OpenAPI 3.1's schemas are JSON Schema 2020-12; refs point into the whole document.
        self.registry = Registry().with_resource(DOCUMENT, DRAFT202012.create_resource(schema))

    def authorize(self, state: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": CALLBACK,
            "scope": SCOPE,
            "state": state,
        }
        status, headers, body = self.send("GET", "/oauth/authorize", query, {}, None)
        assert status == 302, body
        return headers["location"]

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self.basic:
            pair = f"{quote(self.client_id)}:{quote(self.secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            form = {**form, "client_id": self.client_id, "client_secret": self.secret}
        status, answer_headers, body = self.send(
            "POST", "/oauth/token", {}, headers, urlencode(form).encode()
        )
        assert status == 200, body
        assert answer_headers["cache-control"] == "no-store"
        answer: dict[str, Any] = json.loads(body)
        return answer

    def sign_in(self) -> dict[str, Any]:
        callback = sign_in(self.authorize("st-42"))
        assert callback["state"] == ["st-42"]
        return self.token(
            {
                "grant_type": "authorization_code",
                "code": callback["code"][0],
                "redirect_uri": CALLBACK,
            }
        )

    def call_every_operation(self, access_token: str) -> dict[str, Any]:
        """Each operation of the schema, path parameters taken from earlier answers (a search
        result's id), JSON bodies made from the schema's required fields; each answer checked
        against the schema. Returns the answers by operationId."""
        known: dict[str, str] = {}
        answers: dict[str, Any] = {}
        operations = [
            (path, method, op)
            for path, methods in self.schema["paths"].items()
            for method, op in methods.items()
        ]
        # Operations without path parameters first: they give the ids the others need.
        operations.sort(key=lambda item: "{" in item[0])
        for path, method, op in operations:
            url = path
            for parameter in op.get("parameters", []):
                assert parameter["in"] in ("path", "query"), parameter  # no custom headers
                if parameter["in"] == "path":
                    url = url.replace(
                        "{" + parameter["name"] + "}", quote(known[parameter["name"]], safe="")
                    )
            headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
            body = None
            if "requestBody" in op:
                headers["Content-Type"] = "application/json"
                body = json.dumps(
                    self._example(op["requestBody"]["content"]["application/json"]["schema"])
                ).encode()
            status, _, raw = self.send(method.upper(), url, {}, headers, body)
            assert status == 200, (op["operationId"], raw)
            answer = json.loads(raw)
            self._validator(
                op["responses"]["200"]["content"]["application/json"]["schema"]
            ).validate(answer)
            answers[op["operationId"]] = answer
            for result in answer.get("results", []):
                known.setdefault("chunk_id", result["id"])
        return answers

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.registry.resolver().lookup(DOCUMENT + schema["$ref"]).contents
        return schema

    def _example(self, schema: dict[str, Any]) -> dict[str, Any]:
        schema = self._resolve(schema)
        samples = {"string": "vitamin D deficiency", "integer": 3, "boolean": False}
        return {
            name: samples[self._resolve(schema["properties"][name]).get("type", "string")]
            for name in schema.get("required", [])
        }

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        # The schema's refs ("#/components/...") are into the whole document.
        anchored = {"$ref": DOCUMENT + schema["$ref"]} if "$ref" in schema else schema
        return Draft202012Validator(anchored, registry=self.registry)


def gpt_schema(server_url: str) -> dict[str, Any]:
    """The schema `athenaeum openapi` writes, as a person pastes it into the GPT editor."""
    args = ["openapi", "--server-url", server_url]
    result = CliRunner().invoke(
        cli, [*args, "--allow-http"] if server_url.startswith("http:") else args
    )
    assert result.exit_code == 0, result.output
    schema: dict[str, Any] = json.loads(result.output)
    return schema


def oauth_settings(provider: OIDCProvider, **more: Any) -> Settings:
    return Settings(
        oauth_issuer=provider.issuer,
        oauth_audience=API,
        oauth_jwks_url=provider.jwks_uri,
        oauth_required_scopes=[REQUIRED_SCOPE],
        oauth_redirect_uris=["https://chatgpt.com/aip/*/oauth/callback"],
        **more,
    )


def http_send(base_url: str) -> Send:
    def send(
        method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        r = httpx.request(
            method, base_url + path, params=query, headers=headers, content=body, timeout=30
        )
        return r.status_code, dict(r.headers), r.content

    return send


def check_flow(chatgpt: ChatGPT, provider: OIDCProvider) -> None:
    tokens = chatgpt.sign_in()
    assert tokens["token_type"].lower() == "bearer" and tokens["refresh_token"]
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    # The provider's token, not the relay's: its issuer and audience.
    assert claims["iss"] == provider.issuer and claims["aud"] == API
    assert claims["sub"] == "alice" and REQUIRED_SCOPE in claims["scope"].split()
    first = chatgpt.call_every_operation(tokens["access_token"])
    assert first["searchLibrary"]["results"]

    refreshed = chatgpt.token(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed["access_token"] != tokens["access_token"]
    again = chatgpt.call_every_operation(refreshed["access_token"])
    assert (
        set(again)
        == set(first)
        == {
            op["operationId"]
            for methods in chatgpt.schema["paths"].values()
            for op in methods.values()
        }
    )


def test_chatgpt_through_the_relay_against_athenaeum_serve(
    provider: OIDCProvider, engine: SearchEngine, caplog: pytest.LogCaptureFixture
) -> None:
    settings = oauth_settings(provider)
    caplog.set_level("INFO")
    with LiveServer(create_app(settings, FixedEngineProvider(engine)), settings) as server:
        send = http_send(server.url)
        chatgpt = ChatGPT(
            gpt_schema(server.url), send, "chatgpt-post", provider.secret, basic=False
        )
        check_flow(chatgpt, provider)
        # Without a token, the action's call is a 401 pointing at metadata that names the API.
        status, headers, _ = send(
            "POST", "/search", {}, {"Content-Type": "application/json"}, b"{}"
        )
        assert status == 401 and "resource_metadata=" in headers["www-authenticate"]
        metadata = json.loads(send("GET", "/.well-known/oauth-protected-resource", {}, {}, None)[2])
        assert metadata["authorization_servers"] == [server.url]
    server_lines = [r.getMessage() for r in caplog.records if r.name.startswith("athenaeum")]
    assert any("/oauth/token" in line for line in server_lines)
    assert not any(provider.secret in line for line in server_lines)


@pytest.fixture
def gateway_authorizer(provider: OIDCProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The TOKEN authorizer, configured by its environment as the stack deploys it."""
    monkeypatch.setenv("ATHENAEUM_OAUTH_ISSUER", provider.issuer)
    monkeypatch.setenv("ATHENAEUM_OAUTH_AUDIENCE", API)
    monkeypatch.setenv("ATHENAEUM_OAUTH_JWKS_URL", provider.jwks_uri)
    monkeypatch.setenv("ATHENAEUM_OAUTH_REQUIRED_SCOPES", REQUIRED_SCOPE)
    authorizer.reset()
    yield
    authorizer.reset()


def lambda_send(handler: Any) -> Send:
    """API Gateway in front of the handler: the public relay routes reach it without an
    authorizer; every other request first goes through the TOKEN authorizer, whose context
    the event then carries (and a refusal is the gateway's own 401)."""

    def send(
        method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        public = path.startswith(("/oauth/", "/.well-known/"))
        event = v1_event(method, path, None, headers, authorizer=not public)
        event["body"] = None if body is None else body.decode()
        if query:
            event["queryStringParameters"] = dict(query)
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
        if not public:
            bearer = headers.get("Authorization")
            try:
                verdict = invoke(bearer) if bearer else None
            except Exception:  # the authorizer's "Unauthorized": the gateway answers 401
                verdict = None
            if verdict is None:
                return 401, {}, b'{"error": {"code": "invalid_token"}}'
            assert verdict["policyDocument"]["Statement"][0]["Effect"] == "Allow"
            event["requestContext"]["authorizer"] = {
                **copy.deepcopy(verdict["context"]),
                "principalId": verdict["principalId"],
            }
        response = handler(event, Context())
        answer_headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        for k, v in (response.get("multiValueHeaders") or {}).items():
            answer_headers[k.lower()] = v[0]
        return response["statusCode"], answer_headers, response["body"].encode()

    return send


def test_chatgpt_through_the_relay_against_the_lambda_handler(
    provider: OIDCProvider, engine: SearchEngine, gateway_authorizer: None
) -> None:
    settings = oauth_settings(provider, trust_gateway_authorizer=True)
    handler = build_handler(settings, FixedEngineProvider(engine))
    send = lambda_send(handler)
    chatgpt = ChatGPT(gpt_schema(V1_BASE), send, "chatgpt-basic", provider.secret, basic=True)
    # The relay's own metadata, at the stage's URL.
    metadata = json.loads(send("GET", "/.well-known/oauth-authorization-server", {}, {}, None)[2])
    assert metadata["issuer"] == V1_BASE
    assert metadata["token_endpoint"] == f"{V1_BASE}/oauth/token"
    assert metadata["authorization_endpoint"] == f"{V1_BASE}/oauth/authorize"
    check_flow(chatgpt, provider)
