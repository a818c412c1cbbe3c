"""Search filters: which chunks a search may return, decided before the retrievers rank them.

A filter has up to four parts, all of which a chunk must pass:

    collections  collection names ("hr", "engineering"): the chunk's document is in one of them
                 (a document's collection: athenaeum.bundle.manifest.DocumentInfo.collection)
    documents  file names, paths or globs ("guide.pdf", "reports/*", "reports/"), matched
               case-insensitively against each document's source path, its file name and its id
    pages      {"from": N, "to": M}, either end optional: chunks whose pages overlap the range
               (a chunk without page numbers never does)
    metadata   {"field": value or [values]}: the document's front matter has the field with one
               of the values (a list-valued field matches when any of its items does)

`SearchFilter.parse` turns the JSON the API and MCP accept into one, refusing unknown keys and
malformed values; `SearchFilter.check_fields` (which `mask` runs) refuses a collection the index
does not have, a `documents` pattern that matches no document in the index (naming the closest)
and a metadata field that no document has.
Every refusal is an InvalidInputError (400) whose `param` names the offending part.

Beside what the caller asks for, a filter may carry what the caller may read
(`SearchFilter.within`, from athenaeum.retrieval.access): the collections whose documents the
search may return at all. It is no part of the JSON (a caller cannot set or widen it), it is
intersected with the rest, and every check and hint above looks only at the documents it lets
through, so that a refusal never names, counts or hints at a document the caller may not read.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from athenaeum.bundle.chunk import ChunkRecord
from athenaeum.bundle.format import CONVERSION_FIELDS, ROOT_COLLECTION, collection_error
from athenaeum.bundle.manifest import DocumentInfo
from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.text import check_texts

FILTER_KEYS = ("collections", "documents", "pages", "metadata")
MAX_PATTERNS = 100
MAX_VALUES = 100
# Masks of readable chunks kept per loaded bundle, one per set of readable collections.
MAX_READABLE_MASKS = 64
_Scalar = str | int | float | bool


@dataclass(frozen=True)
class SearchFilter:
    documents: tuple[str, ...] = ()
    page_from: int | None = None
    page_to: int | None = None
    metadata: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    collections: tuple[str, ...] = ()
    # The collections the caller may read (None: every one); set by `within`, never parsed.
    readable: frozenset[str] | None = None

    @property
    def empty(self) -> bool:
        """Whether the filter passes every chunk: it asks for nothing and restricts nothing."""
        return self.asks_nothing and self.readable is None

    @property
    def asks_nothing(self) -> bool:
        """Whether the caller's own parts are all empty (what they may read aside)."""
        return not (
            self.collections or self.documents or self.page_from or self.page_to or self.metadata
        )

    def within(self, readable: frozenset[str] | None) -> SearchFilter:
        """This filter confined to the collections `readable` (None: no confinement); a filter
        confined already stays within both."""
        if readable is None:
            return self
        if self.readable is not None:
            readable = self.readable & readable
        return replace(self, readable=frozenset(readable))

    def may_read(self, document: DocumentInfo) -> bool:
        """Whether the caller may read `document` at all (whatever else the filter asks)."""
        return self.readable is None or document.collection in self.readable

    def visible(self, documents: Sequence[DocumentInfo]) -> list[DocumentInfo]:
        """The documents the caller may read, in their order."""
        if self.readable is None:
            return list(documents)
        return [d for d in documents if d.collection in self.readable]

    @classmethod
    def parse(cls, raw: object, *, param: str = "filter") -> SearchFilter:
        """A filter from its JSON form; None or {} is the empty filter."""
        if raw is None:
            return cls()
        if isinstance(raw, SearchFilter):
            return raw
        if not isinstance(raw, Mapping):
            raise InvalidInputError(f"{param} must be an object", param=param)
        check_texts(raw, param)
        unknown = [str(k) for k in raw if k not in FILTER_KEYS]
        if unknown:
            raise InvalidInputError(
                f"{param} has no field {unknown[0]!r}; its fields are {', '.join(FILTER_KEYS)}",
                param=f"{param}.{unknown[0]}",
            )
        page_from, page_to = _pages(raw.get("pages"), f"{param}.pages")
        return cls(
            collections=_collections(raw.get("collections"), f"{param}.collections"),
            documents=_documents(raw.get("documents"), f"{param}.documents"),
            page_from=page_from,
            page_to=page_to,
            metadata=_metadata(raw.get("metadata"), f"{param}.metadata"),
        )

    def allows_document(self, document: DocumentInfo) -> bool:
        """Whether `document` passes the `documents` and `collections` parts and may be read
        (any readable document does without them)."""
        return (
            self.may_read(document)
            and (not self.collections or document.collection in self.collections)
            and (not self.documents or any(_matches(document, p) for p in self.documents))
        )

    def mask(self, table: FilterTable, *, param: str = "filter") -> npt.NDArray[np.bool_] | None:
        """One boolean per chunk row, True where the chunk passes; None for the empty filter."""
        if self.empty:
            return None
        if self.asks_nothing:
            # What the caller may read, alone: a lookup per collection, not per document.
            return table.readable_rows(self.readable)
        allowed = self._documents_allowed(table.documents, param)
        keep = allowed[table.doc_rows]
        if self.page_from is not None or self.page_to is not None:
            keep &= table.page_start > 0  # a chunk without pages is outside every range
            if self.page_from is not None:
                keep &= table.page_end >= self.page_from
            if self.page_to is not None:
                keep &= table.page_start <= self.page_to
        return keep

    def check_fields(self, documents: Sequence[DocumentInfo], *, param: str = "filter") -> None:
        """Refuse a collection that none of `documents` is in, a `documents` pattern that
        matches none of them, naming the closest ones, and a metadata field that none of them
        has: a typo would otherwise match nothing, silently. Only the documents the caller may
        read are looked at: to a caller, one they may not read does not exist."""
        if not (self.collections or self.documents or self.metadata):
            return  # nothing named: nothing to check
        documents = self.visible(documents)
        if self.collections:
            known = sorted({d.collection for d in documents} - {ROOT_COLLECTION})
            for name in self.collections:
                if name not in known:
                    hint = (
                        f"the collections are {', '.join(known)}"
                        if known
                        else "it has no collections (every document is at its root)"
                    )
                    raise InvalidInputError(
                        f"{param}.collections: this index has no collection {name!r}; {hint}",
                        param=f"{param}.collections",
                    )
        for pattern in self.documents:
            if not any(_matches(d, pattern) for d in documents):
                raise InvalidInputError(
                    f"{param}.documents: no document in this index matches {pattern!r}; "
                    f"{_closest(pattern, documents)}",
                    param=f"{param}.documents",
                )
        known_fields = {key.casefold() for d in documents for key in d.metadata}
        for key in self.metadata:
            if key.casefold() in CONVERSION_FIELDS:  # never in known_fields: convert writes them
                raise InvalidInputError(
                    f"{param}.metadata: {key!r} is a field `convert` writes about the conversion, "
                    f"not the document's own metadata; {_INSTEAD[key.casefold()]}",
                    param=f"{param}.metadata.{key}",
                )
            if key.casefold() not in known_fields:
                fields = sorted(known_fields)
                hint = (
                    f"the index's fields are {', '.join(fields)}"
                    if fields
                    else "no document in this index has front-matter metadata"
                )
                raise InvalidInputError(
                    f"{param}.metadata: no document has the field {key!r}; {hint}",
                    param=f"{param}.metadata.{key}",
                )

    def _documents_allowed(
        self, documents: Sequence[DocumentInfo], param: str
    ) -> npt.NDArray[np.bool_]:
        self.check_fields(documents, param=param)
        return np.fromiter(
            (
                self.allows_document(d)
                and all(_has_value(d.metadata, k, values) for k, values in self.metadata.items())
                for d in documents
            ),
            dtype=np.bool_,
            count=len(documents),
        )


