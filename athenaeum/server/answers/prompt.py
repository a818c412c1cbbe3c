"""The generating model's prompt (`athenaeum-index-rag`): the passages retrieved for the
question, numbered, in the system message, so that its answer cites them by number and the
Sources block appended after it resolves them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from athenaeum.retrieval import citations
from athenaeum.retrieval.backend import Hit
from athenaeum.server.answers.followup import Turn

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages below, which come from the user's "
    "document library. Cite the passages you use by their numbers in square brackets, like [1] "
    "or [2][3]. If the passages do not contain the answer, say that the library does not "
    "answer it; do not invent facts or sources.\n\n"
)


def upstream_messages(turns: Iterable[Turn], hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """The generating model's messages: the system prompt with the passages, numbered as the
    Sources block numbers them (passages from one document and page range share a number),
    then the conversation as the caller sent it."""
    _, numbers = citations.sources([h.chunk for h in hits])
    passages = "\n\n".join(
        f"[{n}] {h.chunk.title or h.chunk.source} ({citations.where(h.chunk)})\n"
        f"{h.chunk.text.strip()}"
        for n, h in zip(numbers, hits, strict=True)
    )
    system = SYSTEM_PROMPT + (passages or "(no passages matched)")
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for turn in turns:
        messages.append({"role": turn.role, "content": turn.text})
    return messages
