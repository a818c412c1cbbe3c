"""OpenAI-compatible chat completions: the retrieval model, the generating model over a fake
upstream on 127.0.0.1, streaming, and the official openai SDK against a live server."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import openai
import pytest
from fastapi.testclient import TestClient

from athenaeum.retrieval import citations
from athenaeum.retrieval.engine import Hit, SearchEngine
from athenaeum.server.answers import followup
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings
from tests.server.conftest import FAKE_LLM_KEY, FAKE_LLM_MODEL, FAKE_REWRITE, FakeLLM
from tests.server.helpers import (
    assert_error,
    assert_fitted,
    parse_sse,
    passages,
    sources_block,
    stream_text,
)

QUESTION = "Does vitamin D deficiency affect bone health?"
RETRIEVAL = "athenaeum-index-retrieval"
RAG = "athenaeum-index-rag"


@pytest.fixture
def rag_settings(fake_llm: FakeLLM) -> Settings:
    return Settings(
        insecure_no_auth=True,
        llm_base_url=fake_llm.url,
        llm_api_key=FAKE_LLM_KEY,  # type: ignore[arg-type]
        llm_model=FAKE_LLM_MODEL,
        llm_timeout_s=10,
    )


@pytest.fixture
def rag_client(scifact_engine: SearchEngine, rag_settings: Settings) -> TestClient:
    return TestClient(create_app(rag_settings, FixedEngineProvider(scifact_engine)))


def test_retrieval_model_answers_with_numbered_citations(
    client: TestClient, scifact_engine: SearchEngine
) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": RETRIEVAL,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
            ],
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == RETRIEVAL
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    top = scifact_engine.search(QUESTION, top_k=5)
    for n, hit in enumerate(top, 1):
        assert citations.heading(n, hit.chunk) in content
    assert "Sources:" in content and "/chunks/" in content
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # Tokens of the bundle's own tokenizer.
    tokens = scifact_engine.tokens
    assert usage["completion_tokens"] == tokens.count(content)
    assert usage["prompt_tokens"] == tokens.count("Be brief.") + tokens.count(QUESTION)
    assert usage["completion_tokens"] > len(content.split())  # word pieces, not words


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_retrieval_model_answers_within_any_budget(
    client: TestClient, scifact_engine: SearchEngine, field: str
) -> None:
    def ask(limit: int | None, stream: bool = False) -> tuple[str, str, int]:
        extra = {field: limit} if limit is not None else {}
        messages = [{"role": "user", "content": QUESTION}]
        body = {"model": RETRIEVAL, "messages": messages, "stream": stream, **extra}
        if stream:
            body["stream_options"] = {"include_usage": True}
        r = client.post("/chat/completions", json=body)
        assert r.status_code == 200, r.text
        if stream:
            chunks = parse_sse(r.text)
            finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
            return stream_text(chunks), finish, chunks[-1]["usage"]["completion_tokens"]
        choice = r.json()["choices"][0]
        return (
            choice["message"]["content"],
            choice["finish_reason"],
            r.json()["usage"]["completion_tokens"],
        )

    tokens = scifact_engine.tokens
    hits = scifact_engine.search(QUESTION, top_k=5)
    full, finish, needed = ask(None)
    assert finish == "stop" and needed == tokens.count(full)
    assert [text for _, text in assert_fitted(full, hits, needed)] == [
        h.chunk.text.strip() for h in hits
    ]
    # Room for everything: the same answer, finished.
    assert ask(needed) == (full, "stop", needed)

    # Any less, down to a single token, streamed or not: within the budget, counted as usage
    # counts, and `length`.
    for limit in (1, 2, 5, 16, 40, 50, 100, 150, 300, needed // 2, needed - 1):
        for stream in (False, True):
            content, finish, used = ask(limit, stream)
            assert used == tokens.count(content) <= limit, (limit, stream)
            assert finish == "length"
            shown = assert_fitted(content, hits, limit)
            if limit >= 150:
                # The best passage's text with its source line, at least.
                assert shown and shown[0][0] == 1 and len(shown[0][1]) > 40
                assert len(sources_block(content)) >= 1
    # Passages fill what the sources leave: the more room, the more text and passages.
    shown_at = {limit: passages(ask(limit)[0]) for limit in (150, 300, needed - 1)}
    assert len(shown_at[150]) <= len(shown_at[300]) <= len(shown_at[needed - 1]) == 5
    text_at = {limit: sum(len(t) for _, t in shown) for limit, shown in shown_at.items()}
    assert text_at[150] < text_at[300] < text_at[needed - 1]


def test_retrieval_model_streams_sse_chunks(client: TestClient) -> None:
    plain = client.post(
        "/chat/completions",
        json={"model": RETRIEVAL, "messages": [{"role": "user", "content": QUESTION}]},
    ).json()
    r = client.post(
        "/chat/completions",
        json={
            "model": RETRIEVAL,
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    chunks = parse_sse(r.text)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert stream_text(chunks) == plain["choices"][0]["message"]["content"]
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finals] == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    # Without include_usage no usage chunk is sent.
    r = client.post(
        "/chat/completions",
        json={
            "model": RETRIEVAL,
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
        },
    )
    assert all("usage" not in c for c in parse_sse(r.text))


def test_generating_model_is_listed_only_when_configured(
    client: TestClient, rag_client: TestClient
) -> None:
    assert [m["id"] for m in client.get("/models").json()["data"]] == [RETRIEVAL]
    assert [m["id"] for m in rag_client.get("/v1/models").json()["data"]] == [RETRIEVAL, RAG]
    assert_error(
        client.post(
            "/chat/completions", json={"model": RAG, "messages": [{"role": "user", "content": "x"}]}
        ),
        404,
        "model_not_found",
    )


def test_generating_model_prompts_the_upstream_withpassages(
    rag_client: TestClient, fake_llm: FakeLLM, scifact_engine: SearchEngine
) -> None:
    before = len(fake_llm.requests)
    r = rag_client.post(
        "/v1/chat/completions",
        json={
            "model": RAG,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 50,
            "temperature": 0.2,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    content = body["choices"][0]["message"]["content"]
    assert content.startswith("Vitamin D matters [1].")
    top = scifact_engine.search(QUESTION, top_k=5)
    source, *_ = citations.sources([top[0].chunk])[0]
    assert citations.source_line(1, source, "http://testserver") in content
    assert body["model"] == RAG
    assert body["usage"] == {"prompt_tokens": 42, "completion_tokens": 4, "total_tokens": 46}
    sent = fake_llm.requests[before]
    assert sent["model"] == FAKE_LLM_MODEL and sent["max_tokens"] == 50
    assert sent["temperature"] == 0.2 and "max_completion_tokens" not in sent
    system = sent["messages"][0]
    assert system["role"] == "system" and f"[1] {top[0].chunk.title}" in system["content"]
    assert top[0].chunk.text.strip()[:200] in system["content"]
    assert sent["messages"][-1] == {"role": "user", "content": QUESTION}


def test_generating_model_streams_through(rag_client: TestClient) -> None:
    r = rag_client.post(
        "/chat/completions",
        json={
            "model": RAG,
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200
    chunks = parse_sse(r.text)
    text = stream_text(chunks)
    assert text.startswith("Vitamin D matters [1].") and "\n\nSources:\n[1] " in text
    assert chunks[-1]["usage"]["total_tokens"] == 46
    assert all(c["model"] == RAG for c in chunks)


@pytest.mark.parametrize(
    ("trigger", "status", "code"),
    [("RATE_LIMIT", 429, "rate_limit_exceeded"), ("BOOM", 502, "upstream_error")],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_are_errors_not_200s(
    rag_client: TestClient, trigger: str, status: int, code: str, stream: bool
) -> None:
    r = rag_client.post(
        "/chat/completions",
        json={
            "model": RAG,
            "messages": [{"role": "user", "content": f"{QUESTION} {trigger}"}],
            "stream": stream,
        },
    )
    assert_error(r, status, code)


def test_unreachable_upstream_is_503(scifact_engine: SearchEngine, rag_settings: Settings) -> None:
    settings = rag_settings.model_copy(update={"llm_base_url": "http://127.0.0.1:9/v1"})
    c = TestClient(create_app(settings, FixedEngineProvider(scifact_engine)))
    r = c.post(
        "/chat/completions",
        json={"model": RAG, "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert_error(r, 503, "upstream_unavailable")


def test_wrong_upstream_key_is_a_server_side_error(
    scifact_engine: SearchEngine, rag_settings: Settings
) -> None:
    from pydantic import SecretStr

    settings = rag_settings.model_copy(update={"llm_api_key": SecretStr("wrong-key-123456789")})
    c = TestClient(create_app(settings, FixedEngineProvider(scifact_engine)))
    r = c.post(
        "/chat/completions",
        json={"model": RAG, "messages": [{"role": "user", "content": QUESTION}]},
    )
    e = assert_error(r, 502, "upstream_error")  # not 401: the caller's credentials were fine
    assert "wrong-key" not in e["message"]


def test_openai_sdk_against_a_live_server(
    scifact_engine: SearchEngine, rag_settings: Settings, live_server: Callable[[Any], Any]
) -> None:
    server = live_server(create_app(rag_settings, FixedEngineProvider(scifact_engine)))
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused-locally", max_retries=0)

    assert [m.id for m in sdk.models.list()] == [RETRIEVAL, RAG]

    completion = sdk.chat.completions.create(
        model=RETRIEVAL, messages=[{"role": "user", "content": QUESTION}], max_completion_tokens=40
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens <= 40
    # 40 tokens do not hold a passage with its source line: the best passage under its name
    best = scifact_engine.search(QUESTION, top_k=1)[0].chunk
    content = completion.choices[0].message.content
    assert content and content.startswith(f"**{best.label}**")
    assert scifact_engine.tokens.count(content) == completion.usage.completion_tokens

    stream = sdk.chat.completions.create(
        model=RAG,
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Vitamin D matters [1].") and "Sources:" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 46

    streamed = sdk.chat.completions.create(
        model=RETRIEVAL, messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    assert "[1]" in "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)

    with pytest.raises(openai.NotFoundError) as excinfo:
        sdk.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert excinfo.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model=RETRIEVAL, messages=[])


# --- follow-up questions ---------------------------------------------------------------------

FOLLOW_UP = "What about in children?"
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": QUESTION},
    {"role": "assistant", "content": "Vitamin D matters [1]."},
    {"role": "user", "content": FOLLOW_UP},
]


@pytest.fixture
def rewrites(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    """The fake upstream, its rewrite answer restored after the test."""
    yield fake_llm
    fake_llm.rewrites_with(FAKE_REWRITE)


def _ids(hits: list[Hit]) -> list[str]:
    return [h.chunk.id for h in hits]


def _fallback_hits(engine: SearchEngine) -> list[Hit]:
    # The fallback's two searches, spelled out: the follow-up alone, and after the question.
    def search(query: str, top_k: int) -> list[Hit]:
        return engine.search(query, top_k, "hybrid")

    return followup.search_fallback(search, [FOLLOW_UP, f"{QUESTION} {FOLLOW_UP}"], 5)


def _prompted_with(system: str, hits: list[Hit]) -> bool:
    """Whether the upstream's system prompt holds exactly these passages, in this order."""
    numbered = all(
        f"[{n}] {h.chunk.title}" in system and h.chunk.text.strip()[:200] in system
        for n, h in enumerate(hits, 1)
    )
    return numbered and f"[{len(hits) + 1}] " not in system


