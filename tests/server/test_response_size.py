"""A GPT action's response must stay under 100,000 characters (OpenAI's production notes for
GPT actions): `/search` at the largest `top_k` keeps the best-ranked passages that fit and says
how many it left out."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from athenaeum.retrieval.backend import MAX_TOP_K
from athenaeum.server.http.routes.search import MAX_RESPONSE_CHARS, fit_response
from athenaeum.server.http.schemas import Passage, SearchResponse

CHATGPT_LIMIT = 100_000


def test_search_at_the_largest_top_k_fits_and_keeps_the_best_ranked(client: TestClient) -> None:
    # The SciFact slice's chunks are whole abstracts (up to 6,900 characters): fifty of them
    # come to about 110,000 characters.
    r = client.post("/search", json={"query": "the", "top_k": MAX_TOP_K})
    assert r.status_code == 200, r.text
    assert len(r.text) <= MAX_RESPONSE_CHARS < CHATGPT_LIMIT
    body = r.json()
    assert body["omitted"] > 0
    assert len(body["results"]) + body["omitted"] == MAX_TOP_K
    # The passages kept are the first ones of the whole ranking, in order.
    fewer = client.post("/search", json={"query": "the", "top_k": len(body["results"])}).json()
    assert [p["id"] for p in fewer["results"]] == [p["id"] for p in body["results"]]
    assert fewer["omitted"] == 0


def test_a_small_answer_is_whole() -> None:
    passages = [_passage(i, "word " * 100) for i in range(5)]
    whole = SearchResponse(query="q", mode="hybrid", results=passages)
    assert json.loads(fit_response(whole)) == json.loads(whole.model_dump_json())


def test_the_budget_is_kept_to_the_character() -> None:
    passages = [_passage(i, "x" * 1000) for i in range(40)]
    response = SearchResponse(query="q", mode="hybrid", results=passages)
    for budget in (3_000, 10_000, 10_001, 25_555):
        text = fit_response(response, budget)
        body = json.loads(text)
        assert len(text) <= budget
        kept = len(body["results"])
        assert body["omitted"] == 40 - kept and kept >= 1
        # One passage more would not have fitted.
        more = response.model_copy(update={"results": passages[: kept + 1], "omitted": 0})
        assert len(more.model_dump_json()) > budget
    # The best passage is kept even when it alone is over the budget.
    body = json.loads(fit_response(response, 500))
    assert [p["id"] for p in body["results"]] == ["d0#0"] and body["omitted"] == 39


def _passage(i: int, text: str) -> Passage:
    return Passage(
        id=f"d{i}#0",
        text=text,
        score=1.0 - i / 100,
        title=f"Document {i}",
        source=f"d{i}.md",
        heading_path=[],
        page_start=None,
        page_end=None,
        url=f"https://example.org/chunks/d{i}%230",
    )
