"""The TOKEN authorizer handler, invoked with real API Gateway TOKEN events against real
RSA-signed tokens whose JWKS is served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from infra import staging
from infra.authorizer import handler as authorizer
from tests.server.test_auth import (
    AUDIENCE,
    ISSUER,
    JWKSServer,
    SigningKey,
    claims,
    hand_made,
    make_rsa,
)

EVENTS = Path(__file__).resolve().parents[1] / "events"
STAGE_ARN = "arn:aws:execute-api:us-east-2:123456789012:70ixmpl4fl/prod/*/*"
JWKS_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return make_rsa("authz-rsa-1")


@pytest.fixture
def server(key: SigningKey, monkeypatch: pytest.MonkeyPatch) -> Iterator[JWKSServer]:
    jwks = JWKSServer(keys=[key.jwk])
    jwks.start()
    monkeypatch.setenv("ATHENAEUM_OAUTH_ISSUER", ISSUER)
    monkeypatch.setenv("ATHENAEUM_OAUTH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("ATHENAEUM_OAUTH_JWKS_URL", jwks.url)
    monkeypatch.setenv("ATHENAEUM_OAUTH_REQUIRED_SCOPES", "")
    monkeypatch.setenv("ATHENAEUM_JWKS_TIMEOUT_S", str(JWKS_TIMEOUT))
    authorizer.reset()
    yield jwks
    authorizer.reset()
    jwks.stop()


def event(token: str | None, name: str = "token_authorizer_search.json") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((EVENTS / name).read_text())
    if token is None:
        del payload["authorizationToken"]
    else:
        payload["authorizationToken"] = token
    return payload


def invoke(token: str | None) -> dict[str, Any]:
    return authorizer.handler(event(token), None)


def assert_unauthorized(token: str | None) -> None:
    with pytest.raises(Exception) as info:
        invoke(token)
    # API Gateway answers 401 only for this exact message; anything else is a 500.
    assert str(info.value) == "Unauthorized"
    assert type(info.value) is Exception


def test_valid_token_allows_the_whole_stage_with_context(
    server: JWKSServer, key: SigningKey
) -> None:
    result = invoke("Bearer " + key.sign(claims()))
    assert result["principalId"] == "user-123"
    statement = result["policyDocument"]["Statement"]
    assert statement == [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": STAGE_ARN}]
    assert result["context"] == {
        "sub": "user-123",
        "scopes": "read search",
        "client_id": "gpt-action",
        "iss": ISSUER,
    }
    # API Gateway accepts only scalar context values.
    assert all(isinstance(v, str) for v in result["context"].values())


def test_context_is_what_the_app_reads(server: JWKSServer, key: SigningKey) -> None:
    from athenaeum.server.auth.middleware import principal_from_authorizer

    result = invoke("Bearer " + key.sign(claims()))
    principal = principal_from_authorizer({**result["context"], "principalId": "user-123"})
    assert principal.subject == "user-123"
    assert principal.scopes == {"read", "search"}
    assert principal.client_id == "gpt-action"


def test_jwks_cached_across_invocations(server: JWKSServer, key: SigningKey) -> None:
    for _ in range(3):
        invoke("Bearer " + key.sign(claims()))
    assert server.requests == 1


def _forged(key: SigningKey) -> dict[str, str]:
    other = make_rsa("authz-unknown")
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = key.sign(claims())
    head, body, sig = good.split(".")
    tampered_body = jwt.utils.base64url_encode(json.dumps(claims(sub="admin")).encode()).decode()
    now = int(time.time())
    return {
        "alg none": hand_made({"alg": "none", "kid": key.kid}, claims(), None),
        "HS256 with the public key": hand_made(
            {"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims(), public_pem
        ),
        "expired": key.sign(claims(iat=now - 7200, exp=now - 3600)),
        "wrong issuer": key.sign(claims(iss="https://evil.example.com/")),
        "wrong audience": key.sign(claims(aud="https://other.example.com")),
        "unknown kid": other.sign(claims()),
        "tampered payload": f"{head}.{tampered_body}.{sig}",
        "tampered signature": f"{head}.{body}.{sig[:-4]}AAAA",
        "malformed": "not-a-jwt",
        "two parts": f"{head}.{body}",
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "HS256 with the public key",
        "expired",
        "wrong issuer",
        "wrong audience",
        "unknown kid",
        "tampered payload",
        "tampered signature",
        "malformed",
        "two parts",
    ],
)
def test_forged_tokens_are_unauthorized(server: JWKSServer, key: SigningKey, case: str) -> None:
    assert_unauthorized("Bearer " + _forged(key)[case])


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer a b"])
def test_missing_or_non_bearer_credentials_are_unauthorized(
    server: JWKSServer, header: str | None
) -> None:
    assert_unauthorized(header)


def test_non_token_event_is_unauthorized(server: JWKSServer, key: SigningKey) -> None:
    payload = event("Bearer " + key.sign(claims()))
    payload["type"] = "REQUEST"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(payload, None)


def _with(**fields: Any) -> dict[str, Any]:
    """The sample TOKEN event with `fields` replaced (a value of `...` deletes the field)."""
    payload = event("Bearer a.b.c")
    for name, value in fields.items():
        if value is ...:
            del payload[name]
        else:
            payload[name] = value
    return payload


_HUGE = "x" * 1_000_000
_MALFORMED_EVENTS: dict[str, Any] = {
    "None": None,
    "a list": [event("Bearer a.b.c")],
    "a string": "Bearer a.b.c",
    "bytes": b'{"type": "TOKEN"}',
    "a number": 42,
    "empty": {},
    "type absent": _with(type=...),
    "type not a string": _with(type=["TOKEN"]),
    "token a number": _with(authorizationToken=12345),
    "token a float": _with(authorizationToken=1.5),
    "token a boolean": _with(authorizationToken=True),
    "token bytes": _with(authorizationToken=b"Bearer a.b.c"),
    "token a list": _with(authorizationToken=["Bearer", "a.b.c"]),
    "token an object": _with(authorizationToken={"Bearer": {"token": "a.b.c"}}),
    "token huge": _with(authorizationToken="Bearer " + _HUGE),
    "token huge whitespace": _with(authorizationToken=" " * 1_000_000),
    "token a lone surrogate": _with(authorizationToken="Bearer \ud800"),
    "token a surrogate scheme": _with(authorizationToken="\udc80earer a.b.c"),
    "token with NUL": _with(authorizationToken="Bearer a.b\x00.c"),
    "token with newline": _with(authorizationToken="Bearer a.b.c\nX-Injected: 1"),
    "methodArn absent": _with(methodArn=...),
    "methodArn None": _with(methodArn=None),
    "methodArn a number": _with(methodArn=7),
    "methodArn bytes": _with(methodArn=b"arn:aws:execute-api:us-east-2:1:api/prod/GET/x"),
    "methodArn a list": _with(methodArn=["arn:aws:execute-api:us-east-2:1:api/prod/GET/x"]),
    "methodArn an object": _with(methodArn={"arn": "arn:aws:execute-api:us-east-2:1:api/p/G"}),
    "methodArn huge": _with(methodArn=_HUGE),
    "methodArn a lone surrogate": _with(methodArn="arn:\ud800"),
    "methodArn without a stage": _with(methodArn="arn:aws:execute-api:us-east-2:1:api"),
}


@pytest.mark.parametrize("case", list(_MALFORMED_EVENTS))
def test_a_malformed_event_is_unauthorized_never_a_failure(
    server: JWKSServer, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    with caplog.at_level(logging.INFO), pytest.raises(Exception) as info:
        authorizer.handler(_MALFORMED_EVENTS[case], None)
    # API Gateway answers 401 only for this exact message; anything else is a 500.
    assert type(info.value) is Exception
    assert str(info.value) == "Unauthorized"
    assert authorizer.FAILURE not in caplog.text
    assert authorizer.KEYS_UNAVAILABLE not in caplog.text


def test_missing_scope_is_a_deny(
    server: JWKSServer, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATHENAEUM_OAUTH_REQUIRED_SCOPES", "admin")
    authorizer.reset()
    result = invoke("Bearer " + key.sign(claims()))
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert result["policyDocument"]["Statement"][0]["Resource"] == STAGE_ARN
    assert "context" not in result


@pytest.mark.parametrize("mode", ["down", "slow", "error"])
def test_fails_closed_within_its_timeout_when_jwks_unreachable(
    server: JWKSServer, key: SigningKey, mode: str
) -> None:
    if mode == "down":
        server.stop()
    else:
        server.mode = mode
    start = time.monotonic()
    with pytest.raises(authorizer.AuthorizerUnavailable):
        invoke("Bearer " + key.sign(claims()))
    assert time.monotonic() - start < JWKS_TIMEOUT + 1


def test_only_real_failures_carry_the_alarms_log_markers(
    server: JWKSServer, key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    markers = (authorizer.KEYS_UNAVAILABLE, authorizer.FAILURE)
    with caplog.at_level(logging.INFO):
        assert_unauthorized("Bearer " + _forged(key)["expired"])
        assert_unauthorized("Basic dXNlcjpwYXNz")
    assert not any(m in caplog.text for m in markers)
    server.stop()
    authorizer.reset()  # a cold authorizer: no cached keys to fall back on
    with caplog.at_level(logging.INFO), pytest.raises(authorizer.AuthorizerUnavailable):
        invoke("Bearer " + key.sign(claims()))
    assert authorizer.KEYS_UNAVAILABLE in caplog.text


def test_a_key_it_cannot_look_up_yet_fails_closed_without_the_alarm(
    server: JWKSServer, key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    invoke("Bearer " + key.sign(claims()))
    new = make_rsa("authz-published-later")
    server.keys = [key.jwk, new.jwk]
    with caplog.at_level(logging.INFO), pytest.raises(authorizer.AuthorizerUnavailable):
        invoke("Bearer " + new.sign(claims()))
    assert authorizer.KEYS_UNAVAILABLE not in caplog.text
    assert server.requests == 1


def test_an_unexpected_error_fails_closed_and_is_marked(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(authorizer, "get_credentials", broken)
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError):
        invoke("Bearer a.b.c")
    assert authorizer.FAILURE in caplog.text


def test_stage_arn() -> None:
    arn = "arn:aws:execute-api:eu-west-1:1:abc/dev/GET/chunks/x"
    assert authorizer.stage_arn(arn) == "arn:aws:execute-api:eu-west-1:1:abc/dev/*/*"
    for bad in ("", "arn:aws:execute-api:eu-west-1:1:abc", "nonsense/x/y"):
        with pytest.raises(ValueError):
            authorizer.stage_arn(bad)


def test_staged_authorizer_runs_alone(server: JWKSServer, key: SigningKey, tmp_path: Path) -> None:
    """The deployed folder (handler + auth + errors) answers an event in a fresh process and
    imports nothing of the web stack."""
    folder = staging.stage_authorizer(tmp_path)
    script = (
        "import json, sys, handler\n"
        "out = handler.handler(json.load(sys.stdin), None)\n"
        "import athenaeum.server.auth.jwt as a\n"
        "heavy = sorted(m for m in ('fastapi', 'starlette', 'numpy', 'mangum')"
        " if m in sys.modules)\n"
        "print(json.dumps({'out': out, 'auth': a.__file__, 'heavy': heavy}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(folder)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(event("Bearer " + key.sign(claims()))),
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["out"]["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert answer["auth"].startswith(str(folder))
    assert answer["heavy"] == []


def test_api_keys_and_jwts_work_side_by_side(
    server: JWKSServer,
    key: SigningKey,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With OAuth and the stack's key set both configured, a JWT goes to the JWKS check and a
    key to the key set (never the one to the other), and the key itself is never logged."""
    import boto3

    from athenaeum.server.auth.keyring import generate_key, new_record
    from athenaeum.server.auth.keystores import SecretKeyStore

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    arn = boto3.client("secretsmanager").create_secret(Name=f"keys-{time.monotonic_ns()}")["ARN"]
    api_key = generate_key()
    SecretKeyStore(arn).update(lambda records: [new_record("ci", api_key)])
    monkeypatch.setenv("ATHENAEUM_API_KEYS_SECRET", arn)
    authorizer.reset()
    with caplog.at_level(logging.DEBUG):
        assert invoke("Bearer " + key.sign(claims()))["principalId"] == "user-123"
        allowed = invoke("Bearer " + api_key)
        assert allowed["principalId"] == "api-key:ci" and allowed["context"]["iss"] == "api-key"
        assert_unauthorized("Bearer " + generate_key())
    # Only the JWT reached the JWKS server; the keys were checked against the set alone.
    assert server.requests == 1
    assert api_key not in caplog.text
    authorizer.reset()


