"""Lexical-side changes on a BEIR dataset, each alone against the bundle as built, in one run.

Every change comes from the reference implementations BEIR results are reported with, fixed
before anything was measured (no train qrels, so nothing is tuned):

- BM25 k1 = 1.2, b = 0.75: the Elasticsearch / Lucene defaults, BEIR's own BM25 baseline.
- BM25 k1 = 0.9, b = 0.4: Anserini's defaults.
- RM3 pseudo-relevance feedback with Anserini's defaults (fbDocs = 10, fbTerms = 10,
  originalQueryWeight = 0.5), as Anserini's Rm3Reranker does it: the top fbDocs chunks of the
  first BM25 pass each give their fbTerms most frequent terms (2 to 20 characters of [a-z0-9],
  in at most 10% of the chunks); a term's feedback weight is the sum over those chunks of its
  share of the chunk's kept term counts times the chunk's BM25 score; the fbTerms heaviest,
  scaled to sum 1, are interpolated with the query's own terms (also summing to 1), and the
  expanded query is each term's BM25 postings weighted by its weight. Feedback chunks are
  tokenized at query time (the bundle keeps no forward index), which the timing includes.

A BM25 parameter change rebuilds only the postings: the texts are those `athenaeum index`
indexed (`embed_text` of each chunk with the bundle's own tokenizer and chunking recipe; the
rebuild with the bundle's own k1 and b must reproduce its bm25.npz), written with the vectors and
encoder of the bundle into a copy by `write_bundle`, and searched by `SearchEngine` itself.
RM3 rescores over the postings of the bundle as built; in hybrid its scores replace BM25's
everywhere (the lexical top 100 and the lexical score of every candidate), fused as
`SearchEngine.rank(mode="hybrid")` fuses.

    uv run python benchmarks/bench_lexical.py [--index DIR] [--dataset DIR] [--resamples N]
        [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from bench_fusion import DEFAULT_DATASET, paired_bootstrap, paired_randomisation
from tokenizers import Tokenizer

from athenaeum.build.chunking import ChunkingParams, embed_text
from athenaeum.build.evaluation import (
    RECALL_K,
    BeirDataset,
    default_index_dir,
    document_ranking,
    load_beir,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from athenaeum.bundle import ENCODER_TOKENIZER_FILE, write_bundle
from athenaeum.retrieval.engine import CANDIDATES, SearchEngine, _convex
from athenaeum.retrieval.lexical import BM25Index, tokenize
from athenaeum.retrieval.tokens import TokenCounter

PARAMS = {"Elasticsearch/Lucene": (1.2, 0.75), "Anserini": (0.9, 0.4)}
FB_DOCS, FB_TERMS, ORIGINAL_QUERY_WEIGHT = 10, 10, 0.5  # Anserini's RM3 defaults
MAX_DF_RATIO = 0.1  # Anserini's: a term in more than 10% of the documents is not fed back
_FEEDBACK_TERM = re.compile(r"[a-z0-9]{2,20}")

Floats = npt.NDArray[np.float64]
Rows = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Run:
    ndcg: Floats
    recall: Floats
    mrr: Floats
    ms: Floats  # per query


def _union(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The sorted distinct rows of both."""
    return np.unique(np.concatenate((a, b)))


def chunk_texts(engine: SearchEngine) -> list[str]:
    """What `athenaeum index` gave BM25 for each chunk (see athenaeum.build.indexer)."""
    bundle = engine.bundle
    recipe = bundle.manifest.chunking
    params = ChunkingParams(
        max_tokens=int(recipe["max_tokens"]),
        overlap=int(recipe["overlap"]),
        context=bool(recipe["context"]),
        version=int(recipe["version"]),
    )
    count = TokenCounter(
        Tokenizer.from_file(str(bundle.encoder_dir / ENCODER_TOKENIZER_FILE))
    ).count
    return [embed_text(c.text, c.title, c.heading_path, count, params) for c in bundle.chunks]


def same_postings(a: BM25Index, b: BM25Index) -> bool:
    return (
        a.vocabulary == b.vocabulary
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.doc_ids, b.doc_ids)
        and np.allclose(a.weights, b.weights, rtol=1e-6, atol=0)
    )


def copy_with_bm25(engine: SearchEngine, bm25: BM25Index, output: Path) -> SearchEngine:
    bundle = engine.bundle
    m = bundle.manifest
    write_bundle(
        output,
        embedding=m.embedding,
        chunking=m.chunking,
        documents=m.documents,
        chunks=bundle.chunks,
        vectors=bundle.vectors,
        bm25_index=bm25,
        encoder_dir=bundle.encoder_dir,
        dense_kind=m.dense.kind,  # type: ignore[arg-type]
        dense_params=m.dense.params,
    )
    return SearchEngine.load(output)


