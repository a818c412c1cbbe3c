"""Where the served index comes from: the five index settings read into one value.

`ATHENAEUM_INDEX_BACKEND`, `ATHENAEUM_INDEX_DIR`, `ATHENAEUM_INDEX_S3_URI`,
`ATHENAEUM_INDEX_START_S3_URI` and `ATHENAEUM_S3VECTORS_INDEX` combine into one of four sources
(`index_source`, which `Settings.index_source` calls and the settings check at startup):

- `LocalBundle`: a bundle folder (`INDEX_DIR` alone);
- `S3Bundle`: a bundle kept in S3 (`INDEX_S3_URI` alone), copied to local disk once; when its
  prefix holds a pointer instead (current.json), that published index is followed;
- `Published`: a published index (`INDEX_S3_URI`) with the bundle to start from before a newer
  version is published: the packaged one (`INDEX_DIR`) or one in S3 (`INDEX_START_S3_URI`);
- `VectorsIndex`: an Amazon S3 Vectors index (`INDEX_BACKEND=s3vectors`,
  `S3VECTORS_INDEX`) with the query side of the bundle published to it (`INDEX_DIR`).

A combination that names none of them, or more than one, is refused with a message that says
which settings to change. None at all is allowed here (the authorizer reads the same settings):
the provider refuses it when it is asked for the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from athenaeum.errors import BundleError
from athenaeum.storage.location import S3Location


@dataclass(frozen=True)
class LocalBundle:
    path: Path


@dataclass(frozen=True)
class S3Bundle:
    location: S3Location


@dataclass(frozen=True)
class Published:
    location: S3Location
    start: LocalBundle | S3Bundle


@dataclass(frozen=True)
class VectorsIndex:
    index: str  # s3vectors://VECTOR_BUCKET/INDEX
    query_side: Path


IndexSource = LocalBundle | S3Bundle | Published | VectorsIndex


def index_source(
    *,
    backend: Literal["bundle", "s3vectors"],
    index_dir: Path | None,
    s3_uri: str | None,
    start_s3_uri: str | None,
    s3vectors_index: str | None,
) -> IndexSource | None:
    """The source the settings name, None when they name none; ValueError for a combination
    that is not one."""
    if backend == "s3vectors":
        if s3vectors_index is None or index_dir is None:
            raise ValueError(
                "ATHENAEUM_INDEX_BACKEND=s3vectors needs ATHENAEUM_S3VECTORS_INDEX (the index, "
                "s3vectors://VECTOR_BUCKET/INDEX) and ATHENAEUM_INDEX_DIR (the query side of the "
                "bundle published to it: its manifest.json and encoder/)"
            )
        if s3_uri is not None or start_s3_uri is not None:
            raise ValueError(
                "ATHENAEUM_INDEX_BACKEND=s3vectors searches the service's index: unset "
                "ATHENAEUM_INDEX_S3_URI and ATHENAEUM_INDEX_START_S3_URI (no bundle is downloaded)"
            )
        return VectorsIndex(s3vectors_index, index_dir)
    if s3vectors_index is not None:
        raise ValueError(
            "ATHENAEUM_S3VECTORS_INDEX is set but ATHENAEUM_INDEX_BACKEND is bundle: set "
            "ATHENAEUM_INDEX_BACKEND=s3vectors to search that index, or unset it"
        )
    if start_s3_uri is not None and s3_uri is None:
        raise ValueError(
            "ATHENAEUM_INDEX_START_S3_URI is the bundle served until the published index at "
            "ATHENAEUM_INDEX_S3_URI has a version: set ATHENAEUM_INDEX_S3_URI too, or unset it"
        )
    if start_s3_uri is not None and index_dir is not None:
        raise ValueError(
            "a published index starts from ATHENAEUM_INDEX_DIR (a packaged bundle) or "
            "ATHENAEUM_INDEX_START_S3_URI (a bundle in S3), not both"
        )
    if s3_uri is None:
        return LocalBundle(index_dir) if index_dir is not None else None
    location = _parse(s3_uri, "ATHENAEUM_INDEX_S3_URI")
    if index_dir is not None:
        return Published(location, LocalBundle(index_dir))
    if start_s3_uri is not None:
        return Published(location, S3Bundle(_parse(start_s3_uri, "ATHENAEUM_INDEX_START_S3_URI")))
    return S3Bundle(location)


def _parse(uri: str, setting: str) -> S3Location:
    try:
        return S3Location.parse(uri, what=setting)
    except BundleError as exc:
        raise ValueError(exc.message) from exc
