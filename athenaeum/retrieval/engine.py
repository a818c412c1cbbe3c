"""Hybrid search over a loaded bundle: dense (FAISS), lexical (BM25) and their fusion.

Hybrid takes the top 100 chunks of each retriever and ranks their union by a convex
combination of the two scores, each min-max normalised over the candidates, with equal weights
(Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", TOIS 2023).
Every candidate is scored by both retrievers (a chunk that only one of them returned still has
a cosine and a BM25 score), so a chunk is never penalised for being just outside one top 100.
Fusing scores rather than ranks keeps how far ahead a chunk is: a chunk that one retriever
scores far above the rest keeps that lead, which reciprocal rank fusion flattens to a rank.

The weight 0.5 is the uninformed choice, not tuned on evaluation data, so the BEIR numbers in
docs/benchmarks.md (where this gave SciFact nDCG@10 0.7339 against 0.7225 for reciprocal rank
fusion with k = 60) are honest held-out numbers. Fusing documents instead (each retriever's
chunks collapsed to their document first) was measured there too and left out: results are
chunks, and a document's score would rank all of its candidate chunks above the next document's
best one.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from athenaeum.bundle import (
    DENSE_FILE,
    Bundle,
    ChunkRecord,
    DocumentInfo,
    VerifyMode,
    corrupted,
    load_bundle,
    record_verification,
)
from athenaeum.bundle.vectors import prefetch_faiss
from athenaeum.retrieval.backend import (
    MAX_TOP_K,
    SEARCH_MODES,
    Hit,
    IndexFacts,
    SearchMode,
    check_mode,
    check_query,
    check_top_k,
    missing_chunk,
)
from athenaeum.retrieval.encoder import OnnxQueryEncoder, available_cpus
from athenaeum.retrieval.filters import FilterTable, SearchFilter
from athenaeum.retrieval.lexical import BM25Index
from athenaeum.retrieval.tokens import TokenCounter

# Imported from here by the CLI, benchmarks and tests; defined with the interface.
__all__ = [
    "CANDIDATES",
    "DENSE_WEIGHT",
    "MAX_TOP_K",
    "SEARCH_MODES",
    "Hit",
    "IndexFacts",
    "Ranking",
    "SearchEngine",
    "SearchMode",
    "check_top_k",
    "verify_index",
]

CANDIDATES = 100  # per retriever, before fusion
# The weight of the dense score in hybrid; BM25 gets the rest. Equal weights: no evaluation data
# picked it.
DENSE_WEIGHT = 0.5
# Under an approximate (HNSW) index, filters that pass at most this many chunks are searched
# exactly over those chunks.
EXACT_FILTERED_MAX = 50_000
# An exact search under a filter that passes at least 1 / WIDE_FILTER_SHARE of the chunks scores
# every vector rather than copying the passing ones out first.
WIDE_FILTER_SHARE = 4


@dataclass(frozen=True)
class Ranking:
    """Chunk rows best first with their scores; internal depth may exceed MAX_TOP_K."""

    rows: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]


class SearchEngine:
    """The bundle backend (athenaeum.retrieval.backend.SearchBackend): a bundle loaded into this
    process, searched here."""

    def __init__(self, bundle: Bundle, encoder: OnnxQueryEncoder) -> None:
        self.bundle = bundle
        self.encoder = encoder
        self.bm25 = BM25Index.of(bundle.bm25)
        self._beside = _Beside(enabled=available_cpus() > 1)

    @cached_property
    def _by_id(self) -> dict[str, int]:
        # Built on the first fetch by id: it parses every chunk, which a search does not need.
        return {c.id: i for i, c in enumerate(self.bundle.chunks)}

    @cached_property
    def filter_table(self) -> FilterTable:
        return FilterTable.of(self.bundle.chunks, self.bundle.manifest.documents)

    @classmethod
    def load(
        cls, bundle_dir: Path, *, verify: VerifyMode = "auto", threads: int | None = None
    ) -> SearchEngine:
        """Load and verify a bundle once per process; raises BundleError when it is unusable.

        `verify` as in athenaeum.bundle.load_bundle: "auto" trusts a current verification
        record instead of hashing every file, "full" hashes them whatever the record says.
        """
        bundle_dir = Path(bundle_dir)
        if (bundle_dir / DENSE_FILE).is_file():
            prefetch_faiss()  # imported while the manifest is read and checked
        bundle = load_bundle(bundle_dir, verify=verify)
        return cls(
            bundle, OnnxQueryEncoder.of_bundle(bundle.path, bundle.manifest, threads=threads)
        )

    @property
    def documents(self) -> Sequence[DocumentInfo]:
        return self.bundle.manifest.documents

    @cached_property
    def tokens(self) -> TokenCounter:
        """Counts text in the bundle tokenizer's tokens (what chat's `max_tokens` counts)."""
        return TokenCounter(self.encoder.tokenizer)

    @property
    def facts(self) -> IndexFacts:
        m = self.bundle.manifest
        return IndexFacts.of(
            m,
            backend="bundle",
            location=str(self.bundle.path),
            version=self.bundle.verification.manifest_sha256,
            dense_kind=m.dense.kind,
        )

    def search(
        self,
        query: str,
        top_k: int = 5,
        mode: str = "hybrid",
        filter: SearchFilter | Mapping[str, object] | None = None,
    ) -> list[Hit]:
        """The `top_k` best chunks for `query` among those `filter` lets through; the score's
        meaning depends on the mode (cosine for dense, BM25 for bm25, for hybrid the fused
        score from 0 to 1, 1 for a chunk that both retrievers rank first)."""
        check_top_k(top_k)
        ranking = self.rank(query, mode=mode, depth=top_k, filter=filter)
        chunks = self.bundle.chunks
        return [
            Hit(chunks[int(row)], float(score))
            for row, score in zip(ranking.rows, ranking.scores, strict=True)
        ]

    def rank(
        self,
        query: str,
        *,
        mode: str = "hybrid",
        depth: int = CANDIDATES,
        filter: SearchFilter | Mapping[str, object] | None = None,
    ) -> Ranking:
        """Chunk rows and scores, best first, at most `depth` of them (no result objects).

        A filter is applied inside each retriever, before fusion: each ranks only the chunks
        that pass, so `depth` is filled whenever that many chunks pass and match.
        """
        query = check_query(query)
        check_mode(mode)
        parsed = SearchFilter.parse(filter)
        # The table is built on the first filtered search: it reads every chunk.
        allowed = None if parsed.empty else parsed.mask(self.filter_table)
        if allowed is not None and not allowed.any():
            return Ranking(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
        if mode == "bm25":
            rows, scores = self.bm25.search(query, depth, allowed=allowed)
            return Ranking(rows, scores)
        if mode == "dense":
            return self._dense(query, depth, allowed)
        return self._hybrid(query, max(depth, CANDIDATES), depth, allowed)

    def _hybrid(
        self, query: str, candidates: int, depth: int, allowed: npt.NDArray[np.bool_] | None
    ) -> Ranking:
        # BM25 needs no query vector. Where a core is free it runs there during the encoder's
        # forward pass (which holds no Python lock), and is done before the pass is
        # (docs/benchmarks.md, "The floor"); otherwise, or while another search has that core,
        # it runs here after the dense scan.
        feed = self.encoder.feed([query])
        beside = self._beside.start(self._lexical, query, candidates, allowed)
        vector = self.encoder.run(feed)
        dense = self._nearest(vector, candidates, allowed)
        lexical = self._lexical(query, candidates, allowed) if beside is None else beside.result()
        # The dense candidates come with their cosines; BM25's others take theirs from their
        # vectors, which the BM25 part widened to fp32 already.
        seen = np.zeros(len(lexical.scores), dtype=np.bool_)
        seen[dense.rows] = True
        others = ~seen[lexical.rows]
        rows = np.concatenate((dense.rows, lexical.rows[others]))
        cosines: npt.NDArray[np.floating] = np.concatenate(
            (dense.scores, lexical.vectors[others] @ vector[0])
        )
        return _convex(rows, cosines, lexical.scores[rows], depth)

    def _lexical(
        self, query: str, candidates: int, allowed: npt.NDArray[np.bool_] | None
    ) -> _Lexical:
        """BM25's part of a hybrid search, which needs no query vector."""
        scores = self.bm25.scores(query)  # once: it ranks, then scores the dense candidates
        rows, _ = self.bm25.top(scores, candidates, allowed=allowed)
        return _Lexical(scores, rows, self.bundle.vectors.rows(rows))

    def get_chunk(self, chunk_id: str) -> ChunkRecord:
        row = self._by_id.get(chunk_id)
        if row is None:
            raise missing_chunk(chunk_id)
        return self.bundle.chunks[row]

    def _dense(
        self, query: str, depth: int, allowed: npt.NDArray[np.bool_] | None = None
    ) -> Ranking:
        return self._nearest(self.encoder.encode([query]), depth, allowed)

    def _nearest(
        self,
        vector: npt.NDArray[np.float32],
        depth: int,
        allowed: npt.NDArray[np.bool_] | None = None,
    ) -> Ranking:
        passing = len(self.bundle.chunks) if allowed is None else int(allowed.sum())
        k = min(depth, passing)
        if k == 0:
            return Ranking(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
        index = self.bundle.ann
        if index is None:
            return self._exact(vector[0], k, allowed)
        import faiss  # loaded already: the bundle's approximate index is a FAISS one

        if allowed is None:
            scores, rows = index.search(vector, k)
        elif passing <= EXACT_FILTERED_MAX:
            # An approximate graph walk under a narrow filter finds too few passing chunks:
            # score the passing chunks exactly instead.
            return self._exact(vector[0], k, allowed)
        else:
            bits = np.packbits(allowed, bitorder="little")  # alive until the search returns
            hnsw: Any = faiss.downcast_index(index)
            params = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]
                sel=faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits)),
                efSearch=max(k, int(hnsw.hnsw.efSearch)),
            )
            scores, rows = index.search(vector, k, params=params)
        keep = rows[0] >= 0  # ANN indexes pad with -1 when they find fewer than k
        found = int(keep.sum())
        if found == 0:
            # A graph walk always finds something: nothing means vectors that score NaN (the
            # loader and the encoder refuse those), never "no match".
            raise corrupted(
                self.bundle.path, f"dense search found {found} of {k} chunks for a valid query"
            )
        return Ranking(rows[0][keep].astype(np.int64), scores[0][keep].astype(np.float64))

    def _exact(
        self, vector: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.bool_] | None
    ) -> Ranking:
        """Exact inner-product search over the (memory-mapped) vectors: FAISS's scan of the
        fp16 codes, or for a version 1 bundle one numpy matrix-vector product over its fp32
        vectors (as fast as FAISS's flat index for one query, docs/benchmarks.md, without
        copying the vectors into it)."""
        if self.bundle.vectors.flat is not None:
            return self._scan_codes(vector, k, allowed)
        vectors = self.bundle.vectors.codes
        if allowed is None:
            ids = None
            sims = vectors @ vector
        elif int(allowed.sum()) * WIDE_FILTER_SHARE >= len(allowed):
            # Most chunks pass (a caller who may read most collections): scoring every vector
            # and setting aside the rest costs less than gathering the passing ones first.
            ids = None
            sims = np.where(allowed, vectors @ vector, -np.inf)
        else:
            ids = np.flatnonzero(allowed)
            sims = vectors[ids] @ vector
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        # Best first; ties to the lower row, so results are deterministic.
        top = top[np.lexsort((top, -sims[top]))]
        scores = sims[top]
        found = int(np.isfinite(scores).sum())
        if found < k:
            # Exact search always fills k: a shortfall means vectors or a query vector that
            # score NaN (the loader and the encoder refuse those), never "no match".
            raise corrupted(
                self.bundle.path, f"dense search found {found} of {k} chunks for a valid query"
            )
        rows = top if ids is None else ids[top]
        return Ranking(rows.astype(np.int64), scores.astype(np.float64))

    def _scan_codes(
        self, vector: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.bool_] | None
    ) -> Ranking:
        """Exact search over the fp16 codes: FAISS's flat scan (SIMD, fp16 widened in
        registers), chunks the filter stops skipped by a bitmap."""
        import faiss  # loaded already: the codes are in a FAISS index

        flat = self.bundle.vectors.flat
        assert flat is not None
        query = vector.reshape(1, -1)
        if allowed is None:
            scores, rows = flat.search(query, k)
        else:
            bits = np.packbits(allowed, bitorder="little")  # alive until the search returns
            selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
            params = faiss.SearchParameters()
            params.sel = selector
            scores, rows = flat.search(query, k, params=params)
        keep = rows[0] >= 0
        found = int(keep.sum())
        if found < k:
            # Exact search always fills k: a shortfall means vectors or a query vector that
            # score NaN (the loader and the encoder refuse those), never "no match".
            raise corrupted(
                self.bundle.path, f"dense search found {found} of {k} chunks for a valid query"
            )
        return Ranking(rows[0].astype(np.int64), scores[0].astype(np.float64))