# --- the caller's groups, for the API function's access policy ---------------------------------


@pytest.mark.parametrize(
    ("claim", "token_claims"),
    [
        ("cognito:groups", {"cognito:groups": ["hr-staff", "Executive Team"]}),
        ("realm_access.roles", {"realm_access": {"roles": ["hr-staff", "Executive Team"]}}),
        ("groups", {"groups": "hr-staff Executive"}),
    ],
)
def test_the_claims_groups_reach_the_context_as_a_json_list(
    server: JWKSServer,
    key: SigningKey,
    monkeypatch: pytest.MonkeyPatch,
    claim: str,
    token_claims: dict[str, Any],
) -> None:
    from athenaeum.server.auth.middleware import principal_from_authorizer

    monkeypatch.setenv("ATHENAEUM_ACCESS_CLAIM", claim)
    authorizer.reset()
    result = invoke("Bearer " + key.sign(claims(**token_claims)))
    assert result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    context = result["context"]
    # A string, as API Gateway takes context values: the groups' JSON list.
    assert isinstance(context["groups"], str)
    groups = json.loads(context["groups"])
    expected = ["hr-staff", "Executive"] if claim == "groups" else ["hr-staff", "Executive Team"]
    assert groups == expected
    # What the API function reads back as the caller's groups.
    assert principal_from_authorizer(context).groups == tuple(expected)


