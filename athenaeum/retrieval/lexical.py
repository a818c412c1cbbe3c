"""Okapi BM25 over chunk texts, stored as CSR postings of precomputed term weights.

Every posting holds the full BM25 contribution of one term to one chunk, so a query is a sum over
the postings of its terms (one `np.bincount`) with no per-query length normalisation. The same
`tokenize` runs at build and at query time; `TOKENIZER_VERSION` is written into the bundle and
checked at load, so an index built by an older tokenizer is refused instead of silently
mismatching query terms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import Stemmer  # type: ignore[import-not-found]

# Bump when `tokenize` changes the terms it produces for the same text.
TOKENIZER_VERSION = 1
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
    """Lowercase, split into unicode words, drop English stop words, Snowball-stem."""
    words = [w for w in _TOKEN_RE.findall(text.lower()) if w not in ENGLISH_STOP_WORDS]
    stems: list[str] = _stemmer(language).stemWords(words)
    return stems


def idf(n_docs: int, df: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Lucene's BM25 idf, never negative (unlike Robertson's original for df > N/2)."""
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


@dataclass(frozen=True)
class BM25Params:
    k1: float
    b: float
    language: str
    tokenizer_version: int


class BM25Index:
    """Immutable BM25 index: a vocabulary and CSR postings of (chunk row, BM25 weight)."""

    def __init__(
        self,
        *,
        vocabulary: Sequence[str],
        indptr: npt.NDArray[np.int64],
        doc_ids: npt.NDArray[np.int32],
        weights: npt.NDArray[np.float32],
        n_docs: int,
        avgdl: float,
        params: BM25Params,
    ) -> None:
        if len(indptr) != len(vocabulary) + 1 or len(doc_ids) != len(weights):
            raise ValueError("BM25 postings are inconsistent with the vocabulary")
        self.vocabulary = list(vocabulary)
        self.term_ids = {term: i for i, term in enumerate(self.vocabulary)}
        self.indptr = indptr
        self.doc_ids = doc_ids
        self.weights = weights
        self.n_docs = n_docs
        self.avgdl = avgdl
        self.params = params

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
        scores = self.scores(query)
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

    def save(self, path: Path) -> None:
        # The vocabulary is one UTF-8 blob joined by newlines (terms are \w+ so never contain
        # one): numpy string arrays would pad every term to the longest, and pickle is refused.
        blob = "\n".join(self.vocabulary).encode("utf-8")
        with path.open("wb") as f:
            np.savez(
                f,
                vocabulary=np.frombuffer(blob, dtype=np.uint8),
                indptr=self.indptr,
                doc_ids=self.doc_ids,
                weights=self.weights,
                n_docs=np.int64(self.n_docs),
                avgdl=np.float64(self.avgdl),
                k1=np.float64(self.params.k1),
                b=np.float64(self.params.b),
                language=np.frombuffer(self.params.language.encode("ascii"), dtype=np.uint8),
                tokenizer_version=np.int64(self.params.tokenizer_version),
            )

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        """Load a saved index; raises ValueError or KeyError on a malformed file."""
        with np.load(path, allow_pickle=False) as data:
            blob = data["vocabulary"].tobytes().decode("utf-8")
            vocabulary = blob.split("\n") if blob else []
            n_docs = int(data["n_docs"])
            doc_ids = data["doc_ids"].astype(np.int32, copy=False)
            if len(doc_ids) and (int(doc_ids.min()) < 0 or int(doc_ids.max()) >= n_docs):
                raise ValueError("BM25 postings point outside the chunk range")
            return cls(
                vocabulary=vocabulary,
                indptr=data["indptr"].astype(np.int64, copy=False),
                doc_ids=doc_ids,
                weights=data["weights"].astype(np.float32, copy=False),
                n_docs=n_docs,
                avgdl=float(data["avgdl"]),
                params=BM25Params(
                    k1=float(data["k1"]),
                    b=float(data["b"]),
                    language=data["language"].tobytes().decode("ascii"),
                    tokenizer_version=int(data["tokenizer_version"]),
                ),
            )
