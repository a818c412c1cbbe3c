"""`athenaeum serve`'s connection handling, over raw sockets against a real uvicorn configured as
the command configures it: what uvicorn answers by itself is in the API's error shape, and a
request head has a deadline."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings

GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _response(sock: socket.socket, wait_s: float) -> tuple[bytes, float]:
    """One whole response (head and a Content-Length body) or what came before EOF or
    `wait_s`, and the seconds until its first byte."""
    sock.settimeout(wait_s)
    started = time.monotonic()
    first: float | None = None
    data = b""
    try:
        while True:
            if b"\r\n\r\n" in data:
                head, _, body = data.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(body) >= length[0]:
                    break
            chunk = sock.recv(65536)
            if not chunk:
                break
            first = first or time.monotonic()
            data += chunk
    except TimeoutError:
        pass
    return data, (first or time.monotonic()) - started


def _error(answer: bytes) -> tuple[int, dict[str, Any], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)["error"], head


@pytest.fixture
def serve(
    scifact_engine: SearchEngine, live_server: Callable[..., Any]
) -> Callable[..., tuple[str, int]]:
    def start(**overrides: Any) -> tuple[str, int]:
        settings = Settings(insecure_no_auth=True, **overrides)
        server = live_server(create_app(settings, FixedEngineProvider(scifact_engine)), settings)
        return "127.0.0.1", server.port

    return start


def test_requests_uvicorn_cannot_parse_get_400_in_the_error_shape(
    serve: Callable[..., tuple[str, int]],
) -> None:
    address = serve()
    for request, detail in [
        (b"GARBAGE\r\n\r\n", b""),
        (b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", b"Content-Length"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n", b""),
        # Both framings (RFC 9112, 6.3): answered at once, not held open waiting for chunks.
        (
            b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 17\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'{"query": "cell"}',
            b"both Content-Length and Transfer-Encoding",
        ),
    ]:
        with socket.create_connection(address) as sock:
            sock.sendall(request)
            answer, _ = _response(sock, 5)
        status, error, head = _error(answer)
        assert status == 400, answer
        assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request"
        assert error["message"].startswith("the request is not valid HTTP/1.1"), error
        assert detail.decode() in error["message"]
        assert b"connection: close" in head.lower()


def test_a_request_head_over_the_limit_is_a_431_naming_the_limit(
    serve: Callable[..., tuple[str, int]],
) -> None:
    address = serve(max_header_bytes=4096)
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        answer, _ = _response(sock, 5)
    status, error, _ = _error(answer)
    assert status == 431
    assert "larger than 4,096 bytes" in error["message"]
    assert "ATHENAEUM_MAX_HEADER_BYTES" in error["message"]
    # A head within the limit is served as before.
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
        answer, _ = _response(sock, 5)
    assert answer.startswith(b"HTTP/1.1 200")


def test_a_head_that_does_not_arrive_in_time_is_a_408_and_the_connection_closes(
    serve: Callable[..., tuple[str, int]],
) -> None:
    address = serve(header_timeout_s=1.0)
    # Nothing sent at all.
    with socket.create_connection(address) as sock:
        answer, took = _response(sock, 5)
        status, error, _ = _error(answer)
        assert status == 408 and error["code"] == "request_timeout"
        assert "within 1 s" in error["message"] and 0.9 < took < 3
        assert sock.recv(10) == b""  # closed
    # A head trickled a byte every 0.2 s never finishes within the deadline.
    with socket.create_connection(address) as sock:
        started = time.monotonic()
        answer = b""
        sock.settimeout(0.2)
        for byte in GET_HEALTH[:-2]:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            try:
                if chunk := sock.recv(4096):
                    answer += chunk
                    break
            except TimeoutError:
                continue
        answer += _response(sock, 3)[0]
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 3


def test_the_head_deadline_counts_from_each_request_not_from_the_idle_time_before_it(
    serve: Callable[..., tuple[str, int]],
) -> None:
    address = serve(header_timeout_s=1.0, keep_alive_s=30)
    with socket.create_connection(address) as sock:
        sock.sendall(GET_HEALTH)
        assert _response(sock, 5)[0].startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # idle on a kept-alive connection: longer than the head deadline
        sock.sendall(GET_HEALTH)
        assert _response(sock, 5)[0].startswith(b"HTTP/1.1 200")
        # The next head starts and stops: 408 about a second later.
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        answer, took = _response(sock, 5)
        assert answer.startswith(b"HTTP/1.1 408") and 0.9 < took < 3, (answer, took)


def test_connections_over_the_limit_get_a_503_with_retry_after_in_the_error_shape(
    serve: Callable[..., tuple[str, int]],
) -> None:
    address = serve(max_connections=3)
    held = [socket.create_connection(address) for _ in range(3)]
    try:
        time.sleep(0.2)  # the server has accepted them
        with socket.create_connection(address) as sock:
            sock.sendall(GET_HEALTH)
            answer, _ = _response(sock, 5)
        status, error, head = _error(answer)
        assert status == 503 and error["code"] == "unavailable"
        assert "more than 3 open connections" in error["message"]
        assert b"retry-after: 1" in head.lower()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    with socket.create_connection(address) as sock:
        sock.sendall(GET_HEALTH)
        assert _response(sock, 5)[0].startswith(b"HTTP/1.1 200")


def _worker_threads() -> int:
    import threading

    return sum(t.name == "AnyIO worker thread" for t in threading.enumerate())


@pytest.mark.parametrize("threads", [2])
def test_concurrent_requests_share_the_configured_worker_threads(
    scifact_engine: SearchEngine, live_server: Callable[..., Any], threads: int
) -> None:
    """Thirty-two searches at once run on at most `worker_threads` threads (anyio's default
    would start one per request, up to 40); every one is answered."""
    import concurrent.futures

    import httpx

    settings = Settings(insecure_no_auth=True, worker_threads=threads)
    server = live_server(create_app(settings, FixedEngineProvider(scifact_engine)), settings)
    before = _worker_threads()

    def search(i: int) -> int:
        r = httpx.post(
            f"{server.url}/search", json={"query": f"vitamin D deficiency {i}"}, timeout=30
        )
        return r.status_code

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(search, range(64)))
    assert statuses == [200] * 64
    assert 1 <= _worker_threads() - before <= threads


def test_bodies_trickled_by_fifty_clients_are_all_cut_off_at_the_body_deadline(
    scifact_engine: SearchEngine, live_server: Callable[..., Any]
) -> None:
    """Fifty authenticated clients send a body a byte at a time, each byte well within the
    per-part timeout: each gets a 408 naming the deadline once the whole body's deadline has
    passed, and then the end of the connection (not a reset); meanwhile a search is answered."""
    import selectors

    import httpx

    from athenaeum.server.auth.keys import hash_api_key

    key = "ath-" + "trickle-key-Vb73"
    deadline_s = 1.5
    settings = Settings(
        api_key_hashes=[hash_api_key(key)], body_timeout_s=1.0, body_deadline_s=deadline_s
    )
    server = live_server(create_app(settings, FixedEngineProvider(scifact_engine)), settings)
    body = b'{"query": "' + b"a" * 2000 + b'"}'
    head = (
        "POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    selector = selectors.DefaultSelector()
    clients: dict[socket.socket, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(head)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            clients[sock] = {"sent": 0, "answer": b"", "eof": None, "at": None}
        searched: int | None = None
        next_byte = time.monotonic()
        # Stops by itself: at the latest 4 s after the deadline.
        while time.monotonic() - started < deadline_s + 4 and any(
            c["eof"] is None for c in clients.values()
        ):
            if time.monotonic() >= next_byte:
                next_byte += 0.25  # a byte every quarter second: never stalls for 1 s
                for sock, c in clients.items():
                    if c["answer"] == b"" and c["sent"] < len(body):
                        try:
                            sock.send(body[c["sent"] : c["sent"] + 1])
                            c["sent"] += 1
                        except OSError:
                            pass
            if searched is None and time.monotonic() - started > deadline_s / 3:
                r = httpx.post(
                    f"{server.url}/search",
                    json={"query": "vitamin D"},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=deadline_s,
                )
                searched = r.status_code
                assert time.monotonic() - started < deadline_s  # answered while they trickle
            for ready, _ in selector.select(timeout=0.05):
                sock = ready.fileobj
                assert isinstance(sock, socket.socket)
                c = clients[sock]
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data, c["eof"] = b"", "reset"
                if data:
                    c["answer"] += data
                    c["at"] = c["at"] or time.monotonic() - started
                else:
                    c["eof"] = c["eof"] or "closed"
                    selector.unregister(sock)
    finally:
        for sock in clients:
            sock.close()
    assert searched == 200
    answers = list(clients.values())
    assert all(c["eof"] == "closed" for c in answers), {c["eof"] for c in answers}
    for c in answers:
        status, error, head_bytes = _error(c["answer"])
        assert status == 408 and error["code"] == "request_timeout", c["answer"]
        assert "ATHENAEUM_BODY_DEADLINE_S" in error["message"]
        assert b"connection: close" in head_bytes.lower()
        assert deadline_s - 0.1 < c["at"] < deadline_s + 2, c["at"]
        assert c["sent"] < len(body)
