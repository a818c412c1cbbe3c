"""The one chunk model: a row of chunks.jsonl, and what search hits, citations and the API carry."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, overload


@dataclass(frozen=True)
class ChunkRecord:
    """One row of chunks.jsonl; row i is also row i of vectors.npy and chunk i of BM25."""

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


class ChunkStore(Sequence[ChunkRecord]):
    """The rows of chunks.jsonl, each parsed the first time it is read.

    A search reads a handful of chunks, and parsing all of them would cost every cold start time
    in proportion to the bundle. The loader calls `parse_all` when it verifies a bundle in full;
    otherwise a row that does not parse raises what `invalid` makes of it when it is first read.
    """

    def __init__(self, data: bytes, *, invalid: Callable[[int, Exception], Exception]) -> None:
        self._data = data
        self._invalid = invalid
        ends: list[int] = []
        find = data.find
        end = find(b"\n")
        while end >= 0:  # offsets only: bytes.split would copy every line
            ends.append(end)
            end = find(b"\n", end + 1)
        if data and not data.endswith(b"\n"):
            ends.append(len(data))
        self._ends = ends
        self._rows: list[ChunkRecord | None] = [None] * len(ends)

    def __len__(self) -> int:
        return len(self._ends)

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
        start = self._ends[i - 1] + 1 if i else 0
        try:
            return ChunkRecord.from_dict(json.loads(self._data[start : self._ends[i]]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # ValueError covers bad JSON and bad UTF-8 alike.
            raise self._invalid(i + 1, exc) from exc
