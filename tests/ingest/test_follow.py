"""Serving follows a published index: `athenaeum serve` (the app in-process and uvicorn) and the
Lambda function (Mangum) swap to a newly published version while requests run, and none of them
fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from athenaeum.ingest.pipeline import ingest
from athenaeum.server.http.app import create_app
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.settings import Settings
from athenaeum.storage.published import PublishedIndex
from tests.conftest import LIBRARY_PDFS, PDF_DIR, PdfLibrary
from tests.ingest.conftest import LivingLibrary
from tests.server.helpers import Context, body_of, v1_event

NEW_PDF = "scotus-transcript-p1.pdf"
NEW_QUERY = "oral argument petitioner Supreme Court"


def _start(living: LivingLibrary, pdf_library: PdfLibrary, work: Path) -> str:
    for rel in LIBRARY_PDFS:
        if rel != NEW_PDF:
            living.put(rel, pdf_library.pdfs / rel)
    report = ingest(
        living.library,
        living.index,
        client=living.client,
        work_dir=work,
        from_bundle=pdf_library.bundle,
    )
    assert report.published and report.version is not None
    return report.version


def _publish_new(living: LivingLibrary, work: Path) -> str:
    living.put(NEW_PDF, PDF_DIR / NEW_PDF)
    report = ingest(living.library, living.index, client=living.client, work_dir=work)
    assert report.published and report.version is not None
    return report.version


class Load:
    """Threads that send requests until stopped, recording every status."""

    def __init__(self, send: Callable[[], int], threads: int = 3) -> None:
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(send,)) for _ in range(threads)]

    def _run(self, send: Callable[[], int]) -> None:
        while not self._stop.is_set():
            self.statuses.append(send())

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def _wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the new version was not served in time"
        time.sleep(0.1)


def _settings(living: LivingLibrary, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        index_s3_uri=living.index.uri,
        s3_endpoint_url=living.endpoint,
        index_cache_dir=tmp_path / "cache",
        index_refresh_s=0.2,
        insecure_no_auth=True,
        **extra,
    )


def test_the_app_swaps_versions_while_requests_run(
    living: LivingLibrary, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    first = _start(living, pdf_library, tmp_path / "w")
    client = TestClient(create_app(_settings(living, tmp_path)))
    health = client.get("/health").json()["index"]
    assert health["index_version"] == first and health["published_at"] is not None
    assert health["age_s"] >= 0

    def search() -> int:
        return client.post("/search", json={"query": NEW_QUERY, "top_k": 3}).status_code

    with Load(search) as load:
        second = _publish_new(living, tmp_path / "w")
        _wait_for(lambda: client.get("/health").json()["index"]["index_version"] == second)
        before = len(load.statuses)
        _wait_for(lambda: len(load.statuses) > before + 5)
    assert load.statuses and set(load.statuses) == {200}
    hits = client.post("/search", json={"query": NEW_QUERY, "top_k": 3}).json()["results"]
    assert hits[0]["source"] == NEW_PDF
    _opens_the_library_copy(living, tmp_path, NEW_PDF)
    # The copy of the replaced version is kept (its requests may still read it); older ones go.
    copies = sorted((tmp_path / "cache" / "published").glob("version-*"))
    assert len(copies) == 2
    # A check that read the pointer before the swap landed, and starts its load after it (two
    # requests racing), brings nothing in again and keeps the replaced copy.
    provider = client.app.state.engine_provider
    pointer = provider._follower.store.read_pointer()
    provider._follower._swap_to(provider, pointer)
    assert provider.current().version == second
    assert sorted((tmp_path / "cache" / "published").glob("version-*")) == copies


def _opens_the_library_copy(living: LivingLibrary, tmp_path: Path, name: str) -> None:
    """A citation of an ingested document opens the library's file: a signed link, redirected
    to a presigned URL of the library key, which serves the PDF."""
    import httpx

    settings = _settings(
        living,
        tmp_path / "links",
        sources_s3_uri=f"s3://{living.bucket}/sources",
        link_secret="a-test-link-secret-of-enough-length",
    )
    client = TestClient(create_app(settings))
    hit = client.post("/search", json={"query": NEW_QUERY, "top_k": 1}).json()["results"][0]
    assert hit["source"] == name and hit["source_url"]
    url = hit["source_url"].split("#")[0]
    redirect = client.get(url.removeprefix("http://testserver"), follow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    assert f"/{living.bucket}/library/{name}" in location
    pdf = httpx.get(location)
    assert pdf.status_code == 200 and pdf.content == (PDF_DIR / name).read_bytes()


def test_a_packaged_bundle_serves_until_a_newer_version_is_published(
    living: LivingLibrary, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    client = TestClient(create_app(_settings(living, tmp_path, index_dir=pdf_library.bundle)))
    packaged = client.get("/health").json()["index"]
    assert packaged["published_at"] is None  # nothing published yet: the packaged bundle
    first = _start(living, pdf_library, tmp_path / "w")
    _wait_for(lambda: client.get("/health").json()["index"]["index_version"] == first)

    # A process that starts now serves the published version, not the older packaged one.
    fresh = TestClient(create_app(_settings(living, tmp_path / "2", index_dir=pdf_library.bundle)))
    assert fresh.get("/health").json()["index"]["index_version"] == first


def test_the_lambda_function_swaps_within_a_request_and_none_fails(
    living: LivingLibrary,
    pdf_library: PdfLibrary,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "AtheneumStack-Api")
    first = _start(living, pdf_library, tmp_path / "w")
    settings = _settings(living, tmp_path, metric_namespace="Athenaeum/Test")
    handler = build_handler(settings)
    search_event = v1_event("POST", "/search", {"query": NEW_QUERY, "top_k": 3}, authorizer=False)

    def health() -> dict[str, Any]:
        response = handler(v1_event("GET", "/health", authorizer=False), Context())
        assert response["statusCode"] == 200, response["body"]
        index: dict[str, Any] = body_of(response)["index"]
        return index

    assert health()["index_version"] == first

    # A container answers one request at a time: requests go on in this thread while the new
    # version is published from another, until one of them has swapped it in.
    published: list[str] = []
    publisher = threading.Thread(
        target=lambda: published.append(_publish_new(living, tmp_path / "w"))
    )
    publisher.start()
    statuses: list[int] = []
    deadline = time.monotonic() + 90
    while not published or health()["index_version"] != published[0]:
        assert time.monotonic() < deadline, "the new version was not served in time"
        statuses.append(handler(search_event, Context())["statusCode"])
    publisher.join()
    second = published[0]
    statuses.append(handler(search_event, Context())["statusCode"])
    assert len(statuses) > 1 and set(statuses) == {200}
    assert body_of(handler(search_event, Context()))["results"][0]["source"] == NEW_PDF
    pointer = PublishedIndex(living.index, living.client).read_pointer()
    assert pointer is not None and pointer.version == second
    # The function reported how far behind it was, as CloudWatch embedded metrics.
    out = capsys.readouterr().out
    assert '"ServedVersionBehindSeconds"' in out and '"Namespace": "Athenaeum/Test"' in out


def test_a_starting_bundle_in_s3_serves_until_the_first_version(
    living: LivingLibrary, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    """A bundle too large to package: deploy uploads it under index/<bundle id>/, and the
    function serves it until the first version is published beside it."""
    from infra.index.upload import upload_bundle

    upload_bundle(living.client, pdf_library.bundle, living.bucket, "index/0123456789abcdef")
    start = f"s3://{living.bucket}/index/0123456789abcdef"
    client = TestClient(create_app(_settings(living, tmp_path, index_start_s3_uri=start)))
    served = client.get("/health").json()["index"]
    assert served["published_at"] is None and served["documents"] == len(LIBRARY_PDFS)
    first = _start(living, pdf_library, tmp_path / "w")
    _wait_for(lambda: client.get("/health").json()["index"]["index_version"] == first)
