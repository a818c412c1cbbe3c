"""The retrieval model's answer (`athenaeum-index-retrieval`): the passages retrieved for the
question, numbered, then the Sources block with a link to each, fitted into the caller's
`max_tokens` (counted in the bundle tokenizer's tokens, athenaeum.retrieval.tokens). No language
model: the answer is the passages themselves."""

from __future__ import annotations

from athenaeum.retrieval import citations
from athenaeum.retrieval.backend import Hit
from athenaeum.retrieval.tokens import TokenCounter

# A shortened passage gets at least this many tokens of text, or is shown by its source alone.
_MIN_PASSAGE_TOKENS = 12
# ... and the best passage gets at least this many, if need be at the cost of the lowest ranked.
_FIRST_PASSAGE_TOKENS = 64


def source_lines(hits: list[Hit], links: list[str]) -> str:
    """The Sources block's lines: one citation line a hit, numbered, with its link."""
    return "\n".join(
        citations.citation_line(n, h.chunk, url)
        for n, (h, url) in enumerate(zip(hits, links, strict=True), 1)
    )


def retrieval_answer(
    query: str, hits: list[Hit], links: list[str], tokens: TokenCounter, limit: int | None = None
) -> tuple[str, bool]:
    """The retrieval model's answer: the passages, numbered, then the Sources block with a link
    for each. Within `limit` tokens the Sources block stays whole and the passages are shortened,
    the longest first; a passage left with too little room is shown by its source line alone;
    and when even the source lines do not fit, the lowest ranked go (the best one always stays).
    The flag says whether anything had to be shortened or left out."""
    if not hits:
        return f"The library has no passages matching: {query}", False
    header = f"Passages from the library for: {query}\n"
    heads = [citations.heading(n, h.chunk) for n, h in enumerate(hits, 1)]
    texts = [h.chunk.text.strip() for h in hits]

    def render(bodies: list[str]) -> str:
        n = len(bodies)
        blocks = [
            f"{head}\n\n{body}\n" for head, body in zip(heads[:n], bodies, strict=True) if body
        ]
        return "\n".join([header, *blocks, "Sources:\n" + source_lines(hits[:n], links[:n])])

    answer = render(texts)
    if limit is None or tokens.count(answer) <= limit:
        return answer, False
    # What each shown passage costs beyond its source line: its heading and its text. The best
    # passage keeps some of its text: sources alone do not answer anything.
    head_costs = [tokens.count(f"{head}\n\n") + 1 for head in heads]
    first = head_costs[0] + min(_FIRST_PASSAGE_TOKENS, tokens.count(texts[0]))
    kept = len(texts)
    while kept > 1 and tokens.count(render([""] * kept)) + first > limit:
        kept -= 1
    lengths = [tokens.count(t) for t in texts[:kept]]
    needs = [c + n for c, n in zip(head_costs[:kept], lengths, strict=True)]
    floors = [min(_FIRST_PASSAGE_TOKENS, lengths[0])] + [_MIN_PASSAGE_TOKENS] * (kept - 1)
    room = limit - tokens.count(render([""] * kept))
    bodies = [""] * kept
    for _ in range(4):  # the joins between blocks cost a token or two; settle in a few rounds
        shown = list(range(kept))
        while True:
            shares = _shares([needs[i] for i in shown], max(0, room))
            short = [
                i
                for i, share in zip(shown, shares, strict=True)
                if share - head_costs[i] < floors[i]
            ]
            if not short:
                break
            # Room is short: the lowest ranked passage goes (the best one last of all).
            shown.remove(max(shown) if len(shown) > 1 else shown[0])
        given = dict(zip(shown, shares, strict=True))
        bodies = [
            tokens.cut(texts[i], given[i] - head_costs[i]) if i in given else ""
            for i in range(kept)
        ]
        over = tokens.count(render(bodies)) - limit
        if over <= 0:
            break
        room -= over
    else:
        bodies = [""] * kept
    return render(bodies), True


def _shares(lengths: list[int], budget: int) -> list[int]:
    """Split `budget` tokens among texts of these lengths: short texts keep all of theirs, the
    rest share what is left equally (so the longest are shortened first)."""
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
