"""The OAuth relay: this API's own authorization and token endpoints, in front of the configured
identity provider's.

ChatGPT's GPT actions refuse an OAuth flow whose endpoints are on another domain than the API
(Google, Microsoft and Adobe excepted), so the API serves `/oauth/authorize` and `/oauth/token`
itself and relays them to the provider. The relay holds no state and issues nothing: the
authorization endpoint redirects the browser to the provider's, and the token endpoint forwards
the client's request (its credentials, in the body or a Basic header, unchanged) and passes the
provider's answer back. Tokens stay the provider's: their `iss`, `aud` and signing keys are the
ones the JWT validator checks.

The only URLs the relay ever contacts are the provider's discovery document (from the issuer
setting) and the endpoints that document names, and those only on the issuer's origin or on a
host the `oauth_relay_hosts` setting names (Cognito's hosted UI is on another host than its
issuer). Nothing from a request chooses where the relay connects.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from athenaeum.errors import AuthUnavailableError, InvalidInputError

if TYPE_CHECKING:
    import httpx

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a password)
METADATA_PATH = "/.well-known/oauth-authorization-server"
DISCOVERY_PATH = "/.well-known/openid-configuration"
# Public: a client calls them to get its first token.
RELAY_PATHS = frozenset({AUTHORIZE_PATH, TOKEN_PATH, METADATA_PATH})

# Discovery documents and token responses are a few kilobytes; anything near this is not one.
MAX_RESPONSE_BYTES = 262_144
# A discovery document is read again after this long, so a provider's moved endpoint is found.
DISCOVERY_TTL_S = 3600.0
# After a failed discovery, requests are refused at once for this long instead of each waiting
# out the timeout against a provider that is down.
DISCOVERY_RETRY_S = 5.0
GRANT_TYPES = ("authorization_code", "refresh_token")
# Parameters the relay decides itself: which API the token is for is this deployment's setting,
# not the client's choice (and Entra ID refuses `resource` outright).
RELAY_OWNED = frozenset({"audience", "resource"})


class OAuthError(Exception):
    """A refusal at the token endpoint, in RFC 6749 section 5.2's shape."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class ProviderEndpoints:
    """What the relay takes from the provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    scopes_supported: tuple[str, ...]
    code_challenge_methods_supported: tuple[str, ...]
    token_endpoint_auth_methods_supported: tuple[str, ...]


@dataclass(frozen=True)
class TokenResponse:
    status: int
    body: bytes
    # The provider's challenge on a 401 invalid_client (RFC 6749 section 5.2), passed back.
    www_authenticate: str | None = None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class OAuthRelay:
    def __init__(
        self,
        issuer: str,
        *,
        timeout_s: float = 10.0,
        extra_hosts: Sequence[str] = (),
        audience: str | None = None,
        redirect_uris: Sequence[str] = (),
    ) -> None:
        self.issuer = issuer
        self.discovery_url = issuer.rstrip("/") + DISCOVERY_PATH
        self.timeout_s = timeout_s
        self.extra_hosts = frozenset(h.strip().lower() for h in extra_hosts if h.strip())
        self.audience = audience
        self.redirect_uris = tuple(redirect_uris)
        self._endpoints: ProviderEndpoints | None = None
        self._fetched_at = 0.0
        self._failed_at: float | None = None
        self._failure = ""
        self._lock = asyncio.Lock()

    # --- discovery ---------------------------------------------------------------------------

    async def endpoints(self) -> ProviderEndpoints:
        import httpx  # here, not at the top: a cold start that relays nothing skips it

        now = time.monotonic()
        if self._endpoints is not None and now - self._fetched_at < DISCOVERY_TTL_S:
            return self._endpoints
        async with self._lock:
            now = time.monotonic()
            if self._endpoints is not None and now - self._fetched_at < DISCOVERY_TTL_S:
                return self._endpoints
            if self._failed_at is not None and now - self._failed_at < DISCOVERY_RETRY_S:
                raise AuthUnavailableError(self._failure, retry_after_s=int(DISCOVERY_RETRY_S))
            try:
                status, body = await self._get(self.discovery_url)
                if status != 200:
                    raise ValueError(f"it answered HTTP {status}")
                endpoints = self._parse(body)
            except (httpx.HTTPError, ValueError) as exc:
                self._failed_at = time.monotonic()
                if self._endpoints is not None:
                    # A provider that blips keeps its last good endpoints.
                    return self._endpoints
                self._failure = (
                    f"the identity provider's discovery document at {self.discovery_url} could "
                    f"not be used: {_reason(exc)}"
                )
                raise AuthUnavailableError(
                    self._failure, retry_after_s=int(DISCOVERY_RETRY_S)
                ) from None
            self._endpoints, self._fetched_at, self._failed_at = endpoints, time.monotonic(), None
            return endpoints

    def _parse(self, body: bytes) -> ProviderEndpoints:
        try:
            doc = json.loads(body)
        except ValueError:
            raise ValueError("it is not JSON") from None
        if not isinstance(doc, dict):
            raise ValueError("it is not a JSON object")
        # OpenID Connect Discovery 1.0, section 4.3: the issuer must be exactly the one asked.
        if doc.get("issuer") != self.issuer:
            raise ValueError(f"its issuer {doc.get('issuer')!r} is not {self.issuer!r}")
        authorization = self._allowed(doc, "authorization_endpoint")
        token = self._allowed(doc, "token_endpoint")
        return ProviderEndpoints(
            issuer=self.issuer,
            authorization_endpoint=authorization,
            token_endpoint=token,
            scopes_supported=_strings(doc.get("scopes_supported")),
            code_challenge_methods_supported=_strings(doc.get("code_challenge_methods_supported")),
            # RFC 8414 section 2: absent means client_secret_basic.
            token_endpoint_auth_methods_supported=_strings(
                doc.get("token_endpoint_auth_methods_supported")
            )
            or ("client_secret_basic",),
        )

    def _allowed(self, doc: Mapping[str, Any], name: str) -> str:
        url = doc.get(name)
        if not isinstance(url, str) or not url:
            raise ValueError(f"it names no {name}")
        parts = urlsplit(url)
        if parts.fragment or parts.username or parts.password:
            raise ValueError(f"its {name} {url!r} carries a fragment or credentials")
        scheme, host, port = _origin(url)
        issuer_scheme, issuer_host, issuer_port = _origin(self.issuer)
        # http only where the issuer itself is http (a provider on the loopback, in tests).
        if scheme != "https" and not (scheme == "http" and issuer_scheme == "http"):
            raise ValueError(f"its {name} {url!r} is not https")
        same_origin = (scheme, host, port) == (issuer_scheme, issuer_host, issuer_port)
        named = host in self.extra_hosts or (
            port is not None and f"{host}:{port}" in self.extra_hosts
        )
        if not same_origin and not named:
            raise ValueError(
                f"its {name} {url!r} is on another host than the issuer; name that host in "
                "ATHENAEUM_OAUTH_RELAY_HOSTS if the provider really serves it there"
            )
        return url

    # --- outbound calls ----------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        import httpx

        # No redirects (a 3xx must not take the relay elsewhere), no proxies from the
        # environment's variables, no cookies kept between calls.
        return httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False, trust_env=False)

    async def _get(self, url: str) -> tuple[int, bytes]:
        async with (
            self._client() as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            return response.status_code, await _read_limited(response)

    # --- the two endpoints -------------------------------------------------------------------

    async def authorization_redirect(self, query: Sequence[tuple[str, str]]) -> str:
        """The provider's authorization URL for a client's authorization request: its own
        parameters (client_id, redirect_uri, scope, state, PKCE) passed on, the audience set."""
        params = [(k, v) for k, v in query if k not in RELAY_OWNED]
        given = dict(params)
        if len(given) != len(params):
            raise InvalidInputError(
                "an authorization request parameter appears more than once", param="query"
            )
        for name in ("response_type", "client_id", "redirect_uri"):
            if not given.get(name):
                raise InvalidInputError(f"the authorization request has no {name}", param=name)
        if given["response_type"] != "code":
            raise InvalidInputError(
                "this authorization endpoint serves the authorization code flow only "
                "(response_type=code)",
                param="response_type",
            )
        if self.redirect_uris and not any(
            fnmatch.fnmatchcase(given["redirect_uri"], p) for p in self.redirect_uris
        ):
            # Not redirected (RFC 6749 section 4.1.2.1): the redirect URI is the suspect part.
            raise InvalidInputError(
                "the redirect_uri is not one this API accepts (ATHENAEUM_OAUTH_REDIRECT_URIS)",
                param="redirect_uri",
            )
        if self.audience:
            params.append(("audience", self.audience))
        endpoint = (await self.endpoints()).authorization_endpoint
        parts = urlsplit(endpoint)
        query_string = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params])
        return urlunsplit(parts._replace(query=query_string))

    async def token(self, body: bytes, authorization: str | None) -> TokenResponse:
        """The provider's answer to a token request: the form passed on (without the parameters
        the relay owns), the client's Basic credentials too, the answer passed back."""
        import httpx

        try:
            form = parse_qsl(
                body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body)
            )
        except (UnicodeDecodeError, ValueError):
            raise OAuthError(
                400, "invalid_request", "the body must be application/x-www-form-urlencoded"
            ) from None
        grant = [v for k, v in form if k == "grant_type"]
        if len(grant) != 1:
            raise OAuthError(400, "invalid_request", "the request needs one grant_type")
        if grant[0] not in GRANT_TYPES:
            raise OAuthError(
                400,
                "unsupported_grant_type",
                f"this token endpoint relays {' and '.join(GRANT_TYPES)} grants only",
            )
        try:
            endpoint = (await self.endpoints()).token_endpoint
        except AuthUnavailableError as exc:
            raise OAuthError(503, "temporarily_unavailable", exc.message) from None
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if authorization:
            headers["Authorization"] = authorization
        forwarded = urlencode([(k, v) for k, v in form if k not in RELAY_OWNED])
        try:
            async with (
                self._client() as client,
                client.stream(
                    "POST", endpoint, content=forwarded.encode("ascii"), headers=headers
                ) as response,
            ):
                status, answer = response.status_code, await _read_limited(response)
                media = response.headers.get("content-type", "").split(";")[0].strip().lower()
                challenge = response.headers.get("www-authenticate")
        except (httpx.HTTPError, ValueError) as exc:
            raise OAuthError(
                503,
                "temporarily_unavailable",
                f"the identity provider's token endpoint could not be reached: {_reason(exc)}",
            ) from None
        if media != "application/json" or not _json_object(answer):
            raise OAuthError(
                502,
                "temporarily_unavailable",
                f"the identity provider's token endpoint answered HTTP {status} without a JSON "
                "object",
            )
        return TokenResponse(
            status=status, body=answer, www_authenticate=challenge if status == 401 else None
        )


async def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ValueError(f"the answer is larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _reason(exc: Exception) -> str:
    import httpx

    # httpx's messages name the URL and the failure, never a request body.
    if isinstance(exc, httpx.TimeoutException):
        return "it timed out"
    return str(exc) or type(exc).__name__


def authorization_server_metadata(
    base_url: str, provider: ProviderEndpoints, scopes: Sequence[str]
) -> dict[str, Any]:
    """RFC 8414 metadata for the relay, served at this API's /.well-known/oauth-authorization-
    server. Its issuer is this API (RFC 8414 section 3.3: the URL the metadata is served under);
    the tokens' `iss` stays the provider's, which only this API's validator reads."""
    metadata: dict[str, Any] = {
        "issuer": base_url,
        "authorization_endpoint": base_url + AUTHORIZE_PATH,
        "token_endpoint": base_url + TOKEN_PATH,
        "response_types_supported": ["code"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(
            provider.token_endpoint_auth_methods_supported
        ),
        "scopes_supported": sorted(set(scopes) | set(provider.scopes_supported)),
    }
    if provider.code_challenge_methods_supported:
        metadata["code_challenge_methods_supported"] = list(
            provider.code_challenge_methods_supported
        )
    return metadata
