"""Links to the original files: every result of a real PDF library carries one that opens the
PDF at its page without a token, and a tampered, expired or foreign link is a 403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.auth.keys import hash_api_key
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.conftest import LIBRARY_PDFS, PdfLibrary
from tests.server.conftest import FAKE_LLM_KEY, FAKE_LLM_MODEL, FakeLLM
from tests.server.helpers import MCP_HEADERS, assert_error, assert_fitted, rpc

API_KEY = "ath-" + "links-test-key-4Hq9"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SECRET = "s" * 16 + "-a-test-secret-of-32+chars"
QUERY = "report of the incident and the agency findings"


def make_client(engine: SearchEngine, **settings: Any) -> TestClient:
    app = create_app(
        Settings(**{"api_key_hashes": [hash_api_key(API_KEY)], "link_secret": SECRET, **settings}),
        FixedEngineProvider(engine),
    )
    return TestClient(app, base_url="http://127.0.0.1:8000")


@pytest.fixture
def client(pdf_engine: SearchEngine) -> TestClient:
    return make_client(pdf_engine)


def results(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    r = client.post("/search", json={"query": QUERY, "top_k": 20, **body}, headers=AUTH)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["results"]
    return found


def fetch(client: TestClient, link: str) -> httpx.Response:
    """GET a link as a browser does: no token, and the #fragment stays in the browser."""
    return client.get(link.split("#", 1)[0])


def test_every_result_opens_its_pdf_at_the_page_without_a_token(
    client: TestClient, pdf_library: PdfLibrary
) -> None:
    # Every PDF of the library, each found through a filter on it.
    found = [results(client, top_k=3, filter={"documents": [name]})[0] for name in LIBRARY_PDFS]
    assert [r["source"] for r in found] == list(LIBRARY_PDFS)
    for r in found:
        link = r["source_url"]
        assert link is not None, r["source"]
        assert link.startswith("http://127.0.0.1:8000/sources/")
        assert link.endswith(f"#page={r['page_start']}")
        # a document is named by an opaque token in one path segment, never by its path
        _, root, token = urlsplit(link).path.split("/")
        assert (root, len(token)) == ("sources", 38) and not urlsplit(link).query
        assert "reports" not in link
        response = fetch(client, link)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        assert response.content == (pdf_library.pdfs / r["source"]).read_bytes()
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("inline;") and Path(r["source"]).name in disposition
    # the chunk view stays for API clients
    assert found[0]["url"].startswith("http://127.0.0.1:8000/chunks/")
    assert client.get(found[0]["url"]).status_code == 401


def _parts(link: str) -> tuple[str, int, str]:
    """A link's key (hex), expiry and signature (base64url)."""
    token = urlsplit(link).path.rsplit("/", 1)[1]
    raw = base64.urlsafe_b64decode(token + "==")
    assert len(raw) == 28
    mac = base64.urlsafe_b64encode(raw[12:]).rstrip(b"=").decode()
    return raw[:8].hex(), int.from_bytes(raw[8:12], "big"), mac


def _link(key: str, expires: int, signature: str) -> str:
    raw = (
        bytes.fromhex(key) + expires.to_bytes(4, "big") + base64.urlsafe_b64decode(signature + "==")
    )
    return "/sources/" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _with(link: str, **changes: Any) -> str:
    key, expires, signature = _parts(link)
    parts = {"key": key, "expires": expires, "signature": signature} | changes
    return _link(parts["key"], parts["expires"], parts["signature"])


