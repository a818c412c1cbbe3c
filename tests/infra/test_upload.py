"""deploy.sh's own upload of a large bundle (infra/index/upload.py), against moto's S3 on
127.0.0.1: resumable, manifest last, older bundles pruned, and readable by the function's S3
loader."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.storage.download import fetch_s3_bundle
from athenaeum.storage.location import S3Location
from infra.index import upload
from tests.conftest import LIBRARY_PDFS, PdfLibrary

BUCKET = "athenaeum-index-upload"


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if BUCKET not in existing:
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield client
    for page in client.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=BUCKET, Key=entry["Key"], VersionId=entry["VersionId"])


def keys(client: Any, prefix: str) -> set[str]:
    found = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        found |= {entry["Key"] for entry in page.get("Contents", [])}
    return found


def test_bundle_id_is_the_manifests_hash(scifact_bundle: Path) -> None:
    digest = hashlib.sha256((scifact_bundle / "manifest.json").read_bytes()).hexdigest()
    assert upload.bundle_prefix(scifact_bundle) == f"index/{digest[:16]}"


def test_upload_is_complete_resumable_and_loadable(
    s3: Any, scifact_bundle: Path, moto_endpoint: str, tmp_path: Path
) -> None:
    prefix = upload.bundle_prefix(scifact_bundle)
    files = upload.listed_files(scifact_bundle)
    report = upload.upload_bundle(s3, scifact_bundle, BUCKET, prefix)
    assert report.uploaded == len(files) and report.skipped == 0
    assert keys(s3, prefix) == {f"{prefix}/{f.rel}" for f in files} | {f"{prefix}/manifest.json"}
    head = s3.head_object(Bucket=BUCKET, Key=f"{prefix}/{files[0].rel}")
    assert head["Metadata"]["sha256"] == files[0].sha256

    # Again: nothing to send. Corrupt one object: only that one is sent again.
    assert upload.upload_bundle(s3, scifact_bundle, BUCKET, prefix).uploaded == 0
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{files[0].rel}", Body=b"truncated")
    again = upload.upload_bundle(s3, scifact_bundle, BUCKET, prefix)
    assert (again.uploaded, again.skipped) == (1, len(files) - 1)

    # What the function does on a cold start: download, verify every sha256, search.
    local, downloaded = fetch_s3_bundle(
        S3Location.parse(f"s3://{BUCKET}/{prefix}"), tmp_path / "cache", endpoint_url=moto_endpoint
    )
    assert downloaded
    engine = SearchEngine.load(local)
    assert engine.search("vitamin D", top_k=3)


def test_prune_deletes_only_the_other_bundles(s3: Any, scifact_bundle: Path) -> None:
    current = upload.bundle_prefix(scifact_bundle)
    upload.upload_bundle(s3, scifact_bundle, BUCKET, current)
    upload.upload_bundle(s3, scifact_bundle, BUCKET, "index/0123456789abcdef")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/keep.txt", Body=b"not an index")
    assert upload.prune(s3, BUCKET, current) == ("index/0123456789abcdef/",)
    assert keys(s3, "index/0123456789abcdef/") == set()
    assert keys(s3, current) and keys(s3, "elsewhere/")
    assert upload.prune(s3, BUCKET, current) == ()


def test_prune_leaves_the_published_index_alone(s3: Any, scifact_bundle: Path) -> None:
    """What the ingest function publishes lives under index/ too, beside the bundles."""
    current = upload.bundle_prefix(scifact_bundle)
    upload.upload_bundle(s3, scifact_bundle, BUCKET, current)
    published = {
        "index/current.json",
        "index/lock.json",
        "index/versions/0123456789abcdef0123/manifest.json",
        "index/blobs/ab/abcdef0123456789abcdef",
        "index/reports/2026-11-26T12-00-00.json",
        "index/state/library.json",
    }
    for key in published:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"published")
    assert upload.prune(s3, BUCKET, current) == ()
    assert published <= keys(s3, "index/")


def test_a_bundle_that_disagrees_with_its_manifest_is_refused(
    s3: Any, scifact_bundle: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "bundle"
    shutil.copytree(scifact_bundle, broken)
    (broken / "dense.faiss").write_bytes(b"short")
    with pytest.raises(upload.UploadError, match=r"dense\.faiss"):
        upload.upload_bundle(s3, broken, BUCKET, "index/x")
    assert keys(s3, "index/x") == set()


def test_command_line(
    s3: Any,
    scifact_bundle: Path,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    upload.upload_bundle(s3, scifact_bundle, BUCKET, "index/fedcba9876543210")
    assert upload.main(["--bucket", BUCKET, "--index", str(scifact_bundle), "--prune"]) == 0
    out = capsys.readouterr().out
    assert f"uploaded to s3://{BUCKET}/{upload.bundle_prefix(scifact_bundle)}/" in out
    assert "deleted the older bundle" in out and "fedcba9876543210" in out
    assert upload.main(["--bucket", BUCKET, "--index", "/nonexistent"]) == 1
    assert "no index bundle" in capsys.readouterr().err


def test_sources_upload_checks_each_file_and_resumes(
    s3: Any, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    moved = tmp_path / "pdfs"
    shutil.copytree(pdf_library.pdfs, moved)
    (moved / "multicolumn.pdf").write_bytes(b"%PDF-1.4 replaced after indexing")
    (moved / "scotus-transcript-p1.pdf").unlink()
    report = upload.upload_sources(s3, pdf_library.bundle, BUCKET, sources_dir=moved)
    assert report.uploaded == 2 and report.skipped == 0
    assert sorted(p.split(":")[0] for p in report.not_uploaded) == [
        "multicolumn.pdf",
        "scotus-transcript-p1.pdf",
    ]
    assert any("has changed since it was indexed" in p for p in report.not_uploaded)
    assert any("not found at" in p for p in report.not_uploaded)
    uploaded = keys(s3, "sources/")
    assert {key.rsplit("/", 1)[1] for key in uploaded} == {
        "150109DSP-Milw-505-90D.pdf",
        "mistitled_outlines_example.pdf",
    }
    head = s3.head_object(Bucket=BUCKET, Key=sorted(uploaded)[0])
    assert head["ContentType"] == "application/pdf" and len(head["Metadata"]["sha256"]) == 64
    # Where convert recorded them (no --sources-dir): all four, the two already there skipped.
    again = upload.upload_sources(s3, pdf_library.bundle, BUCKET, prune_others=True)
    assert (again.uploaded, again.skipped, again.not_uploaded, again.pruned) == (2, 2, (), 0)
    assert len(keys(s3, "sources/")) == len(LIBRARY_PDFS)


def test_sources_upload_of_a_bundle_without_sources_uploads_nothing(
    s3: Any, scifact_bundle: Path
) -> None:
    report = upload.upload_sources(s3, scifact_bundle, BUCKET)
    assert (report.uploaded, report.not_uploaded) == (0, ())
    assert keys(s3, "sources/") == set()
