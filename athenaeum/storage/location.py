"""An S3 address: a bucket and a prefix."""

from __future__ import annotations

from dataclasses import dataclass

from athenaeum.errors import BundleError


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str, *, what: str = "the S3 address") -> S3Location:
        """`s3://bucket/prefix` (the prefix may be empty). `what` names the address in the
        error (the setting or option it came from)."""
        rest = uri.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise BundleError(f"{what} {uri!r} names no bucket")
        return cls(bucket, prefix.strip("/"))

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
