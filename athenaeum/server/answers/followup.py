"""What chat retrieves for: the conversation, not just its last message.

A follow-up ("and who argued for the respondent?") often names nothing the library can match;
what it is about is in the turns before it. So:

- a first turn (one user message) is retrieved for as it is: one search;
- with a generating model, one short call asks it to rewrite the last user message as a
  standalone query (REWRITE_PROMPT, temperature 0, at most 64 tokens, the last few turns cut
  short): one search, for the rewrite;
- without one, or when the rewrite fails or comes back unusable, the fallback: the ranking for
  the last message alone is fused by reciprocal rank fusion with the ranking for the earlier
  user turns followed by the last message. The last message is in both queries, so it
  dominates; the earlier turns supply what it leaves unsaid, and a message that changes the
  subject keeps its own results. Two searches.

Every query searched for is derived within the query limit (`max_chars`, the `max_query_chars`
setting) and goes through the one search path (athenaeum.server.http.searching), which would
refuse a longer one. docs/api.md documents all of it, the prompt included;
benchmarks/bench_followup.py measures it.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool

from athenaeum.errors import AthenaeumError, InvalidInputError
from athenaeum.retrieval.backend import MAX_TOP_K, Hit
from athenaeum.server.answers.llm import LLMClient
from athenaeum.server.settings import Settings

logger = logging.getLogger("athenaeum.chat")

# Reciprocal rank fusion's constant (Cormack, Clarke and Buettcher, SIGIR 2009): the two
# fallback searches' scores (fused hybrid scores of different queries) do not compare, their
# ranks do.
RRF_K = 60

REWRITE_PROMPT = (
    "You turn the last user message of a conversation into one standalone search query for a "
    "document library. Resolve what it leaves implicit (it, they, the second one, a missing "
    "subject) from the earlier turns; keep its language and its meaning and add nothing it "
    "does not ask. If it already stands alone, repeat it. Do not answer it. Reply with the "
    "query only, on one line."
)
REWRITE_MAX_TOKENS = 64
REWRITE_MESSAGES = 6  # the last user and assistant messages the rewriter sees
REWRITE_MESSAGE_CHARS = 500  # each cut to this (assistant answers carry whole passages)
MAX_REWRITE_CHARS = 300  # a longer answer is cut at a word: a query, not a paragraph
CONTEXT_TURNS = 2  # earlier user turns the fallback puts before the last message
CONTEXT_CHARS = 600

Method = Literal["first-turn", "rewrite", "fallback"]
# query, top_k -> hits, best first, in hybrid mode (athenaeum.server.http.searching.Searcher)
Search = Callable[[str, int], list[Hit]]

QUERY_HEADER = "X-Athenaeum-Query"
METHOD_HEADER = "X-Athenaeum-Query-Method"
# Header values are latin-1 on the wire: the query is percent-encoded UTF-8, printable ASCII
# other than "%" left as it is, so `urllib.parse.unquote` gives it back.
_HEADER_SAFE = "".join(c for c in string.punctuation if c != "%") + " "

_LABEL = re.compile(r"^(?:standalone |search |rewritten )?query\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"  # straight, curly and angle quotes


@dataclass(frozen=True)
class Turn:
    role: str
    text: str


@dataclass(frozen=True)
class Retrieval:
    query: str  # what was searched for, as the caller is shown it
    method: Method
    hits: list[Hit]


# --- the conversation ----------------------------------------------------------------------------


def latest_question(turns: Sequence[Turn], max_chars: int) -> str:
    """The last user message, cut to `max_chars`: the query a first turn searches for.

    A chat message is not a search query: chat clients send whatever the user typed or pasted,
    and the query derived from it is cut to the query limit rather than the request refused. The
    query searched for is shown to the caller (`headers`)."""
    for turn in reversed(turns):
        if turn.role == "user":
            text = turn.text.strip()
            if text:
                return text[:max_chars]
            break
    raise InvalidInputError(
        "messages must contain a user message with text to search for", param="messages"
    )


def earlier_questions(turns: Sequence[Turn]) -> list[str]:
    """The user messages before the last one, oldest first, empty ones left out."""
    users = [t.text.strip() for t in turns if t.role == "user"]
    return [text for text in users[:-1] if text]


def _squash(text: str) -> str:
    return " ".join(text.split())


def fallback_context(latest: str, earlier: Sequence[str], max_chars: int) -> str:
    """The last CONTEXT_TURNS earlier user turns, oldest first, cut (from the oldest end) to
    CONTEXT_CHARS and to what the query limit `max_chars` leaves beside the last message."""
    room = min(CONTEXT_CHARS, max_chars - len(latest) - 1)
    context = " ".join(_squash(text) for text in earlier[-CONTEXT_TURNS:])
    if len(context) <= room:
        return context
    if room <= 0:
        return ""
    cut = context[len(context) - room :]
    # Start at a word, not inside one.
    return cut.split(" ", 1)[1] if " " in cut else cut


def fallback_queries(latest: str, context: str) -> list[str]:
    """The fallback's searches: the last message alone, then the context followed by it."""
    return [latest, f"{context} {latest}"] if context else [latest]


