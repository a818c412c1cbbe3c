"""A living library on a local S3 (moto): a bucket whose library prefix sends its S3 event
notifications to an SQS queue, as the stack wires it, and helpers that turn the queue's
messages into the event the ingest function receives."""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from athenaeum.storage.client import s3_client
from athenaeum.storage.location import S3Location

REGION = "us-east-1"
_BUCKETS = itertools.count()


@dataclass
class LivingLibrary:
    client: Any  # boto3 S3
    sqs: Any  # boto3 SQS
    bucket: str
    queue_url: str
    queue_arn: str
    endpoint: str

    @property
    def library(self) -> S3Location:
        return S3Location(self.bucket, "library")

    @property
    def index(self) -> S3Location:
        return S3Location(self.bucket, "index")

    def put(self, rel: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, f"library/{rel}")

    def delete(self, rel: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"library/{rel}")

    def library_keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix="library/")
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def drain(self) -> list[dict[str, Any]]:
        """Every message waiting in the queue, as the records of the event Lambda's SQS event
        source hands the function (the messages are deleted, as a successful batch's are)."""
        records: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not got:
                return records
            for message in got:
                records.append(
                    {
                        "messageId": message["MessageId"],
                        "receiptHandle": message["ReceiptHandle"],
                        "body": message["Body"],
                        "attributes": message.get("Attributes", {}),
                        "messageAttributes": {},
                        "md5OfBody": message["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": self.queue_arn,
                        "awsRegion": REGION,
                    }
                )
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3 clients made anywhere (the ingest handler's, Secrets Manager's) reach moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def living(s3_env: str) -> Iterator[LivingLibrary]:
    import boto3  # type: ignore[import-untyped]

    client = s3_client(s3_env)
    sqs = boto3.client("sqs", endpoint_url=s3_env, region_name=REGION)
    bucket = f"living-{next(_BUCKETS)}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=f"{bucket}-ingest")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    client.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "library/"}]}},
                }
            ]
        },
    )
    yield LivingLibrary(client, sqs, bucket, queue_url, queue_arn, s3_env)


class LambdaContext:
    """What the Lambda runtime passes a handler, as far as the handlers read it."""

    def __init__(self, remaining_s: float = 900.0) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "AtheneumStack-Ingest"
        self._remaining_ms = int(remaining_s * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqs_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


def bodies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in records]
