"""The `Authorization: Bearer` header (RFC 6750): reading the token from a request, and the
`WWW-Authenticate` challenge that answers a refused one."""

from __future__ import annotations

import re

from athenaeum.errors import AuthenticationError

# API Gateway caps headers near 10 KB; anything far larger is not a token we issued.
MAX_TOKEN_LENGTH = 16_384
# RFC 6750 section 2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def parse_bearer(authorization_header: str | None) -> str:
    """The token from an `Authorization: Bearer <token>` header, or AuthenticationError."""
    if authorization_header is None or not authorization_header.strip():
        # RFC 6750 section 3.1: no error code when the request carried no credentials.
        raise AuthenticationError("an Authorization: Bearer token is required", bearer_error=None)
    parts = authorization_header.split()
    if parts[0].lower() != "bearer":
        raise AuthenticationError(
            "the Authorization header must use the Bearer scheme", bearer_error=None
        )
    if len(parts) != 2:
        raise AuthenticationError("the Authorization header has no single bearer token")
    token = parts[1]
    if len(token) > MAX_TOKEN_LENGTH or not _B64TOKEN.fullmatch(token):
        raise AuthenticationError("the bearer token is malformed")
    return token


def _quoted(value: str) -> str:
    # Header values are ASCII; anything else (and CR/LF, which could split the header) becomes
    # "?" before quoted-string escaping.
    safe = "".join(c if " " <= c <= "~" else "?" for c in value)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(
    resource_metadata_url: str | None,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
) -> str:
    """A `WWW-Authenticate` value per RFC 6750 section 3 and RFC 9728 section 5.1."""
    params: list[str] = []
    if resource_metadata_url:
        params.append(f"resource_metadata={_quoted(resource_metadata_url)}")
    if error:
        params.append(f"error={_quoted(error)}")
    if description:
        params.append(f"error_description={_quoted(description)}")
    if scope:
        params.append(f"scope={_quoted(scope)}")
    return "Bearer " + ", ".join(params) if params else "Bearer"
