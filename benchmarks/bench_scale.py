"""Where one bundle stops fitting one Lambda function: load time, memory, size on disk and query
latency of bundles from 10,000 to 400,000 chunks, fitted per 100,000 chunks and extrapolated to
Lambda's limits (docs/scaling.md).

The bundles are synthesized from a real one (the SciFact bundle `athenaeum eval` keeps), not
embedded: embedding 400,000 chunks would take hours on these machines. Copy 0 is the real bundle's
chunks, vectors and documents as they are; copy c >= 1 of every document and chunk
- has new ids (chunk: the first 16 hex digits of sha256("<id>/<c>"), as long as a real one;
  document: "<doc_id>/<c>");
- has its text followed by SUFFIX_WORDS words drawn uniformly, with replacement, from a pool
  of new terms ("v<c>t<j>") that belongs to copy c alone, so that BM25's vocabulary grows with
  the chunk count: each pool holds as many terms as make the bundle's vocabulary follow Heaps'
  law with exponent HEAPS_BETA from the source's (V(n) = V0 * (n / n0) ** HEAPS_BETA; English
  collections have 0.4-0.6). From SciFact every copy draws 85,000 words from a pool of a few
  thousand, so every term of it appears;
- has the real vector plus Gaussian noise of standard deviation NOISE per component,
  renormalised (cosine to the original about 0.9), so that no two vectors are equal.
The first N chunks of copy 0, copy 1, ... are taken (the last document cut short where N falls).
BM25 is built by athenaeum.retrieval.lexical.BM25Index.build over the same text the indexer
gives it (embed_text of the source chunk, then the copy's words) and the bundle is written by
athenaeum.bundle.write_bundle with dense kind "auto" (HNSW from HNSW_THRESHOLD chunks on), an
int8 query encoder quantized from the source's fp32 one by the indexer's own
quantize_query_encoder, and the fp32 graph kept as the document encoder: what `athenaeum index`
writes (athenaeum.build.indexer.write_documents), less embedding.

Every bundle is then measured in fresh interpreters, one at a time, --repeat times interleaved
(each bundle's files in the page cache, as after a download to /tmp; one untimed run per bundle
first puts them there):
- record: SearchEngine.load with the verification record write_bundle left (what a deployed
  function has: the S3 download and Lambda staging write one), then one hybrid query: the
  first answer, counted from the spawn of the interpreter; then --queries SciFact test queries
  per mode (hybrid, dense, bm25) after an untimed pass of the same queries;
- full: the same load with every file hashed and every chunk parsed (verify="full",
  ATHENAEUM_INDEX_VERIFY=full: a copy without a record);
and peak RSS (VmHWM: ru_maxrss, without what Linux carries over from the parent across exec).

Needs the `bench` dependency group (matplotlib, for benchmarks/plots.py):

    uv run --group bench python benchmarks/bench_scale.py [--source DIR] \
        [--sizes 10000,50000,100000,200000,400000] [--repeat 3] [--queries 50] [--work DIR] \
        [--keep] [--json benchmarks/results/scale.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import results_json
from bench_cold_start import PEAK_RSS
from tokenizers import Tokenizer

from athenaeum.build.chunking import embed_text
from athenaeum.build.embedding import quantize_query_encoder
from athenaeum.build.evaluation import default_index_dir
from athenaeum.build.indexer import chunking_params
from athenaeum.bundle import (
    CHUNK_ENCODING,
    ENCODER_MODEL_FILE,
    ENCODER_TOKENIZER_FILE,
    HNSW_THRESHOLD,
    VECTOR_ENCODING,
    Bundle,
    ChunkRecord,
    DocumentInfo,
    load_bundle,
    write_bundle,
)
from athenaeum.retrieval.lexical import BM25Index
from athenaeum.retrieval.tokens import TokenCounter
from athenaeum.s3vectors.publish import NON_FILTERABLE, vector_records
from infra import sizing

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "beir" / "scifact"
DEFAULT_SOURCE = default_index_dir(SCIFACT)
LAYER_RESULTS = ROOT / "benchmarks" / "results" / "layer.json"
DEFAULT_SIZES = (10_000, 50_000, 100_000, 200_000, 400_000)
QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."
MODES = ("hybrid", "dense", "bm25")
SEED = 20261127
NOISE = 0.025
SUFFIX_WORDS = 8
HEAPS_BETA = 0.5

# The lines: Lambda's largest memory setting, API Gateway's integration timeout (the first
# request of a cold function loads the bundle within it), Lambda's /tmp and package limits.
LAMBDA_MEMORY_MB = 10_240
API_GATEWAY_TIMEOUT_S = 29.0

CHILD = (
    """
