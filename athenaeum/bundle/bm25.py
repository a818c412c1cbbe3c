"""The BM25 file of a bundle (bm25.npz): CSR postings of precomputed BM25 weights, one row per
chunk, and the parameters they were computed with.

Only the file lives here: saving, loading and the checks of what is loaded. Building the
postings and scoring a query with them is retrieval's (athenaeum.retrieval.lexical.BM25Index,
which is a `BM25Postings`); the tokenizer version the terms were made with is the format's
(athenaeum.bundle.format.TOKENIZER_VERSION), checked by the reader before the file is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class BM25Params:
    k1: float
    b: float
    language: str
    tokenizer_version: int


class BM25Postings:
    """A vocabulary and CSR postings of (chunk row, BM25 weight): row `indptr[t]` to
    `indptr[t + 1]` of `doc_ids` and `weights` are term t's postings."""

    def __init__(
        self,
        *,
        vocabulary: Sequence[str],
        indptr: npt.NDArray[np.int64],
        doc_ids: npt.NDArray[np.int32] | npt.NDArray[np.uint16],
        weights: npt.NDArray[np.float32] | npt.NDArray[np.float16],
        n_docs: int,
        avgdl: float,
        params: BM25Params,
    ) -> None:
        if len(indptr) != len(vocabulary) + 1 or len(doc_ids) != len(weights):
            raise ValueError("BM25 postings are inconsistent with the vocabulary")
        self.vocabulary = list(vocabulary)
        self.indptr = indptr
        self.doc_ids = doc_ids
        self.weights = weights
        self.n_docs = n_docs
        self.avgdl = avgdl
        self.params = params

    def save(self, path: Path, *, compact: bool = False) -> None:
        """Write the file. `compact` (format version 2) stores the weights in float16 and the
        chunk rows in uint16 when every row fits (bundles of up to 65,536 chunks): 6 or 4 bytes
        a posting instead of 8."""
        weights = np.float16 if compact else np.float32
        rows = np.uint16 if compact and self.n_docs <= 1 << 16 else np.int32
        # The vocabulary is one UTF-8 blob joined by newlines (terms are \w+ so never contain
        # one): numpy string arrays would pad every term to the longest, and pickle is refused.
        blob = "\n".join(self.vocabulary).encode("utf-8")
        with path.open("wb") as f:
            np.savez(
                f,
                vocabulary=np.frombuffer(blob, dtype=np.uint8),
                indptr=self.indptr,
                doc_ids=np.asarray(self.doc_ids, dtype=rows),
                weights=np.asarray(self.weights, dtype=weights),
                n_docs=np.int64(self.n_docs),
                avgdl=np.float64(self.avgdl),
                k1=np.float64(self.params.k1),
                b=np.float64(self.params.b),
                language=np.frombuffer(self.params.language.encode("ascii"), dtype=np.uint8),
                tokenizer_version=np.int64(self.params.tokenizer_version),
            )

    @classmethod
    def load(cls, path: Path) -> Self:
        """Load a saved file; raises ValueError or KeyError on a malformed one."""
        with np.load(path, allow_pickle=False) as data:
            blob = data["vocabulary"].tobytes().decode("utf-8")
            vocabulary = blob.split("\n") if blob else []
            n_docs = int(data["n_docs"])
            doc_ids = data["doc_ids"]  # kept as stored: int32, or uint16 in a small bundle
            if doc_ids.dtype not in (np.int32, np.uint16):
                raise ValueError(f"BM25 postings are {doc_ids.dtype}, not int32 or uint16")
            if len(doc_ids) and (int(doc_ids.min()) < 0 or int(doc_ids.max()) >= n_docs):
                raise ValueError("BM25 postings point outside the chunk range")
            weights = data["weights"]
            if weights.dtype not in (np.float16, np.float32):
                raise ValueError(f"BM25 weights are {weights.dtype}, not float16 or float32")
            return cls(
                vocabulary=vocabulary,
                indptr=data["indptr"].astype(np.int64, copy=False),
                doc_ids=doc_ids,
                # Kept as stored: a query widens only its own terms' postings.
                weights=weights,
                n_docs=n_docs,
                avgdl=float(data["avgdl"]),
                params=BM25Params(
                    k1=float(data["k1"]),
                    b=float(data["b"]),
                    language=data["language"].tobytes().decode("ascii"),
                    tokenizer_version=int(data["tokenizer_version"]),
                ),
            )
