"""Pure ASGI middleware: request logs with a last-resort error handler, and the body limit.

Pure ASGI rather than `BaseHTTPMiddleware` so that streamed responses pass through untouched
and the same code runs under uvicorn and under Mangum.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athenaeum.errors import (
    InvalidInputError,
    RequestTimeoutError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
)
from athenaeum.server.http.error_handlers import from_exception, internal_error

access_log = logging.getLogger("athenaeum.access")
error_log = logging.getLogger("athenaeum.error")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _request_id(scope: Scope) -> str:
    given = Headers(scope=scope).get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    context = scope.get("aws.context")
    aws_id = getattr(context, "aws_request_id", None)
    if isinstance(aws_id, str) and aws_id:
        return aws_id
    return uuid.uuid4().hex


# nginx's name for it: the client closed the connection before an answer was sent.
CLIENT_CLOSED_REQUEST = 499


class RequestLogMiddleware:
    """One JSON log line per request (id, method, route, status, latency); never headers,
    query strings or bodies, so tokens and keys cannot end up in logs. Also the last line of
    defence: an unexpected exception becomes a 500 in the error shape, never a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        response_started = False
        disconnected = False
        # HEAD is answered wherever GET is: the app runs the GET, the body is not sent.
        head = scope.get("method") == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}

        async def receive_wrapper() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            if disconnected:
                pass  # the client left mid-request: nothing to answer, nothing went wrong here
            else:
                error_log.exception("unhandled error in request %s", request_id)
                if not response_started:
                    await internal_error()(scope, receive, send_wrapper)
        finally:
            if disconnected and not response_started:
                status = CLIENT_CLOSED_REQUEST
            route = scope.get("route")
            principal = scope.get("state", {}).get("principal")
            access_log.info(
                json.dumps(
                    {
                        "event": "request",
                        "request_id": request_id,
                        "method": "HEAD" if head else scope.get("method"),
                        # The route template, not the path: it groups well and holds no ids.
                        "route": getattr(route, "path", None) or scope.get("path"),
                        "status": status,
                        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                        "principal": getattr(principal, "subject", None),
                    }
                )
            )


# The routes whose body is a JSON object (MCP refuses other bodies in its own transport's way).
JSON_BODY_PATHS = frozenset({"/search", "/v1/search", "/chat/completions", "/v1/chat/completions"})


def _not_json(scope: Scope) -> UnsupportedMediaTypeError:
    """The 415 for a body sent as something else than JSON; curl's `-d` sends a form unless
    told otherwise, so the message says how to tell it."""
    media = Headers(scope=scope).get("content-type", "").split(";")[0].strip() or "none"
    return UnsupportedMediaTypeError(
        f"the request body must be JSON, sent with Content-Type: application/json (this one "
        f"has Content-Type: {media}; with curl, add -H 'Content-Type: application/json')",
        param="Content-Type",
    )


def _is_json(scope: Scope) -> bool:
    media = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def utf8_problem(body: bytes) -> InvalidInputError | None:
    """None for a body that is UTF-8, else a 400 that names the field holding the first bad
    byte (found by decoding each bad byte to a lone surrogate and parsing), or the offset."""
    try:
        body.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        byte, offset = body[exc.start], exc.start
    where = f"byte 0x{byte:02x} at offset {offset} of the body"
    try:
        parsed = json.loads(body.decode("utf-8", "surrogateescape"))
    except ValueError:
        parsed = None
    path = _bad_string_path(parsed, []) if parsed is not None else None
    if path is None:
        return InvalidInputError(
            f"the request body is not valid UTF-8 ({where})", code="invalid_text"
        )
    field = ".".join(path) or "body"
    return InvalidInputError(
        f"{field} is not valid UTF-8 ({where})", param=field, code="invalid_text"
    )


def _bad_string_path(value: object, path: list[str]) -> list[str] | None:
    if isinstance(value, str):
        return path if any("\udc80" <= ch <= "\udcff" for ch in value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _bad_string_path(key, []) is not None:
                return [*path, key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")]
            found = _bad_string_path(item, [*path, key])
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _bad_string_path(item, [*path, str(index)])
            if found is not None:
                return found
    return None


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with a 413 before any handler parses them.

    The body is read here in full (it is at most `max_bytes`) and replayed to the app: a limit
    enforced while a handler reads would surface as FastAPI's generic 400 parsing error."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Each part of the body must arrive within `timeout_s`, and the whole body within
        # `deadline_s` of the first read: a client that stalls, or that trickles a byte just
        # within each part's timeout, would otherwise hold its connection for as long as it
        # likes.
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        deadline = None if self.deadline_s is None else time.monotonic() + self.deadline_s
        while more:
            wait, setting = self.timeout_s, "ATHENAEUM_BODY_TIMEOUT_S"
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                if wait is None or left < wait:
                    wait, setting = left, "ATHENAEUM_BODY_DEADLINE_S"
            try:
                with anyio.fail_after(wait):
                    message = await receive()
            except TimeoutError:
                if setting == "ATHENAEUM_BODY_DEADLINE_S":
                    message_text = (
                        f"the request body did not arrive within {self.deadline_s:g} s ({setting})"
                    )
                else:
                    message_text = (
                        f"the request body stopped: nothing more of it arrived within "
                        f"{self.timeout_s:g} s ({setting})"
                    )
                await from_exception(RequestTimeoutError(message_text), {"Connection": "close"})(
                    scope, receive, send
                )
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and scope.get("path", "") in JSON_BODY_PATHS and not _is_json(scope):
            await from_exception(_not_json(scope))(scope, receive, send)
            return
        if not scope.get("path", "").startswith("/mcp") and _is_json(scope):
            # The MCP transport answers a body it cannot decode with JSON-RPC's parse error.
            problem = utf8_problem(body)
            if problem is not None:
                await from_exception(problem)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = RequestTooLargeError(
            f"the request body is larger than the limit of {self.max_bytes} bytes"
        )
        await from_exception(exc, {"Connection": "close"})(scope, receive, send)
