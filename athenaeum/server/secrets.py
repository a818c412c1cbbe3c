"""The generating model's API key, read from AWS Secrets Manager instead of the environment.

`ATHENAEUM_LLM_API_KEY_SECRET` names the secret (an ARN or a name). Its SecretString is either
the key itself or a JSON object holding the key under one of `KEY_FIELDS`. The key is read once
per process and kept: the Lambda handler reads it at cold start, and the app reads it on the
first request to the generating model if that earlier read failed or never ran.

A failed read (no such secret, access denied, Secrets Manager unreachable) fails closed for the
generating model alone: its requests answer 503 naming the secret and the AWS error code, the
rest of the API keeps working, and the next such request reads again. The key's value is never
logged and never part of an error.

The endpoint comes from botocore's own variables, `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or
`AWS_ENDPOINT_URL`), which is how the tests reach a local moto server.

boto3 is imported when a secret is configured (the Lambda runtime has it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import SecretStr

from athenaeum.errors import (
    AthenaeumError,
    LLMKeyUnavailableError,
    MissingDependencyError,
    ServiceUnavailableError,
)
from athenaeum.server.settings import Settings, is_placeholder

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


class _NoSecretBodies(logging.Filter):
    """Drops botocore's DEBUG lines that quote a secret: botocore logs every response body, and
    a Lambda log level of DEBUG would otherwise put the key in CloudWatch."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "SecretString" not in message and "SecretBinary" not in message


_BODY_FILTER = _NoSecretBodies()


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
    secret_string = read_secret_string(secret_id, purpose=purpose, error=error)
    return _key_from(secret_id, secret_string, purpose, error)


def read_secret_string(
    secret_id: str,
    *,
    purpose: str,
    error: type[ServiceUnavailableError] = ServiceUnavailableError,
) -> str:
    """The SecretString of the Secrets Manager secret `secret_id` (an ARN or a name), never
    logged; a failed read raises `error`, naming `purpose` and the AWS error code only."""
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
    except ImportError as exc:  # boto3 is in the Lambda runtime; locally in the s3 extra
        raise MissingDependencyError("boto3", "s3") from exc
    body_log = logging.getLogger("botocore.parsers")
    if _BODY_FILTER not in body_log.filters:
        body_log.addFilter(_BODY_FILTER)
    # Short timeouts and few retries: the read may run inside a request (a retry after a
    # failed cold start), and a quick 503 that the next request retries beats a long wait.
    config = Config(
        connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
    )
    try:
        client = boto3.client("secretsmanager", region_name=_arn_region(secret_id), config=config)
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        # The code only: AWS's message for AccessDenied names the role, which clients see.
        code = exc.response.get("Error", {}).get("Code") or "ClientError"
        raise _unavailable(secret_id, str(code), purpose, error) from exc
    except BotoCoreError as exc:  # unreachable, no credentials, no region
        raise _unavailable(secret_id, type(exc).__name__, purpose, error) from exc
    secret_string = response.get("SecretString")
    if not isinstance(secret_string, str):
        raise _unavailable(
            secret_id, "it has no SecretString; store the value as text", purpose, error
        )
    event = "llm_key_read" if error is LLMKeyUnavailableError else "secret_read"
    logger.info(json.dumps({"event": event, "secret": secret_id}))
    return secret_string


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
            raise _unavailable(
                secret_id, "its SecretString starts with '{' but is not JSON", purpose, error
            )
        found = [str(fields[f]) for f in KEY_FIELDS if isinstance(fields.get(f), str)]
        if not found:
            names = ", ".join(KEY_FIELDS[:-1]) + f" or {KEY_FIELDS[-1]}"
            raise _unavailable(
                secret_id, f"its JSON has no string field named {names}", purpose, error
            )
        key = found[0].strip()
    if is_placeholder(key):
        raise _unavailable(secret_id, "it holds an empty or placeholder key", purpose, error)
    return key


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return value


def _arn_region(secret_id: str) -> str | None:
    # arn:aws:secretsmanager:<region>:<account>:secret:<name>: the secret's own region, which
    # a name cannot give (then the usual AWS_DEFAULT_REGION, which Lambda sets, applies).
    parts = secret_id.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "secretsmanager" and parts[3]:
        return parts[3]
    return None


def _unavailable(
    secret_id: str, reason: str, purpose: str, error: type[ServiceUnavailableError]
) -> ServiceUnavailableError:
    return error(
        f"{purpose} could not be read from the Secrets Manager secret "
        f"{secret_id!r} ({reason}); the next request retries"
    )
