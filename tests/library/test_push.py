"""`athenaeum push`: a folder of real PDFs made to match an S3 prefix on a local S3 server."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from athenaeum.cli.main import app
from athenaeum.errors import AccessDeniedError, NotFoundError
from athenaeum.library.push import (
    SHA256_METADATA,
    WORKERS,
    Change,
    _fatal,
    managed_rel,
    parse_library_uri,
    push,
)
from athenaeum.storage.client import s3_client
from tests.conftest import PDF_DIR

PDFS = {
    "habibi.pdf": "habibi.pdf",
    "bulletin.pdf": "la-precinct-bulletin-2014-p1.pdf",
    "reports/child-welfare.pdf": "150109DSP-Milw-505-90D.pdf",
}
MIB = 1024 * 1024


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A client of the local S3 server, which boto3 also finds for the CLI (AWS_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return boto3.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"push-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three real PDFs (one in a subfolder), a markdown note, a file that is not a document,
    and hidden ones."""
    root = tmp_path / "library"
    for rel, name in PDFS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PDF_DIR / name, root / rel)
    (root / "notes.md").write_text("# Notes\n\nWhat the reports say.\n", encoding="utf-8")
    (root / "budget.numbers").write_bytes(b"not a document push handles")
    (root / ".DS_Store").write_bytes(b"hidden")
    (root / ".drafts").mkdir()
    (root / ".drafts" / "draft.md").write_text("hidden folder", encoding="utf-8")
    return root


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["push", *args])
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def _tags(s3: Any, bucket: str) -> dict[str, str]:
    return {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def _expected(root: Path, *rels: str) -> dict[str, bytes]:
    return {f"library/{rel}": (root / rel).read_bytes() for rel in rels}


def test_push_uploads_what_changed_and_deletes_only_with_delete(
    s3: Any, bucket: str, folder: Path
) -> None:
    s3.put_object(Bucket=bucket, Key="library-old/habibi.pdf", Body=b"an older library")
    s3.put_object(Bucket=bucket, Key="libraryx.pdf", Body=b"beside the prefix")
    uri = f"s3://{bucket}/library"

    code, out = _run(str(folder), uri)
    assert code == 0, out
    stored = _objects(s3, bucket)
    first = _expected(folder, *PDFS, "notes.md")
    assert {k: v for k, v in stored.items() if k.startswith("library/")} == first
    for key, body in first.items():
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"][SHA256_METADATA] == hashlib.sha256(body).hexdigest()
        assert f"uploaded {key} (new," in out
    assert s3.head_object(Bucket=bucket, Key="library/habibi.pdf")["ContentType"] == (
        "application/pdf"
    )
    assert "4 uploaded" in out and "1 skipped" in out
    assert "Skipped, not a document: .numbers 1" in out

    code, out = _run(str(folder), uri)
    assert code == 0, out
    assert "0 uploaded" in out and "4 unchanged" in out and "uploaded library/" not in out

    # One PDF changed in place (the same size, one byte different: only its sha256 tells),
    # one added, one removed.
    changed = folder / "reports" / "child-welfare.pdf"
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed.write_bytes(bytes(data))
    shutil.copyfile(PDF_DIR / "2023-06-20-PV.pdf", folder / "reports" / "minutes.pdf")
    (folder / "habibi.pdf").unlink()

    before = _tags(s3, bucket)
    code, out = _run(str(folder), uri, "--delete", "--dry-run")
    assert code == 0, out
    assert _tags(s3, bucket) == before
    assert "Dry run, nothing changed" in out
    assert "would upload library/reports/child-welfare.pdf (changed," in out
    assert "would upload library/reports/minutes.pdf (new," in out
    assert "would delete library/habibi.pdf" in out
    assert "2 to upload" in out and "1 to delete" in out

    code, out = _run(str(folder), uri)
    assert code == 0, out
    assert "2 uploaded" in out and "2 unchanged" in out and "0 deleted" in out
    assert "library/habibi.pdf" in _objects(s3, bucket)
    assert "1 document(s) under the prefix have no file in the folder and were kept" in out

    code, out = _run(str(folder), uri, "--delete")
    assert code == 0, out
    assert "0 uploaded" in out and "1 deleted" in out and "deleted library/habibi.pdf" in out
    stored = _objects(s3, bucket)
    now = ("bulletin.pdf", "reports/child-welfare.pdf", "reports/minutes.pdf", "notes.md")
    assert {k: v for k, v in stored.items() if k.startswith("library/")} == _expected(folder, *now)
    for key, body in _expected(folder, *now).items():
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"][SHA256_METADATA] == hashlib.sha256(body).hexdigest()
    # Neither a sibling prefix nor a key that merely starts with the prefix's name is touched.
    assert stored["library-old/habibi.pdf"] == b"an older library"
    assert stored["libraryx.pdf"] == b"beside the prefix"


def test_delete_leaves_what_push_does_not_manage(s3: Any, bucket: str, folder: Path) -> None:
    foreign = {
        "library/archive.zip": b"another tool's file",
        "library/scans/": b"",  # a folder marker, as the S3 console makes them
        "library/../escape.pdf": b"a key, not a path",
        "library/.hidden.pdf": b"hidden",
        "library/kept/excluded.pdf": b"filtered out, so protected",
    }
    for key, body in foreign.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    code, out = _run(str(folder), f"s3://{bucket}/library", "--delete", "--exclude", "kept/*")
    assert code == 0, out
    stored = _objects(s3, bucket)
    assert all(stored[key] == body for key, body in foreign.items())
    assert "0 deleted" in out and "5 other object(s) under the prefix" in out


def test_include_and_exclude_select_documents(s3: Any, bucket: str, folder: Path) -> None:
    code, out = _run(
        str(folder), f"s3://{bucket}/lib", "--include", "*.pdf", "--exclude", "reports/*"
    )
    assert code == 0, out
    assert set(_objects(s3, bucket)) == {"lib/habibi.pdf", "lib/bulletin.pdf"}
    assert "Skipped, filtered out: .md 1, .pdf 1" in out


def test_an_object_put_by_another_tool_is_compared_by_its_md5(
    s3: Any, bucket: str, folder: Path
) -> None:
    same = (folder / "habibi.pdf").read_bytes()
    s3.put_object(Bucket=bucket, Key="library/habibi.pdf", Body=same)  # no sha256 metadata
    other = bytearray((folder / "bulletin.pdf").read_bytes())
    other[0] ^= 0xFF
    s3.put_object(Bucket=bucket, Key="library/bulletin.pdf", Body=bytes(other))

    report = push(folder, f"s3://{bucket}/library", client=s3_client(transfer_workers=WORKERS))
    assert report.ok
    assert [h.rel for h in report.unchanged] == ["habibi.pdf"]
    changes = {u.key: u.change for u in report.uploaded}
    assert changes["library/bulletin.pdf"] is Change.CHANGED
    assert s3.get_object(Bucket=bucket, Key="library/bulletin.pdf")["Body"].read() == (
        (folder / "bulletin.pdf").read_bytes()
    )


@pytest.fixture
def large_document(tmp_path: Path) -> Iterator[Path]:
    """A folder with one text document of 11 MiB: three parts of 5 MiB, S3's smallest."""
    root = tmp_path / "large"
    root.mkdir()
    line = b"The library holds every report, minute and transcript of the county.\n"
    (root / "transcripts.txt").write_bytes((line * (11 * MIB // len(line) + 1))[: 11 * MIB])
    yield root


def test_a_large_file_goes_in_parts_and_is_verified(
    s3: Any, bucket: str, large_document: Path
) -> None:
    uri = f"s3://{bucket}/library"
    sizes = {"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB}
    report = push(large_document, uri, client=s3_client(transfer_workers=WORKERS), **sizes)
    assert report.ok, report.failed
    body = (large_document / "transcripts.txt").read_bytes()
    head = s3.head_object(Bucket=bucket, Key="library/transcripts.txt")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head["Metadata"][SHA256_METADATA] == hashlib.sha256(body).hexdigest()
    assert s3.get_object(Bucket=bucket, Key="library/transcripts.txt")["Body"].read() == body

    again = push(large_document, uri, client=s3_client(transfer_workers=WORKERS), **sizes)
    assert not again.uploaded and len(again.unchanged) == 1


def test_a_file_changed_during_its_upload_is_reported(
    s3: Any, bucket: str, large_document: Path
) -> None:
    path = large_document / "transcripts.txt"
    original = path.read_bytes()

    def rewrite_once_hashed(stage: str, done: int, total: int) -> None:
        # Called as each block is hashed; once all are, the file changes (keeping its size)
        # before it is uploaded.
        if stage == "hashing":
            rewrite_once_hashed.hashed += done  # type: ignore[attr-defined]
            if rewrite_once_hashed.hashed == total:  # type: ignore[attr-defined]
                path.write_bytes(original.upper())

    rewrite_once_hashed.hashed = 0  # type: ignore[attr-defined]
    report = push(
        large_document,
        f"s3://{bucket}/library",
        client=s3_client(transfer_workers=WORKERS),
        multipart_threshold=5 * MIB,
        multipart_chunksize=5 * MIB,
        on_progress=rewrite_once_hashed,
    )
    assert not report.ok and not report.uploaded
    (failure,) = report.failed
    assert failure.key == "library/transcripts.txt"
    assert "changed while it was uploaded" in failure.reason


def test_one_file_failing_does_not_stop_the_others(s3: Any, bucket: str, folder: Path) -> None:
    vanishing = folder / "bulletin.pdf"

    def remove_once_hashed(stage: str, done: int, total: int) -> None:
        if stage == "hashing":
            remove_once_hashed.hashed += done  # type: ignore[attr-defined]
            if remove_once_hashed.hashed == total:  # type: ignore[attr-defined]
                vanishing.unlink()

    remove_once_hashed.hashed = 0  # type: ignore[attr-defined]
    report = push(
        folder,
        f"s3://{bucket}/library",
        client=s3_client(transfer_workers=WORKERS),
        on_progress=remove_once_hashed,
    )
    assert [f.key for f in report.failed] == ["library/bulletin.pdf"]
    assert "upload failed" in report.failed[0].reason
    assert len(report.uploaded) == 3
    assert set(_objects(s3, bucket)) == {
        "library/habibi.pdf",
        "library/reports/child-welfare.pdf",
        "library/notes.md",
    }


def test_user_mistakes_are_one_line_errors(
    s3: Any, bucket: str, folder: Path, tmp_path: Path
) -> None:
    code, out = _run(str(folder), "s3://no-such-bucket-here/library")
    assert code == 2 and "error: the bucket 'no-such-bucket-here' does not exist" in out

    code, out = _run(str(folder), "https://example.com/library")
    assert code == 2 and "is not an S3 URI: give s3://BUCKET/PREFIX" in out

    code, out = _run(str(folder), f"s3://{bucket}")
    assert code == 2 and "names no prefix" in out

    code, out = _run(str(folder), f"s3://{bucket}/a/../b")
    assert code == 2 and "'..'" in out

    missing = tmp_path / "[old] library, long enough a path to be wider than a terminal's line"
    result = CliRunner().invoke(app, ["push", str(missing), f"s3://{bucket}/library"])
    assert result.exit_code == 2
    assert result.output == f"error: {missing} does not exist\n"  # one line, brackets kept

    assert not _objects(s3, bucket)


def test_refusals_from_s3_name_the_cause() -> None:
    location = parse_library_uri("s3://team-bucket/library")
    denied = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "ListObjectsV2"
    )
    error = _fatal(denied, location, "list")
    assert isinstance(error, AccessDeniedError)
    assert "S3 refused to list s3://team-bucket/library/ (AccessDenied: Access Denied)" in (
        error.message
    )
    missing = ClientError({"Error": {"Code": "NoSuchBucket", "Message": "x"}}, "ListObjectsV2")
    assert isinstance(_fatal(missing, location, "list"), NotFoundError)


def test_only_keys_a_local_path_could_make_are_managed() -> None:
    location = parse_library_uri("s3://b/library/")
    assert location.prefix == "library"
    assert managed_rel("library/a/b.PDF", location) == "a/b.PDF"
    for key in (
        "library-old/a.pdf",
        "library/a/../b.pdf",
        "library//b.pdf",
        "library/.x/b.pdf",
        "library/b.numbers",
        "library/dir/",
    ):
        assert managed_rel(key, location) is None, key


def test_the_folder_is_walked_without_following_symlinked_folders(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(PDF_DIR / "habibi.pdf", outside / "habibi.pdf")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "linked-folder")
    os.symlink(outside / "habibi.pdf", root / "linked.pdf")

    report = push(root, f"s3://{bucket}/library", client=s3_client(transfer_workers=WORKERS))
    assert [u.key for u in report.uploaded] == ["library/linked.pdf"]