import json, sys, time
"""
    + PEAK_RSS
    + """
t0 = time.perf_counter()
from athenaeum.retrieval.engine import SearchEngine
t1 = time.perf_counter()
engine = SearchEngine.load(sys.argv[1], verify=sys.argv[2])
t2 = time.perf_counter()
hits = engine.search(sys.argv[3], top_k=10, mode="hybrid")
t3 = time.perf_counter()
out = {"answered_at": time.time(), "imports": t1 - t0, "load": t2 - t1, "query": t3 - t2,
       "rss_mb": peak_rss_mb(), "hits": len(hits),
       "by_record": engine.bundle.verification.by_record}
if sys.argv[4] != "-":
    queries = json.load(open(sys.argv[4]))
    out["latencies_ms"] = {}
    for mode in ("hybrid", "dense", "bm25"):
        for q in queries:  # untimed pass
            engine.search(q, top_k=10, mode=mode)
        times = []
        for q in queries:
            t = time.perf_counter()
            engine.search(q, top_k=10, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        out["latencies_ms"][mode] = [round(x, 4) for x in times]
    out["rss_after_queries_mb"] = peak_rss_mb()
from athenaeum.bundle import read_manifest
t = time.perf_counter()
read_manifest(engine.bundle.path)  # its share of the load: parsed again, from the page cache
out["manifest_s"] = time.perf_counter() - t
print(json.dumps(out))
"""
)
ROWS = ("record", "full")
COLUMNS = ("first_answer", "imports", "load", "query", "rss_mb")


@dataclass(frozen=True)
class Source:
    bundle: Bundle
    chunks: list[ChunkRecord]
    vectors: npt.NDArray[np.float32]
    bm25_texts: list[str]  # what the indexer gives BM25 for each chunk
    documents: list[tuple[DocumentInfo, range]]  # in bundle order, with their chunk rows

    @property
    def vocabulary(self) -> int:
        return len(self.bundle.bm25.vocabulary)


def read_source(path: Path) -> Source:
    bundle = load_bundle(path)
    chunks = list(bundle.chunks)
    try:
        params = chunking_params(bundle.manifest.chunking)
    except KeyError:  # not chunked by athenaeum.build.chunking (a test fixture): the text alone
        texts = [c.text for c in chunks]
    else:
        tokenizer = Tokenizer.from_file(str(bundle.encoder_dir / ENCODER_TOKENIZER_FILE))
        count = TokenCounter(tokenizer).count
        texts = [embed_text(c.text, c.title, c.heading_path, count, params) for c in chunks]
    documents: list[tuple[DocumentInfo, range]] = []
    row = 0
    for doc in bundle.manifest.documents:
        rows = range(row, row + doc.chunk_count)
        if any(chunks[r].doc_id != doc.doc_id for r in rows):
            raise SystemExit(f"{path}: the chunks of {doc.doc_id} are not contiguous")
        documents.append((doc, rows))
        row += doc.chunk_count
    vectors = np.ascontiguousarray(bundle.vectors, dtype=np.float32)
    return Source(bundle, chunks, vectors, texts, documents)


@dataclass
class Synthetic:
    documents: list[DocumentInfo]
    chunks: list[ChunkRecord]
    vectors: npt.NDArray[np.float32]
    bm25_texts: list[str]


def synthesize(source: Source, n: int) -> Synthetic:
    """The first `n` chunks of copy 0, 1, ... of the source (the module docstring says how a
    copy differs)."""
    rng = np.random.default_rng(SEED)
    n0 = len(source.chunks)
    copies = math.ceil(n / n0)
    new_terms = round(source.vocabulary * ((n / n0) ** HEAPS_BETA - 1)) if n > n0 else 0
    pool = max(1, math.ceil(new_terms / max(1, copies - 1)))
    documents: list[DocumentInfo] = []
    chunks: list[ChunkRecord] = []
    texts: list[str] = []
    rows: list[int] = []
    for c in range(copies):
        for doc, doc_rows in source.documents:
            take = doc_rows[: n - len(chunks)]
            if not take:
                break
            doc_id = doc.doc_id if c == 0 else f"{doc.doc_id}/{c}"
            documents.append(
                doc.model_copy(
                    update={
                        "doc_id": doc_id,
                        "chunk_count": len(take),
                        "sha256": doc.sha256
                        if c == 0
                        else hashlib.sha256(f"{doc.sha256}/{c}".encode()).hexdigest(),
                    }
                )
            )
            for r in take:
                chunk = source.chunks[r]
                if c == 0:
                    chunks.append(chunk)
                    texts.append(source.bm25_texts[r])
                else:
                    words = " ".join(f"v{c}t{j}" for j in rng.integers(0, pool, size=SUFFIX_WORDS))
                    chunk_id = hashlib.sha256(f"{chunk.id}/{c}".encode()).hexdigest()[:16]
                    chunks.append(
                        ChunkRecord(
                            id=chunk_id,
                            doc_id=doc_id,
                            ordinal=chunk.ordinal,
                            text=f"{chunk.text} {words}",
                            title=chunk.title,
                            source=chunk.source,
                            heading_path=list(chunk.heading_path),
                            page_start=chunk.page_start,
                            page_end=chunk.page_end,
                        )
                    )
                    texts.append(f"{source.bm25_texts[r]} {words}")
                rows.append(r)
    index = np.asarray(rows)
    vectors = source.vectors[index].copy()
    copied = np.arange(len(rows)) >= n0
    noisy = vectors[copied] + rng.standard_normal((int(copied.sum()), vectors.shape[1])).astype(
        np.float32
    ) * np.float32(NOISE)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    vectors[copied] = noisy
    return Synthetic(documents, chunks, vectors, texts)


def build(
    source: Source,
    n: int,
    out: Path,
    encoders: tuple[Path, Path],
    layout: str = "compact",
) -> dict[str, Any]:
    """Write the bundle of `n` chunks to `out` as `athenaeum index` would; what it cost."""
    started = time.perf_counter()
    synthetic = synthesize(source, n)
    synthesized = time.perf_counter()
    bm25 = BM25Index.build(synthetic.bm25_texts)
    bm25_built = time.perf_counter()
    int8_dir, fp32_model = encoders
    embedding = source.bundle.manifest.embedding.model_copy(update={"encoder_precision": "int8"})
    manifest = write_bundle(
        out,
        embedding=embedding,
        chunking=source.bundle.manifest.chunking,
        documents=synthetic.documents,
        chunks=synthetic.chunks,
        vectors=synthetic.vectors,
        bm25_index=bm25,
        encoder_dir=int8_dir,
        dense_kind="auto",
        document_encoder=fp32_model,
        vector_encoding="fp32" if layout == "v1" else VECTOR_ENCODING,
        chunk_encoding="jsonl" if layout == "v1" else CHUNK_ENCODING,
    )
    written = time.perf_counter()
    return {
        "chunks": manifest.counts.chunks,
        "documents": manifest.counts.documents,
        "dense_kind": manifest.dense.kind,
        "vocabulary": len(bm25.vocabulary),
        "postings": len(bm25.doc_ids),
        # What serving copies, packages or downloads: the files the manifest lists and itself
        # (the document encoder stays with the build side); infra.sizing counts it so.
        "bundle_bytes": sizing.bundle_bytes(out),
        "files": {rel: info.bytes for rel, info in manifest.files.items()},
        "manifest_bytes": (out / "manifest.json").stat().st_size,
        "build_s": {
            "synthesize": synthesized - started,
            "bm25": bm25_built - synthesized,
            "write": written - bm25_built,
        },
    }


def query_encoders(bundle: Bundle, work: Path) -> tuple[Path, Path]:
    """The int8 query encoder's folder and the fp32 document encoder `athenaeum index` would
    put in a bundle of the source's model: quantized from the source's fp32 encoder as the
    indexer does, or the source's own when it has them already."""
    if bundle.manifest.embedding.encoder_precision == "fp32":
        fp32 = bundle.encoder_dir / ENCODER_MODEL_FILE
        return quantize_query_encoder(bundle.encoder_dir, work), fp32
    work.mkdir(parents=True)
    for name in (ENCODER_MODEL_FILE, ENCODER_TOKENIZER_FILE):
        shutil.copyfile(bundle.encoder_dir / name, work / name)
    return work, bundle.document_encoder()


def run_child(bundle: Path, verify: str, queries: Path | None) -> dict[str, Any]:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    spawned = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(bundle), verify, QUERY, str(queries or "-")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["first_answer"] = out["answered_at"] - spawned
    if out["by_record"] != (verify == "auto"):
        raise SystemExit(f"{bundle}: verify={verify} but by_record={out['by_record']}")
    return out


def read_queries(dataset: Path, count: int) -> list[str]:
    """The first `count` judged test queries of the BEIR dataset, in qrels order."""
    queries = {}
    with (dataset / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            queries[str(q["_id"])] = str(q["text"])
    judged: list[str] = []
    with (dataset / "qrels" / "test.tsv").open(encoding="utf-8") as f:
        next(f)
        for line in f:
            qid = line.split("\t")[0]
            if qid not in judged:
                judged.append(qid)
    return [queries[q] for q in judged[:count]]


def fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares y = intercept + slope * x, with slope per 100,000 chunks."""
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return {"intercept": float(intercept), "per_100k": float(slope) * 100_000}


def crossing(line: dict[str, float], limit: float) -> float | None:
    """The chunk count where the fitted line reaches `limit` (None when it never does)."""
    if line["per_100k"] <= 0:
        return None
    return (limit - line["intercept"]) / line["per_100k"] * 100_000


def package_budget() -> dict[str, Any]:
    """Bytes left for a packaged bundle: Lambda's unzipped limit less the layer and code as
    bench_layer.py last measured them (else the layer's size goal)."""
    try:
        sizes = json.loads(LAYER_RESULTS.read_text())["results"]["sizes"]
        layer, code, measured = int(sizes["layer_bytes"]), int(sizes["code_bytes"]), True
    except (OSError, ValueError, KeyError):
        layer, code, measured = sizing.LAYER_GOAL_BYTES, 0, False
    return {
        "limit_bytes": sizing.UNZIPPED_LIMIT_BYTES,
        "layer_bytes": layer,
        "code_bytes": code,
        "from_layer_json": measured,
        "bundle_budget_bytes": sizing.UNZIPPED_LIMIT_BYTES - layer - code,
    }


def s3vectors_record_bytes(bundle: Bundle) -> dict[str, Any]:
    """What athenaeum.s3vectors.publish puts per chunk of `bundle`, in bytes: the key, the
    vector, and the metadata (compact JSON, UTF-8), in all and its filterable part."""
    keys, total, filterable, text = [], [], [], []
    for record in vector_records(bundle):
        metadata = record["metadata"]
        keys.append(len(record["key"].encode()))
        total.append(len(_compact(metadata)))
        filterable.append(
            len(_compact({k: v for k, v in metadata.items() if k not in NON_FILTERABLE}))
        )
        text.append(len(metadata["text"].encode()))
    dimension = bundle.manifest.embedding.dimension

    def summary(values: list[int]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "max": float(np.max(values))}

    return {
        "chunks": len(keys),
        "dimension": dimension,
        "vector_bytes": dimension * 4,
        "key_bytes": summary(keys),
        "metadata_bytes": summary(total),
        "filterable_metadata_bytes": summary(filterable),
        "text_bytes": summary(text),
        "non_filterable_keys": list(NON_FILTERABLE),
    }


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="a real bundle")
    parser.add_argument("--dataset", type=Path, default=SCIFACT, help="BEIR queries")
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="chunk counts, comma-separated (the smallest is the baseline)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", type=int, default=50, help="timed queries per mode")
    parser.add_argument("--work", type=Path, help="where the bundles go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the bundles")
    parser.add_argument(
        "--layout",
        choices=["compact", "v1"],
        default="compact",
        help="compact: format version 2 as `athenaeum index` writes it (fp16 vectors stored "
        "once, chunks in zlib blocks, fp16 BM25 weights); v1: format version 1, as written "
        "before it (fp32 vectors.npy, an HNSW graph with its own fp32 copy, chunks.jsonl)",
    )
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if len(sizes) < 2:
        parser.error("--sizes needs at least two sizes: the slopes are fitted through them")
    run_info = results_json.start("scale", __file__, argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="athenaeum-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = measure_all(args, sizes, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results, run_info.load_start)
    results_json.write(args.json, run_info, results)


def measure_all(args: argparse.Namespace, sizes: list[int], work: Path) -> dict[str, Any]:
    source = read_source(args.source)
    encoders = query_encoders(source.bundle, work / "encoder-int8")
    queries_file = work / "queries.json"
    queries = read_queries(args.dataset, args.queries)
    queries_file.write_text(json.dumps(queries))

    built: dict[int, dict[str, Any]] = {}
    for n in sizes:
        print(f"building {n:,} chunks ...", file=sys.stderr, flush=True)
        built[n] = build(source, n, work / f"bundle-{n}", encoders, args.layout)
        print(
            f"  {built[n]['dense_kind']}, {built[n]['bundle_bytes'] / 1e6:.0f} MB, "
            f"{sum(built[n]['build_s'].values()):.0f} s; load average {os.getloadavg()[0]:.2f}",
            file=sys.stderr,
            flush=True,
        )
    record_bytes = s3vectors_record_bytes(source.bundle)
    del source

    print("measuring ...", file=sys.stderr, flush=True)
    for n in sizes:  # untimed: the page cache, and a check that every bundle loads
        run_child(work / f"bundle-{n}", "auto", None)
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {n: {r: [] for r in ROWS} for n in sizes}
    loads: list[list[float]] = []
    for _ in range(args.repeat):  # interleaved, so a burst of load hits every size alike
        for n in sizes:
            bundle = work / f"bundle-{n}"
            runs[n]["record"].append(run_child(bundle, "auto", queries_file))
            runs[n]["full"].append(run_child(bundle, "full", None))
            loads.append([round(x, 2) for x in os.getloadavg()])
    return summarize(args, sizes, built, runs, record_bytes, len(queries), loads)


def summarize(
    args: argparse.Namespace,
    sizes: list[int],
    built: dict[int, dict[str, Any]],
    runs: dict[int, dict[str, list[dict[str, Any]]]],
    record_bytes: dict[str, Any],
    queries: int,
    loads: list[list[float]],
) -> dict[str, Any]:
    table = []
    for n in sizes:
        row: dict[str, Any] = dict(built[n])
        for name in ROWS:
            samples = runs[n][name]
            row[name] = {
                "median": {c: statistics.median(s[c] for s in samples) for c in COLUMNS},
                "manifest_s": statistics.median(s["manifest_s"] for s in samples),
                "runs": [{c: s[c] for c in COLUMNS} for s in samples],
            }
        record = runs[n]["record"]
        row["rss_after_queries_mb"] = max(s["rss_after_queries_mb"] for s in record)
        row["latency_ms"] = {}
        for mode in MODES:
            pooled = [ms for s in record for ms in s["latencies_ms"][mode]]
            row["latency_ms"][mode] = {
                "p50": float(np.percentile(pooled, 50)),
                "p99": float(np.percentile(pooled, 99)),
                "samples": pooled,
            }
        table.append(row)

    # Past the threshold every bundle is HNSW, so the slopes that extrapolate are the HNSW
    # bundles' when there are two; else every size's.
    over = [r for r in table if r["chunks"] >= HNSW_THRESHOLD]
    if len(over) < 2:
        over = table
    if len(over) < 2:
        raise SystemExit("fitting a line needs at least two sizes")
    xs = [float(r["chunks"]) for r in over]
    lines = {
        "first_answer_record_s": fit(xs, [r["record"]["median"]["first_answer"] for r in over]),
        "first_answer_full_s": fit(xs, [r["full"]["median"]["first_answer"] for r in over]),
        "rss_record_mb": fit(xs, [r["record"]["median"]["rss_mb"] for r in over]),
        "rss_full_mb": fit(xs, [r["full"]["median"]["rss_mb"] for r in over]),
        "rss_after_queries_mb": fit(xs, [r["rss_after_queries_mb"] for r in over]),
        "bundle_bytes": fit(xs, [float(r["bundle_bytes"]) for r in over]),
    }
    budget = package_budget()
    tmp_bytes = (sizing.MAX_EPHEMERAL_MB - sizing.EPHEMERAL_HEADROOM_MB) * sizing.MIB
    # The ingest function's /tmp holds INGEST_BUNDLE_COPIES bundles and a batch.
    ingest_bytes = (
        (sizing.MAX_EPHEMERAL_MB - sizing.INGEST_BATCH_MB) / sizing.INGEST_BUNDLE_COPIES
    ) * sizing.MIB
    memory = max(lines["rss_record_mb"], lines["rss_after_queries_mb"], key=_at_a_million)
    limits = {
        "lambda_memory_mb": LAMBDA_MEMORY_MB,
        "api_gateway_timeout_s": API_GATEWAY_TIMEOUT_S,
        "package": budget,
        "tmp_bytes": tmp_bytes,
        "tmp_headroom_mb": sizing.EPHEMERAL_HEADROOM_MB,
        "ingest_bundle_bytes": ingest_bytes,
    }
    extrapolated = {
        "memory_chunks": crossing(memory, LAMBDA_MEMORY_MB),
        "memory_line": "rss_after_queries_mb"
        if memory is lines["rss_after_queries_mb"]
        else "rss_record_mb",
        "load_record_chunks": crossing(lines["first_answer_record_s"], API_GATEWAY_TIMEOUT_S),
        "load_full_chunks": crossing(lines["first_answer_full_s"], API_GATEWAY_TIMEOUT_S),
        "package_chunks": crossing(lines["bundle_bytes"], budget["bundle_budget_bytes"]),
        "tmp_chunks": crossing(lines["bundle_bytes"], tmp_bytes),
        "ingest_tmp_chunks": crossing(lines["bundle_bytes"], ingest_bytes),
    }
    return {
        "source": str(args.source),
        "layout": args.layout,
        "synthesis": {
            "seed": SEED,
            "noise": NOISE,
            "suffix_words": SUFFIX_WORDS,
            "heaps_beta": HEAPS_BETA,
        },
        "query": QUERY,
        "queries": queries,
        "repeat": args.repeat,
        "hnsw_threshold": HNSW_THRESHOLD,
        "sizes": table,
        "fit_over": [r["chunks"] for r in over],
        "fit": lines,
        "limits": limits,
        "extrapolated": extrapolated,
        "s3vectors_record": record_bytes,
        "load_average_per_repeat": loads,
    }


def _at_a_million(line: dict[str, float]) -> float:
    return line["intercept"] + line["per_100k"] * 10


def report(results: dict[str, Any], load_before: tuple[float, float, float]) -> None:
    print(
        f"{results.get('layout', 'v1')} bundles by size, median of {results['repeat']} fresh "
        "processes each, "
        f"{os.cpu_count()} CPUs; first answer counts from the spawn; latency p50 over "
        f"{results['queries']} queries x {results['repeat']} processes"
    )
    header = (
        f"{'chunks':>9}{'kind':>6}{'MB disk':>9}{'vocab':>9}{'answer rec':>11}{'x base':>7}"
        f"{'answer full':>12}{'manifest':>9}{'RSS rec':>9}{'RSS full':>9}{'RSS q':>8}"
        f"{'hybrid':>8}{'dense':>8}{'bm25':>8}"
    )
    print(header)
    print("-" * len(header))
    base = results["sizes"][0]["record"]["median"]["first_answer"]
    for r in results["sizes"]:
        lat = r["latency_ms"]
        answer = r["record"]["median"]["first_answer"]
        print(
            f"{r['chunks']:>9,}{r['dense_kind']:>6}{r['bundle_bytes'] / 1e6:>9.1f}"
            f"{r['vocabulary']:>9,}{answer:>10.2f}s{answer / base:>6.1f}x"
            f"{r['full']['median']['first_answer']:>11.2f}s{r['record']['manifest_s']:>8.2f}s"
            f"{r['record']['median']['rss_mb']:>9.0f}{r['full']['median']['rss_mb']:>9.0f}"
            f"{r['rss_after_queries_mb']:>8.0f}{lat['hybrid']['p50']:>8.2f}"
            f"{lat['dense']['p50']:>8.2f}{lat['bm25']['p50']:>8.2f}"
        )
    print(
        "(MB disk: 10^6 bytes the manifest lists and the manifest; x base: first answer against "
        "the smallest size's; manifest: parsing manifest.json alone; RSS in MiB at the first "
        "answer, and after the timed queries (q); latencies p50 in ms)"
    )
    fits = results["fit"]
    print(f"\nper 100,000 chunks (least squares over {results['fit_over']}):")
    for name, line in fits.items():
        print(f"  {name:<24}{line['per_100k']:>14.3f}  (intercept {line['intercept']:.3f})")
    ex = results["extrapolated"]
    print("\nextrapolated chunk counts where a line reaches a limit:")
    for name, value in ex.items():
        if name != "memory_line":
            print(f"  {name:<22}{'never' if value is None else f'{value:,.0f}':>14}")
    rec = results["s3vectors_record"]
    print(
        f"\nS3 Vectors record per chunk (source bundle, {rec['chunks']:,} chunks): vector "
        f"{rec['vector_bytes']} B, key {rec['key_bytes']['mean']:.0f} B, metadata "
        f"{rec['metadata_bytes']['mean']:.0f} B mean / {rec['metadata_bytes']['max']:.0f} max, "
        f"filterable {rec['filterable_metadata_bytes']['mean']:.0f} B mean / "
        f"{rec['filterable_metadata_bytes']['max']:.0f} max"
    )
    print(
        "load average before / after: "
        f"{' '.join(f'{x:.2f}' for x in load_before)} / "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
