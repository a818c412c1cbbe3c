"""Keys that settings name in AWS Secrets Manager instead of holding them: the generating model's
API key, and the secret that signs links to the original files (athenaeum.server.http.sources, which
reads it with `read_secret`). Beside the settings, since the Lambda handler, the app and the
links all read them.

`ATHENAEUM_LLM_API_KEY_SECRET` names the secret (an ARN or a name). Its SecretString is either
the key itself or a JSON object holding the key under one of `KEY_FIELDS`. The key is read once
per process and kept: the Lambda handler reads it at cold start, and the app reads it on the
first request to the generating model if that earlier read failed or never ran.

A failed read (no such secret, access denied, Secrets Manager unreachable) fails closed for the
generating model alone: its requests answer 503 naming the secret and the AWS error code, the
rest of the API keeps working, and the next such request reads again. The key's value is never
logged and never part of an error.

The secret is read by athenaeum.storage.secrets; this module says what it holds and when it is
read.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import SecretStr

from athenaeum.errors import AthenaeumError, LLMKeyUnavailableError, ServiceUnavailableError
from athenaeum.server.settings import Settings, is_placeholder
from athenaeum.storage.secrets import read_secret_string, secret_unavailable

logger = logging.getLogger("athenaeum")

# Looked up in this order in a JSON SecretString.
KEY_FIELDS = ("api_key", "apiKey", "key")


class SecretsManagerKey(SecretStr):
    """A SecretStr whose value is read from Secrets Manager on first use and then kept.

    The chat router takes the key with `get_secret_value()` on each request to the generating
    model, so that is where a failed read becomes a 503 for that request alone, and where the
    next request reads again."""

    def __init__(self, secret_id: str) -> None:
        super().__init__("")
        self.secret_id = secret_id
        self._value: str | None = None

    def get_secret_value(self) -> str:
        # No lock: two concurrent first reads fetch the same value twice, which is harmless.
        if self._value is None:
            self._value = read_llm_key(self.secret_id)
        return self._value

    def __bool__(self) -> bool:
        return True  # configured, even before it is read

    def __len__(self) -> int:
        return len(self.get_secret_value())

    def __eq__(self, other: Any) -> bool:
        # By secret, not by value: comparing or hashing settings must not call AWS.
        return isinstance(other, SecretsManagerKey) and other.secret_id == self.secret_id

    def __hash__(self) -> int:
        return hash(self.secret_id)

    def _display(self) -> str:
        return "**********"


def with_secret_llm_key(settings: Settings) -> Settings:
    """`settings` whose `llm_api_key` is read from the secret that `llm_api_key_secret` names
    (on first use; nothing is read here)."""
    if settings.llm_api_key_secret is None or settings.llm_api_key is not None:
        return settings  # no secret, or already wrapped (the settings refuse key and secret)
    return settings.model_copy(
        update={"llm_api_key": SecretsManagerKey(settings.llm_api_key_secret)}
    )


def preload_llm_key(settings: Settings) -> None:
    """Read the key now (a cold start) rather than on the first request that needs it. A
    failure is logged, not raised: the rest of the API works without the key."""
    key = settings.llm_api_key
    if not isinstance(key, SecretsManagerKey):
        return
    try:
        key.get_secret_value()
    except AthenaeumError as exc:
        logger.warning(json.dumps({"event": "llm_key_unavailable", "message": exc.message}))


def read_llm_key(secret_id: str) -> str:
    """The API key held in the Secrets Manager secret `secret_id` (an ARN or a name)."""
    return read_secret(secret_id)


def read_secret(
    secret_id: str,
    *,
    purpose: str = "the generating model's API key",
    error: type[ServiceUnavailableError] = LLMKeyUnavailableError,
) -> str:
    """The key held in the Secrets Manager secret `secret_id`: its SecretString, or the first
    of `KEY_FIELDS` in it when it is a JSON object; a failed read raises `error`, naming
    `purpose`."""
    event = "llm_key_read" if error is LLMKeyUnavailableError else "secret_read"
    secret_string = read_secret_string(secret_id, purpose=purpose, error=error, event=event)
    return _key_from(secret_id, secret_string, purpose, error)


def _key_from(
    secret_id: str,
    secret_string: str,
    purpose: str,
    error: type[ServiceUnavailableError],
) -> str:
    key = secret_string.strip()
    if key.startswith("{"):
        # Not parsed inside an `except`: a JSONDecodeError holds the whole document, and an
        # exception chained to it would carry the key into any traceback.
        fields = _json_object(key)
        if fields is None:
            raise secret_unavailable(
                secret_id, "its SecretString starts with '{' but is not JSON", purpose, error
            )
        found = [str(fields[f]) for f in KEY_FIELDS if isinstance(fields.get(f), str)]
        if not found:
            names = ", ".join(KEY_FIELDS[:-1]) + f" or {KEY_FIELDS[-1]}"
            raise secret_unavailable(
                secret_id, f"its JSON has no string field named {names}", purpose, error
            )
        key = found[0].strip()
    if is_placeholder(key):
        raise secret_unavailable(secret_id, "it holds an empty or placeholder key", purpose, error)
    return key


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return value