@dataclass(frozen=True)
class FilterTable:
    """What filters test, per chunk row, as arrays: built once per loaded bundle so that a
    filter costs a few vector operations, not a pass over every chunk record."""

    documents: Sequence[DocumentInfo]
    doc_rows: npt.NDArray[np.int32]  # chunk row -> index into `documents`
    page_start: npt.NDArray[np.int32]  # 0 where the chunk has no page numbers
    page_end: npt.NDArray[np.int32]
    collections: tuple[str, ...]  # every collection of the documents, sorted
    collection_rows: npt.NDArray[np.int32]  # chunk row -> index into `collections`
    _readable_masks: dict[frozenset[str], npt.NDArray[np.bool_]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, chunks: Sequence[ChunkRecord], documents: Sequence[DocumentInfo]) -> FilterTable:
        position = {d.doc_id: i for i, d in enumerate(documents)}
        n = len(chunks)
        doc_rows = np.fromiter((position[c.doc_id] for c in chunks), dtype=np.int32, count=n)
        start = np.fromiter((c.page_start or 0 for c in chunks), dtype=np.int32, count=n)
        end = np.fromiter(
            (c.page_end or c.page_start or 0 for c in chunks), dtype=np.int32, count=n
        )
        names = tuple(sorted({d.collection for d in documents}))
        index = {name: i for i, name in enumerate(names)}
        doc_collection = np.fromiter(
            (index[d.collection] for d in documents), dtype=np.int32, count=len(documents)
        )
        return cls(documents, doc_rows, start, end, names, doc_collection[doc_rows])

    def readable_rows(self, readable: frozenset[str] | None) -> npt.NDArray[np.bool_] | None:
        """One boolean per chunk row, True where the chunk's collection is in `readable`
        (None: every chunk may be read, as when `readable` holds every collection). Made once
        for each set of collections: callers with the same reach share it."""
        if readable is None or readable.issuperset(self.collections):
            return None
        masks = self._readable_masks
        mask = masks.get(readable)
        if mask is None:
            granted = np.fromiter(
                (name in readable for name in self.collections),
                dtype=np.bool_,
                count=len(self.collections),
            )
            mask = granted[self.collection_rows]
            mask.flags.writeable = False  # shared: the retrievers only read it
            if len(masks) >= MAX_READABLE_MASKS:
                masks.clear()
            masks[readable] = mask
        return mask


