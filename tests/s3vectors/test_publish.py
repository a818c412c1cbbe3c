"""Publishing a bundle into S3 Vectors, each call checked by botocore against the service model
it ships (a Stubber: the client validates every request's parameters before the stub answers,
and the stub checks them against what the test expects)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from athenaeum.bundle import Bundle, load_bundle
from athenaeum.errors import InvalidInputError
from athenaeum.s3vectors import publish as pub
from athenaeum.s3vectors.publish import (
    NON_FILTERABLE,
    TEXT_KEY,
    VectorIndex,
    publish,
    record_digest,
    vector_records,
)
from tests.conftest import PdfLibrary
from tests.s3vectors.standin import MemoryState

TARGET = VectorIndex.parse("s3vectors://library-vectors/athenaeum")
WHERE = {"vectorBucketName": "library-vectors", "indexName": "athenaeum"}
ARN = "arn:aws:s3vectors:us-east-1:123456789012:bucket/library-vectors/index/athenaeum"


@pytest.fixture(scope="module")
def bundle(pdf_library: PdfLibrary) -> Bundle:
    return load_bundle(pdf_library.bundle)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    import boto3  # type: ignore[import-untyped]

    client = boto3.client(
        "s3vectors",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def existing_index(
    dimension: int = 384,
    metric: str = "cosine",
    *,
    non_filterable: tuple[str, ...] = NON_FILTERABLE,
    text_search: bool = True,
    mode: str = "ENHANCED",
) -> dict[str, Any]:
    """GetIndex's answer; by default for an index as publish creates it. Without
    `text_search`, as CloudFormation creates it (AWS::S3Vectors::Index has no property for
    full-text search)."""
    configuration: dict[str, Any] = {"nonFilterableMetadataKeys": list(non_filterable)}
    if text_search:
        configuration["textSearchConfigurations"] = [
            {"metadataKey": TEXT_KEY, "language": "en", "status": "ACTIVE"}
        ]
    return {
        "index": {
            **WHERE,
            "indexArn": ARN,
            "creationTime": "2026-11-26T00:00:00Z",
            "dataType": "float32",
            "dimension": dimension,
            "distanceMetric": metric,
            "metadataConfiguration": configuration,
            "indexMode": mode,
        }
    }


def test_records_carry_text_for_full_text_search_and_filterable_fields(bundle: Bundle) -> None:
    records = list(vector_records(bundle))
    assert len(records) == len(bundle.chunks)
    first, chunk = records[0], bundle.chunks[0]
    assert first["key"] == chunk.id
    assert len(first["data"]["float32"]) == bundle.manifest.embedding.dimension
    meta = first["metadata"]
    assert meta[TEXT_KEY] == chunk.text and meta["doc_id"] == chunk.doc_id
    assert meta["page_start"] == chunk.page_start and meta["source"] == chunk.source
    # The front matter's fields travel too: what the search filters' `metadata` matches.
    court = [r for r in records if r["metadata"]["doc_id"] == "scotus-transcript-p1.md"]
    assert court and court[0]["metadata"]["fm_category"] == "court"
    assert court[0]["metadata"]["fm_year"] == "2012"  # as the search filters compare it
    tagged = [
        r for r in records if r["metadata"]["doc_id"].endswith("mistitled_outlines_example.md")
    ]
    assert tagged and tagged[0]["metadata"]["fm_tags"] == ["outline", "sample"]


def test_a_first_publish_creates_the_index_and_puts_every_chunk(
    bundle: Bundle, stubbed: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stubber = stubbed
    monkeypatch.setattr(pub, "BATCH", 7)  # several batches from a small bundle
    records = list(vector_records(bundle))
    stubber.add_client_error(
        "get_index", "NotFoundException", http_status_code=404, expected_params=WHERE
    )
    stubber.add_response(
        "create_index",
        {"indexArn": ARN},
        {
            **WHERE,
            "dataType": "float32",
            "dimension": 384,
            "distanceMetric": "cosine",
            "metadataConfiguration": {
                "nonFilterableMetadataKeys": list(NON_FILTERABLE),
                "textSearchConfigurations": [{"metadataKey": "text", "language": "en"}],
            },
        },
    )
    for start in range(0, len(records), 7):
        stubber.add_response("put_vectors", {}, {**WHERE, "vectors": records[start : start + 7]})
    state = MemoryState()
    report = publish(bundle, TARGET, client=client, state=state, sleep=lambda s: None)
    assert report.created_index and report.put == len(records) and report.deleted == 0
    assert state.value == {r["key"]: record_digest(r) for r in records}


def test_a_republish_puts_only_what_changed_and_deletes_what_went(
    bundle: Bundle, stubbed: tuple[Any, Stubber]
) -> None:
    client, stubber = stubbed
    records = list(vector_records(bundle))
    published = {r["key"]: record_digest(r) for r in records}
    published[records[1]["key"]] = "0" * 64  # changed since
    published["gone#0"] = "1" * 64  # a chunk of a document no longer in the bundle
    stubber.add_response("get_index", existing_index(), WHERE)
    stubber.add_response("put_vectors", {}, {**WHERE, "vectors": [records[1]]})
    stubber.add_response("delete_vectors", {}, {**WHERE, "keys": ["gone#0"]})
    report = publish(bundle, TARGET, client=client, state=MemoryState(published))
    assert (report.put, report.deleted, report.unchanged) == (1, 1, len(records) - 1)

    # Nothing changed: one call to see the index, none to change it.
    stubber.add_response("get_index", existing_index(), WHERE)
    same = {r["key"]: record_digest(r) for r in records}
    report = publish(bundle, TARGET, client=client, state=MemoryState(same))
    assert (report.put, report.deleted) == (0, 0)


def test_throttling_is_retried_with_backoff(bundle: Bundle, stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    records = list(vector_records(bundle))
    published = {r["key"]: record_digest(r) for r in records}
    published[records[0]["key"]] = "0" * 64
    stubber.add_response("get_index", existing_index(), WHERE)
    for _ in range(2):
        stubber.add_client_error("put_vectors", "TooManyRequestsException", http_status_code=429)
    stubber.add_response("put_vectors", {}, {**WHERE, "vectors": [records[0]]})
    waits: list[float] = []
    report = publish(
        bundle, TARGET, client=client, state=MemoryState(published), sleep=waits.append
    )
    assert report.put == 1 and report.retries == 2 and waits == [0.5, 1.0]


def test_an_index_of_another_shape_is_refused(bundle: Bundle, stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("get_index", existing_index(dimension=768), WHERE)
    with pytest.raises(InvalidInputError, match="dimension 768"):
        publish(bundle, TARGET, client=client, state=MemoryState())


def test_an_index_without_the_non_filterable_keys_is_refused(
    bundle: Bundle, stubbed: tuple[Any, Stubber]
) -> None:
    # Its text would count against the 2 KB of filterable metadata and be refused by PutVectors.
    client, stubber = stubbed
    stubber.add_response("get_index", existing_index(non_filterable=("title",)), WHERE)
    with pytest.raises(InvalidInputError, match=r"non-filterable metadata keys \['title'\]"):
        publish(bundle, TARGET, client=client, state=MemoryState())


@pytest.mark.parametrize("mode", ["ENHANCED", "CLASSIC"])
def test_full_text_search_is_added_to_an_index_made_without_it(
    bundle: Bundle, stubbed: tuple[Any, Stubber], mode: str
) -> None:
    """An index CloudFormation created (the stack's, infra/vectors) has everything but the text
    search configuration: publish adds it, switching the index to ENHANCED first where it is
    not (full text needs it), before any vector is put."""
    client, stubber = stubbed
    records = list(vector_records(bundle))
    stubber.add_response("get_index", existing_index(text_search=False, mode=mode), WHERE)
    if mode == "CLASSIC":
        stubber.add_response("update_index_mode", {}, {**WHERE, "indexMode": "ENHANCED"})
    stubber.add_response(
        "update_metadata_configuration",
        {"indexArn": ARN},
        {**WHERE, "add": {"textSearchConfigurations": [{"metadataKey": "text", "language": "en"}]}},
    )
    stubber.add_response("put_vectors", {}, {**WHERE, "vectors": records})
    report = publish(bundle, TARGET, client=client, state=MemoryState())
    assert not report.created_index and report.put == len(records)
    assert report.index_changes[-1] == "full-text search on 'text' (en) added"
    assert len(report.index_changes) == (2 if mode == "CLASSIC" else 1)


def test_other_errors_are_not_retried(bundle: Bundle, stubbed: tuple[Any, Stubber]) -> None:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    client, stubber = stubbed
    stubber.add_client_error("get_index", "AccessDeniedException", http_status_code=403)
    with pytest.raises(ClientError, match="AccessDenied"):
        publish(bundle, TARGET, client=client, state=MemoryState())


def test_index_addresses() -> None:
    assert VectorIndex.parse("s3vectors://b/i") == VectorIndex("b", "i")
    for bad in ("s3://b/i", "s3vectors://b", "s3vectors:///i", "s3vectors://b/i/j"):
        with pytest.raises(InvalidInputError, match="s3vectors://BUCKET/INDEX"):
            VectorIndex.parse(bad)


def test_the_publish_command_keeps_its_state_in_s3(
    bundle: Bundle,
    pdf_library: PdfLibrary,
    stubbed: tuple[Any, Stubber],
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`athenaeum publish` as users run it: the state record in (a local) S3, the vectors
    through the stubbed S3 Vectors client."""
    import json

    import boto3
    from typer.testing import CliRunner

    from athenaeum.cli.main import app

    client, stubber = stubbed
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="vector-state")
    real_client = boto3.client
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setattr(
        boto3,
        "client",
        lambda name, *a, **k: client if name == "s3vectors" else real_client(name, *a, **k),
    )
    records = list(vector_records(bundle))
    stubber.add_response("get_index", existing_index(), WHERE)
    stubber.add_response("put_vectors", {}, {**WHERE, "vectors": records})
    stubber.add_response("get_index", existing_index(), WHERE)  # the second run: nothing to do
    command = [
        "publish",
        str(pdf_library.bundle),
        TARGET.uri,
        "--state",
        "s3://vector-state/athenaeum.json",
    ]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    assert f"{len(records)} vectors put, 0 deleted" in first.output
    saved = json.loads(s3.get_object(Bucket="vector-state", Key="athenaeum.json")["Body"].read())
    assert saved["index"] == TARGET.uri and len(saved["vectors"]) == len(records)
    second = CliRunner().invoke(app, command)
    assert second.exit_code == 0 and "0 vectors put, 0 deleted" in second.output, second.output

    bad = CliRunner().invoke(app, ["publish", str(pdf_library.bundle), TARGET.uri, "--state", "x"])
    assert bad.exit_code == 2 and "--state must be an s3://BUCKET/KEY address" in bad.output
