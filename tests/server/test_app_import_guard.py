"""The app and the Lambda handler run with the build-side stack made unimportable: search,
chat and MCP requests through Mangum, in a fresh interpreter (docs/architecture.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fresh import FORBID, FORBIDDEN, run_fresh

EVENTS = Path(__file__).resolve().parents[1] / "events"

SCRIPT = (
    FORBID
    + """
import copy, os
os.environ["ATHENAEUM_INDEX_DIR"] = sys.argv[2]
os.environ["ATHENAEUM_TRUST_GATEWAY_AUTHORIZER"] = "true"
from athenaeum.server.lambda_handler import handler

template = json.loads(open(sys.argv[3]).read())

class Context:
    aws_request_id = "guard"

def call(method, path, body, headers=None):
    event = copy.deepcopy(template)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = json.dumps(body)
    event["headers"].pop("content-length", None)
    event["headers"].update(headers or {})
    return handler(event, Context())

statuses = [
    call("POST", "/search", {"query": "vitamin D"})["statusCode"],
    call("POST", "/v1/chat/completions", {"model": "athenaeum-index-retrieval",
         "messages": [{"role": "user", "content": "vitamin D"}], "stream": True})["statusCode"],
    call("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
         "params": {"name": "search", "arguments": {"query": "vitamin D"}}},
         {"accept": "application/json, text/event-stream",
          "mcp-protocol-version": "2025-06-18"})["statusCode"],
]
print(json.dumps({"statuses": statuses, "forbidden_loaded": forbidden_loaded()}))
"""
)


def test_app_and_lambda_handler_import_without_the_build_stack(scifact_bundle: Path) -> None:
    out, _ = run_fresh(
        SCRIPT,
        json.dumps(FORBIDDEN),
        str(scifact_bundle),
        str(EVENTS / "http_v2.json"),
        timeout=180,
    )
    assert out["forbidden_loaded"] == []
    assert out["statuses"] == [200, 200, 200]


LAZY = """
import json, sys
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.app import create_app
from athenaeum.server.settings import Settings
create_app(Settings(insecure_no_auth=True, index_dir=sys.argv[1]))
SearchEngine.load(sys.argv[1]).search("vitamin D", top_k=3)
print(json.dumps(sorted(m for m in ("faiss", "httpx") if m in sys.modules)))
"""


def test_a_cold_start_imports_only_what_its_first_answer_needs(scifact_bundle: Path) -> None:
    # httpx only for a call to the generating model: a tenth of a second of imports a cold
    # start does without. FAISS is needed: the vectors are fp16 codes in a FAISS index (a
    # bundle of format version 1 with flat fp32 vectors is still searched with numpy alone).
    out, _ = run_fresh(LAZY, str(scifact_bundle))
    assert out == ["faiss"]
