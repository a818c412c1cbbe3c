"""API keys made by `athenaeum keys`: their format, the key set that stores their hashes, and the
ring that checks a presented key against it.

A key is `ath_` followed by 40 random base62 characters and a 6-character base62 CRC32 of them,
so that secret scanners can find a leaked one by its shape and tell it from random text by its
checksum. Only the key's sha256 is stored, with its name, scopes, groups (what an access policy
grants collections to), creation and expiry; the name is what logs and the principal show.

The key set is one JSON document (`KEYSET_FORMAT`), kept in a local file (athenaeum serve) or in
a Secrets Manager secret (AWS: the TOKEN authorizer reads it). `LiveKeyRing` re-reads it at most
every few seconds, so a key created or revoked takes effect without a restart, and fails closed:
when the store cannot be read, keys are refused (503) rather than trusted from an old copy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from athenaeum.errors import AuthenticationError, AuthUnavailableError, InsufficientScopeError
from athenaeum.server.auth.groups import check_groups
from athenaeum.server.auth.principal import Principal, check_scopes

logger = logging.getLogger(__name__)

KEY_PREFIX = "ath_"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_CHARS = 40  # log2(62) * 40: 238 bits
_CHECKSUM_CHARS = 6  # 62**6 > 2**32
KEY_PATTERN = re.compile(rf"{KEY_PREFIX}[0-9A-Za-z]{{{_RANDOM_CHARS + _CHECKSUM_CHARS}}}")
KEYSET_FORMAT = "athenaeum-api-keys"
KEYSET_VERSION = 1
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HASH = re.compile(r"sha256:([0-9a-f]{64})")


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_CHARS)


def generate_key() -> str:
    """A new random key: the prefix, 40 base62 characters from the OS's CSPRNG, a checksum."""
    body = "".join(secrets.choice(_BASE62) for _ in range(_RANDOM_CHARS))
    return f"{KEY_PREFIX}{body}{_checksum(body)}"


def is_key_shaped(token: str) -> bool:
    """Whether `token` has the shape of a key this module makes, checksum included (no secret
    is involved: a scanner can run the same test)."""
    if not KEY_PATTERN.fullmatch(token):
        return False
    body = token[len(KEY_PREFIX) : -_CHECKSUM_CHARS]
    return hmac.compare_digest(token[-_CHECKSUM_CHARS:], _checksum(body))


def key_digest(key: str) -> bytes:
    # sha256 without salt or stretching suffices for 238 random bits; a slow hash would make
    # every request with a wrong key a CPU sink.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"a key name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or "
            f"digit; got {name!r}"
        )
    return name


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as stored: never the key itself."""

    name: str
    digest: bytes = field(repr=False)
    scopes: tuple[str, ...] = ()
    created: datetime | None = None
    expires: datetime | None = None
    # The key's last four characters, so that a person can tell which of their keys this is.
    hint: str = ""
    # The groups an access policy grants collections to (athenaeum.server.access).
    groups: tuple[str, ...] = ()

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "hash": "sha256:" + self.digest.hex(),
            "hint": self.hint,
            "scopes": list(self.scopes),
            "groups": list(self.groups),
            "created": _iso(self.created),
            "expires": _iso(self.expires),
        }


def new_record(
    name: str,
    key: str,
    *,
    scopes: Iterable[str] = (),
    groups: Iterable[str] = (),
    expires: datetime | None = None,
    now: datetime | None = None,
) -> KeyRecord:
    return KeyRecord(
        name=check_name(name),
        digest=key_digest(key),
        scopes=check_scopes(scopes),
        groups=check_groups(groups, "groups"),
        created=(now or datetime.now(UTC)).replace(microsecond=0),
        expires=expires,
        hint=key[-4:],
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _moment(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where} must be an ISO 8601 time or null")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where} is not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{where} has no time zone: {value!r}")
    return moment


def parse_keyset(text: str, origin: str) -> list[KeyRecord]:
    """The records of a key set document; ValueError naming `origin` and what is wrong."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{origin} is not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(document, dict) or document.get("format") != KEYSET_FORMAT:
        raise ValueError(f"{origin} is not an Athenaeum API key set (no format {KEYSET_FORMAT!r})")
    if document.get("version") != KEYSET_VERSION:
        raise ValueError(
            f"{origin} has key set version {document.get('version')!r}; this version of "
            f"Athenaeum reads version {KEYSET_VERSION}"
        )
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError(f"{origin} has no list of keys")
    records: list[KeyRecord] = []
    for n, entry in enumerate(entries):
        where = f"{origin}, key {n + 1}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not an object")
        name = entry.get("name")
        hashed = entry.get("hash")
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"{where} has no valid name")
        match = _HASH.fullmatch(hashed) if isinstance(hashed, str) else None
        if match is None:
            raise ValueError(f"{where} ({name}) has no hash of the form sha256:<64 hex digits>")
        scopes = entry.get("scopes") or []
        if not isinstance(scopes, list):
            raise ValueError(f"{where} ({name}): scopes must be a list")
        try:
            checked = check_scopes(scopes)
        except ValueError as exc:
            raise ValueError(f"{where} ({name}): {exc}") from None
        raw_groups = entry.get("groups") or []
        if not isinstance(raw_groups, list):
            raise ValueError(f"{where} ({name}): groups must be a list")
        groups = check_groups(raw_groups, f"{where} ({name})")
        hint = entry.get("hint") or ""
        records.append(
            KeyRecord(
                name=name,
                digest=bytes.fromhex(match.group(1)),
                scopes=checked,
                created=_moment(entry.get("created"), f"{where} ({name}) created"),
                expires=_moment(entry.get("expires"), f"{where} ({name}) expires"),
                hint=hint if isinstance(hint, str) else "",
                groups=groups,
            )
        )
    names = [r.name for r in records]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{origin} names more than one key {', '.join(duplicates)}")
    return records


