"""What an access policy costs a search: warm latency on the SciFact bundle with its documents in
five collections, searched by callers who may read all of it, four collections of five, or one,
against the same search without a policy, in the same run.

Every judged test query (300 for SciFact) runs through every variant, the variants interleaved
query by query in a rotating order (so that drift in the machine's speed falls on all of them
alike), after an untimed warm-up pass. The table shows p50 and p99 per query and the p50 ratio to
the search without a policy. Two levels: the engine (`SearchEngine.search` against a caller's
view, athenaeum.retrieval.access.ScopedBackend) and the HTTP route (`POST /search` through the
app, an API key in both, the policy read from the settings on every request).

    uv run python benchmarks/bench_access.py [--index DIR] [--dataset DIR] [--json PATH]

The index is the SciFact bundle `athenaeum eval` builds (its default folder); --queries N times
the first N judged queries only, a smoke run, not a result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import results_json

from athenaeum.build.evaluation import default_index_dir

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
DEFAULT_INDEX = default_index_dir(DEFAULT_DATASET)
COLLECTIONS = ("alpha", "beta", "gamma", "delta", "epsilon")
MODES = ("hybrid", "dense", "bm25")
# Each caller's groups, named after what they may read; the policy grants each collection to
# its own group and to "everything".
CALLERS = {
    "no policy": None,
    "policy, reads all 5": ["everything"],
    "policy, reads 4 of 5": ["alpha", "beta", "gamma", "delta"],
    "policy, reads 1 of 5": ["beta"],
}
POLICY = {name: [name, "everything"] for name in COLLECTIONS}
API_KEY = "ath-bench-access-key-8Kd2xQ"


def five_collections(engine: Any) -> Any:
    """`engine`'s bundle with document i in collection i mod 5 (by front matter): the same
    chunks, vectors and postings, nothing embedded again."""
    from athenaeum.retrieval.engine import SearchEngine

    bundle = engine.bundle
    documents = [
        d.model_copy(update={"metadata": {**d.metadata, "collection": COLLECTIONS[i % 5]}})
        for i, d in enumerate(bundle.manifest.documents)
    ]
    manifest = bundle.manifest.model_copy(update={"documents": documents})
    return SearchEngine(dataclasses.replace(bundle, manifest=manifest), engine.encoder)


def interleaved(
    variants: dict[str, Callable[[str], object]], queries: list[str]
) -> dict[str, list[float]]:
    """Milliseconds per query per variant, the variants in a rotating order query by query."""
    names = list(variants)
    for q in queries:  # warm-up
        for name in names:
            variants[name](q)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, q in enumerate(queries):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            start = time.perf_counter()
            variants[name](q)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def engine_variants(engine: Any, mode: str) -> dict[str, Callable[[str], object]]:
    from athenaeum.server.access import AccessPolicy, scoped

    policy = AccessPolicy(grants={k: frozenset(v) for k, v in POLICY.items()})
    shelved = five_collections(engine)
    variants: dict[str, Callable[[str], object]] = {}
    for name, groups in CALLERS.items():
        backend = engine if groups is None else scoped(shelved, policy.readable(groups))
        variants[name] = lambda q, b=backend: b.search(q, top_k=10, mode=mode)
    return variants


def http_variants(engine: Any, mode: str) -> dict[str, Callable[[str], object]]:
    from fastapi.testclient import TestClient

    from athenaeum.server.auth.keyring import dump_keyset, generate_key, new_record
    from athenaeum.server.http.app import create_app
    from athenaeum.server.index.provider import FixedEngineProvider
    from athenaeum.server.settings import Settings

    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-access-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    variants: dict[str, Callable[[str], object]] = {}
    for name, groups in CALLERS.items():
        key = generate_key()
        keys = folder / f"keys-{len(variants)}.json"
        keys.write_text(dump_keyset([new_record("bench", key, groups=groups or [])]))
        settings = Settings(
            api_keys_file=keys,
            access_policy=None if groups is None else json.dumps(POLICY),
        )
        backend = engine if groups is None else five_collections(engine)
        client = TestClient(
            create_app(settings, FixedEngineProvider(backend)), base_url="http://127.0.0.1:8000"
        )
        headers = {"Authorization": f"Bearer {key}"}

        def call(q: str, c: TestClient = client, h: dict[str, str] = headers) -> None:
            r = c.post("/search", json={"query": q, "top_k": 10, "mode": mode}, headers=h)
            assert r.status_code == 200, r.text

        variants[name] = call
    return variants


def summary(times: dict[str, list[float]]) -> list[dict[str, Any]]:
    base = float(np.percentile(times["no policy"], 50))
    rows = []
    for name, ms in times.items():
        p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        rows.append(
            {
                "caller": name,
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "p50_ratio": round(p50 / base, 3),
                "latencies_ms": [round(x, 4) for x in ms],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--queries", type=int, default=0, help="the first N queries (0: all)")
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run = results_json.start("access", __file__, argv)

    from athenaeum.build.evaluation import load_beir
    from athenaeum.retrieval.engine import SearchEngine

    engine = SearchEngine.load(args.index)
    ds = load_beir(args.dataset)
    queries = [ds.queries[q] for q in ds.judged_queries][: args.queries or None]
    # The first confined search builds the per-chunk table a mask is made from (it parses every
    # chunk, once per loaded bundle): timed apart, not in the warm numbers.
    start = time.perf_counter()
    from athenaeum.retrieval.filters import SearchFilter

    first = five_collections(engine)
    first.search(queries[0], top_k=10, filter=SearchFilter().within(frozenset({"alpha"})))
    first_ms = (time.perf_counter() - start) * 1000

    print(
        f"search latency with an access policy: {engine.facts.chunks:,} chunks of "
        f"{engine.facts.documents:,} documents in {len(COLLECTIONS)} collections, "
        f"{len(queries)} queries, top 10, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"first confined search after load (builds the collection table): {first_ms:.0f} ms")
    results: dict[str, Any] = {
        "chunks": engine.facts.chunks,
        "documents": engine.facts.documents,
        "collections": len(COLLECTIONS),
        "queries": len(queries),
        "first_confined_search_ms": round(first_ms, 1),
        "levels": {},
    }
    for level, make in (("engine", engine_variants), ("http", http_variants)):
        results["levels"][level] = {}
        for mode in MODES:
            rows = summary(interleaved(make(engine, mode), queries))
            results["levels"][level][mode] = rows
            print(f"\n{level}, {mode}")
            print(f"{'caller':<24} {'p50 ms':>8} {'p99 ms':>8} {'p50 vs no policy':>17}")
            for row in rows:
                print(
                    f"{row['caller']:<24} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                    f"{row['p50_ratio']:>16.3f}x"
                )
    results_json.write(args.json, run, results)


if __name__ == "__main__":
    main()
