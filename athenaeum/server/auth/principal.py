"""Who made a request, once their credentials were verified: the principal every way of
authenticating (JWT, API key, API Gateway's authorizer) produces, and the scope names it holds."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

# RFC 6749 section 3.3 scope-token.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request, after their credentials were verified."""

    subject: str
    scopes: frozenset[str]
    client_id: str | None
    issuer: str
    audience: tuple[str, ...]
    expires_at: datetime | None
    # What an access policy grants collections to (athenaeum.server.auth.groups): a token's
    # groups claim, an API key's groups, or the authorizer's context on AWS.
    groups: tuple[str, ...] = ()
    # repr=False: claims may carry personal data that has no place in a log line.
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scope names, from a list or one space-separated string; ValueError for any name that
    RFC 6749 would refuse."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    result = tuple(scopes)
    bad = [s for s in result if not isinstance(s, str) or not _SCOPE_TOKEN.fullmatch(s)]
    if bad:
        raise ValueError(f"invalid OAuth scope name(s): {bad!r}")
    return result
