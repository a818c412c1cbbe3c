"""Retrieval evaluation on BEIR-format datasets: nDCG@10, Recall@100, MRR@10 and latency.

The metrics are written here from their definitions (as pytrec_eval computes them for BEIR)
rather than imported, so the serve-side install can run them and the tests can check them
against hand-computed values. Chunks are mapped to documents and de-duplicated (a document
ranks where its best chunk ranks) before scoring, since BEIR judges documents.

Any backend can be evaluated: `evaluate` ranks with a bundle's engine, `evaluate_ranker` with
any `Ranker` (`hits_ranker` makes one of a backend's ranked hits: an S3 Vectors index's, for
`athenaeum eval --s3vectors`). The metrics and the document mapping are the same either way.

As BEIR's and MTEB's evaluators do with `ignore_identical_ids` (their default), a retrieved
document whose id is the query's own id is left out before scoring: in datasets whose queries
are also corpus documents (ArguAna, Quora) the query would otherwise find itself. Turning it
off gives the raw ranking's numbers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from athenaeum.bundle import ChunkRecord
from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.backend import SEARCH_MODES, Hit
from athenaeum.retrieval.engine import SearchEngine

if TYPE_CHECKING:
    from athenaeum.build.indexer import IndexReport
    from athenaeum.build.indexer import ProgressCallback as IndexProgress

NDCG_K = 10
RECALL_K = 100
MRR_K = 10


@dataclass(frozen=True)
class BeirDataset:
    path: Path
    corpus: dict[str, tuple[str, str]]  # corpus id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> corpus id -> graded relevance

    @property
    def judged_queries(self) -> list[str]:
        """Queries with at least one relevant document and a text, in qrels order."""
        return [
            q
            for q, rels in self.qrels.items()
            if q in self.queries and any(r > 0 for r in rels.values())
        ]


def _read_jsonl(path: Path) -> Iterable[dict[str, object]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_beir(path: Path, split: str = "test") -> BeirDataset:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv (with its header line)."""
    path = Path(path)
    if not path.is_dir():
        raise InvalidInputError(
            f"no BEIR dataset at {path}: the folder does not exist (it holds corpus.jsonl, "
            "queries.jsonl and qrels/; the SciFact copy this project tests with is in "
            "../shared/data/beir/scifact)",
            param="dataset",
        )
    files = [path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / f"{split}.tsv"]
    for file in files:
        if not file.is_file():
            raise InvalidInputError(
                f"{path} is not a BEIR dataset directory: {file.relative_to(path)} is missing",
                param="dataset",
            )
    corpus = {
        str(d["_id"]): (str(d.get("title") or ""), str(d.get("text") or ""))
        for d in _read_jsonl(files[0])
    }
    queries = {str(q["_id"]): str(q["text"]) for q in _read_jsonl(files[1])}
    qrels: dict[str, dict[str, int]] = {}
    with files[2].open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader, None)  # header: query-id, corpus-id, score
        for row in reader:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return BeirDataset(path=path, corpus=corpus, queries=queries, qrels=qrels)


# --- metrics ---------------------------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = NDCG_K) -> float:
    """Normalised DCG with linear gain rel_i / log2(i + 1), i from 1; ideal from the qrels."""
    dcg = sum(relevance.get(doc, 0) / math.log2(i + 1) for i, doc in enumerate(ranked[:k], 1))
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 1) for i, r in enumerate(ideal, 1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = RECALL_K) -> float:
    relevant = {doc for doc, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = MRR_K) -> float:
    for i, doc in enumerate(ranked[:k], 1):
        if relevance.get(doc, 0) > 0:
            return 1.0 / i
    return 0.0


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeReport:
    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    latency_p50_ms: float
    latency_p99_ms: float


def corpus_id(chunk: ChunkRecord) -> str:
    """The BEIR corpus id of a chunk: the indexer keeps a corpus.jsonl `_id` as the doc_id."""
    return chunk.doc_id


Ranker = Callable[[str, str, int], list[str]]
"""`ranker(query, mode, depth)`: the document keys of the best `depth` chunks, best first."""


def bundle_ranker(
    engine: SearchEngine, doc_key: Callable[[ChunkRecord], str] = corpus_id
) -> Ranker:
    """Ranks with a loaded bundle, every chunk's key read once, before any query is timed."""
    keys = [doc_key(c) for c in engine.bundle.chunks]

    def rank(query: str, mode: str, depth: int) -> list[str]:
        return [keys[row] for row in engine.rank(query, mode=mode, depth=depth).rows.tolist()]

    return rank


