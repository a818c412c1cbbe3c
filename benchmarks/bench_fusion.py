"""Hybrid fusion on a BEIR dataset: each change alone against the old default, in one run.

Every row starts from the same two candidate lists per query (the top 100 chunks of dense and
of BM25, exactly as `SearchEngine.rank` gets them) and changes one thing: how the two are fused,
how scores are normalised, or whether chunks are collapsed to documents before fusing. The row
marked "default" is `SearchEngine.rank(mode="hybrid")` itself, so the product's search and this
table cannot drift apart. Metrics are `athenaeum eval`'s (BEIR's ignore_identical_ids on).

The constants are fixed on principle before looking at the numbers: RRF k = 60 (Cormack, Clarke
and Buettcher 2009), equal weights for the convex combination (Bruch, Gai and Ingber, TOIS 2023:
the weight is the one parameter, and with no training queries 0.5 favours neither retriever),
MaxP (a document scores as its best chunk; Dai and Callan 2019). The weight sweep at the end is
a sensitivity table only: nothing was chosen from it.

The paired bootstrap resamples queries (numpy only) for a 95% interval of the mean per-query
nDCG@10 difference; the paired randomisation test flips the sign of each query's difference.
`--baseline-index` compares each search mode of the bundle with the same mode of another bundle
of the same corpus (built with other chunking options, say), query by query.

    uv run python benchmarks/bench_fusion.py [--index DIR] [--dataset DIR] [--resamples N]
        [--baseline-index DIR]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from athenaeum.build.evaluation import (
    RECALL_K,
    BeirDataset,
    default_index_dir,
    document_ranking,
    identical_id_queries,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from athenaeum.retrieval.engine import CANDIDATES, SEARCH_MODES, SearchEngine

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
RRF_K = 60
WEIGHT = 0.5  # of the dense score in every convex combination below

Floats = npt.NDArray[np.float64]
Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Query:
    qid: str
    text: str
    dense_rows: Rows  # top CANDIDATES chunk rows by cosine, best first
    bm25_rows: Rows  # top CANDIDATES chunk rows by BM25 (matching at least one term)
    cosine: Floats  # of every chunk
    bm25: Floats  # of every chunk


@dataclass(frozen=True)
class Corpus:
    doc_of: Rows  # chunk row -> document index
    doc_ids: list[str]
    first_chunk: Rows  # document index -> its first chunk's row


# --- fusion variants: each returns document ids, best first --------------------------------


def _chunks_to_docs(corpus: Corpus, rows: Rows) -> list[str]:
    """MaxP: a document ranks where its best chunk ranks (what `eval` does with a chunk list)."""
    return list(dict.fromkeys(corpus.doc_ids[int(corpus.doc_of[r])] for r in rows))


def _order(keys: Rows, scores: Floats) -> Rows:
    return keys[np.lexsort((keys, -scores))]


def _rrf(lists: list[list[int]]) -> list[int]:
    fused: dict[int, float] = {}
    for ranked in lists:
        for rank, key in enumerate(ranked, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused, key=lambda key: (-fused[key], key))


def _min_max(x: Floats) -> Floats:
    span = x.max() - x.min() if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def _theoretical_min_max(x: Floats, low: float) -> Floats:
    """Bruch et al.'s TMM: the lowest score the function can give (cosine -1, BM25 0) maps to 0,
    the best candidate to 1."""
    span = x.max() - low if len(x) else 0.0
    return (x - low) / span if span > 0 else np.zeros_like(x)


def _z_score(x: Floats) -> Floats:
    return (x - x.mean()) / x.std() if len(x) and x.std() > 0 else np.zeros_like(x)


def chunk_rrf(q: Query, c: Corpus) -> list[str]:
    """The old default: RRF over the two chunk rankings, the top 100 chunks."""
    rows = np.asarray(_rrf([q.dense_rows.tolist(), q.bm25_rows.tolist()])[:RECALL_K])
    return _chunks_to_docs(c, rows)


def chunk_convex(
    normalise: Callable[[Floats, float], Floats], *, both_scores: bool = True
) -> Callable[[Query, Corpus], list[str]]:
    def fuse(q: Query, c: Corpus) -> list[str]:
        rows = np.union1d(q.dense_rows, q.bm25_rows)
        cosine, bm25 = q.cosine[rows], q.bm25[rows]
        if not both_scores:  # a chunk one list lacks gets that list's lowest score
            cosine = np.where(np.isin(rows, q.dense_rows), cosine, q.cosine[q.dense_rows].min())
            low = q.bm25[q.bm25_rows].min() if len(q.bm25_rows) else 0.0
            bm25 = np.where(np.isin(rows, q.bm25_rows), bm25, low)
        fused = WEIGHT * normalise(cosine, -1.0) + (1 - WEIGHT) * normalise(bm25, 0.0)
        return _chunks_to_docs(c, _order(rows, fused)[:RECALL_K])

    return fuse


def _best_per_doc(c: Corpus, scores: Floats) -> Floats:
    best = np.full(len(c.doc_ids), -np.inf)
    np.maximum.at(best, c.doc_of, scores)
    return best


def doc_rrf(q: Query, c: Corpus) -> list[str]:
    """Each retriever's chunk ranking collapsed to documents (MaxP), then RRF over documents."""
    dense = list(dict.fromkeys(c.doc_of[q.dense_rows].tolist()))
    bm25 = list(dict.fromkeys(c.doc_of[q.bm25_rows].tolist()))
    return [c.doc_ids[d] for d in _rrf([dense, bm25])[:RECALL_K]]


