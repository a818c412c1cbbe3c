"""The ingest function's settings: read from the environment with the `ATHENAEUM_` prefix, once
per container, documented in docs/settings.md, and refused with the variable's name when bad."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from athenaeum.ingest.settings import (
    DEFAULT_MAX_PAGES,
    DEFAULT_WORK_DIR,
    IngestSettings,
    IngestSettingsError,
    get_ingest_settings,
)
from athenaeum.storage.published import KEEP_VERSIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
LIBRARY = "s3://bucket/library"
INDEX = "s3://bucket/index"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in IngestSettings.model_fields:
        monkeypatch.delenv(f"ATHENAEUM_{name.upper()}", raising=False)
    monkeypatch.setenv("ATHENAEUM_LIBRARY_S3_URI", LIBRARY)
    monkeypatch.setenv("ATHENAEUM_INDEX_S3_URI", INDEX)
    get_ingest_settings.cache_clear()
    yield monkeypatch
    get_ingest_settings.cache_clear()


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [f for f in IngestSettings.model_fields if f"`ATHENAEUM_{f.upper()}`" not in text]
    assert missing == []


def test_defaults_and_caching() -> None:
    settings = get_ingest_settings()
    assert (settings.library_s3_uri, settings.index_s3_uri) == (LIBRARY, INDEX)
    assert settings.ingest_work_dir == DEFAULT_WORK_DIR == Path("/tmp/athenaeum-ingest")
    assert settings.ingest_passwords_secret is None and settings.ingest_queue_url is None
    assert settings.max_pages == DEFAULT_MAX_PAGES
    assert settings.ingest_keep_versions == KEEP_VERSIONS
    assert get_ingest_settings() is settings


def test_values_from_the_environment(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environment.setenv("ATHENAEUM_INGEST_WORK_DIR", f" {tmp_path} ")
    environment.setenv("ATHENAEUM_INGEST_PASSWORDS_SECRET", "athenaeum/pdf-passwords")
    environment.setenv("ATHENAEUM_INGEST_MAX_PAGES", "0")
    environment.setenv("ATHENAEUM_INGEST_QUEUE_URL", "https://sqs.test/1/q")
    environment.setenv("ATHENAEUM_INGEST_KEEP_VERSIONS", "2")
    settings = get_ingest_settings()
    assert settings.ingest_work_dir == tmp_path
    assert settings.ingest_passwords_secret == "athenaeum/pdf-passwords"
    assert settings.max_pages is None  # 0: no limit
    assert settings.ingest_queue_url == "https://sqs.test/1/q"
    assert settings.ingest_keep_versions == 2


def test_an_empty_variable_is_unset(environment: pytest.MonkeyPatch) -> None:
    for name in ("WORK_DIR", "PASSWORDS_SECRET", "MAX_PAGES", "QUEUE_URL", "KEEP_VERSIONS"):
        environment.setenv(f"ATHENAEUM_INGEST_{name}", "  ")
    settings = get_ingest_settings()
    assert settings.ingest_work_dir == DEFAULT_WORK_DIR
    assert settings.ingest_passwords_secret is None and settings.ingest_queue_url is None
    assert settings.max_pages == DEFAULT_MAX_PAGES
    assert settings.ingest_keep_versions == KEEP_VERSIONS


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LIBRARY_S3_URI", "", "ATHENAEUM_LIBRARY_S3_URI: Field required"),
        ("INDEX_S3_URI", "bucket/index", "ATHENAEUM_INDEX_S3_URI: .*s3://bucket/prefix"),
        ("INGEST_MAX_PAGES", "-1", "ATHENAEUM_INGEST_MAX_PAGES: .*greater than or equal to 0"),
        ("INGEST_MAX_PAGES", "many", "ATHENAEUM_INGEST_MAX_PAGES: .*integer"),
        ("INGEST_KEEP_VERSIONS", "0", "ATHENAEUM_INGEST_KEEP_VERSIONS: .*greater than or equal"),
    ],
)
def test_a_bad_value_names_the_variable(
    environment: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    environment.setenv(f"ATHENAEUM_{name}", value)
    with pytest.raises(IngestSettingsError, match=message):
        get_ingest_settings()
    # Not cached: the next invocation reads the environment again.
    environment.setenv(
        f"ATHENAEUM_{name}", {"LIBRARY_S3_URI": LIBRARY, "INDEX_S3_URI": INDEX}.get(name, "3")
    )
    assert get_ingest_settings()
