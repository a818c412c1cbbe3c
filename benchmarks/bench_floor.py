"""The floor of a search: the query encoder's own forward pass, against dense, bm25 and hybrid
search of one or more SciFact bundles, one query at a time.

The encoder is what no layout of the bundle can make faster; whatever a search costs beyond it
is the bundle's. Each bundle is measured in a process of its own, as a server holds one bundle:
its engine, its encoder timed in that same process, every query through every step in turn
(encoder, dense, bm25, hybrid, in an order that rotates query by query, so a burst of load on
this shared machine hits every column alike). Two bundles searched in one process would each
evict the other's vectors from the caches between steps, which no deployment does. p50 and p99
over the judged test queries, after an untimed pass over the others. The processes run one
after another; each ratio is within its own process.

    uv run python benchmarks/bench_floor.py --index BEFORE --index AFTER [--dataset DIR]
        [--repeat 3] [--threads 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


def measure(index: Path, dataset: Path, repeat: int, threads: int) -> dict[str, Any]:
    """One bundle's samples, in this process: {"label": ..., "samples_ms": {step: [...]}}."""
    engine = SearchEngine.load(index, threads=threads)
    manifest = engine.bundle.manifest
    label = f"{index.name} ({manifest.vectors.encoding}, {manifest.chunks.encoding})"
    data = load_beir(dataset)
    queries = [data.queries[q] for q in data.judged_queries]
    encoder = engine.encoder
    steps: list[tuple[str, Any]] = [("encoder", lambda q: encoder.encode([q]))]
    for mode in MODES:
        steps.append((mode, lambda q, m=mode: engine.search(q, top_k=TOP_K, mode=m)))
    # Untimed, over the other queries (train and unjudged): the page cache, lazy tables and the
    # allocator warm up, while the timed queries' own chunks are still unread, as a new
    # question's are.
    judged = set(data.judged_queries)
    others = [text for qid, text in data.queries.items() if qid not in judged][:300]
    for q in others:
        for _, step in steps:
            step(q)
    times: dict[str, list[float]] = {name: [] for name, _ in steps}
    for r in range(repeat):
        for i, q in enumerate(queries):
            shift = (i + r) % len(steps)
            for name, step in steps[shift:] + steps[:shift]:
                started = time.perf_counter()
                step(q)
                times[name].append((time.perf_counter() - started) * 1000)
    return {"label": label, "queries": len(queries), "samples_ms": times}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, action="append", help="a bundle (repeatable)")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--repeat", type=int, default=3, help="passes over the queries")
    parser.add_argument("--threads", type=int, default=1, help="the encoder's threads")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    indexes = args.index or [default_index_dir(args.dataset)]
    if args.child:
        json.dump(measure(indexes[0], args.dataset, args.repeat, args.threads), sys.stdout)
        return

    run = results_json.start("floor", __file__, argv)
    print(
        f"SciFact test queries x {args.repeat}, top {TOP_K}, a process a bundle, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'step':<58} {'p50 ms':>8} {'p99 ms':>8} {'p50 / encoder':>14}")
    rows = []
    samples: dict[str, list[float]] = {}
    queries = 0
    for index in indexes:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--index",
                str(index),
                "--dataset",
                str(args.dataset),
                "--repeat",
                str(args.repeat),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(child.stdout)
        queries = measured["queries"]
        floor = float(np.percentile(measured["samples_ms"]["encoder"], 50))
        for step, values in measured["samples_ms"].items():
            name = f"{measured['label']} {step}"
            p50 = float(np.percentile(values, 50))
            p99 = float(np.percentile(values, 99))
            rows.append(
                {
                    "bundle": str(index),
                    "step": name,
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "p50_over_encoder": p50 / floor,
                }
            )
            samples[name] = values
            print(f"{name:<58} {p50:>8.3f} {p99:>8.3f} {p50 / floor:>13.2f}x")
    results_json.write(
        args.json,
        run,
        {
            "queries": queries,
            "repeat": args.repeat,
            "top_k": TOP_K,
            "threads": args.threads,
            "bundles": [str(p) for p in indexes],
            "rows": rows,
            "samples_ms": samples,
        },
    )


if __name__ == "__main__":
    main()