def dump_keyset(records: Sequence[KeyRecord]) -> str:
    document = {
        "format": KEYSET_FORMAT,
        "version": KEYSET_VERSION,
        "keys": [r.to_json() for r in records],
    }
    return json.dumps(document, indent=2) + "\n"


def empty_keyset() -> str:
    return dump_keyset([])


class KeyRing:
    """A fixed set of key records, and the check of a presented key against all of them."""

    def __init__(
        self, records: Iterable[KeyRecord], *, required_scopes: Iterable[str] = ()
    ) -> None:
        self.records = tuple(records)
        self.required_scopes = check_scopes(required_scopes)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"KeyRing({len(self.records)} key(s))"

    def match(self, key: str) -> KeyRecord | None:
        presented = key_digest(key)
        found: KeyRecord | None = None
        # Every record is compared, with no early exit, so the time taken says nothing about
        # which record (or whether any) matched.
        for record in self.records:
            if hmac.compare_digest(presented, record.digest):
                found = record
        return found

    def authenticate(self, key: str, now: datetime | None = None) -> Principal:
        """The principal of a valid key; AuthenticationError (never echoing the key) or, for a
        valid key without the required scopes, InsufficientScopeError."""
        record = self.match(key)
        if record is None:
            raise AuthenticationError("the API key is not valid")
        moment = now or datetime.now(UTC)
        if record.expired(moment):
            logger.info("refused API key %s: expired at %s", record.name, _iso(record.expires))
            raise AuthenticationError(f"the API key {record.name!r} has expired")
        missing = [s for s in self.required_scopes if s not in record.scopes]
        if missing:
            raise InsufficientScopeError(
                f"the API key {record.name!r} lacks the scope(s) {' '.join(missing)}; create "
                f"one with --scopes {' '.join(self.required_scopes)!r}",
                required_scopes=self.required_scopes,
            )
        return Principal(
            subject=f"api-key:{record.name}",
            scopes=frozenset(record.scopes),
            client_id=None,
            issuer="api-key",
            audience=(),
            expires_at=record.expires,
            groups=record.groups,
        )


@dataclass
class _Loaded:
    ring: KeyRing
    signature: object
    checked_at: float


class LiveKeyRing:
    """A KeyRing read from a store and read again when it may have changed.

    `read` returns the key set's text (None: the store holds no key set yet, which is an empty
    ring) and `signature` something that changes when the store does (None: unknown, so read
    again every `refresh_s`). A failed read raises AuthUnavailableError to the caller: a key
    revoked in a store that cannot be read must not keep working, so nothing is served from a
    copy older than `refresh_s`."""

    def __init__(
        self,
        read: Callable[[], str | None],
        *,
        origin: str,
        refresh_s: float,
        signature: Callable[[], object] | None = None,
        extra: Iterable[KeyRecord] = (),
        required_scopes: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._signature = signature
        self.origin = origin
        self.refresh_s = refresh_s
        self._extra = tuple(extra)
        self._required = check_scopes(required_scopes)
        self._clock = clock
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def cached(self) -> KeyRing | None:
        """The ring, when it was checked within `refresh_s` (no I/O); else None."""
        loaded = self._loaded
        if loaded is not None and self._clock() - loaded.checked_at < self.refresh_s:
            return loaded.ring
        return None

    def current(self) -> KeyRing:
        now = self._clock()
        loaded = self._loaded
        if loaded is not None and now - loaded.checked_at < self.refresh_s:
            return loaded.ring
        with self._lock:
            loaded = self._loaded
            if loaded is not None and self._clock() - loaded.checked_at < self.refresh_s:
                return loaded.ring
            self._loaded = self._load(loaded)
            return self._loaded.ring

    def _load(self, previous: _Loaded | None) -> _Loaded:
        checked_at = self._clock()
        try:
            signature = self._signature() if self._signature is not None else None
            if previous is not None and signature is not None and signature == previous.signature:
                return _Loaded(previous.ring, signature, checked_at)
            text = self._read()
            records = parse_keyset(text, self.origin) if text is not None else []
        except AuthUnavailableError:
            self._loaded = None
            raise
        except (OSError, ValueError) as exc:
            self._loaded = None
            logger.error("API keys unavailable: %s", exc)
            raise AuthUnavailableError(
                f"the API keys could not be read from {self.origin}; the next request retries"
            ) from exc
        ring = KeyRing([*self._extra, *records], required_scopes=self._required)
        if previous is None or ring.records != previous.ring.records:
            logger.info("API keys loaded from %s: %d key(s)", self.origin, len(records))
        return _Loaded(ring, signature, checked_at)
