"""The retrieval model's answer (`athenaeum-index-retrieval`): the passages retrieved for the
question, then the Sources block with a link for each document and page range they come from,
fitted into the caller's `max_tokens` (counted in the bundle tokenizer's tokens,
athenaeum.retrieval.tokens, as `usage` counts them). No language model: the answer is the
passages themselves."""

from __future__ import annotations

from collections.abc import Callable

from athenaeum.retrieval import citations
from athenaeum.retrieval.backend import Hit
from athenaeum.retrieval.tokens import ELLIPSIS, TokenCounter

# A passage is shown only with at least this many tokens of its text (or all of a shorter one):
# a few words rarely say anything, and its heading and source line cost more than they do.
_MIN_PASSAGE_TOKENS = 40
# ... and the best passage with at least this many, before any other passage is shown.
_FIRST_PASSAGE_TOKENS = 64
# Stands for a passage's text while the rest of the answer is measured; one token.
_PLACEHOLDER = ELLIPSIS.strip()


def sources_block(hits: list[Hit], links: list[str]) -> str:
    """The Sources block's lines: one per document and page range (`citations.sources`), each
    with the link of its first page."""
    found, _ = citations.sources([h.chunk for h in hits])
    return "\n".join(
        citations.source_line(n, source, links[source.first]) for n, source in enumerate(found, 1)
    )


def retrieval_answer(
    query: str, hits: list[Hit], links: list[str], tokens: TokenCounter, limit: int | None = None
) -> tuple[str, bool]:
    """The retrieval model's answer, and whether anything was shortened or left out.

    Whole, it is a line with the question, each passage under a heading with its source's
    number, then the Sources block. Within `limit` tokens, the passages shown are the best
    ranked that fit with their source lines and at least `_MIN_PASSAGE_TOKENS` of text each (the
    best one `_FIRST_PASSAGE_TOKENS`); a passage left out takes its source line with it, and
    what is left goes to the passages shown, the best ranked first (a shortened one ends in
    " …"). When not even the best passage fits with its source line, the answer is as much of
    its text as fits, under its name when that fits too. Never more than `limit` tokens."""
    if not hits:
        return f"The library has no passages matching: {query}", False
    header = f"Passages from the library for: {query}\n"
    texts = [h.chunk.text.strip() for h in hits]

    def render(bodies: list[str], with_header: bool) -> str:
        shown = [i for i, body in enumerate(bodies) if body]
        cited = [hits[i] for i in shown]
        _, numbers = citations.sources([h.chunk for h in cited])
        # Grouped by source, in the order of the sources' best passages: a page's passages
        # read together.
        order = sorted(zip(numbers, shown, strict=True))
        blocks = [
            f"{citations.heading(number, hits[i].chunk)}\n\n{bodies[i]}\n" for number, i in order
        ]
        block = "Sources:\n" + sources_block(cited, [links[i] for i in shown])
        return "\n".join([header] * with_header + blocks + [block])

    answer = render(texts, True)
    if limit is None or tokens.count(answer) <= limit:
        return answer, False

    lengths = [tokens.count(t) for t in texts]
    floors = [min(n, _MIN_PASSAGE_TOKENS) for n in lengths]
    floors[0] = min(lengths[0], _FIRST_PASSAGE_TOKENS)

    def frame(kept: int, with_header: bool) -> int:
        """What all but the texts of the best `kept` passages cost."""
        return tokens.count(render([_PLACEHOLDER] * kept, with_header)) - kept

    for with_header in (True, False):
        kept = 0
        while kept < len(hits) and frame(kept + 1, with_header) + sum(floors[: kept + 1]) <= limit:
            kept += 1
        if not kept and not with_header and frame(1, False) < limit:
            kept = 1  # the best passage on less than its floor, rather than without its source
        if kept:

            def count(bodies: list[str], with_header: bool = with_header) -> int:
                return tokens.count(render(bodies, with_header))

            fitted = _fill(count, texts[:kept], floors[:kept], tokens, limit)
            if fitted is not None:
                return render(fitted, with_header), True
    # Not even the best passage with its source line fits: as much of its text as does.
    best = hits[0].chunk
    named = (
        f"**{citations.escape_markdown(best.label)}** "
        f"({citations.escape_markdown(citations.where(best))})\n\n"
    )
    for prefix in (named, ""):
        body = tokens.cut(texts[0], limit - tokens.count(prefix))
        if body and tokens.count(prefix + body) <= limit:
            return prefix + body, True
    return "", True


def _fill(
    count: Callable[[list[str]], int],
    texts: list[str],
    floors: list[int],
    tokens: TokenCounter,
    limit: int,
) -> list[str] | None:
    """The texts, shortened so that the answer `count` measures fits in `limit` tokens: each
    gets its floor, then what the rest of the answer leaves goes to them in rank order (the
    retriever's order is the best guess of which text answers). None when no text can be
    shown."""
    lengths = [tokens.count(t) for t in texts]
    room = limit - (count([_PLACEHOLDER] * len(texts)) - len(texts))
    for _ in range(4):  # the joins between blocks cost a token or two; settle in a few rounds
        if room <= 0:
            return None
        bodies = [
            tokens.cut(t, share)
            for t, share in zip(texts, _shares(lengths, floors, room), strict=True)
        ]
        if not any(bodies):
            return None
        over = count(bodies) - limit
        if over <= 0:
            return bodies
        room -= over
    return None


def _shares(lengths: list[int], floors: list[int], budget: int) -> list[int]:
    """Split `budget` tokens among texts of these lengths: each its floor, then the rest to
    the best ranked first; below the floors' sum, equal shares (short texts whole)."""
    shares = [min(n, floor) for n, floor in zip(lengths, floors, strict=True)]
    left = budget - sum(shares)
    if left >= 0:
        for i, n in enumerate(lengths):
            more = min(n - shares[i], left)
            shares[i] += more
            left -= more
        return shares
    shares = list(lengths)
    pending = sorted(range(len(lengths)), key=lambda i: lengths[i])
    left = budget
    while pending:
        each = left // len(pending)
        if lengths[pending[0]] > each:
            for i in pending:
                shares[i] = each
            break
        left -= lengths[pending.pop(0)]
    return shares
