"""The app in-process and under a live uvicorn: endpoints, the one error shape, limits, logs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from athenaeum.cli.main import app as cli_app
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import EngineProvider, FixedEngineProvider, Served
from athenaeum.server.local import is_loopback
from athenaeum.server.settings import Settings
from tests.server.helpers import LOCAL_URL, assert_error

QUERY = "vitamin D deficiency and bone health"


def test_health_reports_the_index(client: TestClient, scifact_engine: SearchEngine) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["index"]["chunks"] == scifact_engine.facts.chunks == 300
    assert body["index"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "bundle_path" not in json.dumps(body)  # no server paths
    assert body["models"] == ["athenaeum-index-retrieval"]


@pytest.mark.parametrize("path", ["/models", "/v1/models"])
def test_models_in_openai_list_format(client: TestClient, path: str) -> None:
    body = client.get(path).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["athenaeum-index-retrieval"]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in body["data"])


@pytest.mark.parametrize("path", ["/search", "/v1/search"])
def test_search_returns_cited_passages(
    client: TestClient, scifact_engine: SearchEngine, path: str
) -> None:
    r = client.post(path, json={"query": QUERY, "top_k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["mode"] == "hybrid" and len(body["results"]) == 3
    expected = [x.chunk.id for x in scifact_engine.search(QUERY, top_k=3)]
    assert [x["id"] for x in body["results"]] == expected
    first = body["results"][0]
    assert set(first) == {
        "id",
        "text",
        "score",
        "source",
        "title",
        "page_start",
        "page_end",
        "location",
        "heading_path",
        "url",
        "source_url",
    }
    assert first["location"] == f"p. {first['page_start']}"  # where it is, as cited
    # The SciFact slice was not converted from files: nothing to link to, never a broken link.
    assert first["source_url"] is None
    assert first["url"] == f"{LOCAL_URL}/chunks/{quote(first['id'], safe='')}"
    assert "vitamin d" in first["text"].lower()


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_search_modes(client: TestClient, scifact_engine: SearchEngine, mode: str) -> None:
    body = client.post("/search", json={"query": QUERY, "top_k": 4, "mode": mode}).json()
    assert [x["id"] for x in body["results"]] == [
        r.chunk.id for r in scifact_engine.search(QUERY, top_k=4, mode=mode)
    ]


def test_chunk_by_id_resolves_search_results(client: TestClient) -> None:
    hit = client.post("/search", json={"query": QUERY, "top_k": 1}).json()["results"][0]
    # The citation URL itself must resolve: the id holds "#", which only works escaped.
    r = client.get(hit["url"])
    assert r.status_code == 200
    chunk = r.json()
    assert chunk["id"] == hit["id"] and chunk["text"] == hit["text"]
    assert chunk["doc_id"] and chunk["ordinal"] == 0


def test_public_base_url_is_used_for_links(scifact_engine: SearchEngine) -> None:
    settings = Settings(insecure_no_auth=True, public_base_url="https://library.example.org/prod/")
    c = TestClient(create_app(settings, FixedEngineProvider(scifact_engine)))
    hit = c.post("/search", json={"query": QUERY, "top_k": 1}).json()["results"][0]
    assert hit["url"].startswith("https://library.example.org/prod/chunks/")


def test_every_error_path_uses_the_one_error_shape(
    client: TestClient, scifact_engine: SearchEngine, tmp_path: Path
) -> None:
    e = assert_error(client.post("/search", json={"query": ""}), 400, "invalid_value")
    assert e["param"] == "query" and e["type"] == "invalid_request_error"
    assert assert_error(client.post("/search", json={"query": "   "}), 400)["param"] == "query"
    assert assert_error(client.post("/search", json={"query": "x", "top_k": 0}), 400)["param"] == (
        "top_k"
    )
    assert assert_error(client.post("/search", json={"query": "x", "top_k": 51}), 400)
    assert assert_error(client.post("/search", json={"query": "x", "mode": "fuzzy"}), 400)[
        "param"
    ] == ("mode")
    assert assert_error(client.post("/search", json={"query": "x" * 2001}), 400)["param"] == "query"
    assert assert_error(client.post("/search", json={"q": "x"}), 400)
    assert assert_error(
        client.post("/search", content=b"{not json", headers={"content-type": "application/json"}),
        400,
    )
    assert assert_error(client.post("/search"), 400)
    assert assert_error(client.get("/chunks/no-such-chunk"), 404, "not_found")["param"] == "id"
    assert assert_error(client.get("/no/such/route"), 404, "not_found")
    assert assert_error(client.put("/search", json={}), 405, "method_not_allowed")
    big = json.dumps({"query": "x" * 1_100_000}).encode()
    assert assert_error(
        client.post("/search", content=big, headers={"content-type": "application/json"}),
        413,
        "request_too_large",
    )
    chat = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
    assert assert_error(client.post("/chat/completions", json=chat), 404, "model_not_found")[
        "param"
    ] == ("model")
    chat = {"model": "athenaeum-index-retrieval", "messages": [{"role": "system", "content": "x"}]}
    assert assert_error(client.post("/v1/chat/completions", json=chat), 400)["param"] == "messages"
    assert assert_error(
        client.post("/v1/chat/completions", json={"model": "athenaeum-index-retrieval"}), 400
    )
    # OAuth metadata without OAuth configured.
    assert assert_error(client.get("/.well-known/oauth-protected-resource"), 404)

    # An index that cannot be loaded is a 503 naming the problem, for every route that needs it.
    broken = TestClient(create_app(Settings(insecure_no_auth=True, index_dir=tmp_path / "missing")))
    e = assert_error(broken.post("/search", json={"query": "x"}), 503, "index_unavailable")
    assert "does not exist" in e["message"]
    assert_error(broken.get("/health"), 503, "index_unavailable")
    no_index = TestClient(create_app(Settings(insecure_no_auth=True)))
    assert "ATHENAEUM_INDEX_DIR" in assert_error(no_index.get("/health"), 503)["message"]

    # No auth configured and not explicitly insecure: refuse to serve anything but /health.
    closed = TestClient(create_app(Settings(), FixedEngineProvider(scifact_engine)))
    assert_error(closed.post("/search", json={"query": "x"}), 503, "auth_not_configured")

    # An unexpected bug is a 500 in the same shape, never a traceback.
    class Exploding(FixedEngineProvider):
        def ready(self) -> Served | None:
            return None

        def current(self) -> Served:
            raise RuntimeError("secret internal detail")

    exploding = TestClient(create_app(Settings(insecure_no_auth=True), Exploding(scifact_engine)))
    e = assert_error(exploding.post("/search", json={"query": "x"}), 500, "internal_error")
    assert "secret internal detail" not in e["message"]


def test_a_query_over_the_limit_is_a_400_naming_the_query(scifact_engine: SearchEngine) -> None:
    c = TestClient(
        create_app(
            Settings(insecure_no_auth=True, max_query_chars=20), FixedEngineProvider(scifact_engine)
        )
    )
    e = assert_error(c.post("/search", json={"query": "vitamin D " * 3}), 400, "invalid_input")
    assert e["param"] == "query" and e["message"] == (
        "query is 30 characters long; the limit is 20"
    )
    # The limit itself is allowed, whatever the mode.
    for mode in ("hybrid", "dense", "bm25"):
        r = c.post("/search", json={"query": "vitamin D deficiency", "mode": mode})
        assert r.status_code == 200, r.text


def test_failed_load_is_retried_on_the_next_request(scifact_bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    c = TestClient(create_app(Settings(insecure_no_auth=True, index_dir=target)))
    assert c.get("/health").status_code == 503
    shutil.copytree(scifact_bundle, target)
    assert c.get("/health").status_code == 200
    assert c.post("/search", json={"query": QUERY}).status_code == 200


def test_engine_is_loaded_once_per_process(scifact_bundle: Path, monkeypatch: Any) -> None:
    calls: list[Path] = []
    real = SearchEngine.load

    def counting(path: Path, **kw: Any) -> SearchEngine:
        calls.append(path)
        return real(path, **kw)

    monkeypatch.setattr(SearchEngine, "load", staticmethod(counting))
    provider = EngineProvider(Settings(index_dir=scifact_bundle))
    c = TestClient(create_app(Settings(insecure_no_auth=True), provider))
    for _ in range(3):
        assert c.post("/search", json={"query": QUERY}).status_code == 200
    assert len(calls) == 1


def test_request_logs_are_json_without_secrets(
    scifact_engine: SearchEngine, caplog: pytest.LogCaptureFixture
) -> None:
    from athenaeum.server.auth.keys import hash_api_key

    key = "k3y-" + "a1b2c3d4e5f6g7h8i9j0"
    settings = Settings(api_key_hashes=[hash_api_key(key)])
    c = TestClient(create_app(settings, FixedEngineProvider(scifact_engine)))
    with caplog.at_level(logging.INFO, logger="athenaeum.access"):
        r = c.post(
            "/search?debug=" + key,
            json={"query": QUERY},
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "req-123"},
        )
        c.get("/chunks/nothing-here", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-123"
    lines = [
        json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "athenaeum.access"
    ]
    assert lines[0]["request_id"] == "req-123"
    assert lines[0]["route"] == "/search" and lines[0]["status"] == 200
    assert lines[0]["latency_ms"] >= 0 and lines[0]["method"] == "POST"
    assert lines[1]["route"] == "/chunks/{chunk_id:path}" and lines[1]["status"] == 404
    assert key not in caplog.text and "Bearer" not in caplog.text


def test_cors_is_off_by_default_and_configurable(scifact_engine: SearchEngine) -> None:
    origin = {"Origin": "https://chat.example.com"}
    off = TestClient(
        create_app(Settings(insecure_no_auth=True), FixedEngineProvider(scifact_engine))
    )
    assert "access-control-allow-origin" not in off.get("/health", headers=origin).headers
    on = TestClient(
        create_app(
            Settings(insecure_no_auth=True, cors_origins="https://chat.example.com"),  # type: ignore[arg-type]
            FixedEngineProvider(scifact_engine),
        )
    )
    r = on.options("/search", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://chat.example.com"
    other = on.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_live_uvicorn_serves_the_app(
    scifact_engine: SearchEngine, live_server: Callable[[Any], Any]
) -> None:
    server = live_server(
        create_app(Settings(insecure_no_auth=True), FixedEngineProvider(scifact_engine))
    )
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/health").json()["index"]["chunks"] == 300
        hit = http.post("/search", json={"query": QUERY, "top_k": 1}).json()["results"][0]
        assert hit["url"].startswith(server.url + "/chunks/")
        assert http.get(hit["url"]).json()["id"] == hit["id"]
        assert_error(http.post("/search", json={"query": ""}), 400)


# --- `athenaeum serve` -----------------------------------------------------------------------


def test_loopback_detection() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.4", "example.org"))


def test_serve_refuses_a_public_host_without_auth(scifact_bundle: Path, monkeypatch: Any) -> None:
    for name in list(os.environ):
        if name.startswith("ATHENAEUM_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(
        cli_app, ["serve", "--index", str(scifact_bundle), "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2
    assert "--insecure-no-auth" in result.output
    assert "Traceback" not in result.output


def test_serve_reports_a_bad_bundle(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--index", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in " ".join(result.output.split())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow
def test_athenaeum_serve_command_end_to_end(scifact_bundle: Path, tmp_path: Path) -> None:
    """`athenaeum keys create` then `athenaeum serve`, with no further setting: the key is
    required and accepted, and a revoked one is refused at once, without a restart."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATHENAEUM_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    cli_env = {"XDG_CONFIG_HOME": env["XDG_CONFIG_HOME"]}
    made = CliRunner().invoke(cli_app, ["keys", "create", "laptop"], env=cli_env)
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from athenaeum.cli.main import main; main()",
            "serve",
            "--index",
            str(scifact_bundle),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stdout.read() if proc.stdout else "") from None
                time.sleep(0.2)
        assert r.status_code == 200
        url = f"http://127.0.0.1:{port}/search"
        body = {"query": QUERY, "top_k": 2}
        assert httpx.post(url, json=body).status_code == 401
        bearer = {"Authorization": f"Bearer {key}"}
        r = httpx.post(url, json=body, headers=bearer)
        assert r.status_code == 200 and len(r.json()["results"]) == 2
        revoked = CliRunner().invoke(cli_app, ["keys", "revoke", "laptop"], env=cli_env)
        assert revoked.exit_code == 0, revoked.output
        deadline = time.monotonic() + 3  # the file is looked at every second
        while (r := httpx.post(url, json=body, headers=bearer)).status_code == 200:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.1)
        assert r.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    # One JSON access line per request on the server's output.
    access = [
        json.loads(line) for line in out.splitlines() if line.startswith('{"event": "request"')
    ]
    assert {a["route"] for a in access} >= {"/health", "/search"}
    # The key's name is logged, never the key.
    assert "api-key:laptop" in {a.get("principal") for a in access}
    assert key not in out
    # One line says where it is ready, once it accepts requests, and whose keys it takes.
    keys_file = tmp_path / "config" / "athenaeum" / "api-keys.json"
    assert (
        f"Athenaeum is ready at http://127.0.0.1:{port} (300 chunks; API keys from {keys_file})"
        in out
    )


