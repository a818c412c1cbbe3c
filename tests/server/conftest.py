"""The server's fixtures: the open app's client, apps under a real uvicorn, and a fake
OpenAI-compatible upstream (the plain helpers are in tests/server/helpers.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

# Module level: FastAPI resolves the fake upstream's string annotations (`from __future__`) here.
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient

from athenaeum.server.answers.followup import REWRITE_PROMPT
from tests.server.helpers import open_client

if TYPE_CHECKING:
    from athenaeum.retrieval.engine import SearchEngine


@pytest.fixture
def client(scifact_engine: SearchEngine) -> TestClient:
    """The app with no authentication, serving the SciFact slice."""
    return open_client(scifact_engine)


class LiveServer:
    """An ASGI app under a real uvicorn on 127.0.0.1 and a free port, in a background thread.

    With `settings`, uvicorn is configured as `athenaeum serve` configures it (its protocol,
    timeouts and limits); without, with uvicorn's defaults.
    """

    def __init__(self, app: Any, settings: Any = None) -> None:
        import uvicorn

        from athenaeum.server.local import uvicorn_config, uvicorn_server

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if settings is None:
            config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        else:
            config = uvicorn_config(app, settings, host="127.0.0.1", port=self.port)
            config.lifespan = "off"
        self.server = (
            uvicorn.Server(config) if settings is None else uvicorn_server(config, settings)
        )
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Start apps under uvicorn on 127.0.0.1: `server = live_server(app)`, or
    `live_server(app, settings)` configured as `athenaeum serve` does; stopped at teardown."""
    started: list[LiveServer] = []

    def start(app: Any, settings: Any = None) -> LiveServer:
        server = LiveServer(app, settings).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


FAKE_LLM_KEY = "upstream-test-key-7f3a9c"
FAKE_LLM_MODEL = "fake-gpt"


FAKE_REWRITE = "Is vitamin D deficiency in children linked to rickets?"


class FakeLLM:
    """What the fake upstream saw, for assertions, and how it answers query rewrites."""

    def __init__(self, url: str, state: dict[str, Any]) -> None:
        self.url = url
        self.requests: list[dict[str, Any]] = state["requests"]
        self._state = state

    def rewrites_with(self, answer: str | int, *, delay_s: float = 0.0) -> None:
        """The answer to the next rewrite requests: a query, or an HTTP status to fail with,
        after `delay_s` seconds."""
        self._state["rewrite"] = answer
        self._state["rewrite_delay_s"] = delay_s


def _fake_llm_app(state: dict[str, Any]) -> Any:
    """A small OpenAI-compatible upstream: canned answers, SSE streaming, errors on demand.

    A request whose system message is chat's query-rewrite prompt gets the rewrite set with
    `FakeLLM.rewrites_with`. Otherwise the last user message steers it: containing RATE_LIMIT
    gives a 429, BOOM a 500, otherwise it answers 'Vitamin D matters [1].' (streamed word by
    word when asked)."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {FAKE_LLM_KEY}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        body = await request.json()
        state["requests"].append(body)
        if body["messages"][0]["content"] == REWRITE_PROMPT:
            await asyncio.sleep(state["rewrite_delay_s"])
            answer = state["rewrite"]
            if isinstance(answer, int):
                return JSONResponse({"error": {"message": "no", "type": "server"}}, answer)
            message = {"role": "assistant", "content": answer}
            return {
                "id": "up-rw",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        last = body["messages"][-1]["content"]
        if "RATE_LIMIT" in last:
            return JSONResponse({"error": {"message": "slow down", "type": "rate"}}, 429)
        if "BOOM" in last:
            return JSONResponse({"error": {"message": "kaput", "type": "server"}}, 500)
        words = ["Vitamin", " D", " matters", " [1]."]
        usage = {"prompt_tokens": 42, "completion_tokens": 4, "total_tokens": 46}
        if not body.get("stream"):
            return {
                "id": "up-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }

        async def events() -> Any:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
                payload = {
                    "id": "up-1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
                return f"data: {json.dumps(payload)}\n\n"

            yield chunk({"role": "assistant", "content": ""})
            for word in words:
                yield chunk({"content": word})
            yield chunk({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({"id": "up-1", "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """An OpenAI-compatible upstream on 127.0.0.1 (session-wide; `requests` records payloads)."""
    state: dict[str, Any] = {"requests": [], "rewrite": FAKE_REWRITE, "rewrite_delay_s": 0.0}
    server = LiveServer(_fake_llm_app(state)).__enter__()
    fake = FakeLLM(server.url + "/v1", state)
    try:
        yield fake
    finally:
        server.__exit__()
