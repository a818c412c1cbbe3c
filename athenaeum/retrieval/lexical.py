"""Okapi BM25 over chunk texts, stored as CSR postings of precomputed term weights.

Every posting holds the full BM25 contribution of one term to one chunk, so a query is a sum over
the postings of its terms (one `np.bincount`) with no per-query length normalisation. The same
`tokenize` runs at build and at query time; `TOKENIZER_VERSION` (athenaeum.bundle.format) is
written into the bundle and checked at load, so an index built by an older tokenizer is refused
instead of silently mismatching query terms. The file itself is the bundle's
(athenaeum.bundle.bm25).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import Stemmer  # type: ignore[import-not-found]

from athenaeum.bundle.bm25 import BM25Params, BM25Postings
from athenaeum.bundle.format import TOKENIZER_VERSION

DEFAULT_K1 = 1.5
DEFAULT_B = 0.75
DEFAULT_LANGUAGE = "english"

# Two or more word characters, as scikit-learn and bm25s do: single letters and digits are
# mostly noise (list markers, variable names) and would carry large idf in small corpora.
_TOKEN_RE = re.compile(r"\b\w\w+\b", re.UNICODE)

# The NLTK English stop word list (the one bm25s uses for "en"), so that retrieval quality is
# comparable with bm25s's.
ENGLISH_STOP_WORDS = frozenset(
    """
    a about above after again against ain all am an and any are aren aren't as at be because been
    before being below between both but by can couldn couldn't d did didn didn't do does doesn
    doesn't doing don don't down during each few for from further had hadn hadn't has hasn hasn't
    have haven haven't having he her here hers herself him himself his how i if in into is isn
    isn't it it's its itself just ll m ma me mightn mightn't more most mustn mustn't my myself
    needn needn't no nor not now o of off on once only or other our ours ourselves out over own re
    s same shan shan't she she's should should've shouldn shouldn't so some such t than that
    that'll the their theirs them themselves then there these they this those through to too under
    until up ve very was wasn wasn't we were weren weren't what when where which while who whom why
    will with won won't wouldn wouldn't y you you'd you'll you're you've your yours yourself
    yourselves
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

_STEMMERS: dict[str, Any] = {}


def _stemmer(language: str) -> Any:
    # PyStemmer objects keep an internal word cache; one per language per process reuses it.
    stemmer = _STEMMERS.get(language)
    if stemmer is None:
        stemmer = _STEMMERS[language] = Stemmer.Stemmer(language)
    return stemmer


def tokenize(text: str, language: str = DEFAULT_LANGUAGE) -> list[str]:
    """Lowercase, split into unicode words, drop English stop words, Snowball-stem. Bump
    TOKENIZER_VERSION (athenaeum.bundle.format) when the terms it makes for a text change."""
    words = [w for w in _TOKEN_RE.findall(text.lower()) if w not in ENGLISH_STOP_WORDS]
    stems: list[str] = _stemmer(language).stemWords(words)
    return stems


def idf(n_docs: int, df: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Lucene's BM25 idf, never negative (unlike Robertson's original for df > N/2)."""
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


class BM25Index(BM25Postings):
    """Immutable BM25 index: the bundle's postings (athenaeum.bundle.bm25), built from texts
    and scored against queries here."""

    @cached_property
    def term_ids(self) -> dict[str, int]:
        return {term: i for i, term in enumerate(self.vocabulary)}

    @classmethod
    def of(cls, postings: BM25Postings) -> BM25Index:
        """`postings` as an index to score with (the same arrays, not a copy)."""
        if isinstance(postings, BM25Index):
            return postings
        return cls(
            vocabulary=postings.vocabulary,
            indptr=postings.indptr,
            doc_ids=postings.doc_ids,
            weights=postings.weights,
            n_docs=postings.n_docs,
            avgdl=postings.avgdl,
            params=postings.params,
        )

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        *,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        language: str = DEFAULT_LANGUAGE,
    ) -> BM25Index:
        term_ids: dict[str, int] = {}
        rows: list[npt.NDArray[np.int64]] = []
        lengths: list[int] = []
        for text in texts:
            tokens = tokenize(text, language)
            ids = [term_ids.setdefault(t, len(term_ids)) for t in tokens]
            rows.append(np.asarray(ids, dtype=np.int64))
            lengths.append(len(ids))
        n_docs = len(lengths)
        vocab_size = len(term_ids)
        doc_len = np.asarray(lengths, dtype=np.float64)
        avgdl = float(doc_len.mean()) if n_docs and doc_len.sum() > 0 else 1.0

        all_terms = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        all_docs = np.repeat(np.arange(n_docs, dtype=np.int64), doc_len.astype(np.int64))
        # One key per (term, doc) pair; np.unique sorts by term then doc, which is CSR order, and
        # its counts are the term frequencies.
        keys, tf = np.unique(all_terms * max(n_docs, 1) + all_docs, return_counts=True)
        post_terms = keys // max(n_docs, 1)
        post_docs = keys % max(n_docs, 1)
        df = np.bincount(post_terms, minlength=vocab_size).astype(np.int64)
        indptr = np.zeros(vocab_size + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])

        tf_f = tf.astype(np.float64)
        norm = k1 * (1.0 - b + b * doc_len[post_docs] / avgdl)
        weights = idf(n_docs, df)[post_terms] * tf_f * (k1 + 1.0) / (tf_f + norm)
        return cls(
            vocabulary=list(term_ids),
            indptr=indptr,
            doc_ids=post_docs.astype(np.int32),
            weights=weights.astype(np.float32),
            n_docs=n_docs,
            avgdl=avgdl,
            params=BM25Params(k1=k1, b=b, language=language, tokenizer_version=TOKENIZER_VERSION),
        )

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """BM25 score of every chunk for `query` (repeated query terms count once per use)."""
        ids = [
            i
            for i in (self.term_ids.get(t) for t in tokenize(query, self.params.language))
            if i is not None
        ]
        if not ids or self.n_docs == 0:
            return np.zeros(self.n_docs, dtype=np.float64)
        slices = [slice(self.indptr[i], self.indptr[i + 1]) for i in ids]
        docs = np.concatenate([self.doc_ids[s] for s in slices])
        weights = np.concatenate([self.weights[s] for s in slices])
        return np.bincount(docs, weights=weights, minlength=self.n_docs)

    def search(
        self, query: str, k: int, *, allowed: npt.NDArray[np.bool_] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The top `k` chunk rows by BM25 score, best first; rows matching no term, and rows
        `allowed` (one boolean per row) leaves out, are left out."""
        return self.top(self.scores(query), k, allowed=allowed)

    @staticmethod
    def top(
        scores: npt.NDArray[np.float64], k: int, *, allowed: npt.NDArray[np.bool_] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """`search` over scores already computed (`scores(query)`)."""
        hits = scores > 0
        if allowed is not None:
            hits &= allowed
        matched = np.flatnonzero(hits)
        if len(matched) > k:
            matched = matched[np.argpartition(-scores[matched], k - 1)[:k]]
        # Ties broken by row so results are deterministic.
        order = np.lexsort((matched, -scores[matched]))
        top = matched[order].astype(np.int64)
        return top, scores[top]
