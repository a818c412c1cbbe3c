"""Every setting is documented in docs/settings.md, and the settings refuse bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from athenaeum.retrieval.backend import MAX_QUERY_CHARS
from athenaeum.server.settings import Settings, get_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [f for f in Settings.model_fields if f"`ATHENAEUM_{f.upper()}`" not in text]
    assert missing == []


def test_environment_is_read_with_the_prefix_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATHENAEUM_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ATHENAEUM_OAUTH_REQUIRED_SCOPES", "library.read")
    monkeypatch.setenv("ATHENAEUM_MAX_BODY_BYTES", "4096")
    get_settings.cache_clear()
    try:
        s = get_settings()
        assert s.cors_origins == ["https://a.example", "https://b.example"]
        assert s.oauth_required_scopes == ["library.read"]
        assert s.max_body_bytes == 4096
        assert get_settings() is s
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index_s3_uri": "bucket/prefix"}, "s3://"),
        ({"public_base_url": "example.org"}, "http"),
        ({"llm_base_url": "http://x", "llm_model": "m", "llm_api_key": "sk-..."}, "placeholder"),
        ({"llm_base_url": "http://x"}, "all three"),
        ({"oauth_issuer": "https://i", "oauth_audience": "a"}, "all three"),
        ({"api_key_hashes": "sha256:1234"}, "64 hex"),
        ({"max_body_bytes": 10}, "greater than or equal"),
        # Above the retrieval layer's ceiling, a query the server let through would be refused
        # below it with another limit.
        ({"max_query_chars": MAX_QUERY_CHARS + 1}, "less than or equal"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_the_query_limit_may_reach_the_retrieval_ceiling_but_not_pass_it() -> None:
    # With the refusal above: the setting's bound is the retrieval layer's ceiling itself.
    assert Settings(max_query_chars=MAX_QUERY_CHARS).max_query_chars == MAX_QUERY_CHARS


def test_secrets_do_not_show_in_reprs() -> None:
    s = Settings(llm_base_url="http://x", llm_model="m", llm_api_key="real-upstream-key-123")  # type: ignore[arg-type]
    assert "real-upstream-key-123" not in repr(s) and "real-upstream-key-123" not in str(s)
    assert s.public_base_url is None
    assert Settings(public_base_url="https://x.example/prod/").public_base_url == (
        "https://x.example/prod"
    )
    assert (
        Settings(
            oauth_issuer="https://i.example/",
            oauth_audience="a",
            oauth_jwks_url="https://i.example/jwks",
        ).oauth_issuer
        == "https://i.example/"
    )
