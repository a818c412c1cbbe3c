"""Pruning a published index (PublishedIndex.prune) on a local S3 (moto): the newest versions,
the served one and anything written within the grace period stay, every blob a remaining version
names stays, and the rest goes."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from athenaeum.errors import BundleError
from athenaeum.storage.published import Pointer, PublishedIndex
from tests.storage.conftest import Bucket

LATER = timedelta(hours=2)


def _bundle(folder: Path, files: dict[str, bytes]) -> Path:
    """A folder with the files and a manifest naming them (what publishing reads)."""
    folder.mkdir(parents=True)
    listed = {}
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
        listed[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest = {"files": listed, "counts": {"documents": 1, "chunks": len(files)}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def _publish_versions(store: PublishedIndex, tmp_path: Path, n: int) -> list[Pointer]:
    """n versions, a second apart (S3 times have one-second resolution), all sharing one
    file (an encoder) and each with a file of its own (its vectors)."""
    pointers: list[Pointer] = []
    for i in range(n):
        folder = _bundle(
            tmp_path / f"v{i}", {"encoder.bin": b"shared" * 100, "vectors.bin": b"v%d" % i * 50}
        )
        expected = pointers[-1] if pointers else None
        pointers.append(store.publish(folder, expected=expected, by="test"))
        time.sleep(1.1)
    return pointers


def _keys(s3_bucket: Bucket, rel: str) -> set[str]:
    listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.bucket, Prefix=f"index/{rel}")
    return {o["Key"].rsplit("/", 1)[1] for o in listed.get("Contents", [])}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_old_versions_and_their_blobs_go_the_served_and_recent_stay(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    store = PublishedIndex(s3_bucket.index, s3_bucket.client)
    pointers = _publish_versions(store, tmp_path, 4)
    versions = [p.version for p in pointers]
    assert _keys(s3_bucket, "versions/") == {f"{v}.json" for v in versions}

    # Everything was written within the grace period: nothing goes yet.
    assert store.prune(keep=1).versions == []
    assert len(_keys(s3_bucket, "versions/")) == 4 and len(_keys(s3_bucket, "blobs/")) == 5

    later = datetime.now(UTC) + LATER
    pruned = store.prune(keep=2, now=later)
    assert pruned.versions == sorted(versions[:2])
    assert pruned.blobs == 2 and pruned.bytes == 2 * 100  # the two oldest vectors files
    assert _keys(s3_bucket, "versions/") == {f"{v}.json" for v in versions[2:]}
    assert _keys(s3_bucket, "blobs/") == {
        _sha(b"shared" * 100),
        _sha(b"v2" * 50),
        _sha(b"v3" * 50),
    }
    with pytest.raises(BundleError, match="has no version"):
        store.manifest_bytes(versions[0])
    # The served version is whole: fetched and verified from what is left.
    fetched = store.fetch(versions[3], tmp_path / "cache")
    assert (fetched / "vectors.bin").read_bytes() == b"v3" * 50

    # keep=1 keeps the served version only, however old.
    assert store.prune(keep=1, now=later).versions == [versions[2]]
    assert _keys(s3_bucket, "versions/") == {f"{versions[3]}.json"}
    assert _keys(s3_bucket, "blobs/") == {_sha(b"shared" * 100), _sha(b"v3" * 50)}
    assert store.prune(keep=1, now=later).versions == []  # nothing more to do
    with pytest.raises(ValueError, match="keep must be at least 1"):
        store.prune(keep=0)


def test_a_version_that_cannot_be_read_stops_pruning_before_any_blob_goes(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    store = PublishedIndex(s3_bucket.index, s3_bucket.client)
    pointers = _publish_versions(store, tmp_path, 3)
    # The second-newest version's manifest no longer hashes to its name.
    s3_bucket.client.put_object(
        Bucket=s3_bucket.bucket, Key=f"index/versions/{pointers[1].version}.json", Body=b"{}"
    )
    blobs = _keys(s3_bucket, "blobs/")
    with pytest.raises(BundleError, match="does not hash to its name"):
        store.prune(keep=2, now=datetime.now(UTC) + LATER)
    assert _keys(s3_bucket, "blobs/") == blobs
    assert f"{pointers[0].version}.json" in _keys(s3_bucket, "versions/")