def test_a_busy_port_is_said_at_once_with_the_option_to_pick_another(tmp_path: Path) -> None:
    """Before the index is read (this one does not exist: its error would come first if it
    were), with the port, the option and a free-looking neighbour named."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = ["serve", "--index", str(tmp_path / "no-index"), "--port", str(port)]
        run = subprocess.run(
            [sys.executable, "-c", "from athenaeum.cli.main import main; main()", *command],
            env={k: v for k, v in os.environ.items() if not k.startswith("ATHENAEUM_")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in run.stderr
    assert f"--port {port + 1}" in run.stderr
    assert "no-index" not in run.stderr.split("\n", 1)[1] and "Traceback" not in run.stderr


def _raw(port: int, request: bytes, wait_s: float) -> tuple[bytes, float]:
    """What the server sends back for `request` within `wait_s`, and when its first byte came."""
    started = time.monotonic()
    first: float | None = None
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                first = first or time.monotonic()
                received += chunk
                if b"\r\n\r\n" in received and received.rstrip().endswith(b"}"):
                    break
        except TimeoutError:
            pass
    return received, (first or time.monotonic()) - started


def test_bodies_are_read_only_after_authentication_and_must_keep_coming(
    scifact_engine: SearchEngine, live_server: Callable[[Any], Any]
) -> None:
    from athenaeum.server.auth.keys import hash_api_key

    key = "ath-" + "body-timeout-key-Zx81"
    settings = Settings(api_key_hashes=[hash_api_key(key)], body_timeout_s=1.0)
    server = live_server(create_app(settings, FixedEngineProvider(scifact_engine)))
    port = int(server.url.rsplit(":", 1)[1])
    head = b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    # No credentials: the 401 comes at once, without waiting for the 100,000 bytes announced.
    answer, took = _raw(port, head + b"Content-Length: 100000\r\n\r\n{", wait_s=5)
    assert answer.startswith(b"HTTP/1.1 401") and took < 2.0
    # With credentials, a body that stops coming is a 408 in the error shape after ~1 s.
    auth = f"Authorization: Bearer {key}\r\n".encode()
    answer, took = _raw(port, head + auth + b'Content-Length: 50\r\n\r\n{"q', wait_s=8)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"request_timeout"' in answer.replace(b" ", b"") and 0.9 < took < 5


def test_slow_clients_do_not_slow_the_others(
    scifact_engine: SearchEngine, live_server: Callable[[Any], Any]
) -> None:
    """Forty clients that start a body and stall hold a connection each for at most the body
    timeout; meanwhile other clients are answered as usual, and the stalled ones get 408s."""
    from athenaeum.server.auth.keys import hash_api_key

    key = "ath-" + "slow-clients-key-Qm42"
    settings = Settings(api_key_hashes=[hash_api_key(key)], body_timeout_s=2.0)
    server = live_server(create_app(settings, FixedEngineProvider(scifact_engine)))
    port = int(server.url.rsplit(":", 1)[1])
    stalled = []
    head = (
        "POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f'Authorization: Bearer {key}\r\nContent-Length: 50\r\n\r\n{{"q'
    ).encode()
    try:
        for _ in range(40):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(head)
            stalled.append(sock)
        latencies = []
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(20):
                started = time.monotonic()
                assert client.get("/health").status_code == 200
                latencies.append(time.monotonic() - started)
            r = client.post(
                "/search", json={"query": QUERY}, headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 200
        assert sorted(latencies)[len(latencies) // 2] < 0.2, latencies
        answers = []
        for sock in stalled:
            sock.settimeout(6)
            answers.append(sock.recv(64))
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.parametrize("path", ["/search", "/v1/search", "/chat/completions"])
def test_a_body_not_sent_as_json_is_a_415_saying_how_to_send_it(
    client: TestClient, path: str
) -> None:
    json_body: dict[str, Any] = {"query": "vitamin D"}
    if "chat" in path:
        messages = [{"role": "user", "content": "vitamin D"}]
        json_body = {"model": "athenaeum-index-retrieval", "messages": messages}
    for kwargs, sent in (
        ({"data": {"query": "vitamin D"}}, "application/x-www-form-urlencoded"),  # curl -d
        (
            {"content": json.dumps(json_body), "headers": {"content-type": "text/plain"}},
            "text/plain",
        ),
        ({"content": json.dumps(json_body)}, "none"),
    ):
        error = assert_error(client.post(path, **kwargs), 415, "unsupported_media_type")
        assert error["param"] == "Content-Type"
        assert f"has Content-Type: {sent};" in error["message"]
        assert "-H 'Content-Type: application/json'" in error["message"]
    # The same body as JSON is answered.
    assert client.post(path, json=json_body).status_code == 200
