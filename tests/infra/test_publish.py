"""deploy.sh's start of the living library (infra.index.publish) against a local S3: the
bundle's files go into library/ under their documents' paths, the bundle becomes the first
version, a second deploy changes nothing, and a bundle whose documents have no file is not
started (its first version would drop them)."""

from __future__ import annotations

import uuid
from pathlib import Path

from athenaeum.bundle import load_bundle
from athenaeum.storage.client import s3_client
from athenaeum.storage.location import S3Location
from athenaeum.storage.published import PublishedIndex
from infra.index.publish import start_library
from tests.conftest import LIBRARY_PDFS, PdfLibrary


def _bucket(endpoint: str) -> tuple[object, str]:
    client = s3_client(endpoint)
    bucket = f"deploy-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_a_first_deploy_starts_the_library_and_a_second_changes_nothing(
    moto_endpoint: str, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    client, bucket = _bucket(moto_endpoint)
    said = start_library(
        client, bucket, pdf_library.bundle, sources_dir=pdf_library.pdfs, work_dir=tmp_path
    )
    assert said.startswith("library started") and "0 chunks embedded" in said, said
    listed = client.list_objects_v2(Bucket=bucket, Prefix="library/")  # type: ignore[attr-defined]
    assert sorted(o["Key"] for o in listed["Contents"]) == sorted(
        f"library/{rel}" for rel in LIBRARY_PDFS
    )
    store = PublishedIndex(S3Location(bucket, "index"), client)
    pointer = store.read_pointer()
    assert pointer is not None and pointer.documents == len(LIBRARY_PDFS)
    served = load_bundle(store.fetch(pointer.version, tmp_path / "cache"))
    assert [c.id for c in served.chunks] == [c.id for c in load_bundle(pdf_library.bundle).chunks]

    again = start_library(client, bucket, pdf_library.bundle, work_dir=tmp_path)
    assert "already has a version" in again and pointer.version[:12] in again
    assert store.read_pointer() == pointer


def test_a_bundle_with_documents_without_files_is_not_started(
    moto_endpoint: str, scifact_bundle: Path, tmp_path: Path
) -> None:
    client, bucket = _bucket(moto_endpoint)
    said = start_library(client, bucket, scifact_bundle, work_dir=tmp_path)
    assert said.startswith("warning: the library is not started") and "no original file" in said
    assert PublishedIndex(S3Location(bucket, "index"), client).read_pointer() is None
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]


def test_files_that_cannot_be_found_stop_the_start(
    moto_endpoint: str, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    client, bucket = _bucket(moto_endpoint)
    said = start_library(client, bucket, pdf_library.bundle, sources_dir=tmp_path / "empty")
    assert said.startswith("warning: the library is not started") and "not found" in said
    assert PublishedIndex(S3Location(bucket, "index"), client).read_pointer() is None
