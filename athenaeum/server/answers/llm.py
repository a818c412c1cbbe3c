"""A minimal client for an OpenAI-compatible `/chat/completions` upstream (OpenAI, Bedrock's
OpenAI-compatible endpoint, vLLM, Ollama), on httpx, which the serve side already has.

The openai SDK would pull another dependency into the Lambda layer for two calls. Upstream
failures become domain errors with statuses that say whose fault they are: an unreachable or
timed-out upstream is 503, its rate limit is 429, a request it refuses is 400 with its message,
anything else (including it rejecting our key) is 502.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from athenaeum.errors import (
    InvalidInputError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamUnavailableError,
)

if TYPE_CHECKING:
    import httpx

_MAX_ERROR_CHARS = 500


class LLMClient:
    def __init__(self, base_url: str, api_key: str, model: str, *, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self._timeout_s = timeout_s

    def __repr__(self) -> str:  # never the key
        return f"LLMClient(base_url={self.base_url!r}, model={self.model!r})"

    def _payload(
        self, messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any]
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        payload.update({k: v for k, v in options.items() if v is not None})
        return payload

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        # A client per call: on Lambda every invocation may run on a fresh event loop, and a
        # pooled client bound to an old loop fails; LLM latency dwarfs the connection setup.
        # Transport failures of every call become 503s here. httpx is imported on the first
        # call, not with the app: a cold start that answers /search never needs it.
        import httpx

        timeout = httpx.Timeout(self._timeout_s, connect=min(10.0, self._timeout_s))
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url,
                timeout=timeout,
                headers={"Authorization": f"Bearer {self._api_key}"},
            ) as client:
                yield client
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailableError(
                f"the language model at {self.base_url} timed out"
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailableError(
                f"the language model at {self.base_url} is unreachable ({type(exc).__name__})"
            ) from exc

    async def complete(
        self, messages: Sequence[Mapping[str, Any]], **options: Any
    ) -> dict[str, Any]:
        """One non-streamed completion: the upstream's JSON body."""
        try:
            async with self._client() as client:
                response = await client.post(
                    "/chat/completions", json=self._payload(messages, options)
                )
                if response.status_code != 200:
                    raise _status_error(response.status_code, response.text)
                body = response.json()
        except ValueError as exc:
            raise UpstreamError("the language model answered with invalid JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise UpstreamError("the language model's answer has no choices")
        return body

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], **options: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """The upstream's `chat.completion.chunk` objects as they arrive, without `[DONE]`.

        Errors before the first chunk raise domain errors (the caller can still answer with an
        error status); later ones raise too, and the caller ends the stream."""
        payload = self._payload(messages, {**options, "stream": True})
        async with (
            self._client() as client,
            client.stream("POST", "/chat/completions", json=payload) as response,
        ):
            if response.status_code != 200:
                raise _status_error(response.status_code, (await response.aread()).decode())
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # comments, event names, blank separators
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise UpstreamError("the language model streamed invalid JSON") from exc
                if isinstance(chunk, dict):
                    if "error" in chunk:
                        raise UpstreamError(f"the language model failed: {_message(chunk)}")
                    yield chunk


def _message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:_MAX_ERROR_CHARS]
        if isinstance(err, str):
            return err[:_MAX_ERROR_CHARS]
        if body.get("detail") is not None:  # FastAPI-based servers (vLLM's validation errors)
            return json.dumps(body["detail"])[:_MAX_ERROR_CHARS]
    return "no details"


def _status_error(status: int, text: str) -> Exception:
    try:
        detail = _message(json.loads(text))
    except ValueError:
        detail = text.strip()[:_MAX_ERROR_CHARS] or "no details"
    if status == 429:
        return UpstreamRateLimitError(f"the language model is rate limited: {detail}")
    if status in (400, 422):
        return InvalidInputError(f"the language model refused the request: {detail}")
    if status in (401, 403):
        # Not the caller's fault: the server's own upstream credentials are wrong.
        return UpstreamError(
            f"the language model rejected this server's credentials (HTTP {status}); "
            "check ATHENAEUM_LLM_API_KEY or the secret ATHENAEUM_LLM_API_KEY_SECRET names"
        )
    if status in (502, 503, 504):
        return UpstreamUnavailableError(f"the language model is unavailable (HTTP {status})")
    return UpstreamError(f"the language model failed with HTTP {status}: {detail}")
