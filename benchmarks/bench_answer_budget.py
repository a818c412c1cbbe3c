"""What the retrieval model's chat answer holds at a given `max_tokens`: the table of issue 22.

For each library and budget, one `/v1/chat/completions` request with `athenaeum-index-retrieval`
through the app `athenaeum serve` runs (in process, links to the original PDFs signed as
`athenaeum serve` signs them, at its default address), and what came back:

- completion tokens (`usage.completion_tokens`, the bundle tokenizer's tokens) against the budget;
- passages shown: passage blocks with text, and whether one of them holds the answer's words;
- sources: the lines of the Sources block, and how many of them repeat another;
- `finish_reason`.

The same request streamed must give the same text and usage; the script checks it.

    uv run python benchmarks/bench_answer_budget.py --sample-index DIR --real-index DIR \
        [--show 500]

The indexes are `athenaeum index` outputs of samples/library and ../shared/data/pdfs (converted
with `athenaeum convert`; `source_path` in the markdown is where the links open the files).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.settings import Settings

MODEL = "athenaeum-index-retrieval"
BUDGETS = (50, 150, 500, 2000)
LOCAL_URL = "http://127.0.0.1:8000"  # where `athenaeum serve` listens by default


@dataclass(frozen=True)
class Case:
    library: str
    question: str
    answer: str | None  # words the passage that answers holds (None: no passage does)


CASES = {
    # The guide's example (docs/deployment.md) on the bundled sample library.
    "sample": Case("sample", "How do I reset the controller?", None),
    "real-pdfs": Case(
        "real-pdfs", "Which airplanes does the FAA airworthiness directive apply to?", "737 MAX"
    ),
}


@dataclass(frozen=True)
class Row:
    library: str
    budget: int
    completion_tokens: int
    passages: int
    answered: bool | None
    sources: int
    duplicates: int
    finish_reason: str


_HEADING = re.compile(r"^\*\*")


def passages(content: str) -> list[str]:
    """The passage blocks with text: a bold heading (numbered, or a name alone when the source
    line did not fit), then the passage."""
    body = content.split("\nSources:\n", 1)[0]
    blocks = re.split(r"\n(?=\*\*)", body)
    return [b for b in blocks if _HEADING.match(b) and b.split("\n", 1)[-1].strip()]


def source_lines(content: str) -> list[str]:
    if "Sources:\n" not in content:
        return []
    return [line for line in content.split("Sources:\n", 1)[1].splitlines() if line.strip()]


def ask(client: TestClient, question: str, budget: int, stream: bool = False) -> Any:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": budget,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    r = client.post("/v1/chat/completions", json=body)
    r.raise_for_status()
    if not stream:
        return r.json()
    chunks = [
        json.loads(e[len("data: ") :])
        for e in r.text.split("\n\n")
        if e.startswith("data: ") and e != "data: [DONE]"
    ]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    return {"content": text, "usage": chunks[-1]["usage"], "finish_reason": finish}


_LINK = re.compile(r"https?://\S+")


def measure(index: Path, case: Case, show: int | None) -> list[Row]:
    engine = SearchEngine.load(index)
    app = create_app(Settings(insecure_no_auth=True), FixedEngineProvider(engine))
    client = TestClient(app, base_url=LOCAL_URL)
    rows = []
    for budget in BUDGETS:
        answer = ask(client, case.question, budget)
        content = answer["choices"][0]["message"]["content"]
        finish = answer["choices"][0]["finish_reason"]
        # Streamed: the same answer (its links signed a moment later may expire a second
        # later), with usage counted as the budget counts it.
        streamed = ask(client, case.question, budget, stream=True)
        if _LINK.sub("<link>", streamed["content"]) != _LINK.sub("<link>", content):
            raise SystemExit(f"{case.library} at {budget}: the stream differs from the answer")
        for usage, text in ((answer["usage"], content), (streamed["usage"], streamed["content"])):
            if usage["completion_tokens"] != engine.tokens.count(text):
                raise SystemExit(f"{case.library} at {budget}: usage is not the text's tokens")
        if streamed["finish_reason"] != finish:
            raise SystemExit(f"{case.library} at {budget}: the stream ends otherwise")
        shown = passages(content)
        lines = source_lines(content)
        # A line's number aside, the same document and pages with the same link is a duplicate.
        keys = [re.sub(r"^\[\d+\]\s*", "", line) for line in lines]
        rows.append(
            Row(
                library=case.library,
                budget=budget,
                completion_tokens=answer["usage"]["completion_tokens"],
                passages=len(shown),
                answered=None
                if case.answer is None
                else any(case.answer in block for block in shown),
                sources=len(lines),
                duplicates=len(keys) - len(set(keys)),
                finish_reason=finish,
            )
        )
        if show == budget:
            print(f"--- {case.library}, max_tokens {budget} ---\n{content}\n---\n")
    return rows


def _yes_no(value: bool | None) -> str:
    return "n/a" if value is None else "yes" if value else "no"


def table(rows: list[Row]) -> str:
    out = [
        "| library | max_tokens | completion tokens | passages shown | answer in a passage "
        "| source lines | duplicate lines | finish_reason |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        over = " (over)" if r.completion_tokens > r.budget else ""
        out.append(
            f"| {r.library} | {r.budget:,} | {r.completion_tokens:,}{over} | {r.passages} "
            f"| {_yes_no(r.answered)} | {r.sources} | {r.duplicates} "
            f"| {r.finish_reason} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample-index", type=Path, help="the sample library's index")
    parser.add_argument("--real-index", type=Path, help="the 29 real PDFs' index")
    parser.add_argument("--show", type=int, metavar="BUDGET", help="print the answers at BUDGET")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for name, index in (("sample", args.sample_index), ("real-pdfs", args.real_index)):
        if index is not None:
            case = CASES[name]
            print(f"{name}: {case.question!r}")
            rows.extend(measure(index, case, args.show))
    if not rows:
        parser.error("give --sample-index, --real-index or both")
    print(table(rows))


if __name__ == "__main__":
    main()
