"""A STAND-IN for Amazon S3 Vectors, for tests and evaluation only: never a backend offered to
users. It implements the documented semantics of the calls athenaeum makes (PutVectors,
DeleteVectors, GetVectors, GetIndex, CreateIndex, QueryVectors: top k by cosine distance, BM25
over the index's full-text field, reciprocal rank fusion of the two, metadata filters) and
validates every request against the service model botocore ships, as the real client would."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from botocore.validate import validate_parameters  # type: ignore[import-untyped]

RRF_K = 60
DEPTH = 100
_WORD = re.compile(r"\w+")


def _tokens(text: str) -> list[str]:
    return [t.casefold() for t in _WORD.findall(text)]


def _holds(op: str, present: list[Any], wanted: Any) -> bool:
    if op == "$eq":
        return wanted in present
    if op == "$ne":
        return wanted not in present
    if op == "$in":
        return any(v in wanted for v in present)
    if op == "$nin":
        return not any(v in wanted for v in present)
    if op == "$exists":
        return bool(present) == wanted
    compare = {
        "$lt": lambda v: v < wanted,
        "$lte": lambda v: v <= wanted,
        "$gt": lambda v: v > wanted,
        "$gte": lambda v: v >= wanted,
    }[op]
    return any(compare(v) for v in present)


def _matches(metadata: dict[str, Any], expression: dict[str, Any]) -> bool:
    for key, condition in expression.items():
        if key == "$and":
            if not all(_matches(metadata, c) for c in condition):
                return False
            continue
        if key == "$or":
            if not any(_matches(metadata, c) for c in condition):
                return False
            continue
        value = metadata.get(key)
        values = value if isinstance(value, list) else [value]
        if not isinstance(condition, dict):
            condition = {"$eq": condition}
        for op, wanted in condition.items():
            present = [v for v in values if v is not None]
            ok = _holds(op, present, wanted)
            if not ok:
                return False
    return True


class S3VectorsStandIn:
    def __init__(self) -> None:
        import boto3  # type: ignore[import-untyped]

        self._model = boto3.client(
            "s3vectors", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        ).meta.service_model
        self.index: dict[str, Any] | None = None
        self.vectors: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        self.calls: Counter[str] = Counter()
        self.last: dict[str, dict[str, Any]] = {}  # the latest request of each operation

    def _check(self, operation: str, params: dict[str, Any]) -> None:
        self.calls[operation] += 1
        self.last[operation] = params
        shape = self._model.operation_model(operation).input_shape
        validate_parameters(params, shape)  # raises ParamValidationError, as the client would

    @staticmethod
    def _error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code}}, "StandIn")

    def get_index(self, **params: Any) -> dict[str, Any]:
        self._check("GetIndex", params)
        if self.index is None:
            raise self._error("NotFoundException", 404)
        return {"index": self.index}

    def create_index(self, **params: Any) -> dict[str, Any]:
        self._check("CreateIndex", params)
        self.index = {
            "vectorBucketName": params["vectorBucketName"],
            "indexName": params["indexName"],
            "dimension": params["dimension"],
            "distanceMetric": params["distanceMetric"],
            "text_key": params["metadataConfiguration"]["textSearchConfigurations"][0][
                "metadataKey"
            ],
        }
        return {"indexArn": "arn:aws:s3vectors:us-east-1:000000000000:bucket/b/index/i"}

    def put_vectors(self, **params: Any) -> dict[str, Any]:
        self._check("PutVectors", params)
        for v in params["vectors"]:
            vector = np.asarray(v["data"]["float32"], dtype=np.float32)
            self.vectors[v["key"]] = (vector, dict(v.get("metadata") or {}))
        return {}

    def delete_vectors(self, **params: Any) -> dict[str, Any]:
        self._check("DeleteVectors", params)
        for key in params["keys"]:
            self.vectors.pop(key, None)
        return {}

    def get_vectors(self, **params: Any) -> dict[str, Any]:
        self._check("GetVectors", params)
        found = []
        for key in params["keys"]:
            if key in self.vectors:
                item: dict[str, Any] = {"key": key}
                if params.get("returnMetadata"):
                    item["metadata"] = self.vectors[key][1]
                found.append(item)
        return {"vectors": found}

    def query_vectors(self, **params: Any) -> dict[str, Any]:
        self._check("QueryVectors", params)
        assert self.index is not None
        expression = params.get("filter")
        keys = [
            k for k, (_, m) in self.vectors.items() if not expression or _matches(m, expression)
        ]
        dense: dict[str, float] = {}
        if "queryVector" in params:
            q = np.asarray(params["queryVector"]["float32"], dtype=np.float32)
            q = q / max(float(np.linalg.norm(q)), 1e-12)
            for k in keys:
                v = self.vectors[k][0]
                dense[k] = 1.0 - float(v @ q / max(float(np.linalg.norm(v)), 1e-12))
        bm25: dict[str, float] = {}
        if "queryTexts" in params:
            bm25 = self._bm25(params["queryTexts"][0]["text"], keys)
        top_k = params["topK"]
        dense_rank = sorted(dense, key=lambda k: (dense[k], k))[:DEPTH]
        text_rank = sorted(bm25, key=lambda k: (-bm25[k], k))[:DEPTH]
        if dense and bm25:
            fused: Counter[str] = Counter()
            for ranking in (dense_rank, text_rank):
                for i, k in enumerate(ranking):
                    fused[k] += 1.0 / (RRF_K + i + 1)
            order = sorted(fused, key=lambda k: (-fused[k], k))[:top_k]
        else:
            order = (dense_rank or text_rank)[:top_k]
        out = []
        for k in order:
            item: dict[str, Any] = {"key": k}
            if params.get("returnMetadata"):
                item["metadata"] = self.vectors[k][1]
            if k in dense and params.get("returnDistance"):
                item["distance"] = dense[k]
            if params.get("returnScores"):
                scores: dict[str, Any] = {}
                if k in bm25:
                    scores["bm25Scores"] = [
                        {"metadataKey": self.index["text_key"], "score": bm25[k]}
                    ]
                if dense and bm25:
                    scores["fused"] = fused[k]
                item["scores"] = scores
            out.append(item)
        return {"vectors": out, "distanceMetric": "cosine"}

    def _bm25(
        self, text: str, keys: list[str], k1: float = 1.2, b: float = 0.75
    ) -> dict[str, float]:
        assert self.index is not None
        field = self.index["text_key"]
        docs = {k: _tokens(str(m.get(field, ""))) for k, (_, m) in self.vectors.items()}
        n = len(docs)
        average = sum(map(len, docs.values())) / max(n, 1)
        frequency: Counter[str] = Counter(t for d in docs.values() for t in set(d))
        scores = {}
        for k in keys:
            counts = Counter(docs[k])
            score = 0.0
            for term in set(_tokens(text)):
                if not counts[term]:
                    continue
                idf = math.log(1 + (n - frequency[term] + 0.5) / (frequency[term] + 0.5))
                tf = counts[term]
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(docs[k]) / average))
            if score > 0:
                scores[k] = score
        return scores


class MemoryState:
    """The published-state record, kept in memory instead of an S3 object."""

    def __init__(self, value: dict[str, str] | None = None) -> None:
        self.value = value
        self.writes = 0

    def read(self) -> dict[str, str] | None:
        return None if self.value is None else dict(self.value)

    def write(self, state: Mapping[str, str]) -> None:
        self.value = dict(state)
        self.writes += 1