def _retrieved_for(r: Any) -> tuple[str, str]:
    return unquote(r.headers["x-athenaeum-query"]), r.headers["x-athenaeum-query-method"]


def test_retrieval_model_reads_a_follow_up_with_the_earlier_question(
    client: TestClient, scifact_engine: SearchEngine
) -> None:
    fallback = _fallback_hits(scifact_engine)
    assert _ids(fallback) != _ids(scifact_engine.search(FOLLOW_UP, 5))  # the context matters

    r = client.post("/v1/chat/completions", json={"model": RETRIEVAL, "messages": CONVERSATION})
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["message"]["content"]
    label = f"{FOLLOW_UP} (context: {QUESTION})"
    assert content.startswith(f"Passages from the library for: {label}\n")
    for n, hit in enumerate(fallback, 1):
        assert citations.heading(n, hit.chunk) in content
    assert _retrieved_for(r) == (label, "fallback")

    # A first turn is searched for as it is.
    r = client.post(
        "/v1/chat/completions",
        json={"model": RETRIEVAL, "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert _retrieved_for(r) == (QUESTION, "first-turn")


def test_generating_model_sends_no_rewrite_for_a_first_turn(
    rag_client: TestClient, fake_llm: FakeLLM
) -> None:
    before = len(fake_llm.requests)
    r = rag_client.post(
        "/chat/completions",
        json={
            "model": RAG,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": QUESTION},
            ],
        },
    )
    assert r.status_code == 200, r.text
    sent = fake_llm.requests[before:]
    assert len(sent) == 1 and sent[0]["messages"][0]["content"] != followup.REWRITE_PROMPT
    assert _retrieved_for(r) == (QUESTION, "first-turn")


@pytest.mark.parametrize("stream", [False, True])
def test_generating_model_rewrites_a_follow_up_then_retrieves_for_the_rewrite(
    rag_client: TestClient, rewrites: FakeLLM, scifact_engine: SearchEngine, stream: bool
) -> None:
    rewritten = scifact_engine.search(FAKE_REWRITE, 5)
    assert _ids(rewritten) != _ids(_fallback_hits(scifact_engine))
    before = len(rewrites.requests)
    r = rag_client.post(
        "/chat/completions",
        json={"model": RAG, "messages": CONVERSATION, "temperature": 0.7, "stream": stream},
    )
    assert r.status_code == 200, r.text
    text = (
        stream_text(parse_sse(r.text)) if stream else r.json()["choices"][0]["message"]["content"]
    )
    assert text.startswith("Vitamin D matters [1].")
    rewrite, answer = rewrites.requests[before:]  # one rewrite, then the answer
    assert rewrite["messages"] == [
        {"role": "system", "content": followup.REWRITE_PROMPT},
        {
            "role": "user",
            "content": f"user: {QUESTION}\nassistant: Vitamin D matters [1].\nuser: {FOLLOW_UP}",
        },
    ]
    assert rewrite["max_tokens"] == 64 and rewrite["temperature"] == 0
    assert "stream" not in rewrite
    assert answer["temperature"] == 0.7 and answer["messages"][-1]["content"] == FOLLOW_UP
    assert _prompted_with(answer["messages"][0]["content"], rewritten)
    assert _retrieved_for(r) == (FAKE_REWRITE, "rewrite")


@pytest.mark.parametrize("failure", [500, 429, 503, "", "  \n  "])
def test_a_failed_rewrite_falls_back_and_still_answers(
    rag_client: TestClient,
    rewrites: FakeLLM,
    scifact_engine: SearchEngine,
    caplog: pytest.LogCaptureFixture,
    failure: str | int,
) -> None:
    rewrites.rewrites_with(failure)
    before = len(rewrites.requests)
    with caplog.at_level(logging.WARNING, logger="athenaeum.chat"):
        r = rag_client.post("/chat/completions", json={"model": RAG, "messages": CONVERSATION})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].startswith("Vitamin D matters [1].")
    rewrite, answer = rewrites.requests[before:]
    assert rewrite["messages"][0]["content"] == followup.REWRITE_PROMPT
    assert _prompted_with(answer["messages"][0]["content"], _fallback_hits(scifact_engine))
    assert _retrieved_for(r) == (f"{FOLLOW_UP} (context: {QUESTION})", "fallback")
    assert any("query rewrite" in rec.getMessage() for rec in caplog.records)


