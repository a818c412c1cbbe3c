"""The OpenAPI schema to paste into a ChatGPT custom GPT's action.

It is the app's own schema cut down to what a GPT should call (search and fetch a passage),
with the `servers` entry ChatGPT requires, bearer security, every operation marked as not
consequential (both only read), and text within ChatGPT's limits (300 characters for an
operation's description, 700 for a parameter's), which `check_gpt_limits` enforces so that a
longer docstring fails a test rather than an import in the GPT editor.
"""

from __future__ import annotations

import copy
from typing import Any

from athenaeum.errors import InvalidInputError

GPT_OPERATIONS: dict[str, str] = {
    "/search": "post",
    "/chunks/{chunk_id}": "get",
    "/collections": "get",
}
MAX_OPERATION_DESCRIPTION = 300
MAX_PARAMETER_DESCRIPTION = 700
CONSEQUENTIAL = "x-openai-isConsequential"

CHUNK_ID_DESCRIPTION = (
    "The id of a passage, exactly as a search result's `id` gave it, URL-encoded "
    "(for example 4983#0 becomes 4983%230)."
)


def gpt_action_schema(server_url: str, *, allow_http: bool = False) -> dict[str, Any]:
    from athenaeum.server.http.app import create_app
    from athenaeum.server.settings import Settings

    if not server_url.startswith("https://") and not server_url.startswith("http://"):
        raise InvalidInputError(
            f"--server-url must be the API's public http(s) URL, got {server_url!r}",
            param="server_url",
        )
    if server_url.startswith("http://") and not allow_http:
        raise InvalidInputError(
            f"--server-url {server_url!r} is http: ChatGPT's actions call https URLs only "
            "(put the API behind TLS, or a tunnel); --allow-http writes the schema anyway",
            param="server_url",
        )
    # The schema does not depend on settings beyond which routes exist; no index is loaded.
    full = create_app(Settings(insecure_no_auth=True)).openapi()
    paths: dict[str, Any] = {}
    for path, method in GPT_OPERATIONS.items():
        operation = copy.deepcopy(full["paths"][path][method])
        operation.pop("tags", None)
        operation["security"] = [{"bearerAuth": []}]
        # Every operation of the action only reads. Without the field ChatGPT treats a POST as
        # consequential and asks the user to confirm every search, with no "Always allow".
        operation[CONSEQUENTIAL] = False
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "chunk_id":
                parameter["description"] = CHUNK_ID_DESCRIPTION
        paths[path] = {method: operation}
    schema: dict[str, Any] = {
        "openapi": full["openapi"],
        "info": {
            "title": "Athenaeum library",
            "version": full["info"]["version"],
            "description": "Search a private document library and read its passages, with "
            "citations (source document, pages, link).",
        },
        "servers": [{"url": server_url.rstrip("/")}],
        "paths": paths,
        "components": {
            "schemas": _referenced(paths, full["components"]["schemas"]),
            "securitySchemes": full["components"]["securitySchemes"],
        },
        "security": [{"bearerAuth": []}],
    }
    check_gpt_limits(schema, allow_http=allow_http)
    return schema


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Only the component schemas the kept operations reach, so the GPT sees no dead types."""
    keep: dict[str, Any] = {}
    pending = list(_refs(paths))
    while pending:
        name = pending.pop()
        if name in keep:
            continue
        keep[name] = schemas[name]
        pending.extend(_refs(schemas[name]))
    return dict(sorted(keep.items()))


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.append(ref.rsplit("/", 1)[1])
        for value in node.values():
            found.extend(_refs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_refs(value))
    return found


def check_gpt_limits(schema: dict[str, Any], *, allow_http: bool = False) -> None:
    """Raise ValueError naming the first thing that ChatGPT would refuse, or that would make it
    ask the user before each call: OpenAI's production notes for GPT actions allow 300
    characters for an operation's summary or description and 700 for a parameter's, no custom
    headers, one https server; an operation without `x-openai-isConsequential: false` other
    than a GET needs a confirmation click every time."""
    servers = schema.get("servers") or []
    if len(servers) != 1:
        raise ValueError(f"the schema needs exactly one servers entry, it has {len(servers)}")
    if not str(servers[0].get("url", "")).startswith("https://") and not allow_http:
        raise ValueError("the server URL is not https")
    components = schema.get("components", {}).get("schemas", {})
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if not operation.get("operationId"):
                raise ValueError(f"{where} has no operationId")
            if operation.get(CONSEQUENTIAL) is not False:
                raise ValueError(f"{where} is not marked {CONSEQUENTIAL}: false")
            for field in ("summary", "description"):
                if len(operation.get(field, "")) > MAX_OPERATION_DESCRIPTION:
                    raise ValueError(
                        f"{where} {field} is over {MAX_OPERATION_DESCRIPTION} characters"
                    )
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("header", "cookie"):
                    raise ValueError(
                        f"{where} parameter {parameter.get('name')} is a {parameter['in']}: "
                        "actions send no custom headers"
                    )
                _check_description(where, f"parameter {parameter.get('name')}", parameter)
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                for name in _refs(media):
                    for field, spec in components[name].get("properties", {}).items():
                        _check_description(where, f"body field {field}", spec)


def _check_description(where: str, what: str, spec: dict[str, Any]) -> None:
    if len(spec.get("description", "")) > MAX_PARAMETER_DESCRIPTION:
        raise ValueError(
            f"{where} {what} description is over {MAX_PARAMETER_DESCRIPTION} characters"
        )
