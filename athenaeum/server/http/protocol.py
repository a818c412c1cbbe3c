"""`athenaeum serve`'s HTTP/1.1 connection: uvicorn's h11 protocol with the answers it gives by
itself brought into the API's error shape, and a deadline for the request head.

uvicorn answers some requests before the app sees them: a request it cannot parse (a malformed
request line, a bad Content-Length; here also one with both Content-Length and
Transfer-Encoding) or whose head is too large gets a plain-text 400, and a
connection over the concurrency limit a plain-text 503. Here each is a JSON error in the one
shape every other error has (a head that is too large is a 431, as RFC 6585 says), so a client
parses every error the same way.

uvicorn also has no deadline for the request head: a client that opens a connection and sends
nothing, or its head a byte at a time, holds the connection for as long as it likes. Here the
whole head must arrive within `header_timeout_s` of the connection opening, or of the first
byte of the next request on a kept-alive connection; otherwise the answer is a 408 and the
connection is closed. (The body has its own deadlines, applied by the app; an idle kept-alive
connection is closed after `keep_alive_s` by uvicorn.)

An answer given before the client has sent its whole body (a 408 for a body too slow, a 413, a
401 to a request that announced a body) closes the connection gracefully: the answer, then the
end of the write side, then a short grace period in which what the client still sends is
dropped, instead of a close that would reset the connection under the answer.

Imported only by `athenaeum serve`: the Lambda function has no uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from athenaeum.errors import error_body, status_type

logger = logging.getLogger("athenaeum.api")

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def error_bytes(status: int, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 error response in the API's error shape, closing the connection."""
    error_type, code = status_type(status)
    body = json.dumps(error_body(message, error_type, code=code)).encode()
    lines = [
        b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Error")),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *(f"{name}: {value}".encode("latin-1") for name, value in (headers or {}).items()),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Connection(h11.Connection):
    """h11's connection, keeping the parse error that uvicorn turns into its 400, and refusing
    a request head over `max_head` bytes however it arrived (h11 limits only what it buffers of
    a head still incomplete, so a large head sent at once would pass)."""

    last_error: h11.RemoteProtocolError | None = None

    def __init__(self, max_head: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head)
        self.max_head = max_head

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                if _head_size(event) > self.max_head:
                    raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
                names = {name for name, _ in event.headers}
                if {b"content-length", b"transfer-encoding"} <= names:
                    # h11 would frame the body by Transfer-Encoding and wait for chunks that a
                    # client framing it by Content-Length never sends. RFC 9112 section 6.3: such
                    # a message may be an attempt at request smuggling; a server may reject it.
                    raise h11.RemoteProtocolError(
                        "a request may not carry both Content-Length and Transfer-Encoding "
                        "(RFC 9112, section 6.3)"
                    )
            return event
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise


def _head_size(request: h11.Request) -> int:
    """The request head's size as sent: request line, header lines, the blank line."""
    line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
    return line + sum(len(k) + len(v) + 4 for k, v in request.headers.raw_items()) + 2


# How long a connection answered before its request was in stays open to read what the client
# still sends.
LINGER_S = 2.0


class _Transport:
    """The connection's transport as uvicorn's request cycle sees it: a close while the client
    is still sending its body becomes the protocol's graceful close."""

    def __init__(self, protocol: AthenaeumH11Protocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport

    def close(self) -> None:
        if self._protocol.conn.their_state is h11.SEND_BODY:
            self._protocol.close_after_answer()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class AthenaeumH11Protocol(H11Protocol):
    """See the module docstring. Built by uvicorn once per connection."""

    header_timeout_s: float = 10.0
    max_header_bytes: int = 16_384

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(self.max_header_bytes)
        # The concurrency limit is checked here, so that its 503 is in the error shape.
        self._limit = self.limit_concurrency
        self.limit_concurrency = None
        self._inner_app = self.app
        self.app = self._limited_app
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    # --- the head's deadline -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._raw_transport = transport
        self.transport = _Transport(self, transport)  # type: ignore[assignment]
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the 408 is written; what the client sent before it saw it is dropped
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first byte of the next request on this connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_timer()  # the head is in (or the connection is done)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.our_state is not h11.IDLE:
            return  # a response is still being written; its own end closes or re-arms
        message = (
            f"the request head did not arrive within {self.header_timeout_s:g} s "
            "(ATHENAEUM_HEADER_TIMEOUT_S)"
        )
        logger.info("closing a connection: %s", message)
        self.transport.write(error_bytes(408, message))
        self.close_after_answer()

    def close_after_answer(self) -> None:
        # A close with unread bytes in the socket (a client still trickling its head) is a
        # reset, which can discard the 408 from the client's buffer before it reads it. So the
        # write side ends first (the 408, then EOF) and the connection closes after a grace
        # period in which anything more the client sends is read and dropped.
        transport = self._raw_transport
        if self._lingering or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        transport.write_eof()
        self.loop.call_later(LINGER_S, transport.close)

    # --- uvicorn's own answers, in the error shape ---------------------------------------------

    def send_400_response(self, msg: str) -> None:
        error = self.conn.last_error if isinstance(self.conn, _Connection) else None
        status = 431 if error is not None and error.error_status_hint == 431 else 400
        if status == 431:
            message = (
                f"the request head is larger than {self.max_header_bytes:,} bytes "
                "(ATHENAEUM_MAX_HEADER_BYTES)"
            )
        else:
            detail = str(error) if error is not None and str(error) else "malformed request"
            message = f"the request is not valid HTTP/1.1: {detail}"
        self._disarm_head_timer()
        self.transport.write(error_bytes(status, message))
        self.transport.close()

    async def _limited_app(self, scope: Any, receive: Any, send: Any) -> None:
        # This request's own connection and task are already counted.
        if self._limit is not None and (
            len(self.connections) > self._limit or len(self.tasks) > self._limit
        ):
            logger.warning("refused a request: more than %d open connections", self._limit)
            await _send_error(
                send,
                503,
                f"the server has more than {self._limit} open connections; retry shortly",
                {"retry-after": "1"},
            )
            return
        await self._inner_app(scope, receive, send)


async def _send_error(send: Any, status: int, message: str, headers: dict[str, str]) -> None:
    error_type, code = status_type(status)
    body = json.dumps(error_body(message, error_type, code=code)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *((k.encode(), v.encode()) for k, v in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def protocol_class(*, header_timeout_s: float, max_header_bytes: int) -> type[H11Protocol]:
    """The protocol class for uvicorn's `http` option, with these limits."""
    return type(
        "AthenaeumH11Protocol",
        (AthenaeumH11Protocol,),
        {"header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes},
    )