class RM3:
    """RM3 over an existing BM25 index, as Anserini's Rm3Reranker with its defaults."""

    def __init__(self, bm25: BM25Index, texts: list[str]) -> None:
        self.bm25 = bm25
        self.texts = texts
        df = np.diff(bm25.indptr)
        self.feedable = {
            t
            for t, d in zip(bm25.vocabulary, df, strict=True)
            if _FEEDBACK_TERM.fullmatch(t) and d <= MAX_DF_RATIO * bm25.n_docs
        }

    def expanded(self, query: str) -> dict[str, float]:
        """Term weights of the expanded query (summing to 1)."""
        language = self.bm25.params.language
        q = Counter(tokenize(query, language))
        total = sum(q.values())
        weights = {t: ORIGINAL_QUERY_WEIGHT * n / total for t, n in q.items()} if total else {}
        rows, scores = self.bm25.search(query, FB_DOCS)
        relevance: dict[str, float] = {}
        for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
            counts = Counter(t for t in tokenize(self.texts[row], language) if t in self.feedable)
            kept = sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))[:FB_TERMS]
            norm = sum(n for _, n in kept)
            for t, n in kept:
                relevance[t] = relevance.get(t, 0.0) + n / norm * score
        top = sorted(relevance.items(), key=lambda tw: (-tw[1], tw[0]))[:FB_TERMS]
        mass = sum(w for _, w in top)
        for t, w in top:
            weights[t] = weights.get(t, 0.0) + (1.0 - ORIGINAL_QUERY_WEIGHT) * w / mass
        return weights

    def scores(self, query: str) -> Floats:
        bm25 = self.bm25
        out = np.zeros(bm25.n_docs, dtype=np.float64)
        for term, weight in self.expanded(query).items():
            i = bm25.term_ids.get(term)
            if i is not None:
                s = slice(bm25.indptr[i], bm25.indptr[i + 1])
                out[bm25.doc_ids[s]] += weight * bm25.weights[s]
        return out


def top_rows(scores: Floats, k: int) -> Rows:
    """As BM25Index.search: rows matching a term, best first, ties to the lower row."""
    matched = np.flatnonzero(scores > 0)
    if len(matched) > k:
        matched = matched[np.argpartition(-scores[matched], k - 1)[:k]]
    return matched[np.lexsort((matched, -scores[matched]))].astype(np.int64)


def lexical_alone(scores: Callable[[str], Floats]) -> Callable[[SearchEngine, str], Rows]:
    return lambda engine, query: top_rows(scores(query), RECALL_K)


def hybrid_with(scores: Callable[[str], Floats]) -> Callable[[SearchEngine, str], Rows]:
    """`SearchEngine.rank(mode="hybrid")` with `scores` in place of the bundle's BM25."""

    def rank(engine: SearchEngine, query: str) -> Rows:
        vector = engine.encoder.encode([query])
        dense = engine.rank(query, mode="dense", depth=CANDIDATES).rows
        lexical = scores(query)
        rows = _union(dense, top_rows(lexical, CANDIDATES))
        cosines = engine.bundle.vectors[rows] @ vector[0]
        return _convex(rows, cosines, lexical[rows], RECALL_K).rows

    return rank


def engine_mode(mode: str) -> Callable[[SearchEngine, str], Rows]:
    return lambda engine, query: engine.rank(query, mode=mode, depth=RECALL_K).rows


