"""The floor of a search: the query encoder's own forward pass, against dense, bm25 and hybrid
search of one or more SciFact bundles, all in one process, one query at a time.

The encoder is what no layout of the bundle can make faster; whatever a search costs beyond it
is the bundle's. Each bundle given is loaded with its own SearchEngine; the bundles must share
their query encoder (as an fp32 bundle of format version 1 and the fp16 one `athenaeum index`
rewrites from it do), and the encoder is timed once, through the first bundle's engine. Every
query runs through every step in turn (encoder, then each bundle's dense, bm25 and hybrid, in
an order that rotates query by query), so a burst of load on this shared machine hits every
column alike. p50 and p99 over the judged test queries after one untimed pass.

    uv run python benchmarks/bench_floor.py --index BEFORE --index AFTER [--dataset DIR]
        [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import results_json

from athenaeum.build.evaluation import default_index_dir, load_beir
from athenaeum.retrieval.engine import SearchEngine

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
MODES = ("dense", "bm25", "hybrid")
TOP_K = 10


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, action="append", help="a bundle (repeatable)")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--repeat", type=int, default=3, help="passes over the queries")
    parser.add_argument("--threads", type=int, default=1, help="the encoder's threads")
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run = results_json.start("floor", __file__, argv)
    indexes = args.index or [default_index_dir(args.dataset)]
    engines = [SearchEngine.load(path, threads=args.threads) for path in indexes]
    labels = [
        f"{path.name} ({e.bundle.manifest.vectors.encoding}, {e.bundle.manifest.chunks.encoding})"
        for path, e in zip(indexes, engines, strict=True)
    ]
    data = load_beir(args.dataset)
    queries = [data.queries[q] for q in data.judged_queries]
    encoder = engines[0].encoder

    steps: list[tuple[str, Any]] = [("encoder", lambda q: encoder.encode([q]))]
    for label, engine in zip(labels, engines, strict=True):
        for mode in MODES:
            steps.append(
                (f"{label} {mode}", lambda q, e=engine, m=mode: e.search(q, top_k=TOP_K, mode=m))
            )
    # Untimed, over the other queries (train and unjudged): the page cache, lazy tables and the
    # allocator warm up, while the timed queries' own chunks are still unread, as a new
    # question's are.
    judged = set(data.judged_queries)
    others = [text for qid, text in data.queries.items() if qid not in judged][:300]
    for q in others:
        for _, step in steps:
            step(q)
    times: dict[str, list[float]] = {name: [] for name, _ in steps}
    for r in range(args.repeat):
        for i, q in enumerate(queries):
            shift = (i + r) % len(steps)
            for name, step in steps[shift:] + steps[:shift]:
                started = time.perf_counter()
                step(q)
                times[name].append((time.perf_counter() - started) * 1000)

    floor = float(np.percentile(times["encoder"], 50))
    rows = []
    print(
        f"{len(queries)} SciFact queries x {args.repeat}, top {TOP_K}, one process, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'step':<58} {'p50 ms':>8} {'p99 ms':>8} {'p50 / encoder':>14}")
    for name, samples in times.items():
        p50 = float(np.percentile(samples, 50))
        p99 = float(np.percentile(samples, 99))
        rows.append({"step": name, "p50_ms": p50, "p99_ms": p99, "p50_over_encoder": p50 / floor})
        print(f"{name:<58} {p50:>8.3f} {p99:>8.3f} {p50 / floor:>13.2f}x")
    results_json.write(
        args.json,
        run,
        {
            "queries": len(queries),
            "repeat": args.repeat,
            "top_k": TOP_K,
            "bundles": [str(p) for p in indexes],
            "rows": rows,
            "samples_ms": times,
        },
    )


if __name__ == "__main__":
    main()
