"""How far a bundle's vectors can shrink without losing the dense search's top 10: recall@10
against exact fp32 search, bytes per vector and query latency of candidate encodings, on the
SciFact bundle and on a synthetic one of 400,000 chunks, in one run (the first measurement
behind issue 26's choice of encoding).

Encodings, each searched exactly (every vector scored; the approximate index is a later step):
- fp32: today's vectors.npy and numpy's matrix-vector product, the baseline;
- sq8: FAISS's scalar quantizer, 8 bits a dimension with a trained range per dimension
  (IndexScalarQuantizer QT_8bit): 1 byte a dimension;
- sq8 + rescore R: sq8's best R, scored again at full precision from a memory-mapped copy (fp16:
  2 bytes a dimension, read only for those R rows), then the best 10 ("fp32": rescored from
  the fp32 vectors instead, to tell what the fp16 copy's rounding costs);
- sq4 + rescore R: 4 bits a dimension, the same rescoring;
- binary + rescore R: the sign of each dimension (1 bit), Hamming distance (IndexBinaryFlat),
  then the same rescoring;
- fp16: half precision (IndexScalarQuantizer QT_fp16), 2 bytes a dimension, no rescoring: what
  bundles of format version 2 store;
- with --hnsw, at the large size only: today's HNSW graph over fp32 (IndexHNSWFlat, which keeps
  its own fp32 copy) and the graph over fp16 codes that format 2 writes (IndexHNSWSQ), both
  M 32, efConstruction 200, efSearch 128 (athenaeum.bundle.HNSW_DEFAULTS); bytes count the codes
  and the graph's links.

The 400,000 vectors are the SciFact bundle's repeated with Gaussian noise, as
benchmarks/bench_scale.py synthesizes them (same seed and noise). Queries: the judged SciFact
test queries, embedded by the bundle's own query encoder. Latency: one query at a time, one
thread (FAISS and numpy pinned to one), p50 and p99 over the queries after a warm-up pass.

    uv run python benchmarks/bench_vectors.py [--index DIR] [--dataset DIR] [--large 400000]
        [--hnsw]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import results_json

from athenaeum.build.evaluation import default_index_dir

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
DEFAULT_INDEX = default_index_dir(DEFAULT_DATASET)
K = 10
SEED = 20261127  # as benchmarks/bench_scale.py
NOISE = 0.025

Search = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.int64]]


def synthesize(vectors: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.float32]:
    """`n` vectors: the source's, then copies of them with noise, renormalised."""
    rng = np.random.default_rng(SEED)
    rows = np.arange(n) % len(vectors)
    out = vectors[rows].copy()
    copied = np.arange(n) >= len(vectors)
    noise = rng.standard_normal((int(copied.sum()), vectors.shape[1])).astype(np.float32)
    noisy = out[copied] + noise * np.float32(NOISE)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    out[copied] = noisy
    return out


