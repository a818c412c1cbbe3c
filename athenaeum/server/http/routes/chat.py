"""OpenAI-compatible `/chat/completions`: answers grounded in the index, streamed or not.

`athenaeum-index-retrieval` needs no language model: it answers with the passages retrieved for
the last user message, as markdown with numbered citations (athenaeum.server.answers.retrieval).
`athenaeum-index-rag` (only when an upstream is configured) retrieves the same passages, prompts
the upstream with them (athenaeum.server.answers.prompt) and returns its answer followed by the
numbered sources. A follow-up is retrieved for with the earlier turns
(athenaeum.server.answers.followup: the generating model's rewrite, else a fallback without a
model). This module is the route: the request, the response and its server-sent events.

Token counts: `usage` and `max_tokens` count tokens of the bundle's own tokenizer
(athenaeum.retrieval.tokens), the generating model's usage the upstream's counts where it gives
them. The retrieval model fits its answer into `max_tokens`: the Sources block with its links is
always whole, and the passages are shortened first (`finish_reason: "length"` says they were).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from athenaeum.errors import ModelNotFoundError, UpstreamError
from athenaeum.retrieval.backend import Hit
from athenaeum.retrieval.tokens import TokenCounter
from athenaeum.server.answers import followup
from athenaeum.server.answers.llm import LLMClient
from athenaeum.server.answers.prompt import upstream_messages
from athenaeum.server.answers.retrieval import retrieval_answer, sources_block
from athenaeum.server.http import searching
from athenaeum.server.http.deps import app_settings, base_url, engine_provider, source_links
from athenaeum.server.http.routes.meta import GENERATION_MODEL, RETRIEVAL_MODEL, model_ids
from athenaeum.server.http.schemas import (
    COMMON_ERRORS,
    ErrorResponse,
    RequestBody,
    SearchFilterModel,
    error_responses,
)
from athenaeum.server.http.sources import citation_links
from athenaeum.server.settings import Settings

PASSAGES = 5
_WORD = re.compile(r"\s*\S+")
_STREAM_WORDS = 12  # words per streamed chunk of the retrieval model


# --- request and response ----------------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(RequestBody):
    # The OpenAI SDK sends many optional parameters; the ones that do not apply are ignored.
    model_config = ConfigDict(extra="allow")

    model: str = Field(description="athenaeum-index-retrieval, or the generating model's id.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=1, description="Only 1 is supported.")
    stop: str | list[str] | None = None
    # The one extension field: the same filter /search and MCP `search` take (with the OpenAI
    # SDK: extra_body={"filter": {...}}).
    filter: SearchFilterModel | None = Field(
        default=None,
        description="Athenaeum extension: retrieve only from some documents, pages or "
        "metadata values (the /search filter).",
    )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


# --- helpers -------------------------------------------------------------------------------------


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    if message.content is None:
        return ""
    return "\n".join(part.text for part in message.content if part.text)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def _chunk(
    cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def _usage_chunk(cid: str, created: int, model: str, usage: Usage) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.model_dump(),
    }


def _event_stream(chunks: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/event-stream",
        # no-transform / X-Accel-Buffering: proxies must not buffer or compress the stream.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


# --- the endpoint ------------------------------------------------------------------------------

router = APIRouter(tags=["openai"])

CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A chat completion, or with `stream: true` a stream of "
        "`chat.completion.chunk` server-sent events ending in `data: [DONE]`.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    **error_responses(*COMMON_ERRORS, 415, 429, 502),
    404: {"model": ErrorResponse, "description": "Unknown model"},
}


async def _chat(body: ChatCompletionRequest, request: Request) -> Response:
    settings = app_settings(request)
    if body.model not in model_ids(settings):
        raise ModelNotFoundError(
            f"the model {body.model!r} does not exist; available: {', '.join(model_ids(settings))}",
            param="model",
        )
    turns = [followup.Turn(m.role, _text(m)) for m in body.messages]
    followup.latest_question(turns, settings.max_query_chars)  # a 400 before loading the index
    backend = await searching.caller_backend(engine_provider(request), settings, request.scope)
    found = await followup.retrieve(
        turns,
        searching.Searcher.of(backend, settings.max_query_chars, body.filter),
        top_k=PASSAGES,
        max_chars=settings.max_query_chars,
        client=followup.rewriter(settings) if body.model != RETRIEVAL_MODEL else None,
    )
    query, results = found.query, found.hits
    base = base_url(request)
    # In the thread pool: the first link to a local file hashes it, an S3 one asks the bucket.
    links = await run_in_threadpool(citation_links, results, source_links(request, backend), base)
    limit = body.max_completion_tokens or body.max_tokens
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    tokens = backend.tokens
    if body.model == RETRIEVAL_MODEL:
        answer, truncated = retrieval_answer(query, results, links, tokens, limit)
        usage = _usage(tokens, [_text(m) for m in body.messages], answer)
        finish: Literal["stop", "length"] = "length" if truncated else "stop"
        if body.stream:
            response: Response = _event_stream(
                _stream_text(body.model, answer, finish, usage if include_usage else None)
            )
        else:
            response = _completion(body.model, answer, finish, usage)
    else:
        response = await _generate(body, turns, settings, results, links, tokens, include_usage)
    response.headers.update(followup.headers(found))
    return response


def _completion(
    model: str, answer: str, finish: Literal["stop", "length"], usage: Usage
) -> Response:
    completion = ChatCompletion(
        id=_completion_id(),
        created=int(time.time()),
        model=model,
        choices=[Choice(index=0, message=AssistantMessage(content=answer), finish_reason=finish)],
        usage=usage,
    )
    return Response(completion.model_dump_json(), media_type="application/json")


async def _stream_text(
    model: str, answer: str, finish: str, usage: Usage | None
) -> AsyncIterator[bytes]:
    cid, created = _completion_id(), int(time.time())
    yield _sse(_chunk(cid, created, model, {"role": "assistant", "content": ""}))
    pieces = _WORD.findall(answer)
    for start in range(0, len(pieces), _STREAM_WORDS):
        text = "".join(pieces[start : start + _STREAM_WORDS])
        yield _sse(_chunk(cid, created, model, {"content": text}))
    yield _sse(_chunk(cid, created, model, {}, finish))
    if usage is not None:
        yield _sse(_usage_chunk(cid, created, model, usage))
    yield _sse("[DONE]")


async def _generate(
    body: ChatCompletionRequest,
    turns: list[followup.Turn],
    settings: Settings,
    results: list[Hit],
    links: list[str],
    tokens: TokenCounter,
    include_usage: bool,
) -> Response:
    assert settings.llm_base_url and settings.llm_api_key and settings.llm_model
    client = LLMClient(
        settings.llm_base_url,
        settings.llm_api_key.get_secret_value(),
        settings.llm_model,
        timeout_s=settings.llm_timeout_s,
    )
    options: dict[str, Any] = {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": body.stop,
        # Forwarded under the name the caller used: older OpenAI-compatible servers know only
        # max_tokens, newer OpenAI models only max_completion_tokens.
        "max_tokens": body.max_tokens,
        "max_completion_tokens": body.max_completion_tokens,
    }
    messages = upstream_messages(turns, results)
    sources = "\n\nSources:\n" + sources_block(results, links) if results else ""
    if body.stream:
        upstream = client.stream(messages, **options, stream_options={"include_usage": True})
        # Pull the first chunk before answering, so that an unreachable or refusing upstream is
        # an error status rather than a broken 200 stream.
        first = await anext(upstream, None)
        return _event_stream(
            _relay(body.model, first, upstream, sources, include_usage, messages, tokens)
        )
    answer = await client.complete(messages, **options)
    choice = answer["choices"][0] if answer["choices"] else {}
    content = str((choice.get("message") or {}).get("content") or "")
    finish: Literal["stop", "length"] = (
        "length" if choice.get("finish_reason") == "length" else "stop"
    )
    content += sources
    usage = _upstream_usage(answer.get("usage"), messages, content, tokens)
    return _completion(body.model, content, finish, usage)


def _usage(tokens: TokenCounter, prompts: Iterable[str], completion: str) -> Usage:
    prompt = sum(tokens.count(text) for text in prompts)
    done = tokens.count(completion)
    return Usage(prompt_tokens=prompt, completion_tokens=done, total_tokens=prompt + done)


def _upstream_usage(
    raw: Any, messages: list[dict[str, Any]], content: str, tokens: TokenCounter
) -> Usage:
    """The upstream's own counts where it gives them, else ours."""
    if isinstance(raw, dict) and isinstance(raw.get("prompt_tokens"), int):
        prompt = int(raw["prompt_tokens"])
        completion = int(raw.get("completion_tokens") or 0)
        return Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
    return _usage(tokens, (str(m["content"]) for m in messages), content)


