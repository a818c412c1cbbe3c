"""Lists the layer's Python files that the deployed functions import, by running them.

    python3.12 -I -S -B layer/serve_modules.py LAYER_DIR REPO_ROOT [INDEX_DIR]

Run by layer/build.sh with nothing on sys.path but the layer and the source tree (-I -S) and
without writing bytecode (-B). It imports the API function's handler and answers the requests
every client makes (health, OAuth metadata, search, both chat models, streaming, MCP, errors),
runs the TOKEN authorizer on a malformed token, and imports the engine's native stack. With
INDEX_DIR (a bundle) the search paths run for real; without one they answer 503 and the engine
modules are imported directly.

Prints one path per line, relative to LAYER_DIR: the `.py` files that were loaded. build.sh
compiles those for Python 3.12; the rest of the layer (code no request path reaches) stays
source-only and is compiled in memory if it is ever imported, instead of carrying bytecode.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path


def main() -> None:
    layer = Path(sys.argv[1]).resolve()
    root = Path(sys.argv[2]).resolve()
    index = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 and sys.argv[3] else None
    sys.path[:0] = [str(layer), str(root), str(root / "infra" / "authorizer")]
    os.environ.update(
        {
            "ATHENAEUM_OAUTH_ISSUER": "https://issuer.invalid/",
            "ATHENAEUM_OAUTH_AUDIENCE": "https://athenaeum.invalid",
            "ATHENAEUM_OAUTH_JWKS_URL": "https://issuer.invalid/jwks.json",
            "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
        }
    )
    if index is not None:
        os.environ["ATHENAEUM_INDEX_DIR"] = str(index)
    else:
        os.environ["ATHENAEUM_INDEX_DIR"] = str(root / "no-index-here")

    # Quiet: the app logs each request as JSON on stderr; only the file list goes to stdout.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        _exercise()
    loaded = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py"):
            resolved = Path(path).resolve()
            if resolved.is_relative_to(layer):
                loaded.add(resolved.relative_to(layer).as_posix())
    print("\n".join(sorted(loaded)))


def _event(method: str, path: str, body: object = None, headers: dict[str, str] | None = None):
    base_headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": base_headers,
        "multiValueHeaders": {k: [v] for k, v in base_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": "/prod" + path,
            "stage": "prod",
            "requestId": "trace",
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": {"principalId": "trace", "scope": "", "client_id": "trace"},
        },
        "body": text,
        "isBase64Encoded": False,
    }


def _rpc(method: str, params: dict[str, object], rid: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def _exercise() -> None:
    import athenaeum.server.lambda_handler as api

    mcp = {"mcp-protocol-version": "2025-06-18"}
    chat = {"model": "athenaeum-index-retrieval", "messages": [{"role": "user", "content": "x"}]}
    requests = [
        _event("GET", "/health"),
        _event("GET", "/v1/models"),
        _event("GET", "/.well-known/oauth-protected-resource"),
        _event("POST", "/search", {"query": "what is this library about", "top_k": 3}),
        _event("GET", "/chunks/none"),
        _event("POST", "/chat/completions", chat),
        _event("POST", "/v1/chat/completions", {**chat, "stream": True}),
        _event("POST", "/chat/completions", {**chat, "model": "athenaeum-index-rag"}),
        _event("POST", "/search", "{not json"),
        _event("GET", "/nowhere"),
        _event(
            "POST",
            "/mcp",
            _rpc(
                "initialize",
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "trace", "version": "1"},
                },
                1,
            ),
            mcp,
        ),
        _event("POST", "/mcp", _rpc("tools/list", {}, 2), mcp),
        _event(
            "POST",
            "/mcp",
            _rpc("tools/call", {"name": "search", "arguments": {"query": "x"}}, 3),
            mcp,
        ),
    ]
    for event in requests:
        api.handler(event, None)

    # The engine's modules, in case no bundle was given (the search requests then answered 503).
    import faiss  # noqa: F401

    # Vector maths through numpy's own BLAS (faiss brings another).
    import numpy as np
    import onnxruntime  # noqa: F401
    import Stemmer  # noqa: F401
    import tokenizers  # noqa: F401

    import athenaeum.retrieval.engine  # noqa: F401

    matrix = np.ones((64, 384), dtype=np.float32)
    assert float((matrix @ matrix.T)[0, 0]) == 384.0
    assert abs(float(np.linalg.norm(matrix[0])) - 384**0.5) < 1e-3

    # Token signatures as the validator checks them: RS256 and ES256 through cryptography.
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    for key, algorithm in (
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ):
        token = jwt.encode({"sub": "trace"}, key, algorithm=algorithm)
        assert jwt.decode(token, key.public_key(), algorithms=[algorithm])["sub"] == "trace"

    # Outbound HTTPS (JWKS, the upstream model): the transport and TLS set-up, no network.
    import httpx

    httpx.create_ssl_context()
    with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=0.5) as client:
        client.get("http://127.0.0.1:9/")

    # The authorizer, which API Gateway runs before every protected request.
    import handler as authorizer

    with contextlib.suppress(Exception):
        authorizer.handler(
            {
                "type": "TOKEN",
                "authorizationToken": "Bearer not.a.jwt",
                "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/health",
            },
            None,
        )


if __name__ == "__main__":
    main()
