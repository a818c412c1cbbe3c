"""What a person sees: `GET /` and `/docs` of a live `athenaeum serve`, opened in headless
Chromium with no network but 127.0.0.1 (tests/server/chromium.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from athenaeum.server.auth.keys import hash_api_key
from tests.server import chromium

KEY = "ath-" + "browser-test-key-Wd29"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[chromium.Chromium]:
    if chromium.executable() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("needs Chromium: apt-get install chromium")
    with chromium.Chromium.start(tmp_path_factory.mktemp("chromium")) as started:
        yield started


@pytest.fixture(scope="module")
def served(scifact_bundle: Path) -> Iterator[str]:
    """`athenaeum serve` in its own process, with an API key, on a free port of 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATHENAEUM_")}
    env["ATHENAEUM_API_KEY_HASHES"] = hash_api_key(KEY)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-c", "from athenaeum.cli.main import main; main()", "serve"),
            *("--index", str(scifact_bundle), "--port", str(port)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", timeout=2).raise_for_status()
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("athenaeum serve did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_browser_has_no_network_but_the_server(browser: chromium.Chromium) -> None:
    """The setting the other tests rely on: a page from elsewhere cannot load."""
    page = browser.open("https://example.com/")
    assert page.error is not None and page.error.startswith("net::ERR_"), page


def test_the_front_page_renders_offline_with_nothing_from_elsewhere(
    browser: chromium.Chromium, served: str
) -> None:
    page = browser.open(f"{served}/")
    assert page.error is None and page.status == 200, page
    assert page.requests == [f"{served}/"] and page.failed == [], page
    text = page.text
    assert text.startswith("Athenaeum\n")
    assert "The index is loaded: 300 documents in 300 passages" in text
    assert "Connect" in text and f"{served}/mcp" in text and "docs/chatgpt.md" in text
    assert "Authorization: Bearer <token>, with an API key (its owner makes one with " in text
    assert "athenaeum keys create NAME)" in text
    assert "API reference" in text and "OpenAPI schema" in text


def test_docs_renders_offline_every_operation(browser: chromium.Chromium, served: str) -> None:
    page = browser.open(f"{served}/docs")
    assert page.error is None and page.status == 200, page
    assert page.requests == [f"{served}/docs"] and page.failed == [], page
    schema = httpx.get(f"{served}/openapi.json").json()
    for path, item in schema["paths"].items():
        for method in item:
            assert f"{method.upper()} {path}" in page.text, (method, path)
    assert "Athenaeum API reference" in page.text and "SearchRequest" in page.text
