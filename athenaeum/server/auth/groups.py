"""The caller's groups: what an access policy (athenaeum.server.access) grants collections to.

A JWT carries them in the claim that ATHENAEUM_ACCESS_CLAIM names: `groups` (Okta, Auth0 with a
rule, Entra ID), `cognito:groups` (Amazon Cognito), `roles` (Entra ID app roles), `scope` or
`scp` (OAuth scopes), or a nested claim by its dotted path (`realm_access.roles`, Keycloak). An
API key carries the groups it was created with (`athenaeum keys create --group`). Behind API
Gateway the TOKEN authorizer puts them in its context as a JSON list, which the function reads
back (athenaeum.server.auth.middleware.principal_from_authorizer).

Free of the web stack and of the bundle: the authorizer imports it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

# What one caller may carry: an API Gateway authorizer's context is small, and a token with more
# groups than this is not one a policy was written for.
MAX_GROUPS = 256
MAX_GROUP_CHARS = 256
# The authorizer context's key for the groups, a JSON list (context values must be scalars).
CONTEXT_KEY = "groups"


def check_groups(groups: Iterable[object], where: str) -> tuple[str, ...]:
    """Group names as given (each non-empty text without control characters), in order, once
    each; ValueError naming `where` otherwise."""
    names: list[str] = []
    for group in groups:
        if (
            not isinstance(group, str)
            or not group.strip()
            or len(group) > MAX_GROUP_CHARS
            or not group.isprintable()
        ):
            raise ValueError(
                f"{where}: a group is 1 to {MAX_GROUP_CHARS} printable characters, got {group!r}"
            )
        names.append(group)
    unique = tuple(dict.fromkeys(names))
    if len(unique) > MAX_GROUPS:
        raise ValueError(f"{where}: more than {MAX_GROUPS} groups")
    return unique


def claim_value(claims: Mapping[str, Any], claim: str) -> Any:
    """The claim named `claim`: by its name as it is (namespaced claims such as
    `https://example.com/groups` hold dots), else by its dotted path through nested objects."""
    if claim in claims:
        return claims[claim]
    value: Any = claims
    for part in claim.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def groups_from_claims(claims: Mapping[str, Any], claim: str | None) -> tuple[str, ...]:
    """The groups a token's `claim` holds: a list of names, or one string of names separated by
    spaces (as OAuth's `scope`). A claim that is missing, or of another shape, holds none: the
    caller then reads what every authenticated caller reads, never more."""
    if not claim:
        return ()
    value = claim_value(claims, claim)
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[object] = list(value.split())
    elif isinstance(value, list):
        items = [item for item in value if isinstance(item, str) and item.strip()]
    else:
        logger.warning("the claim %r holds no list of groups: the caller gets none", claim)
        return ()
    items = [item for item in items if isinstance(item, str) and len(item) <= MAX_GROUP_CHARS]
    return tuple(dict.fromkeys(str(i) for i in items))[:MAX_GROUPS]


def context_groups(groups: tuple[str, ...]) -> str:
    """The groups as the authorizer's context carries them."""
    return json.dumps(list(groups), ensure_ascii=False, separators=(",", ":"))


def groups_from_context(value: object) -> tuple[str, ...]:
    """The groups the authorizer's context holds (a JSON list in a string; an HTTP API's
    Lambda authorizer may pass the list itself); anything else holds none, and is logged, as
    only this project's authorizer writes it."""
    if value is None or value == "":
        return ()
    try:
        items = json.loads(value) if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError("not a list")
        return check_groups(items, "the authorizer's groups")
    except ValueError as exc:
        logger.error("the authorizer's context has malformed groups (%s): none are used", exc)
        return ()
