"""What the tests of the served app share: an open app's client, the one error shape, SSE
and MCP payloads, and the Lambda event and context the handler is called with."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi.testclient import TestClient

from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings

if TYPE_CHECKING:
    from athenaeum.retrieval.backend import Hit, SearchBackend

EVENTS = Path(__file__).resolve().parents[1] / "events"
V1 = json.loads((EVENTS / "rest_v1_authorizer.json").read_text())
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
# Where `athenaeum serve` listens by default: a host the MCP transport takes (not "testserver").
LOCAL_URL = "http://127.0.0.1:8000"


def open_client(engine: SearchBackend) -> TestClient:
    """A client of the app with no authentication, serving `engine`, at the local address."""
    app = create_app(Settings(insecure_no_auth=True), FixedEngineProvider(engine))
    return TestClient(app, base_url=LOCAL_URL)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Every error is OpenAI's shape, with exactly these keys, and no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    if code is not None:
        assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


def rpc(method: str, params: dict[str, Any] | None = None, rid: int = 1) -> dict[str, Any]:
    """A JSON-RPC request for the MCP endpoint."""
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}


def parse_sse(text: str) -> list[Any]:
    """The data payloads of an SSE body; asserts the framing is valid and ends in [DONE]."""
    assert text.endswith("\n\n")
    events = [e for e in text.split("\n\n") if e]
    payloads: list[Any] = []
    for event in events:
        assert event.startswith("data: "), event
        data = event[len("data: ") :]
        payloads.append(data if data == "[DONE]" else json.loads(data))
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    return payloads[:-1]


def stream_text(chunks: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


@dataclass
class Context:
    """The attributes of the Lambda context object that Mangum and the app read."""

    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    function_name: str = "athenaeum-api"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-2:123456789012:function:athenaeum-api"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def v1_event(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    authorizer: bool = True,
) -> dict[str, Any]:
    """A REST API (v1) proxy event, as API Gateway sends it after a TOKEN authorizer."""
    event: dict[str, Any] = copy.deepcopy(V1)
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["requestContext"]["path"] = "/prod" + path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["body"] = None if body is None else json.dumps(body)
    for name, value in (headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    if not authorizer:
        del event["requestContext"]["authorizer"]
    return event


def body_of(response: dict[str, Any]) -> Any:
    assert response["isBase64Encoded"] is False
    return json.loads(response["body"])


# --- chat answers -----------------------------------------------------------------------------


def sources_block(content: str) -> list[str]:
    """The lines of a chat answer's Sources block."""
    return content.split("Sources:\n", 1)[1].splitlines() if "Sources:\n" in content else []


_HEADING = re.compile(r"^\*\*\[(\d+)\] (.+?)\*\*(?: \((p{1,2}\. [\d-]+)\))?$")


def passages(content: str) -> list[tuple[int, str]]:
    """The passages an answer shows: each one's source number and text."""
    body = content.split("\nSources:\n", 1)[0]
    found = []
    for block in re.split(r"\n(?=\*\*\[\d+\] )", body):
        heading, _, text = block.partition("\n\n")
        match = _HEADING.match(heading)
        if match:
            found.append((int(match[1]), text.strip()))
    return found


def assert_fitted(content: str, hits: list[Hit], limit: int) -> list[tuple[int, str]]:
    """What every fitted answer keeps to: each passage shown is the start of a retrieved
    passage's text (ending in " …" when shortened), the best ranked first; each has its source
    line and each source line a passage; no two source lines alike. The passages, for more
    checks."""
    shown = passages(content)
    sources = sources_block(content)
    numbers = [int(line[1 : line.index("]")]) for line in sources]
    assert numbers == list(range(1, len(sources) + 1))
    assert {n for n, _ in shown} == set(numbers)
    assert len({line.split("] ", 1)[1] for line in sources}) == len(sources)
    texts = [h.chunk.text.strip() for h in hits]
    for _, text in shown:
        start = text.removesuffix(" …")
        assert any(t.startswith(start) for t in texts), text[:80]
    if shown:
        assert texts[0].startswith(shown[0][1].removesuffix(" …"))
    return shown
