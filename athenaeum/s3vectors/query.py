"""A search as an S3 Vectors `QueryVectors` request: the modes and the search filters mapped to
what the service does.

- dense: `queryVector` only (top k by cosine distance);
- bm25: `queryTexts` on the full-text field only;
- hybrid: both, which the service fuses by reciprocal rank.

The service's text search takes at most 1,024 characters of query text: a longer query's text
part is its start, cut at a word boundary (the vector part embeds the whole query, which the
encoder truncates at its sequence length, as it does for the bundle).

The search filters (athenaeum.retrieval.filters) become a metadata filter expression, with the
bundle's semantics: documents, whose patterns and globs are resolved here against the published
documents into their ids (`doc_id $in [...]`; none passing means no result, as in the bundle);
collections, the caller's own and those they may read (`collection $in [...]`, the root as
`/`); pages, a chunk whose page span overlaps the range (`page_start <= to` and `page_end >= from`);
front-matter fields, compared as the bundle compares them (text, case-folded:
`fm_<field> $in [...]`, which matches a list-valued field when any item does), a field no
document has being refused as the bundle refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from athenaeum.bundle.format import ROOT_COLLECTION
from athenaeum.bundle.manifest import DocumentInfo
from athenaeum.retrieval.backend import check_mode
from athenaeum.retrieval.filters import SearchFilter
from athenaeum.s3vectors.definition import COLLECTION_KEY, ROOT_VALUE
from athenaeum.s3vectors.publish import TEXT_KEY, VectorIndex, front_matter_key

# What a result needs to be shown and cited: the chunk's text and where it comes from.
RETURNED = True
MAX_TEXT_CHARS = 1024  # of a `queryTexts` item, in the service model


def query_text(query: str) -> str:
    """The query's text part as the service takes it (see the module docstring)."""
    if len(query) <= MAX_TEXT_CHARS:
        return query
    head = query[:MAX_TEXT_CHARS]
    if not query[MAX_TEXT_CHARS].isspace():  # the cut falls inside a word: leave it out
        words = head.rsplit(None, 1)
        head = words[0] if len(words) == 2 else head
    return head.rstrip()


def filter_expression(
    search_filter: SearchFilter | None, documents: Sequence[DocumentInfo]
) -> dict[str, Any] | None:
    """The S3 Vectors metadata filter for `search_filter`, or None for no filter; raises
    InvalidInputError, before the service is asked, for a documents pattern that matches none
    of `documents` or a metadata field that none of them has (SearchFilter.check_fields)."""
    if search_filter is None or search_filter.empty:
        return None
    search_filter.check_fields(documents)
    clauses: list[dict[str, Any]] = []
    if search_filter.readable is not None:
        clauses.append({COLLECTION_KEY: {"$in": _collection_values(search_filter.readable)}})
    if search_filter.collections:
        clauses.append({COLLECTION_KEY: {"$in": _collection_values(search_filter.collections)}})
    if search_filter.documents:
        ids = [d.doc_id for d in documents if search_filter.allows_document(d)]
        clauses.append({"doc_id": {"$in": ids}})
    if search_filter.page_to is not None:
        clauses.append({"page_start": {"$lte": search_filter.page_to}})
    if search_filter.page_from is not None:
        clauses.append({"page_end": {"$gte": search_filter.page_from}})
    for field_name, values in search_filter.metadata.items():
        clauses.append({front_matter_key(field_name): {"$in": list(values)}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _collection_values(names: Iterable[str]) -> list[str]:
    """Collections as the `collection` metadata holds them (the root as ROOT_VALUE), sorted."""
    return sorted(ROOT_VALUE if name == ROOT_COLLECTION else name for name in names)


def query_params(
    target: VectorIndex,
    *,
    query: str,
    vector: npt.NDArray[np.float32] | None,
    top_k: int,
    mode: str,
    expression: dict[str, Any] | None,
) -> dict[str, Any]:
    """The parameters of the `QueryVectors` call for one search."""
    check_mode(mode)
    params: dict[str, Any] = {
        "vectorBucketName": target.bucket,
        "indexName": target.index,
        "topK": top_k,
        "returnMetadata": RETURNED,
        "returnDistance": True,
    }
    if mode != "bm25":
        if vector is None:
            raise ValueError(f"mode {mode} needs the query's vector")
        params["queryVector"] = {"float32": [float(x) for x in vector]}
    if mode != "dense":
        params["queryTexts"] = [{"text": query_text(query), "metadataKey": TEXT_KEY}]
    if expression is not None:
        params["filter"] = expression
    return params