def doc_convex(aggregate: str) -> Callable[[Query, Corpus], list[str]]:
    """Documents of either list's candidates, each scored by both retrievers as its best chunk
    (MaxP) or as its first chunk (FirstP), then the min-max convex combination."""

    def fuse(q: Query, c: Corpus) -> list[str]:
        docs = np.unique(c.doc_of[np.union1d(q.dense_rows, q.bm25_rows)])
        if aggregate == "maxp":
            cosine, bm25 = _best_per_doc(c, q.cosine)[docs], _best_per_doc(c, q.bm25)[docs]
        else:
            first = c.first_chunk[docs]
            cosine, bm25 = q.cosine[first], q.bm25[first]
        fused = WEIGHT * _min_max(cosine) + (1 - WEIGHT) * _min_max(bm25)
        return [c.doc_ids[d] for d in _order(docs, fused)[:RECALL_K]]

    return fuse


# --- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    ndcg: Floats
    recall: Floats
    mrr: Floats


def score(
    rankings: list[list[str]],
    queries: list[Query],
    qrels: dict[str, dict[str, int]],
    *,
    ignore_identical_ids: bool = True,
) -> Scores:
    ndcg, recall, mrr = [], [], []
    for q, docs in zip(queries, rankings, strict=True):
        ranked = document_ranking(docs, q.qid if ignore_identical_ids else None)
        ndcg.append(ndcg_at_k(ranked, qrels[q.qid]))
        recall.append(recall_at_k(ranked, qrels[q.qid]))
        mrr.append(mrr_at_k(ranked, qrels[q.qid]))
    return Scores(np.asarray(ndcg), np.asarray(recall), np.asarray(mrr))


def paired_bootstrap(diff: Floats, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean of `diff` over queries resampled with replacement."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_randomisation(diff: Floats, resamples: int, seed: int) -> float:
    """Two-sided p-value: how often a random sign per query gives a mean as far from 0."""
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, len(diff)))
    means = np.abs((signs * diff).mean(axis=1))
    return float((np.sum(means >= abs(diff.mean()) - 1e-12) + 1) / (resamples + 1))


