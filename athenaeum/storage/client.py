"""The one place an S3 client is made, in the two shapes the code needs."""

from __future__ import annotations

from typing import Any

from athenaeum.errors import MissingDependencyError


def s3_client(endpoint_url: str | None = None, *, transfer_workers: int | None = None) -> Any:
    """A boto3 S3 client. The endpoint, when None, is boto3's own (AWS_ENDPOINT_URL).

    By default tuned for serving: short timeouts and few retries, because a cold start that
    waits a minute on an unreachable bucket is worse than a quick 503 that the next request
    retries. With `transfer_workers`, tuned for bulk transfers (push, ingest uploads, deploy):
    more retries, longer timeouts and a connection per worker."""
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - boto3 is in the dev group and on Lambda
        raise MissingDependencyError("boto3", "s3") from exc
    if transfer_workers is None:
        config = Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            signature_version="s3v4",  # presigned source links: SigV4, which every region takes
        )
    else:
        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=transfer_workers * 2,
        )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)
