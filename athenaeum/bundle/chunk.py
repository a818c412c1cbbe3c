"""The one chunk model: a row of chunks.jsonl, and what search hits, citations and the API carry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

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
        )

    @property
    def label(self) -> str:
        """What to call the chunk when citing it: its document's title, else its headings, else
        its source file."""
        return self.title or " > ".join(self.heading_path) or self.source