def _documents(raw: object, param: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() for p in raw):
        raise InvalidInputError(
            f"{param} must be a file name, path or glob, or a list of them", param=param
        )
    if len(raw) > MAX_PATTERNS:
        raise InvalidInputError(f"{param} has more than {MAX_PATTERNS} patterns", param=param)
    return tuple(p.strip() for p in raw)


def _collections(raw: object, param: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(c, str) for c in raw):
        raise InvalidInputError(
            f"{param} must be a collection's name, or a list of them", param=param
        )
    if len(raw) > MAX_PATTERNS:
        raise InvalidInputError(f"{param} has more than {MAX_PATTERNS} names", param=param)
    for name in raw:
        problem = collection_error(name)
        if problem is not None:
            raise InvalidInputError(f"{param}: {problem}", param=param)
    return tuple(dict.fromkeys(raw))


def _pages(raw: object, param: str) -> tuple[int | None, int | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping) or not raw or any(k not in ("from", "to") for k in raw):
        raise InvalidInputError(
            f'{param} must be an object with "from" and/or "to", e.g. {{"from": 3, "to": 5}}',
            param=param,
        )
    ends: list[int | None] = []
    for key in ("from", "to"):
        value = raw.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise InvalidInputError(
                f"{param}.{key} must be a page number (an integer from 1), got {value!r}",
                param=f"{param}.{key}",
            )
        ends.append(value)
    if ends[0] is not None and ends[1] is not None and ends[0] > ends[1]:
        raise InvalidInputError(f"{param}: from ({ends[0]}) is after to ({ends[1]})", param=param)
    return ends[0], ends[1]


def _metadata(raw: object, param: str) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInputError(
            f'{param} must be an object of field: value, e.g. {{"author": "Jane Doe"}}',
            param=param,
        )
    parsed: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if (
            not isinstance(key, str)
            or not key
            or not values
            or len(values) > MAX_VALUES
            or not all(isinstance(v, _Scalar) for v in values)
        ):
            raise InvalidInputError(
                f"{param}.{key} must be a string, number or boolean, or a list of them",
                param=f"{param}.{key}",
            )
        parsed[key] = tuple(normal_value(v) for v in values)
    return parsed


def normal_value(value: object) -> str:
    """Values compare as text, case-insensitively, so YAML's 2020 matches JSON's "2020"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().casefold()


def _has_value(metadata: Mapping[str, Any], key: str, wanted: tuple[str, ...]) -> bool:
    for field_name, value in metadata.items():
        if field_name.casefold() == key.casefold():
            have = value if isinstance(value, list) else [value]
            return any(normal_value(v) in wanted for v in have)
    return False


# What to use instead of filtering on a field `convert` writes itself.
_INSTEAD = {
    "source": "to narrow to files, filter by documents (--document in the CLI)",
    "source_path": "to narrow to files, filter by documents (--document in the CLI)",
    "title": "to narrow to files, filter by documents; to find a title, put its words in the query",
    "pages": "to narrow to pages, filter by pages (--pages in the CLI)",
    "sha256": "documents are not filtered by their hash; filter by documents instead",
    "converter": "every document of an index was converted the same way",
    "converter_version": "every document of an index was converted the same way",
}


def _closest(pattern: str, documents: Sequence[DocumentInfo], n: int = 3) -> str:
    """The documents whose paths or file names are nearest `pattern`, as a hint."""
    if not documents:
        return "the index has no documents"
    sources = sorted({d.source for d in documents})
    by_name: dict[str, str] = {}
    for source in sources:
        by_name.setdefault(source.casefold(), source)
        by_name.setdefault(PurePosixPath(source).name.casefold(), source)
    wanted = pattern.casefold().strip("*/")
    near = difflib.get_close_matches(wanted, list(by_name), n=n * 2, cutoff=0.4)
    closest = list(dict.fromkeys(by_name[name] for name in near))[:n]
    if closest:
        return "the closest: " + ", ".join(closest)
    return f"it has {len(sources):,}, for example: " + ", ".join(sources[:n])


def _matches(document: DocumentInfo, pattern: str) -> bool:
    pattern = pattern.casefold().replace("\\", "/")
    source = document.source.casefold().replace("\\", "/")
    names = (source, PurePosixPath(source).name, document.doc_id.casefold())
    if pattern.endswith("/"):  # a folder: everything under it
        return source.startswith(pattern.lstrip("./"))
    return any(fnmatch.fnmatchcase(name, pattern) for name in names)
