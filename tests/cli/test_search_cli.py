"""`athenaeum search`: the CLI prints the engine's hits, as text and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from athenaeum.cli.main import app
from athenaeum.retrieval.engine import SearchEngine
from tests.conftest import PdfLibrary

QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."


def test_search_json_carries_each_hit(scifact_bundle: Path, scifact_engine: SearchEngine) -> None:
    result = CliRunner().invoke(
        app, ["search", QUERY, "--index", str(scifact_bundle), "--top-k", "3", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    expected = scifact_engine.search(QUERY, top_k=3)
    assert [r["chunk_id"] for r in payload["results"]] == [h.chunk.id for h in expected]
    first = payload["results"][0]
    assert set(first) == {
        "chunk_id",
        "doc_id",
        "score",
        "text",
        "source",
        "title",
        "page_start",
        "page_end",
        "location",
        "heading_path",
    }
    assert first["location"] == f"p. {first['page_start']}"  # a BEIR document is one page
    assert first["score"] == expected[0].score and first["text"] == expected[0].chunk.text


def test_search_text_names_source_pages_and_chunk(scifact_bundle: Path) -> None:
    result = CliRunner().invoke(app, ["search", QUERY, "--index", str(scifact_bundle), "-k", "1"])
    assert result.exit_code == 0, result.output
    assert "1. " in result.output and "corpus.jsonl, p. 1" in result.output
    assert "chunk " in result.output


def test_a_bad_index_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["search", QUERY, "--index", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "error:" in result.output and "is not a directory" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_one_top_k_limit_for_the_cli_and_the_api(scifact_bundle: Path) -> None:
    from athenaeum.retrieval.engine import MAX_TOP_K
    from athenaeum.server.http.app import create_app
    from athenaeum.server.settings import Settings

    over = str(MAX_TOP_K + 1)
    result = CliRunner().invoke(app, ["search", QUERY, "--index", str(scifact_bundle), "-k", over])
    assert result.exit_code == 2 and f"from 1 to {MAX_TOP_K}" in result.output
    schema = create_app(Settings(insecure_no_auth=True)).openapi()
    assert schema["components"]["schemas"]["SearchRequest"]["properties"]["top_k"]["maximum"] == (
        MAX_TOP_K
    )


def test_search_filters_from_the_command_line(pdf_library: PdfLibrary) -> None:
    def run(*options: str) -> tuple[int, Any]:
        index = str(pdf_library.bundle)
        args = ["search", "report", "--index", index, "-k", "50", "--json", *options]
        result = CliRunner().invoke(app, args)
        out = result.output
        return result.exit_code, json.loads(out) if result.exit_code == 0 else out

    code, payload = run("--document", "reports/", "--pages", "2-")
    assert code == 0, payload
    assert payload["results"]
    for r in payload["results"]:
        assert r["source"].startswith("reports/") and r["page_end"] >= 2
    code, payload = run("--meta", "category=court", "--meta", "category=nothing")
    assert code == 0 and {r["source"] for r in payload["results"]} == {"scotus-transcript-p1.pdf"}

    code, output = run("--pages", "two")
    assert code == 2 and "--pages" in output and "Traceback" not in output
    code, output = run("--meta", "author=x")
    assert code == 2 and "'author'" in output and output.startswith("error: --meta:")
    # A --document that matches nothing says so, with the closest documents, not "no results".
    code, output = run("--document", "scotus.pdf")
    assert code == 2 and "Traceback" not in output
    assert output.startswith("error: --document: no document in this index matches 'scotus.pdf'")
    assert "the closest: scotus-transcript-p1.pdf" in output
    code, output = run("--meta", "source=multicolumn.pdf")
    assert code == 2 and output.startswith("error: --meta: 'source' is a field `convert` writes")
