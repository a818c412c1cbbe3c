"""Publish a bundle's chunks into an Amazon S3 Vectors index, incrementally.

    publish(bundle, VectorIndex.parse("s3vectors://BUCKET/INDEX"), client=..., state=...)

One vector per chunk, keyed by the chunk id: its unit-length float32 vector, and metadata
- `text`: the chunk's text, the index's full-text searchable field (BM25 on the service side,
  which `QueryVectors` with `queryTexts` fuses with the vector search by reciprocal rank);
- `title`, `headings`, `source`, `ordinal`: what a result shows, not filterable;
- `doc_id`, `page_start`, `page_end`, `collection`: filterable, what the search filters and the
  caller's readable collections map to (a document at the library's root has `/`);
- `location`, `anchor`, where the chunk has them: where it is when that is not a page range
  ("slide 7", "sheet Budget!A1:F40", or `§` for its heading path) and the fragment that opens its
  section; filterable only because an index's non-filterable keys are fixed when it is created;
- the document's front-matter fields (a bundle manifest's `metadata`), filterable, as
  `fm_<field>` (field names case-folded) holding the values as the search filters compare them:
  text, case-folded, a list for a list (athenaeum.retrieval.filters).

The index is created as athenaeum.s3vectors.definition defines it for the bundle (its
dimension, cosine, full-text search on `text`, the non-filterable keys above). An existing index
of another dimension, metric or set of non-filterable keys is refused; one without full-text
search on `text` (as CloudFormation creates it) gets it added before anything is put.

Incremental: a published-state record (`{chunk id: sha256 of what was put}`, kept where the
caller says, an S3 object in practice) names what the index holds, so only new and changed
chunks are put and removed ones deleted; a record lost or out of date only costs a full put.
Batches are the API's largest (500 vectors per PutVectors or DeleteVectors call); throttling
and the service's transient errors are retried with exponential backoff.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from athenaeum.bundle import Bundle, ChunkRecord, DocumentInfo
from athenaeum.bundle.format import ROOT_COLLECTION
from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.filters import normal_value
from athenaeum.s3vectors.definition import (
    ANCHOR_KEY,
    COLLECTION_KEY,
    INDEX_MODE,
    LOCATION_KEY,
    MAX_PLACE,
    ROOT_VALUE,
    SECTION_LOCATION,
    IndexDefinition,
)
from athenaeum.s3vectors.definition import NON_FILTERABLE as NON_FILTERABLE
from athenaeum.s3vectors.definition import TEXT_KEY as TEXT_KEY

SCHEME = "s3vectors://"
BATCH = 500  # PutVectors and DeleteVectors take at most 500 vectors or keys
RETRIED = frozenset(
    {
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "InternalServerException",
        "RequestTimeoutException",
    }
)
MAX_ATTEMPTS = 6

ProgressCallback = Callable[[str, int, int], None]
"""Called as `progress(stage, done, total)`: stages "put" and "delete"."""


@dataclass(frozen=True)
class VectorIndex:
    bucket: str
    index: str

    @classmethod
    def parse(cls, uri: str) -> VectorIndex:
        bucket, _, index = uri.removeprefix(SCHEME).partition("/")
        if not uri.startswith(SCHEME) or not bucket or not index or "/" in index:
            raise InvalidInputError(
                f"{uri!r} is not an S3 Vectors index address: use s3vectors://BUCKET/INDEX",
                param="publish",
            )
        return cls(bucket, index)

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.index}"


class StateStore(Protocol):
    """Where the published-state record is kept (an S3 object, in practice)."""

    def read(self) -> dict[str, str] | None: ...

    def write(self, state: Mapping[str, str]) -> None: ...


@dataclass
class PublishReport:
    index: str
    created_index: bool = False
    put: int = 0
    deleted: int = 0
    unchanged: int = 0
    retries: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # What publishing changed in an existing index's configuration.
    index_changes: list[str] = field(default_factory=list)


FRONT_MATTER_PREFIX = "fm_"


def front_matter_key(field_name: str) -> str:
    return FRONT_MATTER_PREFIX + field_name.casefold()


def chunk_metadata(chunk: ChunkRecord, document: DocumentInfo | None) -> dict[str, Any]:
    """The metadata a chunk's vector carries (see the module's docstring)."""
    metadata: dict[str, Any] = {}
    if document is not None:
        for key, value in document.metadata.items():
            values = value if isinstance(value, list) else [value]
            texts = [normal_value(v) for v in values if isinstance(v, str | int | float | bool)]
            if texts:
                metadata[front_matter_key(key)] = texts if isinstance(value, list) else texts[0]
    metadata.update(
        {
            TEXT_KEY: chunk.text,
            "title": chunk.title or "",
            "headings": list(chunk.heading_path),
            "source": chunk.source,
            "ordinal": chunk.ordinal,
            "doc_id": chunk.doc_id,
        }
    )
    if document is not None:
        collection = document.collection
        metadata[COLLECTION_KEY] = collection if collection != ROOT_COLLECTION else ROOT_VALUE
    if chunk.page_start is not None:
        metadata["page_start"] = chunk.page_start
    if chunk.page_end is not None:
        metadata["page_end"] = chunk.page_end
    if chunk.location is not None:
        # Filterable metadata is small (2 KB a vector): a location that is the chunk's heading
        # path (a document cited by section) is written as a mark, not a second copy of it.
        by_section = chunk.location == " > ".join(chunk.heading_path)
        metadata[LOCATION_KEY] = SECTION_LOCATION if by_section else chunk.location[:MAX_PLACE]
    if chunk.anchor is not None:
        metadata[ANCHOR_KEY] = chunk.anchor[:MAX_PLACE]
    return metadata


def vector_records(bundle: Bundle) -> Iterator[dict[str, Any]]:
    """One PutVectors record per chunk of `bundle`, in row order."""
    documents = {d.doc_id: d for d in bundle.manifest.documents}
    for row, chunk in enumerate(bundle.chunks):
        vector = np.asarray(bundle.vectors[row], dtype=np.float32)
        yield {
            "key": chunk.id,
            "data": {"float32": [float(x) for x in vector]},
            "metadata": chunk_metadata(chunk, documents.get(chunk.doc_id)),
        }


def record_digest(record: Mapping[str, Any]) -> str:
    """What the state record keeps of a vector: a change in its data or metadata changes it."""
    body = json.dumps(
        {"data": record["data"]["float32"], "metadata": record["metadata"]},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class _Caller:
    """Calls the service, retrying throttling and transient errors with backoff."""

    def __init__(self, client: Any, report: PublishReport, sleep: Callable[[float], None]) -> None:
        self.client = client
        self.report = report
        self.sleep = sleep

    def __call__(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        for attempt in range(MAX_ATTEMPTS):
            try:
                return getattr(self.client, operation)(**params)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in RETRIED or attempt == MAX_ATTEMPTS - 1:
                    raise
                self.report.retries += 1
                self.sleep(min(20.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")


def ensure_index(call: _Caller, target: VectorIndex, bundle: Bundle, report: PublishReport) -> bool:
    """Create the index for `bundle` unless it exists; True when it was created. An existing
    index that cannot hold this bundle is refused; one without full-text search on the text
    field gets it (in ENHANCED mode, which it needs), each change noted in `report`."""
    from botocore.exceptions import ClientError

    definition = IndexDefinition.for_manifest(bundle.manifest)
    where = {"vectorBucketName": target.bucket, "indexName": target.index}
    try:
        found = call("get_index", **where)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NotFoundException":
            raise
    else:
        index = found["index"]
        problem = definition.mismatch(index)
        if problem is not None:
            raise InvalidInputError(
                f"{target.uri} exists with {problem}. Publish to a new index",
                param="publish",
            )
        if definition.needs_text_search(index):
            if index.get("indexMode", INDEX_MODE) != INDEX_MODE:
                call("update_index_mode", **where, indexMode=INDEX_MODE)
                report.index_changes.append(f"index mode {INDEX_MODE} (full text needs it)")
            call(
                "update_metadata_configuration",
                **where,
                add={"textSearchConfigurations": [definition.text_search]},
            )
            report.index_changes.append(
                f"full-text search on {definition.text_key!r} ({definition.language}) added"
            )
        return False
    call("create_index", **where, **definition.create_index_parameters())
    return True


def _batches(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    size = BATCH
    for start in range(0, len(items), size):
        yield items[start : start + size]


def publish(
    bundle: Bundle,
    target: VectorIndex,
    *,
    client: Any,
    state: StateStore,
    progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishReport:
    """Make the index at `target` hold exactly `bundle`'s chunks (see the module docstring)."""
    started = time.perf_counter()
    report = PublishReport(index=target.uri)
    call = _Caller(client, report, sleep)
    report.created_index = ensure_index(call, target, bundle, report)
    before = {} if report.created_index else (state.read() or {})
    records = list(vector_records(bundle))
    digests = {r["key"]: record_digest(r) for r in records}
    changed = [r for r in records if before.get(r["key"]) != digests[r["key"]]]
    removed = sorted(set(before) - set(digests))
    report.unchanged = len(records) - len(changed)
    done = 0
    for batch in _batches(changed):
        call("put_vectors", vectorBucketName=target.bucket, indexName=target.index, vectors=batch)
        done += len(batch)
        if progress is not None:
            progress("put", done, len(changed))
    report.put = done
    done = 0
    for keys in _batches(removed):
        call("delete_vectors", vectorBucketName=target.bucket, indexName=target.index, keys=keys)
        done += len(keys)
        if progress is not None:
            progress("delete", done, len(removed))
    report.deleted = done
    state.write(digests)
    report.seconds = time.perf_counter() - started
    return report


class S3State:
    """The published-state record as a JSON object in S3: `{"index": URI, "vectors": {chunk id:
    digest}}`. A record written for another index reads as none."""

    def __init__(self, client: Any, bucket: str, key: str, index: VectorIndex) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.index = index

    def read(self) -> dict[str, str] | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        try:
            record = json.loads(body)
        except ValueError:
            return None  # unreadable: a full put puts it right
        vectors = record.get("vectors") if isinstance(record, dict) else None
        if record.get("index") != self.index.uri or not isinstance(vectors, dict):
            return None
        return {str(k): str(v) for k, v in vectors.items()}

    def write(self, state: Mapping[str, str]) -> None:
        body = json.dumps({"index": self.index.uri, "vectors": dict(state)}, sort_keys=True)
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.key,
            Body=body.encode("utf-8"),
            ContentType="application/json",
        )
