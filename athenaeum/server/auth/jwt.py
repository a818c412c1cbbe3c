"""OAuth access tokens (JWTs) verified against the issuer's JWKS, shared by the app and the Lambda
TOKEN authorizer.

Deliberately free of FastAPI/starlette (the authorizer imports this package without the
middleware) and of httpx (the JWKS is fetched with urllib, so the authorizer needs only pyjwt and
cryptography). Every failure is a domain error from `athenaeum.errors`: 401
`AuthenticationError` for any bad credential, 403 `InsufficientScopeError`, 503
`AuthUnavailableError` when keys cannot be had. Tokens are never logged and never echoed in
error messages.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    SECP384R1,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from athenaeum.errors import (
    AuthenticationError,
    AuthUnavailableError,
    InsufficientScopeError,
    SigningKeyPendingError,
)
from athenaeum.server.auth.bearer import MAX_TOKEN_LENGTH
from athenaeum.server.auth.groups import groups_from_claims
from athenaeum.server.auth.principal import Principal, check_scopes

if TYPE_CHECKING:
    from athenaeum.server.settings import Settings

logger = logging.getLogger(__name__)

# The only algorithms that may ever be configured, with the JWK key type each needs. Symmetric
# (HS*) and "none" are absent on purpose: with a public JWKS, an HMAC "secret" is public too.
_ALGORITHM_KEY_TYPE: dict[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "ES256": "EC",
    "ES384": "EC",
}
ALLOWED_ALGORITHMS: frozenset[str] = frozenset(_ALGORITHM_KEY_TYPE)
# ECDSA verifies mathematically with a mismatched curve, so bind each ES* algorithm to its curve.
_EC_CURVE: dict[str, type[SECP256R1 | SECP384R1]] = {"ES256": SECP256R1, "ES384": SECP384R1}
_MIN_RSA_BITS = 2048

_MAX_KID_LENGTH = 256
_MAX_JWKS_BYTES = 1_048_576
_MAX_LEEWAY_SECONDS = 300
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_USER_AGENT = "athenaeum-jwks/1"
# A token naming a key id we do not hold makes us fetch the JWKS again, at most once per this
# many seconds (a flood of made-up kids must not become a flood of fetches).
UNKNOWN_KID_REFRESH_S = 10.0
# After a failed fetch the next waits 1 s, then 2 s, then 4 s: short enough that tokens work
# again within seconds of the issuer's return, long enough that an outage is not hammered.
FETCH_BACKOFF_S = 1.0
FETCH_BACKOFF_MAX_S = 4.0


class Clock(Protocol):
    """Where the validator reads the time: the `time` module, or a test's clock."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


@dataclass(frozen=True, slots=True)
class _VerificationKey:
    kid: str
    kty: str
    alg: str | None
    public_key: RSAPublicKey | EllipticCurvePublicKey


class _JWKSFetchError(Exception):
    pass


def _is_allowed_jwks_url(url: str) -> bool:
    # Plain http would let anyone on the path swap the keys; loopback is allowed for local
    # identity providers and tests.
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)


