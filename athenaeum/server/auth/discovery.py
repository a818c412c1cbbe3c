"""OAuth discovery (RFC 9728): the protected-resource metadata that tells a client which
authorization server issues tokens for this API, and where it is served."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def protected_resource_metadata(
    resource: str, issuer: str, scopes: Sequence[str]
) -> dict[str, Any]:
    """The RFC 9728 document served at /.well-known/oauth-protected-resource."""
    return {
        "resource": resource,
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(scopes),
    }
