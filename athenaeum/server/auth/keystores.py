"""Where `athenaeum keys` keeps the key set, and how the server reads it back: a local file that
`athenaeum serve` finds with no flag, or a Secrets Manager secret the AWS stack creates (KMS
encrypted) and its TOKEN authorizer reads.

Both are updated the same way: read the set, change it, write it back, and start again when
another writer came between (a file lock locally; a check of the replaced version in Secrets
Manager, which has no conditional write).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from athenaeum.errors import AuthUnavailableError, InvalidInputError
from athenaeum.server.auth.keyring import KeyRecord, LiveKeyRing, dump_keyset, parse_keyset

KEYS_FILE_NAME = "api-keys.json"
# Writers that keep coming between a read and a write: give up after this many tries.
_WRITE_ATTEMPTS = 5


def default_keys_file() -> Path:
    """`$XDG_CONFIG_HOME/athenaeum/api-keys.json`, else `~/.config/athenaeum/api-keys.json`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "athenaeum" / KEYS_FILE_NAME


Change = Callable[[list[KeyRecord]], list[KeyRecord]]


class KeyStore(Protocol):
    origin: str

    def read(self) -> str | None: ...

    def records(self) -> list[KeyRecord]: ...

    def update(self, change: Change) -> list[KeyRecord]: ...


class FileKeyStore:
    """The key set in a local JSON file, readable by its owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self.origin = str(self.path)

    def read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def signature(self) -> object:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def records(self) -> list[KeyRecord]:
        text = self.read()
        return [] if text is None else _parsed(text, self.origin)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(self.path.name + ".lock")
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def update(self, change: Change) -> list[KeyRecord]:
        with self._locked():
            records = change(self.records())
            _write_private(self.path, dump_keyset(records))
            return records


def _write_private(path: Path, text: str) -> None:
    # A new file, readable by its owner only, renamed over the old one: a reader sees the old
    # set or the new, never half of one.
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        temporary.chmod(0o600)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class SecretKeyStore:
    """The key set in a Secrets Manager secret (its ARN or name)."""

    def __init__(self, secret_id: str) -> None:
        self.secret_id = secret_id
        self.origin = f"the Secrets Manager secret {secret_id}"

    def _version(self) -> tuple[str | None, str | None]:
        from athenaeum.storage.secrets import read_secret_version

        found = read_secret_version(
            self.secret_id, purpose="the API keys", error=AuthUnavailableError
        )
        return found.text, found.version_id

    def read(self) -> str | None:
        return self._version()[0]

    def records(self) -> list[KeyRecord]:
        text = self.read()
        return [] if text is None else _parsed(text, self.origin)

    def update(self, change: Change) -> list[KeyRecord]:
        from athenaeum.storage.secrets import write_secret_version

        for _ in range(_WRITE_ATTEMPTS):
            text, version = self._version()
            records = change([] if text is None else _parsed(text, self.origin))
            if write_secret_version(
                self.secret_id,
                dump_keyset(records),
                replacing=version,
                purpose="the API keys",
                error=AuthUnavailableError,
            ):
                return records
        raise AuthUnavailableError(
            f"{self.origin} kept changing while this command wrote it; run it again"
        )


def _parsed(text: str, origin: str) -> list[KeyRecord]:
    try:
        return parse_keyset(text, origin)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def live_keyring(
    *,
    keys_file: Path | None,
    keys_secret: str | None,
    refresh_s: float,
    extra: Sequence[KeyRecord] = (),
    required_scopes: Sequence[str] = (),
) -> LiveKeyRing | None:
    """The ring the server checks keys against, re-read from its store; None when neither a keys
    file nor a secret is configured."""
    if keys_secret is not None:
        secret = SecretKeyStore(keys_secret)
        return LiveKeyRing(
            secret.read,
            origin=secret.origin,
            refresh_s=refresh_s,
            extra=extra,
            required_scopes=required_scopes,
        )
    if keys_file is not None:
        local = FileKeyStore(keys_file)
        # A file is cheap to look at: its signature is checked every second, and it is read
        # again only when that changed.
        return LiveKeyRing(
            local.read,
            origin=local.origin,
            refresh_s=min(refresh_s, 1.0),
            signature=local.signature,
            extra=extra,
            required_scopes=required_scopes,
        )
    return None