def mode_scores(engine: SearchEngine, qids: list[str], data: BeirDataset, mode: str) -> Scores:
    """Per-query metrics of one search mode, as `athenaeum eval` computes them."""
    keys = [c.doc_id for c in engine.bundle.chunks]
    ndcg, recall, mrr = [], [], []
    for qid in qids:
        rows = engine.rank(data.queries[qid], mode=mode, depth=RECALL_K).rows.tolist()
        ranked = document_ranking([keys[r] for r in rows], qid)
        ndcg.append(ndcg_at_k(ranked, data.qrels[qid]))
        recall.append(recall_at_k(ranked, data.qrels[qid]))
        mrr.append(mrr_at_k(ranked, data.qrels[qid]))
    return Scores(np.asarray(ndcg), np.asarray(recall), np.asarray(mrr))


def compare_bundles(
    engine: SearchEngine, baseline: SearchEngine, data: BeirDataset, args: argparse.Namespace
) -> None:
    qids = data.judged_queries
    print(
        f"This bundle ({engine.facts.chunks} chunks) against the baseline bundle "
        f"({baseline.facts.chunks} chunks), same {len(qids)} queries:"
    )
    print("| mode | bundle | nDCG@10 | Recall@100 | MRR@10 |")
    print("|---|---|---|---|---|")
    lines = []
    for mode in SEARCH_MODES:
        new, old = (mode_scores(e, qids, data, mode) for e in (engine, baseline))
        for label, s in (("baseline", old), ("this", new)):
            print(
                f"| {mode} | {label} | {s.ndcg.mean():.4f} | {s.recall.mean():.4f} | "
                f"{s.mrr.mean():.4f} |"
            )
        diff = new.ndcg - old.ndcg
        low, high = paired_bootstrap(diff, args.resamples, args.seed)
        p = paired_randomisation(diff, args.resamples, args.seed)
        better, worse = int(np.sum(diff > 1e-12)), int(np.sum(diff < -1e-12))
        lines.append(
            f"{mode}, this - baseline, nDCG@10: {diff.mean():+.4f}, 95% paired bootstrap CI "
            f"[{low:+.4f}, {high:+.4f}] ({args.resamples} resamples), paired randomisation "
            f"p = {p:.4f}; {better} queries better, {worse} worse"
        )
    print()
    print("\n".join(lines))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--index", type=Path, default=None, help="default: eval's cache folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline-index",
        type=Path,
        default=None,
        help="another bundle of the same corpus to compare every search mode with",
    )
    args = parser.parse_args()

    data = load_beir(args.dataset, split=args.split)
    engine = SearchEngine.load(args.index or default_index_dir(args.dataset))
    chunks = engine.bundle.chunks
    index = {d: i for i, d in enumerate(dict.fromkeys(c.doc_id for c in chunks))}
    doc_of = np.asarray([index[c.doc_id] for c in chunks], dtype=np.int64)
    first = np.full(len(index), -1, dtype=np.int64)
    for row in range(len(chunks) - 1, -1, -1):
        first[doc_of[row]] = row
    corpus = Corpus(doc_of, list(index), first)
    if args.baseline_index is not None:
        compare_bundles(engine, SearchEngine.load(args.baseline_index), data, args)

    qids = data.judged_queries
    affected = identical_id_queries(data)
    queries, defaults = [], []
    started = time.perf_counter()
    for qid in qids:
        text = data.queries[qid]
        vector = engine.encoder.encode([text])[0]
        queries.append(
            Query(
                qid,
                text,
                engine.rank(text, mode="dense", depth=CANDIDATES).rows,
                engine.rank(text, mode="bm25", depth=CANDIDATES).rows,
                (engine.bundle.vectors @ vector).astype(np.float64),
                engine.bm25.scores(text),
            )
        )
        defaults.append(
            _chunks_to_docs(corpus, engine.rank(text, mode="hybrid", depth=RECALL_K).rows)
        )
    seconds = time.perf_counter() - started

    def run(fuse: Callable[[Query, Corpus], list[str]]) -> list[list[str]]:
        return [fuse(q, corpus) for q in queries]

    def single(mode_rows: Callable[[Query], Rows]) -> list[list[str]]:
        return [_chunks_to_docs(corpus, mode_rows(q)) for q in queries]

    variants: list[tuple[str, list[list[str]], bool]] = [
        ("dense alone (for reference)", single(lambda q: q.dense_rows), True),
        ("BM25 alone (for reference)", single(lambda q: q.bm25_rows), True),
        ("old default: RRF k=60 over chunks", run(chunk_rrf), True),
        ("old default, identical ids kept", run(chunk_rrf), False),
        ("RRF k=60 over documents (each list collapsed by MaxP)", run(doc_rrf), True),
        (
            "CC min-max, missing score = the list's lowest",
            run(chunk_convex(lambda x, _: _min_max(x), both_scores=False)),
            True,
        ),
        ("CC min-max, every candidate scored by both (new default)", defaults, True),
        (
            "CC theoretical min-max (cosine -1, BM25 0)",
            run(chunk_convex(_theoretical_min_max)),
            True,
        ),
        ("CC z-score", run(chunk_convex(lambda x, _: _z_score(x))), True),
        ("CC min-max over documents, MaxP (collapse + CC)", run(doc_convex("maxp")), True),
        ("CC min-max over documents, FirstP", run(doc_convex("firstp")), True),
    ]
    # The default row is the engine itself; the same fusion recomputed here must agree with it.
    mine = score(run(chunk_convex(lambda x, _: _min_max(x))), queries, data.qrels)
    baseline = score(run(chunk_rrf), queries, data.qrels)

    facts = engine.facts
    print(
        f"{args.dataset.name} ({args.split}): {len(qids)} queries, {facts.documents} documents, "
        f"{facts.chunks} chunks, {facts.model_id}; candidates {CANDIDATES} per retriever"
    )
    print(
        f"ignore_identical_ids: {len(affected)} of {len(qids)} judged queries have an id that "
        f"is also a corpus id" + (f" ({', '.join(affected[:10])})" if affected else "")
    )
    print()
    print("| change (each alone) | nDCG@10 | Recall@100 | MRR@10 | ΔnDCG@10 |")
    print("|---|---|---|---|---|")
    results: dict[str, Scores] = {}
    for name, rankings, ignore in variants:
        s = score(rankings, queries, data.qrels, ignore_identical_ids=ignore)
        results[name] = s
        delta = s.ndcg.mean() - baseline.ndcg.mean()
        print(
            f"| {name} | {s.ndcg.mean():.4f} | {s.recall.mean():.4f} | {s.mrr.mean():.4f} | "
            f"{delta:+.4f} |"
        )
    new = results["CC min-max, every candidate scored by both (new default)"]
    assert np.allclose(new.ndcg, mine.ndcg), "the engine's hybrid and this script disagree"

    print()
    for label, a in (
        ("new default", new),
        ("collapse + CC", results["CC min-max over documents, MaxP (collapse + CC)"]),
    ):
        diff = a.ndcg - baseline.ndcg
        low, high = paired_bootstrap(diff, args.resamples, args.seed)
        p = paired_randomisation(diff, args.resamples, args.seed)
        better, worse = int(np.sum(diff > 1e-12)), int(np.sum(diff < -1e-12))
        print(
            f"{label} - old default, nDCG@10: {diff.mean():+.4f}, 95% paired bootstrap CI "
            f"[{low:+.4f}, {high:+.4f}] ({args.resamples} resamples), paired randomisation "
            f"p = {p:.4f}; {better} queries better, {worse} worse"
        )

    print()
    print("Sensitivity only (the weight was fixed at 0.5 before this ran):")
    print("| dense weight | nDCG@10 | Recall@100 | MRR@10 |")
    print("|---|---|---|---|")
    global WEIGHT
    for weight in (0.3, 0.4, 0.5, 0.6, 0.7):
        WEIGHT = weight
        s = score(run(chunk_convex(lambda x, _: _min_max(x))), queries, data.qrels)
        print(f"| {weight} | {s.ndcg.mean():.4f} | {s.recall.mean():.4f} | {s.mrr.mean():.4f} |")
    WEIGHT = 0.5
    print()
    print(f"({len(qids)} queries ranked in {seconds:.1f} s)")


if __name__ == "__main__":
    main()