def test_no_groups_no_groups_key(
    server: JWKSServer, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token without the configured claim (or an empty one) holds no groups: the context has
    no `groups` key, and the caller reads only what every caller reads."""
    monkeypatch.setenv("ATHENAEUM_ACCESS_CLAIM", "cognito:groups")
    authorizer.reset()
    for token_claims in ({}, {"cognito:groups": []}, {"groups": ["hr-staff"]}):
        result = invoke("Bearer " + key.sign(claims(**token_claims)))
        assert result["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        assert set(result["context"]) == {"sub", "scopes", "client_id", "iss"}


def test_an_api_keys_groups_reach_the_context_as_a_json_list(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key carries the groups `athenaeum keys create --group` gave it; one without groups
    gets no `groups` key."""
    import boto3

    from athenaeum.server.auth.keyring import generate_key, new_record
    from athenaeum.server.auth.keystores import SecretKeyStore

    for name in ("ATHENAEUM_OAUTH_ISSUER", "ATHENAEUM_OAUTH_AUDIENCE", "ATHENAEUM_OAUTH_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    arn = boto3.client("secretsmanager").create_secret(Name=f"keys-{time.monotonic_ns()}")["ARN"]
    grouped, plain = generate_key(), generate_key()
    SecretKeyStore(arn).update(
        lambda records: [
            new_record("hr-bot", grouped, groups=["hr-staff", "Équipe RH"]),
            new_record("ci", plain),
        ]
    )
    monkeypatch.setenv("ATHENAEUM_API_KEYS_SECRET", arn)
    authorizer.reset()
    try:
        context = invoke("Bearer " + grouped)["context"]
        assert json.loads(context["groups"]) == ["hr-staff", "Équipe RH"]
        assert set(invoke("Bearer " + plain)["context"]) == {"sub", "scopes", "iss"}
    finally:
        authorizer.reset()
