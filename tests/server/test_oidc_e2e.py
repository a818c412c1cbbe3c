"""End to end against a real OpenID provider: oidc-provider (tests/oidc/provider.mjs) runs on
127.0.0.1 and issues JWT access tokens by the client-credentials grant; the Lambda TOKEN
authorizer and the app verify them through its discovery document and JWKS, as they would an
identity provider in production.

Needs Node.js and npm; `npm ci` in tests/oidc runs here when node_modules is missing or older
than package-lock.json."""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from athenaeum.errors import AuthenticationError
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.auth.jwt import JWTValidator
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from infra.authorizer import handler as authorizer
from tests.infra.test_authorizer import STAGE_ARN, assert_unauthorized, invoke
from tests.server.helpers import assert_error
from tests.server.test_auth import FakeClock

pytestmark = pytest.mark.slow

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
# The provider's resource indicators, which become the tokens' audience (see provider.mjs).
API = "https://athenaeum.test/api"
OTHER_API = "https://other.test/api"
REQUIRED_SCOPE = "library.read"
# oidc-provider 9 uses URL.parse and other APIs that older Node.js lacks.
MIN_NODE = (20, 19)
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 5
NPM_CI_TIMEOUT_S = 300


@dataclass(frozen=True)
class OIDCProvider:
    issuer: str
    token_endpoint: str
    jwks_uri: str
    secret: str

    def token(
        self,
        client: str = "athenaeum-rs256",
        *,
        scope: str = REQUIRED_SCOPE,
        resource: str = API,
    ) -> dict[str, Any]:
        """The token response of a client-credentials grant (client_secret_basic)."""
        response = httpx.post(
            self.token_endpoint,
            data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
            auth=(client, self.secret),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def access_token(self, client: str = "athenaeum-rs256", **kwargs: str) -> str:
        token: str = self.token(client, **kwargs)["access_token"]
        return token


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed to run the local OpenID provider (tests/oidc)")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    if (major, minor) < MIN_NODE:
        pytest.fail(
            f"tests/oidc needs Node.js >= {'.'.join(map(str, MIN_NODE))}, found {version}",
            pytrace=False,
        )
    return node, npm


def _npm_ci(npm: str) -> None:
    # npm writes node_modules/.package-lock.json on install; older than the lock means stale.
    installed = OIDC_DIR / "node_modules" / ".package-lock.json"
    lock = OIDC_DIR / "package-lock.json"
    if installed.is_file() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=OIDC_DIR,
        capture_output=True,
        text=True,
        timeout=NPM_CI_TIMEOUT_S,
    )
    if result.returncode != 0:
        pytest.fail(
            f"npm ci in tests/oidc failed:\n{result.stdout}\n{result.stderr}", pytrace=False
        )


