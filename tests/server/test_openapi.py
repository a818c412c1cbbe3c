"""`athenaeum openapi`: the ChatGPT action schema is valid OpenAPI and within ChatGPT's limits;
the app's own schema is valid and says what the app really does (400s, not FastAPI's 422s)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from typer.testing import CliRunner

from athenaeum.cli.main import app as cli_app
from athenaeum.server.http.app import create_app
from athenaeum.server.http.gpt_action import (
    MAX_OPERATION_DESCRIPTION,
    MAX_PARAMETER_DESCRIPTION,
    check_gpt_limits,
    gpt_action_schema,
)
from athenaeum.server.settings import Settings

SERVER = "https://70ixmpl4fl.execute-api.us-east-2.amazonaws.com/prod"


def operations(schema: dict) -> list[tuple[str, str, dict]]:  # type: ignore[type-arg]
    return [(p, m, op) for p, ops in schema["paths"].items() for m, op in ops.items()]


def test_gpt_schema_is_valid_and_within_chatgpt_limits() -> None:
    schema = gpt_action_schema(SERVER + "/")
    validate(schema)
    assert schema["servers"] == [{"url": SERVER}]
    assert {(p, m) for p, m, _ in operations(schema)} == {
        ("/search", "post"),
        ("/chunks/{chunk_id}", "get"),
        ("/collections", "get"),
    }
    for _path, _method, op in operations(schema):
        assert op["operationId"]
        assert 0 < len(op["description"]) <= MAX_OPERATION_DESCRIPTION
        assert len(op.get("summary", "")) <= MAX_OPERATION_DESCRIPTION
        assert op["security"] == [{"bearerAuth": []}]
        # All only read: ChatGPT may offer "Always allow" instead of asking every time.
        assert op["x-openai-isConsequential"] is False
        for parameter in op.get("parameters", []):
            assert 0 < len(parameter["description"]) <= MAX_PARAMETER_DESCRIPTION
            assert parameter["in"] in ("path", "query")  # actions send no custom headers
    body = schema["components"]["schemas"]["SearchRequest"]["properties"]
    assert {"query", "top_k", "mode", "filter"} <= set(body)
    for spec in body.values():
        assert len(spec.get("description", "")) <= MAX_PARAMETER_DESCRIPTION
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    # Only the types the two operations use; nothing about chat or MCP leaks in.
    assert "ChatCompletionRequest" not in schema["components"]["schemas"]
    assert {"SearchRequest", "SearchResponse", "Chunk", "ErrorResponse"} <= set(
        schema["components"]["schemas"]
    )
    text = json.dumps(schema)
    assert "#/components/schemas/" in text
    for ref in set(text.split('"$ref": "')[1:]):
        assert ref.split('"')[0].rsplit("/", 1)[1] in schema["components"]["schemas"]


def test_limits_are_enforced() -> None:
    schema = gpt_action_schema(SERVER)
    schema["paths"]["/search"]["post"]["description"] = "x" * (MAX_OPERATION_DESCRIPTION + 1)
    with pytest.raises(ValueError, match="over 300"):
        check_gpt_limits(schema)
    schema = gpt_action_schema(SERVER)
    schema["paths"]["/chunks/{chunk_id}"]["get"]["parameters"][0]["description"] = "y" * 701
    with pytest.raises(ValueError, match="over 700"):
        check_gpt_limits(schema)
    schema = gpt_action_schema(SERVER)
    del schema["paths"]["/search"]["post"]["operationId"]
    with pytest.raises(ValueError, match="operationId"):
        check_gpt_limits(schema)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["paths"]["/search"]["post"].pop("x-openai-isConsequential"), "POST /search"),
        (
            lambda s: s["paths"]["/chunks/{chunk_id}"]["get"].update(
                {"x-openai-isConsequential": True}
            ),
            "GET /chunks",
        ),
        (
            lambda s: s["paths"]["/chunks/{chunk_id}"]["get"]["parameters"].append(
                {"name": "X-Library", "in": "header", "description": "which library"}
            ),
            "X-Library is a header",
        ),
        (lambda s: s["servers"].append({"url": SERVER + "2"}), "exactly one servers entry"),
        (lambda s: s.update(servers=[{"url": "http://api.example.org"}]), "not https"),
        (
            lambda s: s["components"]["schemas"]["SearchRequest"]["properties"]["query"].update(
                description="z" * 701
            ),
            "body field query description is over 700",
        ),
    ],
    ids=["no-consequential-flag", "consequential", "header", "two-servers", "http", "body-field"],
)
def test_what_chatgpt_refuses_or_asks_about_is_refused(
    edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    schema = gpt_action_schema(SERVER)
    check_gpt_limits(schema)
    edit(schema)
    with pytest.raises(ValueError, match=message):
        check_gpt_limits(schema)


def test_openapi_command(tmp_path: Path) -> None:
    out = tmp_path / "gpt.json"
    result = CliRunner().invoke(cli_app, ["openapi", "--server-url", SERVER, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == gpt_action_schema(SERVER)
    printed = CliRunner().invoke(cli_app, ["openapi", "--server-url", SERVER])
    assert json.loads(printed.output) == gpt_action_schema(SERVER)
    bad = CliRunner().invoke(cli_app, ["openapi", "--server-url", "ftp://x"])
    assert bad.exit_code == 2 and "http(s)" in bad.output
    # ChatGPT calls https only: http is refused unless asked for.
    plain = CliRunner().invoke(cli_app, ["openapi", "--server-url", "http://127.0.0.1:8000"])
    assert plain.exit_code == 2 and "--allow-http" in plain.output
    allowed = CliRunner().invoke(
        cli_app, ["openapi", "--server-url", "http://127.0.0.1:8000", "--allow-http"]
    )
    assert allowed.exit_code == 0
    assert json.loads(allowed.output)["servers"] == [{"url": "http://127.0.0.1:8000"}]


def test_app_schema_is_valid_and_truthful() -> None:
    schema = create_app(Settings(insecure_no_auth=True)).openapi()
    validate(schema)
    assert "HTTPValidationError" not in json.dumps(schema)
    for path, _method, op in operations(schema):
        assert op["operationId"]
        assert "422" not in op["responses"]
        if path in ("/search", "/chat/completions"):
            assert "400" in op["responses"] and "401" in op["responses"]
        # /sources: a link's signature is its credential, so a browser opens it
        public = path in ("/", "/health") or path.startswith(("/.well-known/", "/sources/"))
        assert ("security" in op) is not public


def test_operation_ids_are_stable() -> None:
    # Generated clients and GPT actions key on these: one router is mounted at the root and
    # under /v1, and each mount names its operations the same way.
    schema = create_app(Settings(insecure_no_auth=True)).openapi()
    ids = {(m.upper(), p): op["operationId"] for p, m, op in operations(schema)}
    assert ids == {
        ("GET", "/"): "about",
        ("GET", "/health"): "health",
        ("GET", "/models"): "listModels",
        ("GET", "/v1/models"): "listModelsV1",
        ("POST", "/search"): "searchLibrary",
        ("POST", "/v1/search"): "searchLibraryV1",
        ("POST", "/chat/completions"): "createChatCompletion",
        ("POST", "/v1/chat/completions"): "createChatCompletionV1",
        ("GET", "/chunks/{chunk_id}"): "getChunk",
        ("GET", "/collections"): "listCollections",
        ("GET", "/sources/{key}"): "getSourceFile",
        ("GET", "/.well-known/oauth-protected-resource"): "protectedResourceMetadata",
        ("GET", "/.well-known/oauth-protected-resource/mcp"): "protectedResourceMetadataMcp",
    }
    for path in ("/models", "/search", "/chat/completions"):
        root, v1 = schema["paths"][path], schema["paths"]["/v1" + path]
        for method, op in root.items():
            same = {k: v for k, v in op.items() if k != "operationId"}
            assert same == {k: v for k, v in v1[method].items() if k != "operationId"}