def fuse(rankings: Sequence[Sequence[Hit]], top_k: int) -> list[Hit]:
    """Reciprocal rank fusion of rankings of hits (k = RRF_K): a hit's
    score is the sum of 1 / (RRF_K + rank) over the rankings it is in; ties keep first-seen
    order."""
    scores: dict[str, float] = {}
    hits: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            hits.setdefault(hit.chunk.id, hit)
            scores[hit.chunk.id] = scores.get(hit.chunk.id, 0.0) + 1.0 / (RRF_K + rank)
    order = {cid: i for i, cid in enumerate(hits)}
    best = sorted(scores, key=lambda cid: (-scores[cid], order[cid]))[:top_k]
    return [Hit(hits[cid].chunk, scores[cid]) for cid in best]


def search_fallback(search: Search, queries: Sequence[str], top_k: int) -> list[Hit]:
    """One search for one query; for two, each ranked deep and fused."""
    if len(queries) == 1:
        return search(queries[0], top_k)
    return fuse([search(query, MAX_TOP_K) for query in queries], top_k)


# --- the rewrite ---------------------------------------------------------------------------------


def rewrite_messages(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The rewrite request: the prompt, then the last few user and assistant messages as a
    transcript, each cut short. System messages are the caller's instructions for the answer,
    not part of what the question refers to, so they are left out."""
    said = [t for t in turns if t.role in ("user", "assistant") and t.text.strip()]
    lines = [
        f"{t.role}: {_squash(t.text)[:REWRITE_MESSAGE_CHARS]}" for t in said[-REWRITE_MESSAGES:]
    ]
    return [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


def clean_rewrite(text: str) -> str | None:
    """The rewriter's answer as a query: its first line, without a "Query:" label or quotes,
    whitespace squashed, at most MAX_REWRITE_CHARS; None when nothing usable is left."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line.strip())
    if line[:1] in _QUOTES:  # a quoted answer, not a query that ends in a quotation
        line = line.strip(_QUOTES + " ")
    query = _squash(line)
    if len(query) > MAX_REWRITE_CHARS:
        query = query[:MAX_REWRITE_CHARS].rsplit(" ", 1)[0]
    return query if re.search(r"\w", query) else None


def rewriter(settings: Settings) -> LLMClient:
    assert settings.llm_base_url and settings.llm_api_key and settings.llm_model
    return LLMClient(
        settings.llm_base_url,
        settings.llm_api_key.get_secret_value(),
        settings.llm_model,
        timeout_s=min(settings.llm_rewrite_timeout_s, settings.llm_timeout_s),
    )


async def rewrite_query(client: LLMClient, turns: Sequence[Turn]) -> str | None:
    """One short completion; None when its answer is not a usable query. Upstream failures
    raise the LLM client's domain errors."""
    answer = await client.complete(
        rewrite_messages(turns), max_tokens=REWRITE_MAX_TOKENS, temperature=0
    )
    choice = answer["choices"][0] if answer["choices"] else {}
    message = choice.get("message") if isinstance(choice, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return clean_rewrite(content) if isinstance(content, str) else None


# --- retrieval -----------------------------------------------------------------------------------


async def retrieve(
    turns: Sequence[Turn],
    search: Search,
    *,
    top_k: int,
    max_chars: int,
    client: LLMClient | None = None,
) -> Retrieval:
    """The passages for the conversation's last user message, read in the light of the earlier
    turns: at most one rewrite call and two searches."""
    latest = latest_question(turns, max_chars)
    earlier = earlier_questions(turns)
    if not earlier:
        hits = await run_in_threadpool(search, latest, top_k)
        return Retrieval(latest, "first-turn", hits)
    if client is not None:
        try:
            rewritten = await rewrite_query(client, turns)
        except AthenaeumError as exc:
            # The answer does not depend on the rewrite: retrieve without it, and say why.
            logger.warning("query rewrite failed, using the fallback: %s", exc.message)
            rewritten = None
        else:
            if rewritten is None:
                logger.warning("query rewrite was empty or unusable, using the fallback")
        if rewritten is not None:
            query = rewritten[:max_chars]
            hits = await run_in_threadpool(search, query, top_k)
            return Retrieval(query, "rewrite", hits)
    context = fallback_context(latest, earlier, max_chars)
    hits = await run_in_threadpool(
        search_fallback, search, fallback_queries(latest, context), top_k
    )
    return Retrieval(f"{latest} (context: {context})" if context else latest, "fallback", hits)


def headers(found: Retrieval) -> dict[str, str]:
    """The response headers that say what was retrieved for, and how."""
    return {QUERY_HEADER: quote(found.query, safe=_HEADER_SAFE), METHOD_HEADER: found.method}