def _sign(key: str, expires: int, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), f"{key}\n{expires}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_tampered_expired_and_foreign_links_are_403(
    client: TestClient, pdf_engine: SearchEngine
) -> None:
    link = results(client)[0]["source_url"]
    key, expires, signature = _parts(link)
    assert signature == _sign(key, expires)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_key = next(
        d.source_file.sha256[:16]
        for d in pdf_engine.bundle.manifest.documents
        if d.source_file and not d.source_file.sha256.startswith(key)
    )
    now = int(time.time())
    refused = {
        "tampered signature": _with(link, signature=flipped),
        "later expiry, same signature": _with(link, expires=expires + 3600),
        "another file, same signature": _with(link, key=other_key),
        "expired, correctly signed": _with(link, expires=now - 1, signature=_sign(key, now - 1)),
        "signed by another server": _with(
            link, signature=_sign(key, expires, "another-server-secret-0123456789abcdef")
        ),
        # The earlier form of a link, key and query parameters, is held to the same checks.
        "earlier form, tampered": f"/sources/{key}?expires={expires}&signature={flipped}",
        "earlier form, no signature": f"/sources/{key}?expires={expires}&signature=",
        "earlier form, malformed expiry": f"/sources/{key}?expires=soon&signature={signature}",
    }
    for what, url in refused.items():
        error = assert_error(client.get(url), 403, "invalid_link")
        assert error["param"] in ("signature", "expires"), what
    assert (
        "expired" in assert_error(client.get(refused["expired, correctly signed"]), 403)["message"]
    )
    # A token changed anywhere, or cut short, opens nothing.
    token = urlsplit(link).path.rsplit("/", 1)[1]
    for i in range(len(token)):
        changed = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert client.get(f"/sources/{changed}").status_code in (403, 404), i
    assert client.get(f"/sources/{token[:-1]}").status_code in (403, 404)
    # Links made before tokens, key and query parameters, still open.
    earlier = f"/sources/{key}?expires={expires}&signature={signature}"
    assert client.get(earlier).content.startswith(b"%PDF")
    # A link from another server (another secret) fails here too.
    other = make_client(pdf_engine, link_secret="another-server-secret-0123456789abcdef")
    assert fetch(other, link).status_code == 403
    # Traversal has nothing to act on: the path names a key, and the file name must match.
    for path in ("/sources/../../etc/passwd", f"/sources/{key}%2F..%2F..%2Fetc%2Fpasswd"):
        response = client.get(path + f"?expires={expires}&signature={signature}")
        assert response.status_code in (401, 403, 404) and b"root:" not in response.content


def test_changed_or_missing_files_get_no_link(
    pdf_engine: SearchEngine, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    copy = tmp_path / "moved"
    shutil.copytree(pdf_library.pdfs, copy)
    changed = copy / "multicolumn.pdf"
    changed.write_bytes(changed.read_bytes() + b"\n% edited after indexing\n")
    (copy / "scotus-transcript-p1.pdf").unlink()
    c = make_client(pdf_engine, sources_dir=copy)
    found = results(c)
    by_source = {r["source"]: r["source_url"] for r in found}
    assert by_source["multicolumn.pdf"] is None
    assert by_source["scotus-transcript-p1.pdf"] is None
    moved = "reports/150109DSP-Milw-505-90D.pdf"
    assert by_source[moved] is not None
    assert fetch(c, by_source[moved]).content == (copy / moved).read_bytes()


def test_chat_and_mcp_cite_the_pdf_pages(client: TestClient, pdf_engine: SearchEngine) -> None:
    hits = pdf_engine.search(QUERY, top_k=5)
    # The retrieved passages come from fewer pages than there are passages: one source line each.
    pages = {(h.chunk.doc_id, h.chunk.page_start, h.chunk.page_end) for h in hits}
    assert len(pages) < len(hits)

    def ask(limit: int) -> tuple[str, dict[str, Any]]:
        r = client.post(
            "/v1/chat/completions",
            json={
                "model": "athenaeum-index-retrieval",
                "messages": [{"role": "user", "content": QUERY}],
                "max_tokens": limit,
            },
            headers=AUTH,
        )
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["message"]["content"], r.json()

    content, body = ask(500)
    assert body["usage"]["completion_tokens"] == pdf_engine.tokens.count(content) <= 500
    shown = assert_fitted(content, hits, 500)
    # At 500 tokens: the text of at least three passages, each with its source line.
    assert len(shown) >= 3 and all(len(text) > 100 for _, text in shown)
    lines = content.split("Sources:\n", 1)[1].strip().splitlines()
    assert len(lines) == len({n for n, _ in shown})
    for line in lines:
        link = line.rsplit(": ", 1)[1]
        assert "/sources/" in link and "#page=" in link and len(link) < 100
        response = fetch(client, link)
        assert response.status_code == 200 and response.content.startswith(b"%PDF")
    # At 150: the best passage's text and its source.
    content, body = ask(150)
    assert body["usage"]["completion_tokens"] <= 150
    shown = assert_fitted(content, hits, 150)
    assert shown and shown[0][0] == 1 and len(shown[0][1]) > 100
    assert content.split("Sources:\n", 1)[1].startswith("[1] ")

    r = client.post(
        "/mcp",
        json=rpc("tools/call", {"name": "search", "arguments": {"query": QUERY}}),
        headers={**MCP_HEADERS, **AUTH, "mcp-protocol-version": "2025-06-18"},
    )
    hits = r.json()["result"]["structuredContent"]["results"]
    assert hits and all("/sources/" in h["url"] for h in hits)
    assert all(".pdf, p" in h["title"] for h in hits)  # title, file name and page


def test_s3_sources_link_by_presigned_url_and_skip_what_is_missing(
    pdf_engine: SearchEngine, pdf_library: PdfLibrary, moto_endpoint: str
) -> None:
    import boto3

    from infra.index.upload import upload_sources

    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="links-sources")
    upload_sources(s3, pdf_library.bundle, "links-sources")
    missing = next(
        k["Key"]
        for k in s3.list_objects_v2(Bucket="links-sources")["Contents"]
        if k["Key"].endswith("/multicolumn.pdf")
    )
    s3.delete_object(Bucket="links-sources", Key=missing)
    c = make_client(
        pdf_engine,
        sources_s3_uri="s3://links-sources/sources",
        s3_endpoint_url=moto_endpoint,
        link_ttl_s=600,
    )
    found = results(c)
    for r in found:
        if r["source"] == "multicolumn.pdf":
            assert r["source_url"] is None  # not in the bucket: no link, never a broken one
            continue
        # A short signed link to the API (it fits in an answer) ...
        url = r["source_url"]
        assert url.startswith("http://127.0.0.1:8000/sources/") and len(url) < 100
        assert url.endswith(f"#page={r['page_start']}")
        # ... that redirects to a presigned URL made for this click, valid for minutes.
        redirect = c.get(url.split("#")[0], follow_redirects=False)
        assert redirect.status_code == 302 and redirect.headers["cache-control"] == "no-store"
        target = redirect.headers["location"]
        assert target.startswith(f"{moto_endpoint}/links-sources/sources/")
        assert "X-Amz-Expires=300" in target and "X-Amz-Signature=" in target
        body = httpx.get(target).content
        assert body == (pdf_library.pdfs / r["source"]).read_bytes()
    tampered = _with(found[0]["source_url"] or "", signature="x" * 22)
    assert assert_error(c.get(tampered, follow_redirects=False), 403, "invalid_link")


