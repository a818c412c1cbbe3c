"""athenaeum.server.auth (the JWT validator, API keys, the bearer header, discovery) against real
keys, real signatures and a JWKS served over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.utils import der_to_raw_signature

from athenaeum.errors import AuthenticationError, AuthUnavailableError, InsufficientScopeError
from athenaeum.server.auth.bearer import parse_bearer, www_authenticate
from athenaeum.server.auth.discovery import protected_resource_metadata
from athenaeum.server.auth.jwt import (
    FETCH_BACKOFF_MAX_S,
    FETCH_BACKOFF_S,
    UNKNOWN_KID_REFRESH_S,
    JWTValidator,
)
from athenaeum.server.auth.keys import APIKeyStore, hash_api_key

ISSUER = "https://issuer.example.com/"
AUDIENCE = "https://athenaeum.example.com"


# --- keys and tokens ---------------------------------------------------------------------


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header}
        )


def make_rsa(kid: str, alg: str = "RS256") -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg=alg)
    return SigningKey(kid, alg, private, jwk)


def make_ec(kid: str) -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig", alg="ES256")
    return SigningKey(kid, "ES256", private, jwk)


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return make_rsa("rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return make_ec("ec-1")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-123",
        "iat": now,
        "exp": now + 600,
        "scope": "search read",
        "client_id": "gpt-action",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    sig = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


# --- the JWKS server ---------------------------------------------------------------------


@dataclass
class JWKSServer:
    keys: list[dict[str, Any]]
    mode: str = "ok"  # ok | error (HTTP 500) | slow (no answer until released)
    requests: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    url: str = ""

    def start(self) -> None:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests += 1
                if state.mode == "slow":
                    state.release.wait(10)
                if state.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps({"keys": state.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        # A short poll interval keeps shutdown (every test's teardown) fast.
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def stop(self) -> None:
        """Down for real: the port then refuses connections."""
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def jwks(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JWKSServer]:
    server = JWKSServer(keys=[rsa_key.jwk, ec_key.jwk])
    server.start()
    yield server
    server.stop()


class FakeClock:
    """A clock the test moves: token lifetimes and cache ages without sleeping."""

    def __init__(self) -> None:
        self.now = time.time()
        self.mono = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


def validator(server: JWKSServer, **kwargs: Any) -> JWTValidator:
    return JWTValidator(ISSUER, AUDIENCE, server.url, **kwargs)


def wait_until(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def assert_unavailable(v: JWTValidator, token: str) -> int:
    """The token could not be checked: a 503 with a Retry-After; returns its seconds."""
    with pytest.raises(AuthUnavailableError) as info:
        v.validate(token)
    err = info.value
    assert err.status_code == 503 and err.code == "auth_unavailable"
    retry_after = int(err.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


def assert_rejected(v: JWTValidator, token: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        v.validate(token)
    err = info.value
    assert err.status_code == 401 and err.code == "invalid_token"
    if token:
        assert token not in err.message
    return err


# --- accepted tokens ---------------------------------------------------------------------


def test_rs256_token_gives_principal(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    c = claims()
    principal = validator(jwks).validate(rsa_key.sign(c))
    assert principal.subject == "user-123"
    assert principal.scopes == {"search", "read"}
    assert principal.client_id == "gpt-action"
    assert principal.issuer == ISSUER
    assert principal.audience == (AUDIENCE,)
    assert principal.expires_at is not None
    assert int(principal.expires_at.timestamp()) == c["exp"]
    assert principal.claims["sub"] == "user-123"


def test_es256_token_with_scp_list_and_azp(jwks: JWKSServer, ec_key: SigningKey) -> None:
    token = ec_key.sign(claims(scope=None, client_id=None, scp=["search", "admin"], azp="app-7"))
    principal = validator(jwks).validate(token)
    assert principal.scopes == {"search", "admin"}
    assert principal.client_id == "app-7"


def test_audience_list_and_configured_audiences(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    token = rsa_key.sign(claims(aud=["other", AUDIENCE]))
    assert validator(jwks).validate(token).audience == ("other", AUDIENCE)
    v = JWTValidator(ISSUER, ["x", "other"], jwks.url)
    assert v.validate(token).subject == "user-123"


def test_ps256_when_configured(jwks: JWKSServer) -> None:
    key = make_rsa("ps-1", alg="PS256")
    jwks.keys.append(key.jwk)
    v = validator(jwks, algorithms=("PS256",))
    assert v.validate(key.sign(claims())).subject == "user-123"


def test_within_leeway_accepted(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    now = int(time.time())
    v = validator(jwks, leeway_seconds=30)
    assert v.validate(rsa_key.sign(claims(exp=now - 10))).subject == "user-123"
    assert v.validate(rsa_key.sign(claims(nbf=now + 10, iat=now + 10))).subject == "user-123"


# --- refused tokens ----------------------------------------------------------------------


def test_alg_none_refused(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    token = hand_made({"alg": "none", "kid": rsa_key.kid, "typ": "JWT"}, claims(), None)
    err = assert_rejected(validator(jwks), token)
    assert "algorithm" in err.message


def test_hs256_with_public_key_as_secret_refused(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made({"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"}, claims(), pem)
    assert_rejected(validator(jwks), token)


@pytest.mark.parametrize("algorithms", [("HS256",), ("RS256", "none"), ("HS512",), ()])
def test_symmetric_or_none_algorithms_cannot_be_configured(
    jwks: JWKSServer, algorithms: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError):
        validator(jwks, algorithms=algorithms)


def test_alg_not_matching_key_type_refused(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    # An RS256 signature presented under the EC key's kid.
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256", headers={"kid": "ec-1"})
    err = assert_rejected(validator(jwks), token)
    assert "does not match" in err.message


def test_rs256_token_against_key_pinned_to_ps256_refused(jwks: JWKSServer) -> None:
    key = make_rsa("ps-2", alg="PS256")
    jwks.keys.append(key.jwk)
    token = jwt.encode(claims(), key.private, algorithm="RS256", headers={"kid": "ps-2"})
    assert_rejected(validator(jwks, algorithms=("RS256", "PS256")), token)


def test_es256_with_a_p384_key_refused(jwks: JWKSServer) -> None:
    # ECDSA would verify over the wrong curve; the algorithm binds the curve.
    private = ec.generate_private_key(ec.SECP384R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid="p384", use="sig")  # no "alg" pinned, so only the curve check stands
    jwks.keys.append(jwk)
    # PyJWT will not sign this mismatch, so sign by hand: ECDSA with SHA-256 over P-384.
    header = {"alg": "ES256", "kid": "p384", "typ": "JWT"}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims()).encode())}"
    der = private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    token = f"{signing_input}.{b64url(der_to_raw_signature(der, private.curve))}"
    err = assert_rejected(validator(jwks, algorithms=("ES256", "ES384")), token)
    assert "does not match" in err.message


def test_expired(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    token = rsa_key.sign(claims(exp=int(time.time()) - 120))
    assert "expired" in assert_rejected(validator(jwks), token).message


def test_lifetime_follows_the_validators_clock(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    clock = FakeClock()
    v = validator(jwks, leeway_seconds=30, clock=clock)
    token = rsa_key.sign(claims(exp=int(clock.now) + 10))
    assert v.validate(token).subject == "user-123"
    clock.advance(10 + 29)  # past exp, within the leeway
    assert v.validate(token).subject == "user-123"
    clock.advance(2)
    assert "expired" in assert_rejected(v, token).message
    early = rsa_key.sign(claims(nbf=int(clock.now) + 60))
    assert "not yet valid" in assert_rejected(v, early).message
    clock.advance(31)
    assert v.validate(early).subject == "user-123"


def test_not_yet_valid(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    token = rsa_key.sign(claims(nbf=int(time.time()) + 120))
    assert "not yet valid" in assert_rejected(validator(jwks), token).message


def test_issued_in_the_future(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    assert_rejected(validator(jwks), rsa_key.sign(claims(iat=int(time.time()) + 3600)))


def test_wrong_issuer(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    # A trailing-slash difference is a different issuer: the match is exact.
    assert_rejected(validator(jwks), rsa_key.sign(claims(iss=ISSUER.rstrip("/"))))


def test_wrong_audience(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    assert_rejected(validator(jwks), rsa_key.sign(claims(aud="https://other.example.com")))


@pytest.mark.parametrize("claim", ["exp", "sub", "iss", "aud"])
def test_missing_required_claim(jwks: JWKSServer, rsa_key: SigningKey, claim: str) -> None:
    err = assert_rejected(validator(jwks), rsa_key.sign(claims(**{claim: None})))
    assert claim in err.message


def test_unknown_kid_after_refresh(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    v = validator(jwks, min_refresh_interval_seconds=0)
    v.validate(rsa_key.sign(claims()))
    before = jwks.requests
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256", headers={"kid": "nope"})
    assert "unknown key" in assert_rejected(v, token).message
    assert jwks.requests == before + 1  # it did try a refresh first


def test_tampered_payload(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    header, _, signature = rsa_key.sign(claims()).split(".")
    forged = b64url(json.dumps(claims(sub="admin", scope="admin")).encode())
    assert_rejected(validator(jwks), f"{header}.{forged}.{signature}")


def test_tampered_signature(jwks: JWKSServer, ec_key: SigningKey) -> None:
    token = ec_key.sign(claims())
    head, _, sig = token.rpartition(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[5] ^= 0x01
    assert "signature" in assert_rejected(validator(jwks), f"{head}.{b64url(bytes(raw))}").message


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "abc.def",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJhbGciOiJSUzI1NiJ9.%%%%.sig",
        "bm90IGpzb24.bm90IGpzb24.c2ln",  # base64 fine, JSON not
        "",
    ],
)
def test_malformed(jwks: JWKSServer, token: str) -> None:
    v = validator(jwks)
    assert_rejected(v, token)
    assert jwks.requests == 0  # rejected before any key lookup


def test_missing_kid(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    token = jwt.encode(claims(), rsa_key.private, algorithm="RS256")
    assert_rejected(validator(jwks), token)


def test_encryption_key_is_not_used_for_signatures(jwks: JWKSServer) -> None:
    key = make_rsa("enc-1")
    key.jwk["use"] = "enc"
    jwks.keys.append(key.jwk)
    assert "unknown key" in assert_rejected(validator(jwks), key.sign(claims())).message


def test_required_scopes(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    v = validator(jwks, required_scopes=["search"])
    assert v.validate(rsa_key.sign(claims())).scopes >= {"search"}
    with pytest.raises(InsufficientScopeError) as info:
        v.validate(rsa_key.sign(claims(scope="read")))
    assert info.value.status_code == 403
    assert info.value.required_scopes == ("search",)
    with pytest.raises(InsufficientScopeError):
        v.validate(rsa_key.sign(claims()), required_scopes=["admin"])


def test_tokens_never_logged(
    jwks: JWKSServer, rsa_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    v = validator(jwks)
    good = rsa_key.sign(claims())
    bad = rsa_key.sign(claims(exp=1))
    v.validate(good)
    with pytest.raises(AuthenticationError):
        v.validate(bad)
    assert caplog.records
    for token in (good, bad):
        for part in token.split("."):
            assert part not in caplog.text


# --- JWKS availability, caching and rotation --------------------------------------------


def test_jwks_down_with_empty_cache_fails_closed_quickly(
    jwks: JWKSServer, rsa_key: SigningKey
) -> None:
    timeout = 1.0
    v = validator(jwks, jwks_timeout_seconds=timeout)
    jwks.stop()
    start = time.monotonic()
    with pytest.raises(AuthUnavailableError) as info:
        v.validate(rsa_key.sign(claims()))
    assert time.monotonic() - start < timeout + 1
    assert info.value.status_code == 503 and info.value.code == "auth_unavailable"


def test_jwks_slow_with_empty_cache_times_out(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    timeout = 0.5
    v = validator(jwks, jwks_timeout_seconds=timeout)
    jwks.mode = "slow"
    start = time.monotonic()
    assert_unavailable(v, rsa_key.sign(claims()))
    assert time.monotonic() - start < timeout + 0.5


def test_jwks_error_with_empty_cache(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    jwks.mode = "error"
    v = validator(jwks)
    with pytest.raises(AuthUnavailableError):
        v.validate(rsa_key.sign(claims()))
    # Still down: the next request fails closed without hammering the issuer again.
    with pytest.raises(AuthUnavailableError):
        v.validate(rsa_key.sign(claims()))
    assert jwks.requests == 1


def test_jwks_down_but_key_cached(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    v = validator(jwks)
    v.validate(rsa_key.sign(claims()))
    jwks.stop()
    assert v.validate(rsa_key.sign(claims(sub="again"))).subject == "again"


def test_stale_cache_survives_a_failing_refresh(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    clock = FakeClock()
    v = validator(jwks, jwks_cache_seconds=60, min_refresh_interval_seconds=0, clock=clock)
    v.validate(rsa_key.sign(claims()))
    jwks.mode = "error"
    jwks.release.clear()
    clock.advance(61)
    # The stale key answers at once; the refresh it starts runs in the background.
    jwks.mode = "slow"
    start = time.monotonic()
    assert v.validate(rsa_key.sign(claims())).subject == "user-123"
    assert time.monotonic() - start < 0.5
    wait_until(lambda: jwks.requests == 2)
    jwks.mode = "error"
    jwks.release.set()
    assert v.validate(rsa_key.sign(claims())).subject == "user-123"
    assert jwks.requests == 2  # one refresh in flight at a time


def test_cache_is_reused(jwks: JWKSServer, rsa_key: SigningKey, ec_key: SigningKey) -> None:
    v = validator(jwks)
    for _ in range(5):
        v.validate(rsa_key.sign(claims()))
        v.validate(ec_key.sign(claims()))
    assert jwks.requests == 1


def test_concurrent_first_requests_share_one_fetch(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    v = validator(jwks)
    tokens = [rsa_key.sign(claims(sub=f"user-{i}")) for i in range(32)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        subjects = list(pool.map(lambda t: v.validate(t).subject, tokens))
    assert subjects == [f"user-{i}" for i in range(32)]
    assert jwks.requests == 1


def test_new_key_is_fetched_on_first_sight(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    clock = FakeClock()
    v = validator(jwks, clock=clock)
    v.validate(rsa_key.sign(claims()))
    clock.advance(UNKNOWN_KID_REFRESH_S)
    new = make_rsa("rsa-new")
    jwks.keys = [rsa_key.jwk, new.jwk]
    assert v.validate(new.sign(claims(sub="new"))).subject == "new"
    assert jwks.requests == 2


def test_key_rotation(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    clock = FakeClock()
    v = validator(jwks, min_refresh_interval_seconds=30, clock=clock)
    v.validate(rsa_key.sign(claims()))
    new = make_rsa("rsa-2")
    jwks.keys = [new.jwk]
    # Within the refresh interval the new key is not fetched yet: not a definitive 401 for a
    # token that may be good, but a 503 that says when the refresh may run.
    assert assert_unavailable(v, new.sign(claims(sub="rotated"))) == 30
    clock.advance(20)
    assert assert_unavailable(v, new.sign(claims(sub="rotated"))) == 10
    assert jwks.requests == 1
    clock.advance(11)
    assert v.validate(new.sign(claims(sub="rotated"))).subject == "rotated"
    assert jwks.requests == 2
    # The retired key disappeared with the refresh; once a fetch made after the token arrived
    # lacks it too, the refusal is definitive.
    assert_unavailable(v, rsa_key.sign(claims()))
    clock.advance(31)
    assert "unknown key" in assert_rejected(v, rsa_key.sign(claims())).message
    assert jwks.requests == 3


def test_refresh_rate_limit(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    interval = 30.0
    clock = FakeClock()
    v = validator(jwks, min_refresh_interval_seconds=interval, clock=clock)
    v.validate(rsa_key.sign(claims()))
    # Signed beforehand so the flood itself takes well under one interval.
    flood = [
        jwt.encode(
            claims(), rsa_key.private, algorithm="RS256", headers={"kid": secrets.token_hex(8)}
        )
        for _ in range(200)
    ]
    clock.advance(interval + 1)

    def attempt(token: str) -> str:
        try:
            v.validate(token)
        except (AuthenticationError, AuthUnavailableError) as exc:
            return type(exc).__name__
        return "accepted"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, flood))
    # Those that waited for the refresh are refused for good (it did not have their kid); those
    # that came after it are told to come back later, never sent to the issuer.
    assert "AuthenticationError" in outcomes
    assert set(outcomes) <= {"AuthenticationError", "SigningKeyPendingError"}
    # The first fetch, then exactly one refresh for the whole flood (the clock stood still).
    assert jwks.requests == 2
    clock.advance(interval + 1)
    assert attempt(flood[0]) == "AuthenticationError"
    assert jwks.requests == 3
    assert v.validate(rsa_key.sign(claims())).subject == "user-123"


def test_failing_jwks_backs_off_from_one_second(jwks: JWKSServer, rsa_key: SigningKey) -> None:
    clock = FakeClock()
    v = validator(jwks, clock=clock)
    token = rsa_key.sign(claims())
    jwks.mode = "error"
    assert_unavailable(v, token)
    waits = []
    for _ in range(5):
        # Asked again at once: no fetch, and a Retry-After that ends when the next may run.
        retry_after = assert_unavailable(v, token)
        assert jwks.requests == len(waits) + 1
        waits.append(retry_after)
        clock.advance(retry_after)
        assert_unavailable(v, token)
    assert waits == [FETCH_BACKOFF_S, 2, FETCH_BACKOFF_MAX_S, FETCH_BACKOFF_MAX_S, 4]
    assert jwks.requests == 6


def test_tokens_work_within_seconds_of_the_issuers_return(
    jwks: JWKSServer, rsa_key: SigningKey
) -> None:
    """A long outage, then requests every half second: the first success comes at most one
    (capped) backoff after the JWKS answers again, and that success resets the backoff."""
    clock = FakeClock()
    v = validator(jwks, clock=clock)
    token = rsa_key.sign(claims())
    jwks.mode = "error"
    for _ in range(600):  # five minutes of requests against a failing issuer
        with pytest.raises(AuthUnavailableError):
            v.validate(token)
        clock.advance(0.5)
    assert jwks.requests < 600 * 0.5 / FETCH_BACKOFF_MAX_S + 5
    jwks.mode = "ok"
    back = clock.mono
    while True:
        try:
            v.validate(token)
            break
        except AuthUnavailableError:
            clock.advance(0.5)
    assert clock.mono - back <= FETCH_BACKOFF_MAX_S < 5
    # Back to normal: another outage starts again from the shortest backoff.
    jwks.keys = []
    jwks.mode = "error"
    clock.advance(UNKNOWN_KID_REFRESH_S)
    assert_unavailable(v, make_rsa("rsa-3").sign(claims()))
    assert assert_unavailable(v, make_rsa("rsa-3").sign(claims())) == FETCH_BACKOFF_S


def test_waiters_give_up_after_the_timeout_and_the_fetch_lives_on(
    jwks: JWKSServer, rsa_key: SigningKey
) -> None:
    """A hanging issuer: every request that needs the keys waits at most the timeout for the one
    fetch; a later request finds the keys once the fetch completes."""
    timeout = 0.3
    jwks.mode = "slow"
    v = validator(jwks, jwks_timeout_seconds=timeout)
    tokens = [rsa_key.sign(claims(sub=f"user-{i}")) for i in range(20)]

    def attempt(token: str) -> float:
        start = time.monotonic()
        with pytest.raises(AuthUnavailableError):
            v.validate(token)
        return time.monotonic() - start

    with ThreadPoolExecutor(max_workers=20) as pool:
        waited = list(pool.map(attempt, tokens))
    assert max(waited) < timeout + 0.3
    assert jwks.requests == 1


@pytest.mark.parametrize(
    "url", ["http://issuer.example.com/jwks", "file:///etc/passwd", "ftp://127.0.0.1/jwks"]
)
def test_insecure_jwks_url_refused(url: str) -> None:
    with pytest.raises(ValueError):
        JWTValidator(ISSUER, AUDIENCE, url)


# --- Authorization header ----------------------------------------------------------------


def test_parse_bearer() -> None:
    assert parse_bearer("Bearer abc.def-ghi_jkl") == "abc.def-ghi_jkl"
    assert parse_bearer("bearer   tok==") == "tok=="


@pytest.mark.parametrize(
    ("header", "bearer_error"),
    [
        (None, None),
        ("", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token abc", None),
        ("Bearer", "invalid_token"),
        ("Bearer ", "invalid_token"),
        ("Bearer a b", "invalid_token"),
        ('Bearer "quoted"', "invalid_token"),
    ],
)
def test_parse_bearer_refuses(header: str | None, bearer_error: str | None) -> None:
    with pytest.raises(AuthenticationError) as info:
        parse_bearer(header)
    assert info.value.status_code == 401
    assert info.value.bearer_error == bearer_error


def test_www_authenticate() -> None:
    url = "https://api.example.com/.well-known/oauth-protected-resource"
    assert www_authenticate(url) == f'Bearer resource_metadata="{url}"'
    assert www_authenticate(
        url, error="invalid_token", description='the "token" \\ expired\r\nX-Injected: 1'
    ) == (
        f'Bearer resource_metadata="{url}", error="invalid_token", '
        'error_description="the \\"token\\" \\\\ expired??X-Injected: 1"'
    )
    assert www_authenticate(url, error="insufficient_scope", scope="search read").endswith(
        'error="insufficient_scope", scope="search read"'
    )
    assert www_authenticate(None) == "Bearer"


def test_protected_resource_metadata() -> None:
    assert protected_resource_metadata(AUDIENCE, ISSUER, ["search"]) == {
        "resource": AUDIENCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["search"],
    }


# --- API keys ----------------------------------------------------------------------------


def test_api_key_store_plain_and_hashed() -> None:
    plain, other = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store = APIKeyStore([plain, hash_api_key(other)], scopes=["search"])
    assert store.verify(plain) and store.verify(other)
    assert not store.verify(secrets.token_urlsafe(32))
    assert not store.verify("") and not store.verify(None)
    principal = store.authenticate(other)
    assert principal.subject.startswith("api-key:") and principal.scopes == {"search"}
    with pytest.raises(AuthenticationError):
        store.authenticate(plain + "x")
    # The plain key is not kept anywhere on the store.
    assert plain not in repr(store) and plain not in repr(vars(store))


def test_hash_api_key_format() -> None:
    key = secrets.token_hex(20)
    hashed = hash_api_key(key)
    assert hashed == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert APIKeyStore([hashed.upper().replace("SHA256:", "sha256:")]).verify(key)


@pytest.mark.parametrize(
    "key",
    [
        "changeme",
        "secret",
        "short-key-123",
        "changeme-changeme-123",
        "my-super-secret-api-key",
        "aaaaaaaaaaaaaaaaaaaaaaaa",
        "abababababababababab",
        "your-api-key-goes-here",
        "sha256:" + hashlib.sha256(b"changeme").hexdigest(),
        "sha256:nothex",
    ],
)
def test_placeholder_api_keys_refused(key: str) -> None:
    with pytest.raises(ValueError):
        APIKeyStore([key])


def test_empty_api_key_store_refused() -> None:
    with pytest.raises(ValueError):
        APIKeyStore([])