def test_a_slow_rewrite_times_out_into_the_fallback(
    scifact_engine: SearchEngine, rag_settings: Settings, rewrites: FakeLLM
) -> None:
    settings = rag_settings.model_copy(update={"llm_timeout_s": 0.5})
    c = TestClient(create_app(settings, FixedEngineProvider(scifact_engine)))
    rewrites.rewrites_with(FAKE_REWRITE, delay_s=2.0)
    r = c.post("/chat/completions", json={"model": RAG, "messages": CONVERSATION})
    assert r.status_code == 200, r.text
    assert _retrieved_for(r)[1] == "fallback"


def test_retrieval_model_never_calls_the_upstream(
    rag_client: TestClient, fake_llm: FakeLLM, scifact_engine: SearchEngine
) -> None:
    # Even with a generating model configured, the retrieval model needs none: its answer is
    # the same on every server.
    before = len(fake_llm.requests)
    r = rag_client.post("/chat/completions", json={"model": RETRIEVAL, "messages": CONVERSATION})
    assert r.status_code == 200 and len(fake_llm.requests) == before
    assert _retrieved_for(r)[1] == "fallback"


class _Recording:
    """The engine, recording every query it is asked to search for."""

    def __init__(self, engine: SearchEngine) -> None:
        self._engine = engine
        self.queries: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def search(self, query: str, *args: Any, **kwargs: Any) -> list[Hit]:
        self.queries.append(query)
        return self._engine.search(query, *args, **kwargs)