def hits_ranker(
    search: Callable[[str, str, int], Sequence[Hit]],
    doc_key: Callable[[ChunkRecord], str] = corpus_id,
) -> Ranker:
    """Ranks with a backend that returns hits: `search(query, mode, depth)`."""
    return lambda query, mode, depth: [doc_key(h.chunk) for h in search(query, mode, depth)]


def evaluate(
    engine: SearchEngine,
    dataset: BeirDataset,
    modes: Sequence[str] = SEARCH_MODES,
    *,
    doc_key: Callable[[ChunkRecord], str] = corpus_id,
    depth: int = RECALL_K,
    ignore_identical_ids: bool = True,
) -> list[ModeReport]:
    """Run every judged query through each mode of a bundle and score the document rankings."""
    return evaluate_ranker(
        bundle_ranker(engine, doc_key),
        dataset,
        modes,
        depth=depth,
        ignore_identical_ids=ignore_identical_ids,
    )


def evaluate_ranker(
    ranker: Ranker,
    dataset: BeirDataset,
    modes: Sequence[str] = SEARCH_MODES,
    *,
    depth: int = RECALL_K,
    ignore_identical_ids: bool = True,
) -> list[ModeReport]:
    """Run every judged query through each mode of `ranker` and score the document rankings."""
    for mode in modes:
        if mode not in SEARCH_MODES:
            raise InvalidInputError(f"unknown search mode {mode!r}", param="modes")
    query_ids = dataset.judged_queries
    if not query_ids:
        raise InvalidInputError(f"{dataset.path} has no judged queries", param="dataset")
    reports = []
    for mode in modes:
        ndcg, recall, mrr, latency = [], [], [], []
        for qid in query_ids:
            start = time.perf_counter()
            ranked = ranker(dataset.queries[qid], mode, depth)
            latency.append(time.perf_counter() - start)
            docs = document_ranking(ranked, qid if ignore_identical_ids else None)
            rels = dataset.qrels[qid]
            ndcg.append(ndcg_at_k(docs, rels))
            recall.append(recall_at_k(docs, rels))
            mrr.append(mrr_at_k(docs, rels))
        ms = np.asarray(latency) * 1000.0
        reports.append(
            ModeReport(
                mode=mode,
                queries=len(query_ids),
                ndcg_at_10=float(np.mean(ndcg)),
                recall_at_100=float(np.mean(recall)),
                mrr_at_10=float(np.mean(mrr)),
                latency_p50_ms=float(np.percentile(ms, 50)),
                latency_p99_ms=float(np.percentile(ms, 99)),
            )
        )
    return reports


def document_ranking(docs: Iterable[str], query_id: str | None = None) -> list[str]:
    """Each document once, where it first appears, without `query_id` (BEIR's
    `ignore_identical_ids`; None keeps every document)."""
    return [doc for doc in dict.fromkeys(docs) if doc != query_id]


def identical_id_queries(dataset: BeirDataset) -> list[str]:
    """The judged queries whose id is also a corpus id: those `ignore_identical_ids` can change."""
    return [q for q in dataset.judged_queries if q in dataset.corpus]


# --- building an index of a BEIR corpus ------------------------------------------------------


def default_index_dir(dataset: Path) -> Path:
    """A per-user cache folder keyed by the dataset's path: evaluation never writes into the
    dataset folder, which is often shared or read-only."""
    dataset = Path(dataset).resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(dataset).encode()).hexdigest()[:12]
    return cache / "athenaeum" / "eval" / f"{dataset.name}-{key}"


def build_dataset_index(
    dataset: Path,
    output: Path,
    *,
    embed_model: str | None = None,
    progress: IndexProgress | None = None,
) -> IndexReport:
    """Index the dataset's corpus.jsonl into `output` with the build side (needs the `build`
    extra); incremental, so a second run over an unchanged corpus embeds nothing."""
    # build side: torch, sentence-transformers
    from athenaeum.build.indexer import BuildOptions, build_index

    corpus = [Path(dataset) / "corpus.jsonl"]
    options = BuildOptions() if embed_model is None else BuildOptions(embed_model=embed_model)
    return build_index(corpus, Path(output), options, progress=progress)
