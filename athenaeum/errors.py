"""Every error Athenaeum raises on purpose, and the one shape errors take on the wire.

Each class declares the HTTP status it maps to, its OpenAI error `type` and a default `code`.
The core raises them; the CLI prints their message (athenaeum.cli.main), the server turns them
into responses in exactly one place (athenaeum.server.http.error_handlers), and the API Gateway's
own responses use the same body (infra/gateway). The shape is OpenAI's:

    {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}

so the OpenAI SDK raises the matching exception (NotFoundError, AuthenticationError, ...).
"""

from __future__ import annotations

from collections.abc import Mapping

ErrorBody = dict[str, dict[str, str | None]]

# The `type` and default `code` of a status that no class of ours carries (a framework's 404 for
# an unknown route, a 405, a gateway response). docs/api.md tabulates the same.
STATUS_TYPES: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_token"),
    403: ("invalid_request_error", "insufficient_scope"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    408: ("invalid_request_error", "request_timeout"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    431: ("invalid_request_error", "request_header_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("api_error", "upstream_error"),
    503: ("server_error", "unavailable"),
}


def status_type(status: int) -> tuple[str, str | None]:
    """The `type` and `code` for a bare status: from STATUS_TYPES, else by its class."""
    known = STATUS_TYPES.get(status)
    if known is not None:
        return known
    return ("server_error" if status >= 500 else "invalid_request_error"), None


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> ErrorBody:
    """The one error shape; every error response and error event is built here."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


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

    @property
    def headers(self) -> dict[str, str]:
        """Response headers this error asks for (none by default)."""
        return {}

    def body(self) -> ErrorBody:
        return error_body(self.message, self.error_type, param=self.param, code=self.code)


# --- 4xx: the caller's request ---------------------------------------------------------------


class InvalidInputError(AthenaeumError):
    """The user gave input that cannot be used (a missing path, a bad option value)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_input"


class NotFoundError(AthenaeumError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class AccessDeniedError(AthenaeumError):
    """The credentials in use may not do what was asked of a storage service (S3 refused to list,
    read, write or delete), or there are none."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "access_denied"


class UntrustedHostError(AthenaeumError):
    """A request whose Host header the server will not put into the links it returns: no public
    URL is configured and the host is not one of the trusted ones."""

    status_code = 421
    error_type = "invalid_request_error"
    code = "untrusted_host"


class LinkRefusedError(AthenaeumError):
    """A source-file link whose signature is wrong (tampered with, or another server's) or
    whose time is up."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "invalid_link"


class RequestTimeoutError(AthenaeumError):
    """The client stopped sending its request body."""

    status_code = 408
    error_type = "invalid_request_error"
    code = "request_timeout"


class RequestTooLargeError(AthenaeumError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaTypeError(AthenaeumError):
    """A body the route reads as JSON, sent as something else (a form, plain text)."""

    status_code = 415
    error_type = "invalid_request_error"
    code = "unsupported_media_type"


class BearerError(AthenaeumError):
    """A refusal that carries an RFC 6750 challenge: `bearer_error` is its error code (None
    when the request had no bearer credentials at all, section 3.1: then none is sent)."""

    bearer_error: str | None = None
    required_scopes: tuple[str, ...] = ()


class AuthenticationError(BearerError):
    """The request carries no usable credentials: missing, malformed, expired or untrusted.

    The message is safe to show to clients: it never contains the token."""

    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_token"

    def __init__(self, message: str, *, bearer_error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.bearer_error = bearer_error


class InsufficientScopeError(BearerError):
    """The token is valid but lacks a scope this resource requires."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "insufficient_scope"
    bearer_error = "insufficient_scope"

    def __init__(self, message: str, *, required_scopes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.required_scopes = required_scopes


class GatewayRefusedError(AthenaeumError):
    """API Gateway refused the request before it reached the function (a 4xx of its own)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "gateway_error"


class UpstreamRateLimitError(AthenaeumError):
    """The generating model's upstream is rate limiting this server."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"


# --- 5xx: this server or what it depends on --------------------------------------------------


class UpstreamError(AthenaeumError):
    """The configured generating model failed or answered nonsense."""

    status_code = 502
    error_type = "api_error"
    code = "upstream_error"


class GatewayFailedError(AthenaeumError):
    """API Gateway could not complete the request (a 5xx of its own)."""

    status_code = 502
    error_type = "server_error"
    code = "gateway_error"


class ServiceUnavailableError(AthenaeumError):
    """Something this server needs is missing or unreachable; a later request may succeed
    (in `retry_after_s` seconds, when the error knows: a Retry-After header says so)."""

    status_code = 503
    error_type = "server_error"
    code = "unavailable"
    retry_after_s: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, self.retry_after_s))}


class MissingDependencyError(ServiceUnavailableError):
    """An optional dependency that this feature needs is not installed."""

    code = "missing_dependency"

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the Python package {module!r}, which is not installed; "
            f"install it with: uv sync --extra {extra}  (or: pip install 'athenaeum[{extra}]')"
        )


class BundleError(ServiceUnavailableError):
    """An index bundle is missing, corrupted, half-written or of an unsupported version."""

    code = "index_unavailable"


class VectorIndexUnavailableError(ServiceUnavailableError):
    """The Amazon S3 Vectors index answered with an error, throttled past the retries, or
    could not be reached."""

    code = "vector_index_unavailable"
    retry_after_s = 2


class AuthUnavailableError(ServiceUnavailableError):
    """Tokens cannot be checked right now (the issuer's JWKS is unreachable, or a new key id
    cannot be looked up yet); fail closed, and say when to try again."""

    code = "auth_unavailable"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SigningKeyPendingError(AuthUnavailableError):
    """The token names a signing key we do not hold, and the issuer's keys were fetched too
    recently to fetch them again yet: not an outage, so not alarmed on."""


class AuthNotConfiguredError(ServiceUnavailableError):
    """The server runs without any credential check configured and was not told to run open."""

    code = "auth_not_configured"


class UpstreamUnavailableError(ServiceUnavailableError):
    """The generating model's upstream is unreachable or timed out."""

    error_type = "api_error"
    code = "upstream_unavailable"


class LLMKeyUnavailableError(ServiceUnavailableError):
    """The generating model's API key could not be read from Secrets Manager."""

    code = "llm_key_unavailable"


class LinkSecretUnavailableError(ServiceUnavailableError):
    """The key that signs links to source files could not be read from Secrets Manager."""

    code = "link_secret_unavailable"
