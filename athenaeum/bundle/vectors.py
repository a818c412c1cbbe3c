"""A bundle's vectors as the rest of the code reads them, whatever their encoding.

Format version 2 stores them once, as fp16 codes inside dense.faiss (a FAISS
IndexScalarQuantizer, or the storage of an IndexHNSWSQ), memory-mapped: 768 bytes a 384-d
vector instead of fp32's 1,536 in vectors.npy plus, for HNSW, a second fp32 copy inside the
graph. Version 1 bundles keep their fp32 vectors.npy. Either way `StoredVectors` gives rows as
fp32 (`rows`), a flat scan (`search`), and the finite check the loader makes.
"""

from __future__ import annotations

import contextlib
import mmap
import sys
import threading
from pathlib import Path
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


# Transparent huge pages are 2 MiB on x86-64 and arm64 (4 KiB base pages).
HUGE_PAGE = 2 * 1024 * 1024


def read_resident(file: Path) -> tuple[faiss.Index, npt.NDArray[np.uint8]]:
    """A FAISS index file read whole into anonymous memory that the kernel is asked to back
    with huge pages, and deserialized in place (FAISS's zero-copy reader: the codes stay where
    they were read). Returns the index and that memory, which must outlive it.

    For the exact scan of a flat bundle, which reads every code for every query: after the
    query encoder has run, the scan of memory-mapped page-cache pages (4 KiB, one TLB entry
    each) took 0.58 ms p50 on SciFact's 10,704 codes, 0.42 ms from huge pages
    (docs/benchmarks.md). It costs no memory a flat scan would not map anyway; the copy is this
    process's own rather than the shared page cache's. An HNSW walk reads a few thousand codes,
    so those stay memory-mapped. Without huge pages (another OS, THP off) this is a plain copy.
    """
    import faiss

    with file.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        # Whole huge pages from a boundary on: one more than the file needs, to align the start.
        region = _anonymous((-(-size // HUGE_PAGE) + 1) * HUGE_PAGE)
        advice = getattr(mmap, "MADV_HUGEPAGE", None)
        if advice is not None:
            # Before the first touch: the faults then take huge pages directly.
            with contextlib.suppress(OSError):
                region.madvise(advice)
        whole = np.frombuffer(region, dtype=np.uint8)
        start = -whole.ctypes.data % HUGE_PAGE  # the index starts on a huge-page boundary
        memory = whole[start : start + size]
        if handle.readinto(memoryview(memory)) != size:
            raise OSError(f"{file} changed while it was read")
    reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(memory), size)  # type: ignore[attr-defined]
    index = faiss.read_index(reader)
    memory.flags.writeable = False
    return index, memory


def _anonymous(size: int) -> mmap.mmap:
    # Private: Python's default for anonymous maps is shared memory, which Linux backs with
    # huge pages only where shmem_enabled says so (usually never).
    private = getattr(mmap, "MAP_PRIVATE", None)
    anonymous = getattr(mmap, "MAP_ANONYMOUS", None)
    if private is None or anonymous is None:  # Windows
        return mmap.mmap(-1, size)
    return mmap.mmap(-1, size, flags=private | anonymous)


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
        memory: npt.NDArray[np.uint8] | None = None,
    ) -> None:
        self.encoding = encoding
        self.codes = codes
        # What `index` was read into when it was not memory-mapped (read_resident): it holds
        # the codes, so it lives as long as this does.
        self._memory = memory
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
    def of_index(
        cls, index: faiss.Index, dimension: int, memory: npt.NDArray[np.uint8] | None = None
    ) -> StoredVectors:
        """The fp16 codes held by `index`: an IndexScalarQuantizer of QT_fp16, or an IndexHNSW
        whose storage is one (`memory`: what it was read into by read_resident, if it was).
        Raises ValueError for any other index."""
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
        return cls("fp16", codes, index=index, flat=flat, memory=memory)

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
