"""The index settings read once into one source (athenaeum.server.index.source), and the
combinations refused at startup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from athenaeum.server.index.source import LocalBundle, Published, S3Bundle, VectorsIndex
from athenaeum.server.settings import Settings
from athenaeum.storage.location import S3Location

VECTORS = "s3vectors://vectors/library"
INDEX = S3Location("b", "index")


@pytest.mark.parametrize(
    ("settings", "source"),
    [
        ({}, None),
        ({"index_dir": "idx"}, LocalBundle(Path("idx"))),
        ({"index_s3_uri": "s3://b/index/"}, S3Bundle(INDEX)),
        (
            {"index_s3_uri": "s3://b/index", "index_dir": "idx"},
            Published(INDEX, LocalBundle(Path("idx"))),
        ),
        (
            {"index_s3_uri": "s3://b/index", "index_start_s3_uri": "s3://b/index/abc"},
            Published(INDEX, S3Bundle(S3Location("b", "index/abc"))),
        ),
        (
            {"index_backend": "s3vectors", "s3vectors_index": VECTORS, "index_dir": "idx"},
            VectorsIndex(VECTORS, Path("idx")),
        ),
    ],
)
def test_each_combination_is_one_source(settings: dict[str, Any], source: object) -> None:
    assert Settings(**settings).index_source == source


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"index_start_s3_uri": "s3://b/start"}, "set ATHENAEUM_INDEX_S3_URI too"),
        (
            {"index_start_s3_uri": "s3://b/start", "index_dir": "idx", "index_s3_uri": "s3://b/i"},
            "not both",
        ),
        ({"index_s3_uri": "s3:///index"}, "ATHENAEUM_INDEX_S3_URI 's3:///index' names no bucket"),
        (
            {"index_s3_uri": "s3://b/i", "index_start_s3_uri": "s3:///x"},
            "ATHENAEUM_INDEX_START_S3_URI 's3:///x' names no bucket",
        ),
    ],
)
def test_a_misconfiguration_is_refused_at_startup(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**settings)