def test_a_long_message_is_searched_for_within_the_query_limit(
    scifact_engine: SearchEngine,
) -> None:
    # A chat message is not a search query: a long pasted message is answered (not a 400, as
    # /search and MCP answer an over-long query), and the query derived from it is its first
    # max_query_chars characters, shown in the header. Every query searched for is within it.
    recording = _Recording(scifact_engine)
    limit = len(QUESTION)
    c = TestClient(
        create_app(
            Settings(insecure_no_auth=True, max_query_chars=limit),
            FixedEngineProvider(recording),  # type: ignore[arg-type]
        )
    )
    pasted = f"{QUESTION} " + "and here is the whole article I read about it " * 20
    r = c.post(
        "/v1/chat/completions",
        json={"model": RETRIEVAL, "messages": [{"role": "user", "content": pasted}]},
    )
    assert r.status_code == 200, r.text
    assert _retrieved_for(r) == (QUESTION, "first-turn")
    assert recording.queries == [QUESTION]

    # A follow-up's fallback: the earlier turns get only the room the last message leaves.
    recording.queries.clear()
    r = c.post("/v1/chat/completions", json={"model": RETRIEVAL, "messages": CONVERSATION})
    assert r.status_code == 200, r.text
    assert _retrieved_for(r)[1] == "fallback"
    assert len(recording.queries) == 2 and all(len(q) <= limit for q in recording.queries)
    assert recording.queries[0] == FOLLOW_UP and recording.queries[1].endswith(FOLLOW_UP)
