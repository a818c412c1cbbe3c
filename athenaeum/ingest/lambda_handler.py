"""The ingest function's entry point: S3 events (through SQS) in, a new published version out.

    handler = athenaeum.ingest.lambda_handler.handler

The stack sends the library prefix's ObjectCreated and ObjectRemoved events to a queue, and the
queue to this function in batches (reserved concurrency 1: one writer). An event says only that
something changed: each invocation reconciles the whole library with the published index
(athenaeum.ingest.pipeline), so a batch of a hundred uploads is one run, and an event delivered
twice, late or out of order changes nothing more.

Its settings (the library, the published index, the work folder, the passwords secret, the
page limit, its queue, the versions kept) are athenaeum.ingest.settings.IngestSettings, from the
environment; docs/settings.md lists them.

A run that fails raises, so the batch returns to the queue and, after the queue's retries, lands
in its dead-letter queue (which has an alarm). A run that converts part of a large batch before
its time runs out publishes that part and, with a queue URL, sends itself a message to go on.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import unquote_plus

from athenaeum.errors import ServiceUnavailableError
from athenaeum.ingest.settings import get_ingest_settings
from athenaeum.storage.location import S3Location

logger = logging.getLogger("athenaeum.ingest")

# Kept back from the invocation's remaining time: the run stops converting in time to publish
# (athenaeum.ingest.pipeline.PUBLISH_RESERVE_S) and this covers the report and the reply.
DEADLINE_MARGIN_S = 20.0
CONTINUE_MESSAGE = {"athenaeum": "continue"}


class PasswordsUnavailableError(ServiceUnavailableError):
    """The passwords secret could not be read: the run stops rather than publish without them."""


def changed_keys(event: dict[str, Any], library: S3Location) -> tuple[list[str], bool]:
    """The library keys an SQS batch of S3 notifications names, and whether the batch asks for
    a run at all (S3's test event does not; a continuation message does)."""
    prefix = f"{library.prefix}/" if library.prefix else ""
    keys: list[str] = []
    wanted = False
    for record in event.get("Records", []):
        try:
            body = json.loads(record.get("body") or "{}")
        except ValueError:
            logger.warning(json.dumps({"event": "ingest_bad_message"}))
            continue
        if body == CONTINUE_MESSAGE:
            wanted = True
            continue
        if body.get("Event") == "s3:TestEvent":
            continue
        for notice in body.get("Records", []):
            s3 = notice.get("s3", {})
            bucket = s3.get("bucket", {}).get("name")
            key = unquote_plus(str(s3.get("object", {}).get("key", "")))
            if bucket == library.bucket and key.startswith(prefix):
                keys.append(key)
                wanted = True
    return keys, wanted


def read_passwords(secret_id: str) -> list[str]:
    """The passwords in the secret: one per line, or a JSON object's `passwords` list."""
    from athenaeum.storage.secrets import read_secret_string

    text = read_secret_string(
        secret_id,
        purpose="the passwords for encrypted PDFs and Office files",
        error=PasswordsUnavailableError,
    ).strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None  # not re-raised: the error would quote the secret
        listed = value.get("passwords") if isinstance(value, dict) else None
        if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
            raise PasswordsUnavailableError(
                f"the passwords secret {secret_id!r} is JSON without a `passwords` list of "
                'strings; store one password per line, or {"passwords": [...]}'
            )
        return [p for p in listed if p]
    return [line.strip() for line in text.splitlines() if line.strip()]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from athenaeum.ingest.pipeline import ingest
    from athenaeum.storage.client import s3_client
    from athenaeum.storage.published import PublishedIndex

    logging.getLogger("athenaeum").setLevel(logging.INFO)
    settings = get_ingest_settings()
    library = S3Location.parse(settings.library_s3_uri, what="ATHENAEUM_LIBRARY_S3_URI")
    index = S3Location.parse(settings.index_s3_uri, what="ATHENAEUM_INDEX_S3_URI")
    keys, wanted = changed_keys(event, library)
    if not wanted:
        logger.info(json.dumps({"event": "ingest_skipped", "why": "no library change"}))
        return {"published": False, "reason": "no library change"}

    client = s3_client(None)
    if PublishedIndex(index, client).read_pointer() is None:
        # deploy.sh publishes the first version (`athenaeum ingest --from`) after it has put
        # the bundle's documents in the library; their events arrive first and wait for it.
        why = f"{index.uri} has no published version yet; deploy.sh publishes the first one"
        logger.info(json.dumps({"event": "ingest_skipped", "why": why}))
        return {"published": False, "reason": why}
    started = time.monotonic()
    remaining_ms = context.get_remaining_time_in_millis() if context is not None else 900_000
    deadline = started + remaining_ms / 1000 - DEADLINE_MARGIN_S
    secret = settings.ingest_passwords_secret
    passwords = read_passwords(secret) if secret else []
    report = ingest(
        library,
        index,
        client=client,
        work_dir=settings.ingest_work_dir,
        passwords=passwords,
        owner=getattr(context, "aws_request_id", None) or "ingest function",
        deadline=deadline,
        max_pages=settings.max_pages,
        keep_versions=settings.ingest_keep_versions,
    )
    summary = {
        "event": "ingest_done",
        "keys_in_events": len(keys),
        "published": report.published,
        "version": report.version,
        "documents": report.documents_total,
        "added": report.documents_added,
        "changed": report.documents_changed,
        "removed": report.documents_removed,
        "failed": len(report.failed),
        "remaining": len(report.remaining),
        "chunks_embedded": report.chunks_embedded,
        "seconds": round(time.monotonic() - started, 3),
    }
    logger.info(json.dumps(summary))
    queue = settings.ingest_queue_url
    if report.remaining and queue:
        import boto3  # type: ignore[import-untyped]

        boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(CONTINUE_MESSAGE))
    return {k: v for k, v in summary.items() if k != "event"}