async def _relay(
    model: str,
    first: dict[str, Any] | None,
    upstream: AsyncIterator[dict[str, Any]],
    sources: str,
    include_usage: bool,
    messages: list[dict[str, Any]],
    tokens: TokenCounter,
) -> AsyncIterator[bytes]:
    cid, created = _completion_id(), int(time.time())
    yield _sse(_chunk(cid, created, model, {"role": "assistant", "content": ""}))
    finish = "stop"
    usage_raw: Any = None
    text: list[str] = []

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        if first is not None:
            yield first
        async for item in upstream:
            yield item

    try:
        async for item in chunks():
            if item.get("usage"):
                usage_raw = item["usage"]
            for choice in item.get("choices") or []:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if content:
                    text.append(str(content))
                    yield _sse(_chunk(cid, created, model, {"content": content}))
                if choice.get("finish_reason"):
                    finish = "length" if choice["finish_reason"] == "length" else "stop"
    except Exception as exc:
        # The status line is already sent: end the stream with an error event in OpenAI's
        # shape (the SDK raises it as an APIError) instead of a silently cut answer.
        message = getattr(exc, "message", None) or "the language model failed mid-answer"
        yield _sse(UpstreamError(message).body())
        yield _sse("[DONE]")
        return
    if sources:
        yield _sse(_chunk(cid, created, model, {"content": sources}))
        text.append(sources)
    yield _sse(_chunk(cid, created, model, {}, finish))
    if include_usage:
        yield _sse(
            _usage_chunk(
                cid, created, model, _upstream_usage(usage_raw, messages, "".join(text), tokens)
            )
        )
    yield _sse("[DONE]")


CHAT_DESCRIPTION = (
    "OpenAI-compatible chat completion answered from the library, with numbered citations. "
    "Set stream to true for server-sent events."
)


@router.post(
    "/chat/completions",
    name="createChatCompletion",
    summary="Chat completion",
    description=CHAT_DESCRIPTION,
    response_model=ChatCompletion,
    responses=CHAT_RESPONSES,
)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    return await _chat(body, request)


__all__ = ["GENERATION_MODEL", "RETRIEVAL_MODEL", "router"]
