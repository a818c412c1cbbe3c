"""The one place where an exception becomes an HTTP response.

Every error leaves the server as OpenAI's shape, `{"error": {"message", "type", "param",
"code"}}`, with the status its class carries, so the OpenAI SDK raises the matching exception
(NotFoundError, AuthenticationError, ...) and no client ever sees a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from athenaeum.errors import AthenaeumError, error_body, status_type

logger = logging.getLogger("athenaeum.api")


def error_response(
    status: int,
    message: str,
    error_type: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, error_type, param=param, code=code),
        status_code=status,
        headers=dict(headers or {}),
    )


def status_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error response for a bare status (no exception of ours), typed by STATUS_TYPES."""
    error_type, code = status_type(status)
    return error_response(status, message, error_type, code=code, headers=headers)


def from_exception(exc: AthenaeumError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        exc.body(), status_code=exc.status_code, headers={**exc.headers, **(headers or {})}
    )


def internal_error() -> JSONResponse:
    return status_response(500, "the server hit an unexpected error; it has been logged")


def _validation_param(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    # loc is ("body", "messages", 0, "role"); the first element says where, not what.
    loc = [str(part) for part in first.get("loc", ())[1:]]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid value"))
    if param:
        message = f"{param}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem(s))"
    return message, param


async def _athenaeum_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AthenaeumError)
    if exc.status_code >= 500:
        logger.warning("request failed: %s", exc.message)
    return from_exception(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, param = _validation_param(exc)
    return error_response(400, message, "invalid_request_error", param=param, code="invalid_value")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return status_response(exc.status_code, message, exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(AthenaeumError, _athenaeum_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
