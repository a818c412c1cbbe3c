"""The one paginated listing of an S3 prefix: its objects, or the folders directly under it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Listed:
    """An object as ListObjectsV2 lists it."""

    key: str
    size: int
    etag: str
    last_modified: datetime


def list_objects(client: Any, bucket: str, prefix: str) -> Iterator[Listed]:
    """Every object whose key starts with `prefix`, in key order, a page at a time (stop early
    and the later pages are never asked for)."""
    for page in _pages(client, Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents") or []:
            yield Listed(
                key=str(entry["Key"]),
                size=int(entry.get("Size", 0)),
                etag=str(entry.get("ETag", "")),
                last_modified=entry["LastModified"],
            )


def list_folders(client: Any, bucket: str, prefix: str) -> Iterator[str]:
    """The prefixes one `/` below `prefix` (S3's common prefixes), each ending in `/`."""
    for page in _pages(client, Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for entry in page.get("CommonPrefixes") or []:
            yield str(entry["Prefix"])


def _pages(client: Any, **request: str) -> Iterator[dict[str, Any]]:
    yield from client.get_paginator("list_objects_v2").paginate(**request)
