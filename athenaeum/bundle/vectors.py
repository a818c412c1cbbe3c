"""A bundle's vectors as the rest of the code reads them, whatever their encoding.

Format version 2 stores them once, as fp16 codes inside dense.faiss (a FAISS
IndexScalarQuantizer, or the storage of an IndexHNSWSQ), memory-mapped: 768 bytes a 384-d
vector instead of fp32's 1,536 in vectors.npy plus, for HNSW, a second fp32 copy inside the
graph. Version 1 bundles keep their fp32 vectors.npy. Either way `StoredVectors` gives rows as
fp32 (`rows`), a flat scan (`search`), and the finite check the loader makes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from athenaeum.bundle.format import VectorEncoding

if TYPE_CHECKING:
    import faiss


_prefetch_lock = threading.Lock()
_prefetch: threading.Thread | None = None


def prefetch_faiss() -> None:
    """Start importing FAISS in a background thread, once per process: about 0.18 s of a cold
    start (mostly its SWIG module's initialisation), part of which then overlaps the bundle's
    other reading and the query encoder's creation instead of adding to them. Whoever needs
    FAISS just imports it: Python's import lock makes that wait for this import to finish."""
    global _prefetch
    with _prefetch_lock:
        if _prefetch is not None or "faiss" in sys.modules:
            return
        _prefetch = threading.Thread(target=_import_faiss, name="faiss-import", daemon=True)
        _prefetch.start()


def _import_faiss() -> None:
    # An ImportError is left to the import where FAISS is needed, with its own traceback.
    with contextlib.suppress(ImportError):
        import faiss  # noqa: F401


class StoredVectors:
    """Row i is chunk i's unit vector. `index` is the FAISS index that holds fp16 codes (None
    for fp32 vectors.npy); `codes` is a read-only [n, dimension] view of the stored values,
    float16 or float32, without a copy."""

    def __init__(
        self,
        encoding: VectorEncoding,
        codes: npt.NDArray[Any],
        index: faiss.Index | None = None,
        flat: faiss.Index | None = None,
    ) -> None:
        self.encoding = encoding
        self.codes = codes
        # The index the codes live in, as read (it owns them and everything under it: `codes`
        # and `flat` are views of its memory, valid while it lives), and the flat index over
        # the codes that an exact search scans (that same index for a flat bundle, an HNSW
        # graph's storage otherwise).
        self.index = index
        self.flat = flat

    @classmethod
    def of_fp32(cls, matrix: npt.NDArray[np.float32]) -> StoredVectors:
        return cls("fp32", matrix)

    @classmethod
    def of_index(cls, index: faiss.Index, dimension: int) -> StoredVectors:
        """The fp16 codes held by `index`: an IndexScalarQuantizer of QT_fp16, or an IndexHNSW
        whose storage is one. Raises ValueError for any other index."""
        import faiss

        flat = faiss.downcast_index(index)
        if isinstance(flat, faiss.IndexHNSW):
            flat = faiss.downcast_index(flat.storage)
        if (
            not isinstance(flat, faiss.IndexScalarQuantizer)
            or flat.sq.qtype != faiss.ScalarQuantizer.QT_fp16
            or flat.code_size != 2 * dimension
        ):
            raise ValueError(
                f"the index holds {type(flat).__name__} codes, not fp16 scalar-quantizer codes "
                f"of dimension {dimension}"
            )
        n = int(flat.ntotal)
        size = n * int(flat.code_size)
        if size:
            raw = faiss.rev_swig_ptr(flat.codes.data(), size)
            codes = np.frombuffer(raw, dtype=np.float16).reshape(n, dimension)
        else:
            codes = np.zeros((0, dimension), dtype=np.float16)
        codes.flags.writeable = False
        return cls("fp16", codes, index=index, flat=flat)

    @property
    def shape(self) -> tuple[int, int]:
        n, d = self.codes.shape
        return int(n), int(d)

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def rows(self, rows: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The vectors of `rows` as fp32 (a copy)."""
        return np.asarray(self.codes[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def __getitem__(self, rows: Any) -> npt.NDArray[np.float32]:
        return np.asarray(self.codes[rows], dtype=np.float32)

    def all(self) -> npt.NDArray[np.float32]:
        """Every vector as fp32: a copy of the whole matrix, for the build side (never serving)."""
        return np.asarray(self.codes, dtype=np.float32)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> npt.NDArray[Any]:
        # np.asarray(vectors): every vector, widened (build side and tests).
        matrix = self.all()
        return matrix if dtype is None else matrix.astype(dtype, copy=False)

    def first_not_finite(self, batch: int = 65_536) -> int | None:
        """The first row holding a NaN or infinite value, or None. Read in batches, so fp16
        codes are never widened whole."""
        for start in range(0, len(self), batch):
            block = self.codes[start : start + batch]
            if block.dtype == np.float16:
                # All exponent bits set is what inf and NaN are: a mask and a max over the
                # bits, an eighteenth of what np.isfinite costs on float16 here.
                exponents = block.view(np.uint16) & np.uint16(0x7C00)
                if exponents.size == 0 or exponents.max() < 0x7C00:
                    continue
                bad = (exponents == 0x7C00).any(axis=1)
            else:
                bad = ~np.isfinite(block).all(axis=1)
            if bad.any():
                return start + int(np.flatnonzero(bad)[0])
        return None
