from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from athenaeum.bundle.format import TOKENIZER_VERSION
from athenaeum.retrieval.lexical import BM25Index, tokenize

DOCS = ["The cat chased the cat and a mouse", "Dogs chase cats", "Birds sing"]


def test_tokenize_lowercases_drops_stop_words_and_stems() -> None:
    assert tokenize("The cat chased the cat and a mouse") == ["cat", "chase", "cat", "mous"]
    assert tokenize("Dogs chase cats") == ["dog", "chase", "cat"]
    # Unicode words survive; single characters and punctuation do not.
    assert tokenize("Über-fast a/b testing, naïve!") == ["über", "fast", "test", "naïv"]


def test_scores_match_a_hand_computation() -> None:
    index = BM25Index.build(DOCS)
    # Tokens per doc: [cat chase cat mous] (4), [dog chase cat] (3), [bird sing] (2).
    # N = 3, avgdl = 9 / 3 = 3, k1 = 1.5, b = 0.75.
    # "cat": df = 2, idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln(1.6) = 0.4700036
    #   doc 0: tf 2, dl 4: K = 1.5 * (0.25 + 0.75 * 4/3) = 1.875 -> 0.4700036 * 2 * 2.5 / 3.875
    #          = 0.6064563
    #   doc 1: tf 1, dl 3: K = 1.5 * (0.25 + 0.75) = 1.5 -> 0.4700036 * 2.5 / 2.5 = 0.4700036
    assert math.log(1.6) == pytest.approx(0.4700036, abs=1e-7)
    np.testing.assert_allclose(index.scores("cat"), [0.6064563, 0.4700036, 0.0], atol=1e-6)
    # "birds sing": both terms df = 1, idf = ln(1 + 2.5 / 1.5) = ln(8/3) = 0.9808293;
    #   doc 2: tf 1, dl 2: K = 1.5 * (0.25 + 0.75 * 2/3) = 1.125 -> 0.9808293 * 2.5 / 2.125
    #          = 1.1539168 per term, 2.3078335 for both
    rows, scores = index.search("birds singing", k=5)
    assert rows.tolist() == [2]  # docs matching no query term are not returned
    assert scores[0] == pytest.approx(2.3078335, abs=1e-6)


def test_search_orders_and_truncates() -> None:
    index = BM25Index.build(DOCS)
    rows, scores = index.search("chasing cats", k=2)
    # chase: df 2 too; doc 0 gets cat 0.6064563 + chase (tf 1, K 1.875) 0.4700036 * 2.5 / 2.875
    # = 0.4086988 -> 1.0151551; doc 1 gets 0.4700036 + 0.4700036 = 0.9400073
    assert rows.tolist() == [0, 1]
    np.testing.assert_allclose(scores, [1.0151551, 0.9400073], atol=1e-6)
    assert index.search("cat", k=1)[0].tolist() == [0]
    assert index.search("unicorn", k=3)[0].tolist() == []


def test_save_load_round_trip(tmp_path: Path) -> None:
    index = BM25Index.build([*DOCS, "Naïve Über café"])
    index.save(tmp_path / "bm25.npz")
    loaded = BM25Index.load(tmp_path / "bm25.npz")
    assert loaded.vocabulary == index.vocabulary
    assert loaded.params == index.params
    assert loaded.params.tokenizer_version == TOKENIZER_VERSION
    for query in ["cat", "chasing dogs", "naïve café", "über"]:
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))
    # No pickle inside: numpy refuses object arrays when allow_pickle is off.
    with np.load(tmp_path / "bm25.npz", allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)


def test_empty_corpus_and_query() -> None:
    index = BM25Index.build([])
    assert index.search("anything", k=3)[0].tolist() == []
    assert BM25Index.build(DOCS).search("the and a", k=3)[0].tolist() == []