def test_every_instance_signs_with_the_stacks_secret(
    pdf_engine: SearchEngine, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On AWS the link secret is a Secrets Manager secret (ATHENAEUM_LINK_SECRET_ARN): a link
    one instance of the function made opens on another; a secret that cannot be read means no
    links (not a 500), and a click is a 503."""
    import boto3

    from tests.server.test_llm_secret import unique

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint)
    arn = client.create_secret(Name=unique("link-secret"), SecretString="k" * 64)["ARN"]

    def instance(secret_arn: str) -> TestClient:
        settings = Settings(api_key_hashes=[hash_api_key(API_KEY)], link_secret_arn=secret_arn)
        app = create_app(settings, FixedEngineProvider(pdf_engine))
        return TestClient(app, base_url="http://127.0.0.1:8000")

    first, second = instance(arn), instance(arn)
    link = results(first)[0]["source_url"]
    assert link is not None and fetch(second, link).status_code == 200
    missing = instance(arn + "-gone")
    assert all(r["source_url"] is None for r in results(missing))
    assert assert_error(fetch(missing, link), 503, "link_secret_unavailable")["message"].startswith(
        "the source-link secret could not be read"
    )


def test_generating_model_cites_each_document_and_page_range_once(
    pdf_engine: SearchEngine, fake_llm: FakeLLM
) -> None:
    """With a language model, the Sources block after its answer has one line per document and
    page range too, numbered as the passages it was given."""
    settings = Settings(
        api_key_hashes=[hash_api_key(API_KEY)],
        link_secret=SECRET,
        llm_base_url=fake_llm.url,
        llm_api_key=FAKE_LLM_KEY,
        llm_model=FAKE_LLM_MODEL,
        llm_timeout_s=10,
    )
    app = create_app(settings, FixedEngineProvider(pdf_engine))
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    before = len(fake_llm.requests)
    r = client.post(
        "/v1/chat/completions",
        json={"model": "athenaeum-index-rag", "messages": [{"role": "user", "content": QUERY}]},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    hits = pdf_engine.search(QUERY, top_k=5)
    ranges = list(dict.fromkeys((h.chunk.doc_id, h.chunk.page_start) for h in hits))
    assert len(ranges) < len(hits)  # some passages share a page
    lines = r.json()["choices"][0]["message"]["content"].split("Sources:\n", 1)[1].splitlines()
    assert len(lines) == len({line.split("] ", 1)[1] for line in lines}) <= len(ranges)
    # The prompt numbers the passages as the Sources block does: a shared page, a shared number.
    system = next(r for r in fake_llm.requests[before:] if r["messages"][-1]["content"] == QUERY)
    numbers = re.findall(r"^\[(\d+)\] ", system["messages"][0]["content"], re.MULTILINE)
    assert len(numbers) == len(hits) and sorted(set(numbers)) == [
        str(n) for n in range(1, len(lines) + 1)
    ]
