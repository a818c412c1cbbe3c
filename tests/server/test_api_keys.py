"""API keys made by `athenaeum keys`: their shape, the key set file, the ring that checks them,
and the served app reading the set as it changes (the live `athenaeum serve` run is in
test_app.py; the AWS store and authorizer in tests/infra/test_authorizer_keys.py)."""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from athenaeum.cli.main import app as cli_app
from athenaeum.errors import (
    AuthenticationError,
    AuthUnavailableError,
    InsufficientScopeError,
    InvalidInputError,
)
from athenaeum.server.auth import keyring
from athenaeum.server.auth.keyring import (
    KeyRing,
    LiveKeyRing,
    generate_key,
    is_key_shaped,
    new_record,
    parse_keyset,
)
from athenaeum.server.auth.keystores import FileKeyStore, default_keys_file
from athenaeum.server.http.app import create_app
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.local import with_keys_file
from athenaeum.server.settings import Settings
from tests.server.helpers import LOCAL_URL, assert_error

if TYPE_CHECKING:
    from athenaeum.retrieval.engine import SearchEngine

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_keys_have_a_prefix_and_a_checksum_that_scanners_can_test() -> None:
    keys = {generate_key() for _ in range(500)}
    assert len(keys) == 500
    for key in list(keys)[:50]:
        assert key.startswith("ath_") and len(key) == 50 and is_key_shaped(key)
        # One character changed anywhere in the random part breaks the checksum.
        i = 10
        altered = key[:i] + ("A" if key[i] != "A" else "B") + key[i + 1 :]
        assert not is_key_shaped(altered)
    assert not is_key_shaped("ath_short") and not is_key_shaped("x" * 50)


def _ring(*records: keyring.KeyRecord, scopes: tuple[str, ...] = ()) -> KeyRing:
    return KeyRing(records, required_scopes=scopes)


def test_a_key_is_accepted_by_its_hash_and_named_in_the_principal() -> None:
    key, other = generate_key(), generate_key()
    ring = _ring(new_record("ci", key, scopes=["search"], now=NOW), new_record("gpt", other))
    principal = ring.authenticate(other, now=NOW)
    assert principal.subject == "api-key:gpt" and principal.issuer == "api-key"
    assert ring.authenticate(key, now=NOW).scopes == frozenset({"search"})
    with pytest.raises(AuthenticationError, match="not valid") as refused:
        ring.authenticate(generate_key(), now=NOW)
    assert "ath_" not in refused.value.message


