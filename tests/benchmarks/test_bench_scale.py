"""benchmarks/bench_scale.py's synthetic bundles are what the module docstring says they are (copy
0 the source as it is, later copies new ids, new terms at Heaps' rate, near but not equal
vectors), and its lines cross the limits where arithmetic says."""

from __future__ import annotations

import math
from pathlib import Path

import bench_scale
import numpy as np
import pytest

from athenaeum.retrieval.lexical import BM25Index


@pytest.fixture(scope="module")
def source(scifact_bundle: Path) -> bench_scale.Source:
    return bench_scale.read_source(scifact_bundle)


def test_copy_zero_is_the_source_and_later_copies_are_new_chunks(
    source: bench_scale.Source,
) -> None:
    n0 = len(source.chunks)
    n = 2 * n0 + n0 // 2  # two copies and half of a third
    synthetic = bench_scale.synthesize(source, n)

    assert len(synthetic.chunks) == len(synthetic.bm25_texts) == len(synthetic.vectors) == n
    assert synthetic.chunks[:n0] == source.chunks
    assert synthetic.bm25_texts[:n0] == source.bm25_texts
    assert np.array_equal(synthetic.vectors[:n0], source.vectors)
    assert len({c.id for c in synthetic.chunks}) == n
    assert all(len(c.id) == 16 for c in synthetic.chunks[n0:])  # as long as a real chunk id
    # Every chunk's document is listed with the chunks it has, the last one cut short.
    counts: dict[str, int] = {}
    for chunk in synthetic.chunks:
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    assert {d.doc_id: d.chunk_count for d in synthetic.documents} == counts

    copy = synthetic.chunks[n0]
    assert copy.doc_id == f"{source.chunks[0].doc_id}/1"
    assert copy.text.startswith(source.chunks[0].text + " ")
    assert len(copy.text.split()) == len(source.chunks[0].text.split()) + bench_scale.SUFFIX_WORDS

    assert synthetic.vectors.dtype == np.float32
    # Copy 0 is the source's vectors as stored: fp16 codes, unit length to within 6e-5.
    assert np.allclose(np.linalg.norm(synthetic.vectors, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(synthetic.vectors[n0 : 2 * n0] * source.vectors, axis=1)
    assert float(cosines.min()) > 0.8
    assert float(cosines.max()) < 0.99


def test_the_vocabulary_grows_as_heaps_law_says(source: bench_scale.Source) -> None:
    n0 = len(source.chunks)
    own = len(BM25Index.build(source.bm25_texts).vocabulary)
    for copies in (3, 8):
        synthetic = bench_scale.synthesize(source, copies * n0)
        vocabulary = len(BM25Index.build(synthetic.bm25_texts).vocabulary)
        # Each later copy draws n0 * SUFFIX_WORDS words with replacement from a pool of its own
        # sized for Heaps' law; a draw this small leaves some of a pool out (at SciFact's size
        # none: 85,000 draws from pools of a few thousand).
        heaps = source.vocabulary * (copies**bench_scale.HEAPS_BETA - 1)
        pool = math.ceil(round(heaps) / (copies - 1))
        drawn = pool * (1 - math.exp(-n0 * bench_scale.SUFFIX_WORDS / pool))
        assert vocabulary == pytest.approx(own + (copies - 1) * drawn, rel=0.02)


def test_lines_cross_limits_where_arithmetic_says() -> None:
    line = bench_scale.fit([100_000.0, 200_000.0, 400_000.0], [1.5, 2.5, 4.5])
    assert line == pytest.approx({"intercept": 0.5, "per_100k": 1.0})
    assert bench_scale.crossing(line, 29.0) == pytest.approx(2_850_000)
    assert bench_scale.crossing({"intercept": 3.0, "per_100k": 0.0}, 29.0) is None
