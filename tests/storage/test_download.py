"""The index from S3, against a moto server on 127.0.0.1: verified download, refusal of
truncated or corrupted objects, 503 while the bucket is unreachable, then recovery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from fastapi.testclient import TestClient

from athenaeum.bundle import VERIFICATION_FILE, load_bundle
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import EngineProvider
from athenaeum.server.settings import Settings
from athenaeum.storage.download import cache_path, fetch_s3_bundle
from athenaeum.storage.location import S3Location
from tests.server.helpers import assert_error

QUERY = "vitamin D deficiency"


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def upload(client: Any, bucket: str, prefix: str, bundle: Path) -> None:
    client.create_bucket(Bucket=bucket)
    for path in sorted(bundle.rglob("*")):
        if path.is_file():
            client.put_object(
                Bucket=bucket,
                Key=f"{prefix}/{path.relative_to(bundle).as_posix()}",
                Body=path.read_bytes(),
            )


@pytest.fixture(scope="module")
def uploaded(moto_endpoint: str, scifact_bundle: Path) -> list[str]:
    """The bundle uploaded once (its ONNX encoder is ~90 MB); tests clone it server-side."""
    upload(s3(moto_endpoint), "source-bundles", "scifact", scifact_bundle)
    return [
        str(p.relative_to(scifact_bundle).as_posix())
        for p in sorted(scifact_bundle.rglob("*"))
        if p.is_file()
    ]


def clone(client: Any, files: list[str], bucket: str, prefix: str) -> None:
    client.create_bucket(Bucket=bucket)
    for rel in files:
        client.copy_object(
            Bucket=bucket,
            Key=f"{prefix}/{rel}",
            CopySource={"Bucket": "source-bundles", "Key": f"scifact/{rel}"},
        )


def settings(uri: str, cache: Path, endpoint: str) -> Settings:
    return Settings(
        insecure_no_auth=True, index_s3_uri=uri, index_cache_dir=cache, s3_endpoint_url=endpoint
    )


def test_download_is_verified_atomic_and_reused(
    moto_endpoint: str, scifact_bundle: Path, uploaded: list[str], tmp_path: Path
) -> None:
    clone(s3(moto_endpoint), uploaded, "good-bucket", "indexes/v1")
    cache = tmp_path / "cache"
    app = TestClient(create_app(settings("s3://good-bucket/indexes/v1", cache, moto_endpoint)))
    r = app.post("/search", json={"query": QUERY, "top_k": 3})
    assert r.status_code == 200 and len(r.json()["results"]) == 3

    local = cache_path(S3Location.parse("s3://good-bucket/indexes/v1"), cache)
    manifest = json.loads((local / "manifest.json").read_text())
    for rel in manifest["files"]:
        assert (local / rel).read_bytes() == (scifact_bundle / rel).read_bytes()
    assert [p.name for p in cache.iterdir()] == [local.name]  # no temporary leftovers

    # A new process in the same container reuses the copy: nothing but the manifest is read.
    again, fresh = fetch_s3_bundle(
        S3Location.parse("s3://good-bucket/indexes/v1"), cache, endpoint_url=moto_endpoint
    )
    assert again == local and fresh is False


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "missing"])
def test_damaged_objects_are_refused(
    moto_endpoint: str, scifact_bundle: Path, uploaded: list[str], tmp_path: Path, damage: str
) -> None:
    client = s3(moto_endpoint)
    bucket = f"damaged-{damage}"
    clone(client, uploaded, bucket, "idx")
    key = "idx/chunks.z"
    data = (scifact_bundle / "chunks.z").read_bytes()
    if damage == "truncated":
        client.put_object(Bucket=bucket, Key=key, Body=data[: len(data) // 2])
    elif damage == "corrupted":
        flipped = bytearray(data)
        flipped[len(data) // 3] ^= 0x20
        client.put_object(Bucket=bucket, Key=key, Body=bytes(flipped))
    else:
        client.delete_object(Bucket=bucket, Key=key)
    cache = tmp_path / "cache"
    app = TestClient(create_app(settings(f"s3://{bucket}/idx", cache, moto_endpoint)))
    e = assert_error(app.post("/search", json={"query": QUERY}), 503, "index_unavailable")
    assert "chunks.z" in e["message"]
    expected = {"truncated": "smaller", "corrupted": "sha256", "missing": "NoSuchKey"}[damage]
    assert expected in e["message"]
    # Nothing half-written is left where a later process could load it.
    assert not cache.exists() or list(cache.iterdir()) == []

    if damage == "truncated":  # one case suffices: each successful load costs seconds
        # Repaired upload: the next request retries and succeeds.
        client.put_object(Bucket=bucket, Key=key, Body=data)
        assert app.post("/search", json={"query": QUERY}).status_code == 200


def test_unreachable_bucket_is_503_then_recovers(
    moto_endpoint: str, uploaded: list[str], tmp_path: Path
) -> None:
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:  # a port with nothing listening, yet
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    app = TestClient(create_app(settings("s3://late-bucket/idx", tmp_path / "cache", endpoint)))
    e = assert_error(app.get("/health"), 503, "index_unavailable")
    assert "s3://late-bucket/idx" in e["message"] and "retries" in e["message"]

    # S3 comes up (moto's backends are shared in-process) but the bucket is not there yet.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        e = assert_error(app.get("/health"), 503, "index_unavailable")
        assert "NoSuchBucket" in e["message"]
        clone(s3(moto_endpoint), uploaded, "late-bucket", "idx")
        assert app.get("/health").status_code == 200
        assert app.post("/search", json={"query": QUERY}).status_code == 200
    finally:
        server.stop()


def test_hostile_manifest_paths_are_refused(moto_endpoint: str, tmp_path: Path) -> None:
    client = s3(moto_endpoint)
    client.create_bucket(Bucket="hostile")
    manifest = {"files": {"../../etc/evil": {"sha256": "0" * 64, "bytes": 1}}}
    client.put_object(Bucket="hostile", Key="idx/manifest.json", Body=json.dumps(manifest).encode())
    app = TestClient(create_app(settings("s3://hostile/idx", tmp_path / "c", moto_endpoint)))
    assert "unsafe path" in assert_error(app.get("/health"), 503)["message"]


def test_a_download_is_recorded_so_its_load_hashes_nothing(
    moto_endpoint: str, uploaded: list[str], tmp_path: Path
) -> None:
    clone(s3(moto_endpoint), uploaded, "recorded-bucket", "idx")
    location = S3Location.parse("s3://recorded-bucket/idx")
    cache = tmp_path / "cache"
    local, fresh = fetch_s3_bundle(location, cache, endpoint_url=moto_endpoint)
    record = json.loads((local / VERIFICATION_FILE).read_text())
    assert fresh and record["verified_by"] == "s3 download" and record["scope"] == "local"
    # Every file was hashed on its way in: the load trusts the record, as does a later process
    # reusing the copy, unless full verification is asked for.
    provider = EngineProvider(settings(location.uri, cache, moto_endpoint))
    assert provider.get().bundle.verification.by_record
    full = settings(location.uri, cache, moto_endpoint).model_copy(update={"index_verify": "full"})
    assert not EngineProvider(full).get().bundle.verification.by_record

    # A cached copy damaged since it was downloaded is downloaded again, not refused forever.
    vectors = local / "dense.faiss"
    damaged = bytearray(vectors.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    vectors.write_bytes(bytes(damaged))
    again, fresh = fetch_s3_bundle(location, cache, endpoint_url=moto_endpoint)
    assert again == local and fresh is True
    assert load_bundle(local).verification.by_record