def test_every_record_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the number of comparisons (and so the time) is the same for the first
    key, the last, and a wrong one."""
    keys = [generate_key() for _ in range(50)]
    ring = _ring(*(new_record(f"k{n}", k) for n, k in enumerate(keys)))
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(keyring.hmac, "compare_digest", counting)
    counts = []
    for presented in (keys[0], keys[-1], generate_key()):
        calls.clear()
        ring.match(presented)
        counts.append(len(calls))
    assert counts == [50, 50, 50]


def test_an_expired_key_and_a_key_without_the_required_scopes_are_refused() -> None:
    key = generate_key()
    record = new_record("old", key, expires=NOW + timedelta(hours=1), now=NOW)
    assert _ring(record).authenticate(key, now=NOW).expires_at == record.expires
    with pytest.raises(AuthenticationError, match="'old' has expired"):
        _ring(record).authenticate(key, now=NOW + timedelta(hours=1))
    with pytest.raises(InsufficientScopeError, match="--scopes 'search'") as denied:
        _ring(record, scopes=("search",)).authenticate(key, now=NOW)
    assert denied.value.required_scopes == ("search",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "is not JSON"),
        ('{"keys": []}', "not an Athenaeum API key set"),
        ('{"format": "athenaeum-api-keys", "version": 9, "keys": []}', "version 9"),
        ('{"format": "athenaeum-api-keys", "version": 1, "keys": [{"name": "a"}]}', "sha256:"),
        (
            '{"format": "athenaeum-api-keys", "version": 1, "keys": [{"name": "a", "hash": '
            '"sha256:' + "0" * 64 + '", "expires": "2027-01-01"}]}',
            "no time zone",
        ),
    ],
)
def test_a_damaged_key_set_is_refused_with_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        parse_keyset(text, "keys.json")
    assert "keys.json" in str(refused.value)


def test_two_keys_of_one_name_are_refused() -> None:
    record = new_record("same", generate_key()).to_json()
    text = json.dumps({"format": "athenaeum-api-keys", "version": 1, "keys": [record, record]})
    with pytest.raises(ValueError, match="more than one key same"):
        parse_keyset(text, "keys.json")


def test_the_file_is_read_again_when_it_changes_and_fails_closed_when_damaged(
    tmp_path: Path,
) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    clock = [0.0]
    live = LiveKeyRing(
        store.read, origin=store.origin, refresh_s=1.0, signature=store.signature,
        clock=lambda: clock[0],
    )  # fmt: skip
    assert len(live.current()) == 0  # no file yet: no key accepted
    key = generate_key()
    store.update(lambda records: [*records, new_record("a", key)])
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    assert live.cached() is not None and len(live.current()) == 0  # within refresh_s
    clock[0] = 1.5
    assert live.cached() is None
    assert live.current().authenticate(key).subject == "api-key:a"
    (tmp_path / "keys.json").write_text("{ damaged")
    clock[0] = 3.0
    with pytest.raises(AuthUnavailableError):
        live.current()
    # Nothing is served from the last good copy: the next call reads again (and fails again).
    assert live.cached() is None
    with pytest.raises(AuthUnavailableError):
        live.current()


def test_serve_finds_the_default_key_file_and_refuses_a_missing_named_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_keys_file() == tmp_path / "athenaeum" / "api-keys.json"
    assert with_keys_file(Settings()).api_keys_file is None
    FileKeyStore(default_keys_file()).update(lambda records: records)
    found = with_keys_file(Settings())
    assert found.api_keys_file == default_keys_file() and found.auth_configured
    with pytest.raises(InvalidInputError, match="does not exist"):
        with_keys_file(Settings(api_keys_file=tmp_path / "typo.json"))
    with pytest.raises(ValueError, match="not both"):
        Settings(api_keys_file=tmp_path / "a.json", api_keys_secret="keys")


def test_the_app_checks_keys_against_the_file_and_never_logs_them(
    scifact_engine: SearchEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys.json"
    runner = CliRunner()
    made = runner.invoke(cli_app, ["keys", "create", "reader", "--file", str(path)])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    settings = Settings(api_keys_file=path, api_keys_refresh_s=0.05)
    app = create_app(settings, FixedEngineProvider(scifact_engine))
    client = TestClient(app, base_url=LOCAL_URL)
    body = {"query": "vitamin D", "top_k": 1}
    with caplog.at_level(logging.DEBUG):
        assert client.post("/search", json=body, headers=_bearer(key)).status_code == 200
        assert_error(client.post("/search", json=body, headers=_bearer(generate_key())), 401)
        # A JWT-shaped token is refused as a key when no OAuth is configured.
        assert_error(client.post("/search", json=body, headers=_bearer("a.b.c")), 401)
        path.write_text("not json")
        time.sleep(0.1)
        assert_error(
            client.post("/search", json=body, headers=_bearer(key)), 503, "auth_unavailable"
        )
    assert key not in caplog.text and "reader" in (made.stderr or made.output)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_commands_say_what_is_wrong(tmp_path: Path) -> None:
    runner = CliRunner()
    path = str(tmp_path / "k.json")
    cases = [
        (["create", "bad name", "--file", path], "a key name is"),
        (["create", "a", "--expires", "2001-01-01", "--file", path], "in the past"),
        (["create", "a", "--expires", "soon", "--file", path], "not a duration"),
        (["create", "a", "--file", path, "--secret", "s"], "not both"),
        (["revoke", "nobody", "--file", path], "no key named 'nobody'"),
    ]
    for args, says in cases:
        result = runner.invoke(cli_app, ["keys", *args])
        assert result.exit_code == 2, (args, result.output)
        assert says in " ".join(result.output.split()), (args, result.output)
    made = runner.invoke(cli_app, ["keys", "create", "a", "--expires", "30d", "--file", path])
    assert made.exit_code == 0 and is_key_shaped(made.stdout.strip())
    listed = runner.invoke(cli_app, ["keys", "list", "--file", path])
    assert listed.exit_code == 0 and made.stdout.strip() not in listed.output
    assert "a" in listed.output and made.stdout.strip()[-4:] in listed.output
    again = runner.invoke(cli_app, ["keys", "create", "a", "--file", path])
    assert again.exit_code == 2 and "exists" in again.output