def evaluate(
    engine: SearchEngine, data: BeirDataset, rank: Callable[[SearchEngine, str], Rows]
) -> Run:
    keys = [c.doc_id for c in engine.bundle.chunks]
    ndcg, recall, mrr, ms = [], [], [], []
    for qid in data.judged_queries:
        started = time.perf_counter()
        rows = rank(engine, data.queries[qid])
        ms.append((time.perf_counter() - started) * 1000)
        ranked = document_ranking([keys[r] for r in rows.tolist()], qid)
        ndcg.append(ndcg_at_k(ranked, data.qrels[qid]))
        recall.append(recall_at_k(ranked, data.qrels[qid]))
        mrr.append(mrr_at_k(ranked, data.qrels[qid]))
    return Run(*(np.asarray(x) for x in (ndcg, recall, mrr, ms)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--index", type=Path, default=None, help="default: eval's cache folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keep", type=Path, default=None, help="write the rebuilt bundles here (else a temp dir)"
    )
    args = parser.parse_args()

    data = load_beir(args.dataset, split=args.split)
    base = SearchEngine.load(args.index or default_index_dir(args.dataset))
    k1, b = base.bm25.params.k1, base.bm25.params.b
    started = time.perf_counter()
    texts = chunk_texts(base)
    rebuilt = BM25Index.build(texts, k1=k1, b=b)
    build_s = time.perf_counter() - started
    assert same_postings(rebuilt, base.bm25), "the rebuilt texts are not the bundle's"

    rm3 = RM3(base.bm25, texts)
    # (label, engine, bm25 ranker, hybrid ranker)
    rows: list[tuple[str, SearchEngine, Callable[..., Rows], Callable[..., Rows]]] = [
        (f"bundle as built: k1={k1:g}, b={b:g}", base, engine_mode("bm25"), engine_mode("hybrid"))
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        for name, (pk1, pb) in PARAMS.items():
            index = BM25Index.build(texts, k1=pk1, b=pb)
            engine = copy_with_bm25(base, index, folder / f"k1-{pk1:g}-b-{pb:g}")
            label = f"{name} defaults: k1={pk1:g}, b={pb:g}"
            rows.append((label, engine, engine_mode("bm25"), engine_mode("hybrid")))
        rows.append(
            (
                f"RM3 (fbDocs={FB_DOCS}, fbTerms={FB_TERMS}, w={ORIGINAL_QUERY_WEIGHT:g})",
                base,
                lexical_alone(rm3.scores),
                hybrid_with(rm3.scores),
            )
        )

        # The RM3 rows must be the engine's search with only the lexical scores changed: with
        # plain BM25 scores they give the engine's own rows.
        for qid in data.judged_queries[:20]:
            q = data.queries[qid]
            for mine, engines in (
                (hybrid_with(base.bm25.scores), engine_mode("hybrid")),
                (lexical_alone(base.bm25.scores), engine_mode("bm25")),
            ):
                assert np.array_equal(mine(base, q), engines(base, q)), "fusion drifted"

        results = [
            (label, evaluate(e, data, lexical), evaluate(e, data, hybrid))
            for label, e, lexical, hybrid in rows
        ]

    facts = base.facts
    print(
        f"{args.dataset.name} ({args.split}): {len(data.judged_queries)} queries, "
        f"{facts.documents} documents, {facts.chunks} chunks; BM25 texts rebuilt and checked "
        f"against the bundle's postings in {build_s:.1f} s"
    )
    print()
    header = (
        "| change (each alone) | BM25 nDCG@10 | hybrid nDCG@10 | hybrid Recall@100 | "
        "hybrid MRR@10 | Δ hybrid | 95% CI (hybrid) | p | Δ BM25 | 95% CI (BM25) | "
        "BM25 p50 ms | hybrid p50 ms |"
    )
    print(header)
    print("|---" * 12 + "|")
    _, base_lex, base_hyb = results[0]
    for label, lex, hyb in results:
        cells = [label, f"{lex.ndcg.mean():.4f}", f"{hyb.ndcg.mean():.4f}"]
        cells += [f"{hyb.recall.mean():.4f}", f"{hyb.mrr.mean():.4f}"]
        for new, old in ((hyb, base_hyb), (lex, base_lex)):
            diff = new.ndcg - old.ndcg
            if new is old:
                cells += ["baseline", "", ""] if new is hyb else ["baseline", ""]
                continue
            low, high = paired_bootstrap(diff, args.resamples, args.seed)
            cells.append(f"{diff.mean():+.4f}")
            cells.append(f"[{low:+.4f}, {high:+.4f}]")
            if new is hyb:
                cells.append(f"{paired_randomisation(diff, args.resamples, args.seed):.3f}")
        cells += [f"{np.median(lex.ms):.2f}", f"{np.median(hyb.ms):.2f}"]
        print("| " + " | ".join(cells) + " |")
    print()
    for label, lex, hyb in results[1:]:
        for mode, new, old in (("hybrid", hyb, base_hyb), ("BM25", lex, base_lex)):
            diff = new.ndcg - old.ndcg
            better, worse = int(np.sum(diff > 1e-12)), int(np.sum(diff < -1e-12))
            print(
                f"{label}, {mode}: {better} queries better, {worse} worse; Recall@100 "
                f"{new.recall.mean():.4f} ({new.recall.mean() - old.recall.mean():+.4f}), "
                f"MRR@10 {new.mrr.mean():.4f} ({new.mrr.mean() - old.mrr.mean():+.4f})"
            )
    print(f"\n(CIs: paired bootstrap, {args.resamples} resamples of the queries)")


if __name__ == "__main__":
    main()