@dataclass(frozen=True)
class _Lexical:
    scores: npt.NDArray[np.float64]  # every chunk's BM25 score
    rows: npt.NDArray[np.int64]  # the best chunks' rows, best first
    # Their vectors as fp32: widening fp16 is most of what scoring them costs, and can be done
    # before the query vector exists.
    vectors: npt.NDArray[np.float32]


class _Beside:
    """A worker thread that runs a search's BM25 beside its query encoder, for one search at a
    time: a search that finds it busy (concurrent requests keep every core busy anyway), or on
    a single CPU, gets None from `start` and runs BM25 itself. Jobs go over a SimpleQueue, whose
    hand-off costs the searching thread about a third of a ThreadPoolExecutor's submit."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._reset()

    def _reset(self) -> None:
        self._free = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job[Any]] | None = None
        self._started = threading.Lock()
        self._pid = os.getpid()

    def start[T](self, work: Callable[..., T], *args: object) -> _Job[T] | None:
        if not self._enabled:
            return None
        if self._pid != os.getpid():
            # A forked child has none of its parent's threads: a job queued for the parent's
            # worker would wait forever.
            self._reset()
        if not self._free.acquire(blocking=False):
            return None
        try:
            jobs = self._jobs or self._start_worker()
            job = _Job(work, args)
            jobs.put(job)
            return job
        except BaseException:
            self._free.release()
            raise

    def _start_worker(self) -> queue.SimpleQueue[_Job[Any]]:
        with self._started:
            if self._jobs is None:
                jobs: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
                # A daemon: it only ever computes on memory this process holds, so nothing is
                # lost when the interpreter exits without waiting for it.
                threading.Thread(
                    target=self._serve, args=(jobs,), name="athenaeum-bm25", daemon=True
                ).start()
                self._jobs = jobs
            return self._jobs

    def _serve(self, jobs: queue.SimpleQueue[_Job[Any]]) -> None:
        while True:
            job = jobs.get()
            try:
                job.run()
            finally:
                self._free.release()


class _Job[T]:
    """One piece of work for `_Beside`'s thread. `result` returns what it returned, or raises
    what it raised; if the thread has not started it by then (every core busy, so the thread
    got none), the caller runs it itself instead of waiting, and the thread then skips it. So
    handing work over never costs more than the hand-off when the machine is loaded."""

    def __init__(self, work: Callable[..., T], args: tuple[object, ...]) -> None:
        self._work = work
        self._args = args
        self._claimed = threading.Lock()  # held by whichever thread runs the work
        self._done: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

    def run(self) -> None:
        if not self._claimed.acquire(blocking=False):
            return  # the searching thread ran it
        try:
            self._done.put((True, self._work(*self._args)))
        except BaseException as exc:  # handed to the searching thread, raised there
            self._done.put((False, exc))

    def result(self) -> T:
        if self._claimed.acquire(blocking=False):
            return self._work(*self._args)
        ok, value = self._done.get()
        if not ok:
            raise value
        result: T = value
        return result


def verify_index(bundle_dir: Path) -> SearchEngine:
    """Verify a bundle in full (every file's sha256, every chunk, the vectors, the BM25
    postings, the query encoder) and write its verification record, so that later loads of
    this copy skip the sha256 pass: what `athenaeum verify` runs. Raises BundleError, and
    records nothing, when any check fails."""
    engine = SearchEngine.load(bundle_dir, verify="full")
    record_verification(engine.bundle, by="athenaeum verify")
    return engine


def _convex(
    rows: npt.NDArray[np.int64],
    dense: npt.NDArray[np.floating],
    lexical: npt.NDArray[np.floating],
    depth: int,
) -> Ranking:
    """Convex combination of min-max normalised scores: DENSE_WEIGHT * mm(dense) +
    (1 - DENSE_WEIGHT) * mm(lexical), where mm maps the lowest of the candidates' scores to 0
    and the highest to 1 (all 0 when they are equal: that retriever cannot tell them apart)."""
    fused = DENSE_WEIGHT * _min_max(dense) + (1.0 - DENSE_WEIGHT) * _min_max(lexical)
    # Ties go to the lower row so that results are deterministic.
    order = np.lexsort((rows, -fused))[:depth]
    return Ranking(rows[order].astype(np.int64), fused[order])


def _min_max(scores: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    values = scores.astype(np.float64)
    if len(values) == 0:
        return values
    low, high = values.min(), values.max()
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)
