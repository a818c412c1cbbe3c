"""The one chunk model: a row of the bundle's chunks (chunks.z, or chunks.jsonl in format
version 1), and what search hits, citations and the API carry; and how those rows are stored."""

from __future__ import annotations

import functools
import json
import mmap
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, overload

import numpy as np


@dataclass(frozen=True)
class ChunkRecord:
    """One row of the bundle's chunks; row i is also vector i and chunk i of BM25."""

    id: str
    doc_id: str
    ordinal: int
    text: str
    title: str | None
    source: str
    heading_path: list[str] = field(default_factory=list)
    page_start: int | None = None
    page_end: int | None = None
    # Where the chunk is when that is not a page range: "slide 7", "slides 7-8", "sheet
    # Budget!A1:F40", or a heading path for a document cited by section ("Chapter 3 > Methods").
    location: str | None = None
    # The fragment that opens the chunk's section in the original file (a web page's heading id).
    anchor: str | None = None

    def to_json(self) -> str:
        row = asdict(self)
        for optional in ("location", "anchor"):  # rows without them read as before
            if row[optional] is None:
                del row[optional]
        return json.dumps(row, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkRecord:
        heading_path = data.get("heading_path") or []
        if not isinstance(heading_path, list):
            raise ValueError("heading_path is not a list")
        return cls(
            id=str(data["id"]),
            doc_id=str(data["doc_id"]),
            ordinal=int(data["ordinal"]),
            text=str(data["text"]),
            title=None if data.get("title") is None else str(data["title"]),
            source=str(data["source"]),
            heading_path=[str(h) for h in heading_path],
            page_start=None if data.get("page_start") is None else int(data["page_start"]),
            page_end=None if data.get("page_end") is None else int(data["page_end"]),
            location=None if data.get("location") is None else str(data["location"]),
            anchor=None if data.get("anchor") is None else str(data["anchor"]),
        )

    @property
    def label(self) -> str:
        """What to call the chunk when citing it: its document's title, else its headings, else
        its source file."""
        return self.title or " > ".join(self.heading_path) or self.source


class JsonlRows:
    """The rows of chunks.jsonl (format version 1): one JSON object a line, held in memory."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        ends: list[int] = []
        find = data.find
        end = find(b"\n")
        while end >= 0:  # offsets only: bytes.split would copy every line
            ends.append(end)
            end = find(b"\n", end + 1)
        if data and not data.endswith(b"\n"):
            ends.append(len(data))
        self._ends = ends

    def __len__(self) -> int:
        return len(self._ends)

    def row(self, i: int) -> bytes:
        start = self._ends[i - 1] + 1 if i else 0
        return self._data[start : self._ends[i]]


# chunks.z: a preset dictionary, the blocks' raw deflate streams back to back, their offsets
# (uint64 little-endian, one more than the blocks: the last is where the offsets start), then
# the dictionary's length, the block count and this mark.
BLOCKS_MARK = b"athchk\x00\x02"
_TRAILER = 24
# The dictionary: up to zlib's 32 KiB window of the bundle's own rows, sampled evenly. Every
# block is compressed against it, so blocks of a few rows compress almost as well as long ones
# (measured on SciFact: 313 bytes a chunk in blocks of 4, against 406 without it and 345 in
# blocks of 16 without it) while a read inflates a few rows only (0.017 ms against 0.059).
DICTIONARY_BYTES = 32_768
_RAW = -15  # zlib's wbits for a raw deflate stream with a 32 KiB window
_DICTIONARY_SAMPLES = 48


class BlockRows:
    """The rows of chunks.z (format version 2): JSON lines, `block` to a raw deflate stream
    compressed against a dictionary of the bundle's own rows (encode_blocks). Reading a row
    inflates only its block; the blocks read last are kept inflated. `data` is usually a
    read-only memory map of the file: a cold start reads only the blocks its answers need."""

    def __init__(self, data: bytes | mmap.mmap, count: int, block: int) -> None:
        size = len(data)
        if size < _TRAILER or data[size - 8 : size] != BLOCKS_MARK:
            raise ValueError("it does not end with the chunk blocks' mark")
        dictionary = int.from_bytes(data[size - _TRAILER : size - 16], "little")
        blocks = int.from_bytes(data[size - 16 : size - 8], "little")
        table = size - _TRAILER - 8 * (blocks + 1)
        needed = -(-count // block)
        if blocks != needed or table < 0:
            raise ValueError(f"it has {blocks} blocks, not the {needed} that {count} rows need")
        offsets = np.frombuffer(data, dtype="<u8", count=blocks + 1, offset=table)
        steps = np.diff(offsets.astype(np.int64))
        if int(offsets[0]) != dictionary or int(offsets[-1]) != table or (steps <= 0).any():
            raise ValueError("its block offsets are out of order")
        self._data = data
        # Raw deflate streams, so the dictionary is set when an inflater is made: a third less
        # time a block than zlib-wrapped streams, which ask for it after their header and end
        # with a checksum that the file's sha256 makes redundant.
        self._inflater = zlib.decompressobj(_RAW, zdict=bytes(data[:dictionary]))
        self._offsets = offsets
        self._count = count
        self._block = block
        self._inflated = functools.lru_cache(maxsize=64)(self._inflate)

    def __len__(self) -> int:
        return self._count

    def row(self, i: int) -> bytes:
        return self._inflated(i // self._block)[i % self._block]

    def stored_rows(self) -> int:
        """How many rows the file holds: the full blocks' and what the last one inflates to."""
        blocks = len(self._offsets) - 1
        if blocks == 0:
            return 0
        return self._block * (blocks - 1) + self._decompress(blocks - 1).count(b"\n")

    def _decompress(self, b: int) -> bytes:
        start, end = int(self._offsets[b]), int(self._offsets[b + 1])
        inflater = self._inflater.copy()
        data = inflater.decompress(self._data[start:end])
        if not inflater.eof or inflater.unused_data:
            raise ValueError(f"block {b} is not one whole deflate stream")
        return data

    def _inflate(self, b: int) -> list[bytes]:
        lines = self._decompress(b).split(b"\n")
        rows = min(self._block, self._count - b * self._block)
        if len(lines) != rows + 1 or lines[-1]:
            raise ValueError(f"block {b} holds {len(lines) - 1} rows, not {rows}")
        return lines[:-1]


def encode_blocks(lines: Sequence[bytes], block: int) -> bytes:
    """chunks.z's bytes for JSON `lines` (each without its newline): the dictionary, zlib
    streams of `block` lines, their offsets, the dictionary's length, the block count and
    BLOCKS_MARK. Deterministic: the same lines give the same bytes."""
    step = max(1, len(lines) // _DICTIONARY_SAMPLES)
    dictionary = b"".join(line + b"\n" for line in lines[::step])[-DICTIONARY_BYTES:]
    parts: list[bytes] = [dictionary]
    offsets = [len(dictionary)]
    for start in range(0, len(lines), block):
        deflater = zlib.compressobj(9, zlib.DEFLATED, _RAW, zdict=dictionary)
        text = b"".join(line + b"\n" for line in lines[start : start + block])
        stream = deflater.compress(text) + deflater.flush()
        parts.append(stream)
        offsets.append(offsets[-1] + len(stream))
    table = np.asarray(offsets, dtype="<u8").tobytes()
    counts = len(dictionary).to_bytes(8, "little") + (len(offsets) - 1).to_bytes(8, "little")
    return b"".join(parts) + table + counts + BLOCKS_MARK


class ChunkStore(Sequence[ChunkRecord]):
    """A bundle's chunks, each parsed the first time it is read.

    A search reads a handful of chunks, and parsing all of them would cost every cold start time
    in proportion to the bundle. The loader calls `parse_all` when it verifies a bundle in full;
    otherwise a row that does not parse raises what `invalid` makes of it when it is first read.
    """

    def __init__(
        self,
        data: bytes | JsonlRows | BlockRows,
        *,
        invalid: Callable[[int, Exception], Exception],
    ) -> None:
        self._source = JsonlRows(data) if isinstance(data, bytes) else data
        self._invalid = invalid
        self._rows: list[ChunkRecord | None] = [None] * len(self._source)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> ChunkRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[ChunkRecord]: ...

    def __getitem__(self, index: int | slice) -> ChunkRecord | list[ChunkRecord]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = self._rows[index]  # an IndexError as from a list
        if row is None:
            row = self._rows[index] = self._parse(index % len(self._rows))
        return row

    def __iter__(self) -> Iterator[ChunkRecord]:
        for i in range(len(self._rows)):
            yield self[i]

    def parse_all(self) -> None:
        for _ in self:
            pass

    @property
    def parsed(self) -> int:
        """How many rows have been parsed so far."""
        return sum(row is not None for row in self._rows)

    def _parse(self, i: int) -> ChunkRecord:
        try:
            return ChunkRecord.from_dict(json.loads(self._source.row(i)))
        except (KeyError, TypeError, ValueError, AttributeError, zlib.error) as exc:
            # ValueError covers bad JSON and bad UTF-8 alike.
            raise self._invalid(i + 1, exc) from exc
