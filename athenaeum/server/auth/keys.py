"""Static API keys: held only as sha256 digests, compared in constant time, and refused when
they look like placeholders."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable

from athenaeum.errors import AuthenticationError
from athenaeum.server.auth.principal import Principal, check_scopes

logger = logging.getLogger(__name__)

_HASH_PREFIX = "sha256:"
_MIN_API_KEY_LENGTH = 16
_MIN_DISTINCT_CHARS = 8
_PLACEHOLDER_MARKERS = (
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "replaceme",
    "replace-me",
    "replace_me",
    "yourapikey",
    "your-api-key",
    "your_api_key",
    "example",
    "secret",
    "password",
    "dummy",
    "insecure",
    "xxxxxxxx",
)
_PLACEHOLDER_WORDS = (
    "changeme",
    "secret",
    "password",
    "test",
    "apikey",
    "api-key",
    "api_key",
    "admin",
    "default",
    "example",
    "token",
)
_PLACEHOLDER_DIGESTS = frozenset(hashlib.sha256(w.encode()).hexdigest() for w in _PLACEHOLDER_WORDS)


def _check_api_key_strength(key: str) -> None:
    # The message never repeats the key: it may be a real key with a typo.
    if len(key) < _MIN_API_KEY_LENGTH:
        raise ValueError(f"API keys must be at least {_MIN_API_KEY_LENGTH} characters long")
    if any(c.isspace() for c in key) or not key.isprintable():
        raise ValueError("API keys must not contain whitespace or control characters")
    lowered = key.lower()
    if any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
        raise ValueError("this API key looks like a placeholder; generate a random one")
    if len(set(key)) < _MIN_DISTINCT_CHARS:
        raise ValueError("this API key is too repetitive; generate a random one")


def _digest(key: str) -> bytes:
    # sha256 without salt or stretching is enough for keys that are long and random (enforced
    # above); a slow hash would make every request a CPU sink for whoever sends bad keys.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def hash_api_key(key: str) -> str:
    """The `sha256:<hex>` form of an API key, for settings files; refuses placeholder keys."""
    _check_api_key_strength(key)
    return _HASH_PREFIX + _digest(key).hex()


class APIKeyStore:
    """Static API keys, held only as sha256 digests and compared in constant time.

    Each entry is `sha256:<64 hex>` or a plain key, which is hashed here and not kept.
    """

    def __init__(self, keys: Iterable[str], *, scopes: Iterable[str] = ()) -> None:
        digests: list[bytes] = []
        for entry in keys:
            if entry.lower().startswith(_HASH_PREFIX):
                hexdigest = entry[len(_HASH_PREFIX) :].strip().lower()
                if not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
                    raise ValueError("a hashed API key must be 'sha256:' followed by 64 hex digits")
                if hexdigest in _PLACEHOLDER_DIGESTS:
                    raise ValueError("a configured API key hash is the hash of a placeholder key")
                digests.append(bytes.fromhex(hexdigest))
            else:
                _check_api_key_strength(entry)
                digests.append(_digest(entry))
        if not digests:
            raise ValueError("no API keys configured")
        self._digests = tuple(digests)
        self._scopes = frozenset(check_scopes(scopes))

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"APIKeyStore({len(self._digests)} key(s))"

    def _match(self, key: str) -> bytes | None:
        presented = _digest(key)
        matched: bytes | None = None
        # Every entry is compared, with no early exit, so timing does not reveal which (or
        # whether an early) entry matched.
        for digest in self._digests:
            if hmac.compare_digest(presented, digest):
                matched = digest
        return matched

    def verify(self, key: str | None) -> bool:
        if not key:
            return False
        return self._match(key) is not None

    def authenticate(self, key: str | None) -> Principal:
        """A principal for a valid key, else AuthenticationError (never echoing the key)."""
        digest = self._match(key) if key else None
        if digest is None:
            logger.info("rejected API key")
            raise AuthenticationError("the API key is not valid")
        # A short digest prefix tells operators which key was used without revealing it.
        return Principal(
            subject=f"api-key:{digest.hex()[:12]}",
            scopes=self._scopes,
            client_id=None,
            issuer="api-key",
            audience=(),
            expires_at=None,
        )