def exact(vectors: npt.NDArray[np.float32]) -> Search:
    def search(q: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        sims = vectors @ q
        top = np.argpartition(-sims, K - 1)[:K]
        return top[np.argsort(-sims[top], kind="stable")].astype(np.int64)

    return search


def rescored(
    candidates: Callable[[npt.NDArray[np.float32], int], npt.NDArray[np.int64]],
    full: npt.NDArray[Any],
    depth: int,
) -> Search:
    """The best `depth` by a compact code, scored again from `full` (memory-mapped)."""

    def search(q: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        rows = np.sort(candidates(q, depth))
        sims = full[rows].astype(np.float32) @ q
        order = np.argsort(-sims, kind="stable")[:K]
        return rows[order].astype(np.int64)

    return search


def faiss_candidates(index: Any) -> Callable[[npt.NDArray[np.float32], int], npt.NDArray[np.int64]]:
    def candidates(q: npt.NDArray[np.float32], depth: int) -> npt.NDArray[np.int64]:
        _, rows = index.search(q[None, :], depth)
        return np.asarray(rows[0][rows[0] >= 0], dtype=np.int64)

    return candidates


def hnsw_candidates(
    index: Any, ef: int
) -> Callable[[npt.NDArray[np.float32], int], npt.NDArray[np.int64]]:
    """The graph's walk with efSearch `ef` (set per search, so one graph serves several)."""
    import faiss

    params = faiss.SearchParametersHNSW()
    params.efSearch = ef

    def candidates(q: npt.NDArray[np.float32], depth: int) -> npt.NDArray[np.int64]:
        _, rows = index.search(q.reshape(1, -1), depth, params=params)
        return rows[0].astype(np.int64)

    return candidates


def binary_candidates(
    vectors: npt.NDArray[np.float32],
) -> tuple[Callable[[npt.NDArray[np.float32], int], npt.NDArray[np.int64]], int]:
    import faiss

    d = vectors.shape[1]
    index = faiss.IndexBinaryFlat(d)
    index.add(np.packbits(vectors > 0, axis=1))

    def candidates(q: npt.NDArray[np.float32], depth: int) -> npt.NDArray[np.int64]:
        _, rows = index.search(np.packbits(q[None, :] > 0, axis=1), depth)
        return np.asarray(rows[0][rows[0] >= 0], dtype=np.int64)

    return candidates, d // 8


def encodings(
    vectors: npt.NDArray[np.float32], work: Path, hnsw: bool = False
) -> dict[str, tuple[Search, int]]:
    """Each encoding's search and its bytes per vector (what memory must hold; the rescoring
    copy is read from disk for the candidates only, and counted in `disk` by the caller)."""
    import faiss

    n, d = vectors.shape
    half = np.lib.format.open_memmap(work / "vectors.f16.npy", "w+", np.float16, (n, d))
    half[:] = vectors.astype(np.float16)
    half.flush()
    full16 = np.load(work / "vectors.f16.npy", mmap_mode="r")
    found: dict[str, tuple[Search, int]] = {"fp32": (exact(vectors), 4 * d)}
    for name, kind, code in (
        ("sq8", faiss.ScalarQuantizer.QT_8bit, d),
        ("sq4", faiss.ScalarQuantizer.QT_4bit, d // 2),
    ):
        index = faiss.IndexScalarQuantizer(d, kind, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.add(vectors)
        candidates = faiss_candidates(index)
        if name == "sq8":
            found["sq8"] = (lambda q, c=candidates: c(q, K), code)
        for depth in (20, 40, 100) if name == "sq8" else (40, 100, 200):
            found[f"{name} + rescore {depth}"] = (rescored(candidates, full16, depth), code)
        if name == "sq8":
            # The same, rescored from fp32: what the fp16 copy's rounding costs.
            found["sq8 + rescore 20 fp32"] = (rescored(candidates, vectors, 20), code)
    binary, code = binary_candidates(vectors)
    for depth in (100, 200, 400):
        found[f"binary + rescore {depth}"] = (rescored(binary, full16, depth), code)
    fp16 = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    fp16.train(vectors)
    fp16.add(vectors)
    half_scan = faiss_candidates(fp16)
    found["fp16"] = (lambda q, c=half_scan: c(q, K), 2 * d)
    if hnsw:
        found.update(graphs(vectors))
    return found


def graphs(vectors: npt.NDArray[np.float32]) -> dict[str, tuple[Search, int]]:
    """HNSW over fp32 (today's large bundles) and over fp16 codes (format 2's), with the
    bundle's defaults; each one's bytes per vector: its codes plus its links."""
    import faiss

    from athenaeum.bundle import HNSW_DEFAULTS

    n, d = vectors.shape
    m, ef_c, ef_s = (HNSW_DEFAULTS[k] for k in ("M", "ef_construction", "ef_search"))
    found: dict[str, tuple[Search, int]] = {}
    made: list[Any] = []
    for name, index in (
        ("hnsw fp32", faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)),
        (
            "hnsw fp16",
            faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, m, faiss.METRIC_INNER_PRODUCT),
        ),
    ):
        index.hnsw.efConstruction = ef_c
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building only
        started = time.perf_counter()
        index.train(vectors)
        index.add(vectors)
        print(
            f"built {name} over {n:,} vectors in {time.perf_counter() - started:.0f} s", flush=True
        )
        faiss.omp_set_num_threads(1)
        links = (
            faiss.vector_to_array(index.hnsw.neighbors).nbytes
            + faiss.vector_to_array(index.hnsw.offsets).nbytes
        )
        code = faiss.downcast_index(index.storage).code_size
        made.append(index)
        for ef in (ef_s, 2 * ef_s):
            walk = hnsw_candidates(index, ef)
            label = name if ef == ef_s else f"{name} efSearch {ef}"
            found[label] = (lambda q, c=walk: c(q, K), int(code + links / n))
    return found


def measure(
    vectors: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    work: Path,
    hnsw: bool = False,
) -> list[dict[str, Any]]:
    truth = exact(vectors)
    expected = [set(truth(q).tolist()) for q in queries]
    rows = []
    for name, (search, code_bytes) in encodings(vectors, work, hnsw).items():
        for q in queries[:20]:  # warm-up
            search(q)
        times, recall = [], []
        for q, want in zip(queries, expected, strict=True):
            start = time.perf_counter()
            got = search(q)
            times.append((time.perf_counter() - start) * 1000)
            recall.append(len(want & set(got.tolist())) / K)
        rows.append(
            {
                "encoding": name,
                "recall_at_10": round(float(np.mean(recall)), 4),
                "queries_below_1": int(sum(r < 1 for r in recall)),
                "memory_bytes_per_vector": code_bytes,
                "p50_ms": round(float(np.percentile(times, 50)), 3),
                "p99_ms": round(float(np.percentile(times, 99)), 3),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--large", type=int, default=400_000, help="synthetic chunks (0: none)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/athenaeum-bench-vectors"))
    parser.add_argument(
        "--hnsw", action="store_true", help="also HNSW over fp32 and fp16 at the large size"
    )
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run = results_json.start("vectors", __file__, argv)
    import faiss

    faiss.omp_set_num_threads(1)
    from athenaeum.build.evaluation import load_beir
    from athenaeum.retrieval.engine import SearchEngine

    engine = SearchEngine.load(args.index, threads=1)
    ds = load_beir(args.dataset)
    texts = [ds.queries[q] for q in ds.judged_queries]
    queries = np.asarray(engine.encoder.encode(texts), dtype=np.float32)
    # The truth is fp32: give a bundle of format version 1 (fp32 vectors.npy), such as the one
    # `athenaeum eval` built before format 2, or every encoding is measured against fp16.
    if engine.bundle.manifest.vectors.encoding != "fp32":
        print(f"warning: {args.index} stores {engine.bundle.manifest.vectors.encoding} vectors")
    source = np.asarray(engine.bundle.vectors, dtype=np.float32)
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"dense top {K} against exact fp32, {len(queries)} SciFact queries, one thread, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    results: dict[str, Any] = {"queries": len(queries), "k": K, "sets": {}}
    sizes = [("scifact", source)]
    if args.large:
        sizes.append((f"synthetic {args.large:,}", synthesize(source, args.large)))
    for i, (label, vectors) in enumerate(sizes):
        rows = measure(vectors, queries, args.work, hnsw=args.hnsw and i == len(sizes) - 1)
        results["sets"][label] = {"vectors": len(vectors), "rows": rows}
        print(f"\n{label}: {len(vectors):,} vectors of {vectors.shape[1]} dimensions")
        print(
            f"{'encoding':<22} {'recall@10':>9} {'q<1':>5} {'bytes':>6} {'p50 ms':>8} {'p99 ms':>8}"
        )
        for r in rows:
            print(
                f"{r['encoding']:<22} {r['recall_at_10']:>9.4f} {r['queries_below_1']:>5} "
                f"{r['memory_bytes_per_vector']:>6} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}"
            )
    results_json.write(args.json, run, results)


if __name__ == "__main__":
    main()
