"""A bucket on a local S3 (moto) for the storage layer's tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from athenaeum.storage.client import s3_client
from athenaeum.storage.location import S3Location


@dataclass
class Bucket:
    client: Any  # boto3 S3
    bucket: str

    @property
    def index(self) -> S3Location:
        """Where the tests publish an index."""
        return S3Location(self.bucket, "index")


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> Iterator[Bucket]:
    client = s3_client(moto_endpoint)
    name = f"storage-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield Bucket(client, name)
