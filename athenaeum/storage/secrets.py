"""A Secrets Manager secret's text, read without ever logging it.

The endpoint comes from botocore's own variables, `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or
`AWS_ENDPOINT_URL`), which is how the tests reach a local moto server. boto3 is imported when a
secret is read (the Lambda runtime has it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from athenaeum.errors import MissingDependencyError, ServiceUnavailableError

logger = logging.getLogger("athenaeum")


class _NoSecretBodies(logging.Filter):
    """Drops botocore's DEBUG lines that quote a secret: botocore logs every response body, and
    a Lambda log level of DEBUG would otherwise put the key in CloudWatch."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "SecretString" not in message and "SecretBinary" not in message


_BODY_FILTER = _NoSecretBodies()


def read_secret_string(
    secret_id: str,
    *,
    purpose: str,
    error: type[ServiceUnavailableError] = ServiceUnavailableError,
    event: str = "secret_read",
) -> str:
    """The SecretString of the Secrets Manager secret `secret_id` (an ARN or a name), never
    logged; a failed read raises `error`, naming `purpose` and the AWS error code only. `event`
    names the log line of a successful read."""
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
        raise secret_unavailable(secret_id, str(code), purpose, error) from exc
    except BotoCoreError as exc:  # unreachable, no credentials, no region
        raise secret_unavailable(secret_id, type(exc).__name__, purpose, error) from exc
    secret_string = response.get("SecretString")
    if not isinstance(secret_string, str):
        raise secret_unavailable(
            secret_id, "it has no SecretString; store the value as text", purpose, error
        )
    logger.info(json.dumps({"event": event, "secret": secret_id}))
    return secret_string


def _arn_region(secret_id: str) -> str | None:
    # arn:aws:secretsmanager:<region>:<account>:secret:<name>: the secret's own region, which
    # a name cannot give (then the usual AWS_DEFAULT_REGION, which Lambda sets, applies).
    parts = secret_id.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "secretsmanager" and parts[3]:
        return parts[3]
    return None


def secret_unavailable(
    secret_id: str, reason: str, purpose: str, error: type[ServiceUnavailableError]
) -> ServiceUnavailableError:
    """`error`, saying that `purpose` could not be read from `secret_id` and why."""
    return error(
        f"{purpose} could not be read from the Secrets Manager secret "
        f"{secret_id!r} ({reason}); the next request retries"
    )


def _client(secret_id: str) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # boto3 is in the Lambda runtime; locally in the s3 extra
        raise MissingDependencyError("boto3", "s3") from exc
    body_log = logging.getLogger("botocore.parsers")
    if _BODY_FILTER not in body_log.filters:
        body_log.addFilter(_BODY_FILTER)
    config = Config(
        connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
    )
    return boto3.client("secretsmanager", region_name=_arn_region(secret_id), config=config)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


@dataclass(frozen=True)
class SecretVersion:
    """A secret's current text (None while it has no value yet) and that value's version id."""

    text: str | None
    version_id: str | None


def read_secret_version(
    secret_id: str, *, purpose: str, error: type[ServiceUnavailableError]
) -> SecretVersion:
    """The current value of a secret the stack created without one (it gets its first when a
    command writes it): a secret with no value yet reads as None; a secret that does not exist,
    or cannot be read, raises `error` naming `purpose` and the AWS error code only."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = _client(secret_id)
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = _error_code(exc)
        if code == "ResourceNotFoundException" and _exists(client, secret_id):
            return SecretVersion(None, None)
        raise secret_unavailable(secret_id, code, purpose, error) from exc
    except BotoCoreError as exc:
        raise secret_unavailable(secret_id, type(exc).__name__, purpose, error) from exc
    text = response.get("SecretString")
    if not isinstance(text, str):
        raise secret_unavailable(secret_id, "it has no SecretString", purpose, error)
    return SecretVersion(text, str(response.get("VersionId") or ""))


def _exists(client: Any, secret_id: str) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.describe_secret(SecretId=secret_id)
    except (ClientError, BotoCoreError):
        return False
    return True


def write_secret_version(
    secret_id: str,
    text: str,
    *,
    replacing: str | None,
    purpose: str,
    error: type[ServiceUnavailableError],
) -> bool:
    """Store `text` as the secret's new current value. Secrets Manager has no conditional write,
    so the write is checked after the fact: the value it replaced must be the version `replacing`
    that the caller read (None: the secret had none). False when another writer came between,
    in which case the caller reads again and retries (its write is then superseded)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = _client(secret_id)
    try:
        written = client.put_secret_value(SecretId=secret_id, SecretString=text)["VersionId"]
        versions = client.list_secret_version_ids(SecretId=secret_id, IncludeDeprecated=False)
    except ClientError as exc:
        raise secret_unavailable(secret_id, _error_code(exc), purpose, error) from exc
    except BotoCoreError as exc:
        raise secret_unavailable(secret_id, type(exc).__name__, purpose, error) from exc
    previous = [
        v["VersionId"]
        for v in versions.get("Versions", [])
        if "AWSPREVIOUS" in v.get("VersionStages", []) and v["VersionId"] != written
    ]
    return previous == ([replacing] if replacing else [])
