"""The one listing of a prefix (athenaeum.storage.listing), on a local S3 (moto), and the S3
address it lists (athenaeum.storage.location)."""

from __future__ import annotations

import pytest

from athenaeum.errors import BundleError
from athenaeum.storage.listing import list_folders, list_objects
from athenaeum.storage.location import S3Location
from tests.storage.conftest import Bucket


def _stored(bucket: str, keys: list[str], body: bytes) -> None:
    """Objects put straight into the local S3's own store, as PutObject leaves them (its size
    and ETag computed by moto): a thousand PutObject requests take the in-process server 15 s,
    and what is tested here is the listing."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        store.put_object(bucket, key, body)


def test_every_page_is_listed_and_folders_are_one_level_down(s3_bucket: Bucket) -> None:
    client, bucket = s3_bucket.client, s3_bucket.bucket
    keys = [f"lib/a/{i:04d}.md" for i in range(1003)] + ["lib/b/x.md", "lib/top.md", "other.md"]
    _stored(bucket, keys[:-3], b"12345")
    # Some by requests to the server, as users put them: both are listed alike.
    for key in keys[-3:]:
        client.put_object(Bucket=bucket, Key=key, Body=b"12345")
    listed = list(list_objects(client, bucket, "lib/"))
    # Past ListObjectsV2's 1,000 keys a page, in key order, with each object's size and ETag.
    assert [o.key for o in listed] == sorted(k for k in keys if k.startswith("lib/"))
    assert {o.size for o in listed} == {5} and all(o.etag.startswith('"') for o in listed)
    assert list(list_folders(client, bucket, "lib/")) == ["lib/a/", "lib/b/"]
    assert list(list_objects(client, bucket, "none/")) == []


def test_an_address_error_names_what_the_address_is_for() -> None:
    assert S3Location.parse("s3://b/library/") == S3Location("b", "library")
    assert S3Location.parse("s3://b").uri == "s3://b"
    with pytest.raises(BundleError, match=r"^ATHENAEUM_LIBRARY_S3_URI 's3:///x' names no bucket"):
        S3Location.parse("s3:///x", what="ATHENAEUM_LIBRARY_S3_URI")
    with pytest.raises(BundleError) as refused:
        S3Location.parse("s3://")
    assert "ATHENAEUM_INDEX_S3_URI" not in refused.value.message
