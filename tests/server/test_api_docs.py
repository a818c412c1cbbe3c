"""Every ```bash example in docs/api.md runs with curl against a live server and gets the
status its `# expect:` comment names (200 when it names none)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.auth.keys import hash_api_key
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.server.helpers import parse_sse

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
EXAMPLE_CHUNK = "16256507%230"
API_KEY = "dcx-" + "Hx4kP9qW2mZ7rT5v"


def examples() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_docs_cover_every_endpoint() -> None:
    text = "\n".join(examples())
    for path in (
        "/health",
        "/search",
        "/chunks/",
        "/v1/models",
        "/v1/chat/completions",
        "/mcp",
        "/.well-known/oauth-protected-resource",
    ):
        assert path in text, path
    assert len(examples()) >= 10


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_examples_run_against_a_live_server(
    scifact_engine: SearchEngine, live_server: Callable[[Any], Any], tmp_path: Path
) -> None:
    settings = Settings(
        api_key_hashes=[hash_api_key(API_KEY)],
        oauth_issuer="https://issuer.example.com/",
        oauth_audience="athenaeum",
        oauth_jwks_url="https://issuer.example.com/jwks.json",
    )
    server = live_server(create_app(settings, FixedEngineProvider(scifact_engine)))
    hit = scifact_engine.search("vitamin D deficiency and bone health", top_k=1)[0]
    # curl reads this file itself, so the commands run exactly as the page shows them.
    (tmp_path / ".curlrc").write_text('write-out = "\\n%{http_code}\\n"\n')
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "CURL_HOME": str(tmp_path),
        "ATHENAEUM_URL": server.url,
        "ATHENAEUM_TOKEN": API_KEY,
    }
    for block in examples():
        expected = int(m.group(1)) if (m := re.search(r"# expect: (\d{3})", block)) else 200
        script = block.replace(EXAMPLE_CHUNK, quote(hit.chunk.id, safe=""))
        proc = subprocess.run(
            ["bash", "-eu", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, (block, proc.stderr)
        body, _, status = proc.stdout.rstrip("\n").rpartition("\n")
        assert int(status) == expected, (block, proc.stdout)
        if " -i " in block:
            continue
        if '"stream": true' in block:
            assert parse_sse(body.rstrip("\n") + "\n\n")[-1]["usage"]["total_tokens"] > 0
            continue
        payload = json.loads(body)
        assert ("error" in payload) is (expected >= 400), (block, body)
