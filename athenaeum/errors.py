"""Domain errors. Each carries the HTTP status and OpenAI error type it maps to.

The core raises these; the CLI prints them and the server (one handler) turns them into
`{"error": {"message", "type", "param", "code"}}` responses.
"""

from __future__ import annotations


class AthenaeumError(Exception):
    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidInputError(AthenaeumError):
    """The user gave input that cannot be used (a missing path, a bad option value)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_input"


class MissingDependencyError(AthenaeumError):
    """An optional dependency that this feature needs is not installed."""

    status_code = 503
    error_type = "server_error"
    code = "missing_dependency"

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the Python package {module!r}, which is not installed; "
            f"install it with: uv sync --extra {extra}  (or: pip install 'athenaeum[{extra}]')"
        )


class BundleError(AthenaeumError):
    """An index bundle is missing, corrupted, half-written or of an unsupported version."""

    status_code = 503
    error_type = "server_error"
    code = "index_unavailable"


class NotFoundError(AthenaeumError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class AuthenticationError(AthenaeumError):
    """The request carries no usable credentials: missing, malformed, expired or untrusted.

    The message is safe to show to clients: it never contains the token. `bearer_error` is the
    RFC 6750 error code for the WWW-Authenticate header; None when the request had no bearer
    credentials at all (RFC 6750 section 3.1: then no error code is sent).
    """

    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_token"

    def __init__(self, message: str, *, bearer_error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.bearer_error = bearer_error


class InsufficientScopeError(AthenaeumError):
    """The token is valid but lacks a scope this resource requires."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "insufficient_scope"
    bearer_error = "insufficient_scope"

    def __init__(self, message: str, *, required_scopes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.required_scopes = required_scopes


class AuthUnavailableError(AthenaeumError):
    """Tokens cannot be checked right now (the issuer's JWKS is unreachable); fail closed."""

    status_code = 503
    error_type = "server_error"
    code = "auth_unavailable"