class _SameSecurityRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to URLs we would have accepted as the JWKS URL (no downgrade)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not _is_allowed_jwks_url(newurl):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class JWTValidator:
    """Validates OAuth access tokens (JWTs) against an issuer's JWKS. Thread-safe."""

    def __init__(
        self,
        issuer: str,
        audience: str | Sequence[str],
        jwks_url: str,
        *,
        algorithms: Iterable[str] = ("RS256", "ES256"),
        leeway_seconds: float = 30,
        required_scopes: Iterable[str] = (),
        groups_claim: str | None = None,
        jwks_timeout_seconds: float = 3.0,
        jwks_cache_seconds: float = 600,
        min_refresh_interval_seconds: float = UNKNOWN_KID_REFRESH_S,
        backoff_seconds: float = FETCH_BACKOFF_S,
        max_backoff_seconds: float = FETCH_BACKOFF_MAX_S,
        clock: Clock = time,
    ) -> None:
        if not issuer:
            raise ValueError("the OAuth issuer must not be empty")
        audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("the OAuth audience must be one or more non-empty strings")
        if not _is_allowed_jwks_url(jwks_url):
            raise ValueError(
                f"the JWKS URL must be https (http only for localhost/127.0.0.1): {jwks_url!r}"
            )
        algs = frozenset(algorithms)
        refused = sorted(a for a in algs if a not in ALLOWED_ALGORITHMS)
        if refused:
            raise ValueError(
                f"JWT algorithm(s) {refused} are not allowed; only asymmetric algorithms "
                f"{sorted(ALLOWED_ALGORITHMS)} may be configured"
            )
        if not algs:
            raise ValueError("at least one JWT algorithm must be allowed")
        if not 0 <= leeway_seconds <= _MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway_seconds must be between 0 and {_MAX_LEEWAY_SECONDS}")
        if jwks_timeout_seconds <= 0 or jwks_cache_seconds <= 0 or min_refresh_interval_seconds < 0:
            raise ValueError("JWKS timeout and cache lifetime must be > 0, refresh interval >= 0")
        if not 0 < backoff_seconds <= max_backoff_seconds:
            raise ValueError("the JWKS backoff must be > 0 and at most its maximum")
        self.issuer = issuer
        self.audiences = audiences
        self.jwks_url = jwks_url
        self.algorithms = algs
        self.required_scopes = check_scopes(required_scopes)
        # The claim holding the caller's groups (ATHENAEUM_ACCESS_CLAIM), or None.
        self.groups_claim = groups_claim
        self._leeway = float(leeway_seconds)
        self._timeout = float(jwks_timeout_seconds)
        self._cache_seconds = float(jwks_cache_seconds)
        self._min_refresh = float(min_refresh_interval_seconds)
        self._first_backoff = float(backoff_seconds)
        self._max_backoff = float(max_backoff_seconds)
        # Token lifetimes, the key cache's age and the pauses between fetches; the JWKS fetch's
        # own deadline and how long a request waits for it are real time.
        self._clock = clock
        self._opener = urllib.request.build_opener(_SameSecurityRedirectHandler())

        # _lock guards the fields below and is held only briefly, never across a fetch. At most
        # one fetch runs at a time, in its own thread (`_inflight` is its future): requests that
        # need its result wait for it, at most the timeout; requests that do not, never do.
        self._lock = threading.Lock()
        self._keys: dict[str, _VerificationKey] = {}
        self._fetched_at: float | None = None
        self._inflight: Future[bool] | None = None
        self._not_before = -math.inf  # no fetch starts before this (monotonic)
        self._backoff = self._first_backoff
        self._failing = False  # the last fetch failed

    def __repr__(self) -> str:
        return f"JWTValidator(issuer={self.issuer!r}, audience={self.audiences!r})"

    def validate(self, token: str, *, required_scopes: Iterable[str] | None = None) -> Principal:
        """The verified principal, or AuthenticationError / InsufficientScopeError /
        AuthUnavailableError. `required_scopes` overrides the validator's default. Blocks at
        most the JWKS timeout, and only when the token's key has to be fetched."""
        alg, kid = self._header(token)
        found = self._lookup(kid)
        if isinstance(found, Future):
            try:
                ok = found.result(timeout=self._timeout)
            except TimeoutError:
                raise _unavailable(failing=True) from None
            found = self._after_fetch(kid, ok)
        return self._verify(token, found, alg, kid, required_scopes)

    async def validate_async(
        self, token: str, *, required_scopes: Iterable[str] | None = None
    ) -> Principal:
        """`validate` for an event loop: waiting for a fetch holds no thread, so requests that
        do not need the keys (API keys, public routes) never queue behind it."""
        alg, kid = self._header(token)
        found = self._lookup(kid)
        if isinstance(found, Future):
            try:
                # The fetch's future is running, so a timeout here cannot cancel it for others.
                ok = await asyncio.wait_for(asyncio.wrap_future(found), self._timeout)
            except TimeoutError:
                raise _unavailable(failing=True) from None
            found = self._after_fetch(kid, ok)
        return self._verify(token, found, alg, kid, required_scopes)

    def _header(self, token: str) -> tuple[str, str]:
        if not isinstance(token, str) or not token:
            raise _reject("empty token", "the access token is missing")
        if len(token) > MAX_TOKEN_LENGTH or not _JWT_SHAPE.fullmatch(token):
            raise _reject("not a compact JWS", "the access token is malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _reject("undecodable header", "the access token is malformed") from None

        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            # Covers "none" and HS*: they can never be in self.algorithms.
            raise _reject(
                f"algorithm {str(alg)[:16]!r} not allowed",
                "the access token's signing algorithm is not allowed",
            )
        if "crit" in header or "b64" in header:
            # No critical extension is understood here, so RFC 7515 says reject.
            raise _reject("crit/b64 header", "the access token uses unsupported header parameters")
        # jku/x5u/jwk/x5c in the header are ignored on purpose: keys come only from our JWKS URL.
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
            raise _reject("missing or bad kid", "the access token has no usable key id (kid)")
        return alg, kid

    def _verify(
        self,
        token: str,
        key: _VerificationKey,
        alg: str,
        kid: str,
        required_scopes: Iterable[str] | None,
    ) -> Principal:
        if not _key_fits(key, alg):
            raise _reject(
                f"alg {alg} does not fit key {kid[:64]!r} ({key.kty})",
                "the access token's algorithm does not match its signing key",
            )

        claims = self._decode(token, key, alg)
        principal = _principal_from_claims(claims, self.groups_claim)
        needed = self.required_scopes if required_scopes is None else check_scopes(required_scopes)
        missing = [s for s in needed if s not in principal.scopes]
        if missing:
            logger.info("token for subject %r lacks scopes %s", principal.subject, missing)
            raise InsufficientScopeError(
                f"the access token lacks the required scope(s): {' '.join(missing)}",
                required_scopes=needed,
            )
        return principal

    def _decode(self, token: str, key: _VerificationKey, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public_key,
                algorithms=[alg],
                audience=list(self.audiences),
                issuer=self.issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", "iss", "aud", "sub"],
                    "enforce_minimum_key_length": True,
                    # Checked below against this validator's clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
            self._check_times(claims)
        except jwt.ExpiredSignatureError:
            raise _reject("expired", "the access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _reject("nbf/iat in the future", "the access token is not yet valid") from None
        except jwt.InvalidIssuerError:
            raise _reject("issuer", "the access token was not issued by a trusted issuer") from None
        except jwt.InvalidAudienceError:
            raise _reject(
                "audience", "the access token is not intended for this resource"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            # exc.claim is one of the names we asked for, never token content.
            raise _reject(
                f"missing {exc.claim}", f"the access token lacks the required claim {exc.claim!r}"
            ) from None
        except jwt.InvalidSignatureError:
            raise _reject("bad signature", "the access token signature is invalid") from None
        except jwt.InvalidKeyError:
            raise _reject(
                "key unusable", "the access token does not match its signing key"
            ) from None
        except jwt.InvalidTokenError:
            raise _reject("invalid", "the access token is malformed or invalid") from None
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        """exp, nbf and iat as PyJWT checks them (integers, with the leeway), against the clock."""
        now = self._clock.time()
        for name in ("iat", "nbf", "exp"):
            if name not in claims:
                continue
            try:
                value = int(claims[name])
            except (ValueError, TypeError, OverflowError):
                raise jwt.DecodeError(f"the {name} claim must be an integer") from None
            if name == "exp" and value <= now - self._leeway:
                raise jwt.ExpiredSignatureError("Signature has expired")
            if name != "exp" and value > now + self._leeway:
                raise jwt.ImmatureSignatureError(f"The token is not yet valid ({name})")

    # --- keys ------------------------------------------------------------------------------

    def _lookup(self, kid: str) -> _VerificationKey | Future[bool]:
        """The key for `kid`, or the fetch to wait for; AuthUnavailableError when none may start."""
        with self._lock:
            now = self._clock.monotonic()
            key = self._keys.get(kid)
            if key is not None:
                # Stale, yet it still verifies: keys rotate on a scale of days, and the issuer
                # may be down. The refresh runs without this request.
                stale = self._fetched_at is None or now - self._fetched_at >= self._cache_seconds
                if stale and self._inflight is None and now >= self._not_before:
                    self._start_fetch()
                return key
            # An unknown kid (perhaps the issuer published a new key): fetch, or wait for the
            # fetch already running, unless one ran or failed too recently.
            if self._inflight is not None:
                return self._inflight
            if now < self._not_before:
                raise _unavailable(self._failing, retry_after=self._not_before - now)
            return self._start_fetch()

    def _after_fetch(self, kid: str, ok: bool) -> _VerificationKey:
        with self._lock:
            key = self._keys.get(kid)
            retry_after = self._not_before - self._clock.monotonic()
            failing = self._failing
        if key is not None:
            return key
        if ok:
            # The only definitive refusal: the issuer's keys, fetched while this request waited,
            # do not include this kid.
            raise _reject(
                f"unknown kid {kid[:64]!r}", "the access token was signed by an unknown key"
            )
        raise _unavailable(failing, retry_after=retry_after)

    def _start_fetch(self) -> Future[bool]:
        # Called with _lock held. A thread of its own, not a worker of the server's pool, so
        # that a hanging issuer ties up one thread and nothing that other requests need.
        future: Future[bool] = Future()
        future.set_running_or_notify_cancel()
        self._inflight = future
        threading.Thread(
            target=self._fetch_into, args=(future,), name="athenaeum-jwks", daemon=True
        ).start()
        return future

    def _fetch_into(self, future: Future[bool]) -> None:
        keys: dict[str, _VerificationKey] | None = None
        try:
            keys = self._fetch_jwks()
        except _JWKSFetchError as exc:
            logger.warning("JWKS fetch from %s failed: %s", self.jwks_url, exc)
        except Exception:
            # A bug must not leave the waiting requests (and all later ones) hanging.
            logger.exception("JWKS fetch from %s failed unexpectedly", self.jwks_url)
        finally:
            with self._lock:
                now = self._clock.monotonic()
                if keys is not None:
                    self._keys = keys
                    self._fetched_at = now
                    self._not_before = now + self._min_refresh
                    self._backoff = self._first_backoff
                    self._failing = False
                else:
                    self._not_before = now + self._backoff
                    self._backoff = min(2 * self._backoff, self._max_backoff)
                    self._failing = True
                self._inflight = None
            future.set_result(keys is not None)
        if keys is not None:
            logger.info("fetched %d signing key(s) from %s", len(keys), self.jwks_url)

    def _fetch_jwks(self) -> dict[str, _VerificationKey]:
        # S310: the scheme was checked in __init__ (https, or http to loopback only).
        request = urllib.request.Request(  # noqa: S310
            self.jwks_url, headers={"Accept": "application/json", "User-Agent": _USER_AGENT}
        )
        deadline = time.monotonic() + self._timeout
        try:
            # The timeout bounds the connect and each socket read; `deadline` bounds the body.
            with self._opener.open(request, timeout=self._timeout) as raw:
                response = cast(http.client.HTTPResponse, raw)
                if response.status != 200:
                    raise _JWKSFetchError(f"HTTP {response.status}")
                body = _read_bounded(response, deadline)
        except urllib.error.HTTPError as exc:
            raise _JWKSFetchError(f"HTTP {exc.code}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # URLError and TimeoutError are OSErrors.
            raise _JWKSFetchError(f"{type(exc).__name__}: {exc}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise _JWKSFetchError("response is not JSON") from None
        keys = _parse_jwks(document, self.algorithms)
        if not keys:
            # Treated as a failure so that a broken response does not wipe good cached keys.
            raise _JWKSFetchError("no usable signing keys in the JWKS")
        return keys


def _unavailable(failing: bool, *, retry_after: float | None = None) -> AuthUnavailableError:
    # Never a 401 for a kid that could not be checked: the token may be perfectly good.
    seconds = 1 if retry_after is None else math.ceil(retry_after)
    if failing:
        return AuthUnavailableError(
            "the authorization server's signing keys cannot be fetched; try again later",
            retry_after_s=seconds,
        )
    return SigningKeyPendingError(
        "the access token's signing key is not known yet; try again shortly", retry_after_s=seconds
    )


def _read_bounded(response: http.client.HTTPResponse, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise _JWKSFetchError("timed out reading the JWKS")
        # read1: at most one socket read, so a trickling server cannot outlast the deadline.
        chunk = response.read1(65_536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > _MAX_JWKS_BYTES:
            raise _JWKSFetchError("JWKS response too large")
        chunks.append(chunk)


def _parse_jwks(document: object, algorithms: frozenset[str]) -> dict[str, _VerificationKey]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _JWKSFetchError("response is not a JWK set")
    keys: dict[str, _VerificationKey] = {}
    for jwk in document["keys"]:
        key = _parse_jwk(jwk, algorithms)
        if key is None:
            continue
        if key.kid in keys:
            logger.warning("JWKS has several keys with kid %r; using the first", key.kid)
            continue
        keys[key.kid] = key
    return keys


def _parse_jwk(jwk: object, algorithms: frozenset[str]) -> _VerificationKey | None:
    if not isinstance(jwk, dict):
        return None
    kid, kty, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
        return None  # tokens are matched by kid, so a key without one can never be selected
    if jwk.get("use", "sig") != "sig":
        return None  # an encryption key must not verify signatures
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    if alg is not None and alg not in algorithms:
        return None
    if kty not in ("RSA", "EC"):
        return None  # in particular "oct": a symmetric key published in a JWKS is public
    if "d" in jwk:
        logger.warning("JWKS key %r contains private key material; refusing it", kid)
        return None
    try:
        if kty == "RSA":
            public_key: Any = RSAAlgorithm.from_jwk(jwk)
        else:
            public_key = ECAlgorithm.from_jwk(jwk)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        logger.warning("skipping unreadable JWKS key %r: %s", kid, type(exc).__name__)
        return None
    if isinstance(public_key, RSAPublicKey):
        if public_key.key_size < _MIN_RSA_BITS:
            logger.warning("skipping JWKS key %r: RSA key shorter than %d bits", kid, _MIN_RSA_BITS)
            return None
    elif not isinstance(public_key, EllipticCurvePublicKey):
        return None
    return _VerificationKey(kid=kid, kty=kty, alg=alg, public_key=public_key)


def _key_fits(key: _VerificationKey, alg: str) -> bool:
    # Checked here, not left to PyJWT, because algorithm confusion is the classic JWT bug:
    # the token's alg must agree with the key's type, curve and (if pinned) its own alg.
    if key.alg is not None and key.alg != alg:
        return False
    if _ALGORITHM_KEY_TYPE.get(alg) != key.kty:
        return False
    if key.kty == "RSA":
        return isinstance(key.public_key, RSAPublicKey)
    return isinstance(key.public_key, EllipticCurvePublicKey) and isinstance(
        key.public_key.curve, _EC_CURVE[alg]
    )


def _principal_from_claims(claims: dict[str, Any], groups_claim: str | None = None) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _reject("bad sub", "the access token has no valid subject")
    scopes: set[str] = set()
    # OAuth uses a space-separated "scope"; Okta and Entra ID use "scp" as a list or a string.
    for name in ("scope", "scp"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list) and all(isinstance(s, str) for s in value):
            scopes.update(s for s in value if s)
        else:
            raise _reject(f"bad {name}", f"the access token's {name!r} claim is malformed")
    client_id = next(
        (v for c in ("client_id", "azp", "cid") if isinstance(v := claims.get(c), str) and v),
        None,
    )
    aud = claims["aud"]
    audience = (aud,) if isinstance(aud, str) else tuple(aud)
    try:
        expires_at = datetime.fromtimestamp(float(claims["exp"]), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise _reject("bad exp", "the access token's 'exp' claim is malformed") from None
    return Principal(
        subject=subject,
        scopes=frozenset(scopes),
        client_id=client_id,
        issuer=str(claims["iss"]),
        audience=audience,
        expires_at=expires_at,
        groups=groups_from_claims(claims, groups_claim),
        claims=MappingProxyType(dict(claims)),
    )


def jwt_validator(settings: Settings) -> JWTValidator | None:
    """The validator the settings describe, or None when OAuth is not configured."""
    if not (settings.oauth_issuer and settings.oauth_audience and settings.oauth_jwks_url):
        return None
    return JWTValidator(
        settings.oauth_issuer,
        settings.oauth_audience,
        settings.oauth_jwks_url,
        required_scopes=settings.oauth_required_scopes,
        groups_claim=settings.access_claim,
        jwks_timeout_seconds=settings.jwks_timeout_s,
    )


def _reject(reason: str, message: str) -> AuthenticationError:
    # `reason` is for operators and never contains the token; `message` goes to the client.
    logger.info("rejected bearer token: %s", reason)
    return AuthenticationError(message)