def _ready_line(process: subprocess.Popen[str], log: Path) -> dict[str, Any]:
    # readline() blocks, so it runs in a thread that the deadline does not wait for.
    assert process.stdout is not None
    stdout: IO[str] = process.stdout
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=START_TIMEOUT_S)
    except queue.Empty:
        line = ""
    if not line:
        raise RuntimeError(
            f"the OpenID provider did not start within {START_TIMEOUT_S} s "
            f"(exit code {process.poll()}):\n{log.read_text()}"
        )
    ready: dict[str, Any] = json.loads(line)
    return ready


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    node, npm = _tools()
    _npm_ci(npm)
    secret = secrets.token_urlsafe(24)
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with log.open("w") as stderr:
        # Port 0: the provider binds a free port itself and reports it, so there is no race.
        # Its stdin is a pipe that it watches: should this process die, the provider exits too.
        process = subprocess.Popen(
            [node, "provider.mjs", "0"],
            cwd=OIDC_DIR,
            env={**os.environ, "OIDC_CLIENT_SECRET": secret},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            issuer = _ready_line(process, log)["issuer"]
            metadata = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
            metadata.raise_for_status()
            discovered = metadata.json()
            assert discovered["issuer"] == issuer
            yield OIDCProvider(
                issuer=issuer,
                token_endpoint=discovered["token_endpoint"],
                jwks_uri=discovered["jwks_uri"],
                secret=secret,
            )
        finally:
            _stop(process)


@pytest.fixture
def gateway(provider: OIDCProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The TOKEN authorizer, configured by its environment as the stack deploys it."""
    monkeypatch.setenv("ATHENAEUM_OAUTH_ISSUER", provider.issuer)
    monkeypatch.setenv("ATHENAEUM_OAUTH_AUDIENCE", API)
    monkeypatch.setenv("ATHENAEUM_OAUTH_JWKS_URL", provider.jwks_uri)
    monkeypatch.setenv("ATHENAEUM_OAUTH_REQUIRED_SCOPES", REQUIRED_SCOPE)
    monkeypatch.setenv("ATHENAEUM_JWKS_TIMEOUT_S", "3")
    authorizer.reset()
    yield
    authorizer.reset()


@pytest.fixture(scope="module")
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SearchEngine:
    if request.config.pluginmanager.hasplugin("cacheprovider"):
        shared: SearchEngine = request.getfixturevalue("scifact_engine")
        return shared
    # Under `-p no:cacheprovider` the shared bundle has no cache to live in: build a small one.
    from tests.conftest import build_scifact_slice_bundle

    root = tmp_path_factory.mktemp("oidc-bundle")
    return SearchEngine.load(build_scifact_slice_bundle(root / "bundle", root / "work", 20))


def test_discovery_and_client_credentials_grant_give_a_jwt(provider: OIDCProvider) -> None:
    body = provider.token()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == REQUIRED_SCOPE
    assert 0 < body["expires_in"] <= 300
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt" and header["kid"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == API
    assert claims["sub"] == claims["client_id"] == "athenaeum-rs256"


@pytest.mark.parametrize("client", ["athenaeum-rs256", "athenaeum-es256"])
def test_authorizer_allows_the_whole_stage(
    provider: OIDCProvider, gateway: None, client: str
) -> None:
    token = provider.access_token(client)
    assert jwt.get_unverified_header(token)["alg"] == client.rpartition("-")[2].upper()
    result = invoke(f"Bearer {token}")
    assert result["principalId"] == client
    assert result["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": STAGE_ARN}
    ]
    assert result["context"] == {
        "sub": client,
        "client_id": client,
        "scopes": REQUIRED_SCOPE,
        "iss": provider.issuer,
    }


def test_authorizer_denies_a_token_without_the_required_scope(
    provider: OIDCProvider, gateway: None
) -> None:
    token = provider.access_token(scope="library.write")
    result = invoke(f"Bearer {token}")
    assert result["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": STAGE_ARN}
    ]
    assert "context" not in result


def _flip(char: str) -> str:
    return "A" if char != "A" else "B"


@pytest.mark.parametrize("case", ["other audience", "tampered signature", "tampered payload"])
def test_authorizer_rejects_other_audiences_and_tampering(
    provider: OIDCProvider, gateway: None, case: str
) -> None:
    if case == "other audience":
        token = provider.access_token(resource=OTHER_API)
    else:
        head, payload, signature = provider.access_token().split(".")
        # A character mid-string: the last one may carry only padding bits.
        if case == "tampered signature":
            signature = signature[:20] + _flip(signature[20]) + signature[21:]
        else:
            payload = payload[:20] + _flip(payload[20]) + payload[21:]
        token = f"{head}.{payload}.{signature}"
    assert_unauthorized(f"Bearer {token}")


def test_expired_token_is_rejected(provider: OIDCProvider) -> None:
    # The authorizer allows 30 s of clock skew, so the validator it uses is checked directly
    # with none, on a token from the client whose tokens live 2 s.
    token = provider.access_token("athenaeum-short")
    clock = FakeClock()  # read after the token was issued, so its iat is not in the future
    validator = JWTValidator(provider.issuer, API, provider.jwks_uri, leeway_seconds=0, clock=clock)
    assert validator.validate(token).client_id == "athenaeum-short"
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    clock.advance(expires - clock.now + 1)
    with pytest.raises(AuthenticationError, match="expired"):
        validator.validate(token)


def test_app_accepts_the_providers_tokens(provider: OIDCProvider, engine: SearchEngine) -> None:
    settings = Settings(
        oauth_issuer=provider.issuer,
        oauth_audience=API,
        oauth_jwks_url=provider.jwks_uri,
        oauth_required_scopes=[REQUIRED_SCOPE],
    )
    client = TestClient(create_app(settings, FixedEngineProvider(engine)))
    query = {"query": "vitamin D"}

    for name in ("athenaeum-rs256", "athenaeum-es256"):
        headers = {"Authorization": f"Bearer {provider.access_token(name)}"}
        r = client.post("/search", json=query, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["results"]

    r = client.post("/search", json=query)
    assert_error(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer resource_metadata=")

    other = {"Authorization": f"Bearer {provider.access_token(resource=OTHER_API)}"}
    r = client.post("/search", json=query, headers=other)
    assert_error(r, 401, "invalid_token")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]

    write_only = {"Authorization": f"Bearer {provider.access_token(scope='library.write')}"}
    r = client.post("/search", json=query, headers=write_only)
    assert_error(r, 403, "insufficient_scope")
