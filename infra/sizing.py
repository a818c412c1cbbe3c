"""Where the index goes: packaged with the function when everything fits Lambda's 250 MB
unzipped limit, else in S3 and downloaded to /tmp (ephemeral storage sized from the bundle); or,
with index_backend=s3vectors, in an S3 Vectors index, the function carrying only the bundle's
query side (its manifest and query encoder)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from athenaeum.bundle.format import MANIFEST_FILE

MIB = 1024 * 1024
# Lambda's limit on function code plus all layers, unzipped.
UNZIPPED_LIMIT_BYTES = 250 * MIB
# The size layer/build.sh aims the layer at: it leaves room for the code and a small bundle.
LAYER_GOAL_BYTES = 180 * MIB
MIN_EPHEMERAL_MB = 512
MAX_EPHEMERAL_MB = 10240
# Room in /tmp beyond the bundle: the download is written beside the cache, then renamed.
EPHEMERAL_HEADROOM_MB = 256

# Above this, CloudFormation's copy of the bundle into S3 (CDK's BucketDeployment: one Lambda
# invocation of at most 15 minutes that unzips the asset in its /tmp) is too tight, and
# deploy.sh uploads the bundle itself (context key index_upload).
CDK_UPLOAD_MAX_BYTES = 2 * 1024 * MIB

# The ingest function's /tmp (context key ingest_storage_mb unless set): three copies of the
# bundle (the version it starts from, the version it writes, and room for the files it rewrites
# and uploads) plus a batch of documents with their conversions, and never under 2 GiB.
INGEST_BUNDLE_COPIES = 3
INGEST_BATCH_MB = 1024
MIN_INGEST_STORAGE_MB = 2048


class SizingError(ValueError):
    """The deployment cannot be built at this size; the message says what to do instead."""


class IndexStrategy(StrEnum):
    PACKAGED = "packaged"
    S3 = "s3"
    S3VECTORS = "s3vectors"


@dataclass(frozen=True, slots=True)
class SizePlan:
    layer_bytes: int
    code_bytes: int
    bundle_bytes: int
    strategy: IndexStrategy
    ephemeral_storage_mb: int

    @property
    def packaged_bytes(self) -> int:
        return self.layer_bytes + self.code_bytes + self.bundle_bytes

    def report(self) -> str:
        def mb(n: int) -> str:
            return f"{n / MIB:.1f} MiB"

        where = {
            IndexStrategy.PACKAGED: "packaged with the function",
            IndexStrategy.S3: (
                f"in S3, downloaded to /tmp ({self.ephemeral_storage_mb} MB ephemeral storage)"
            ),
            IndexStrategy.S3VECTORS: (
                "in Amazon S3 Vectors; the function carries the bundle's manifest and query "
                "encoder only"
            ),
        }[self.strategy]
        packaged = "query side" if self.strategy is IndexStrategy.S3VECTORS else "index bundle"
        return (
            f"sizes (unzipped): layer {mb(self.layer_bytes)}, code {mb(self.code_bytes)}, "
            f"{packaged} {mb(self.bundle_bytes)}; total {mb(self.packaged_bytes)} of the "
            f"{mb(UNZIPPED_LIMIT_BYTES)} Lambda limit. Index: {where}."
        )


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bundle_bytes(index_dir: Path) -> int:
    """The bundle's size as its manifest declares it (the files it lists plus the manifest)."""
    manifest_path = index_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise SizingError(
            f"no index bundle at {index_dir} (no {MANIFEST_FILE}); build one with "
            "`uv run athenaeum index ...` or set the context key index_dir"
        )
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
        listed = sum(int(info["bytes"]) for info in manifest["files"].values())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SizingError(f"{manifest_path} is not a valid index manifest: {exc}") from None
    return listed + manifest_path.stat().st_size


def plan(
    *, layer_bytes: int, code_bytes: int, bundle_bytes: int, allow_packaged: bool = True
) -> SizePlan:
    if layer_bytes + code_bytes > UNZIPPED_LIMIT_BYTES:
        raise SizingError(
            f"the dependency layer ({layer_bytes / MIB:.1f} MiB) and function code "
            f"({code_bytes / MIB:.1f} MiB) exceed Lambda's 250 MiB unzipped limit on their own; "
            "rebuild the layer with layer/build.sh (which trims it) and check what it contains"
        )
    if allow_packaged and layer_bytes + code_bytes + bundle_bytes <= UNZIPPED_LIMIT_BYTES:
        return SizePlan(layer_bytes, code_bytes, bundle_bytes, IndexStrategy.PACKAGED, 512)
    needed_mb = math.ceil(bundle_bytes / MIB) + EPHEMERAL_HEADROOM_MB
    if needed_mb > MAX_EPHEMERAL_MB:
        raise SizingError(
            f"the index bundle ({bundle_bytes / MIB:.0f} MiB) does not fit Lambda's "
            f"{MAX_EPHEMERAL_MB} MB of /tmp with {EPHEMERAL_HEADROOM_MB} MB of headroom. "
            "See docs/deployment.md, 'Index size strategies': split the library into several "
            "bundles (one stack per environment), or serve it with `athenaeum serve` on a "
            "machine or container with enough disk"
        )
    return SizePlan(
        layer_bytes,
        code_bytes,
        bundle_bytes,
        IndexStrategy.S3,
        max(MIN_EPHEMERAL_MB, needed_mb),
    )


def plan_s3vectors(*, layer_bytes: int, code_bytes: int, query_side_bytes: int) -> SizePlan:
    """The function with the query side of a bundle whose chunks are in S3 Vectors: it must be
    packaged (there is nothing to download), so it must fit."""
    total = layer_bytes + code_bytes + query_side_bytes
    if total > UNZIPPED_LIMIT_BYTES:
        raise SizingError(
            f"the dependency layer ({layer_bytes / MIB:.1f} MiB), the function code "
            f"({code_bytes / MIB:.1f} MiB) and the bundle's query encoder "
            f"({query_side_bytes / MIB:.1f} MiB) exceed Lambda's 250 MiB unzipped limit; "
            "index with an int8 query encoder (docs/index-format.md) or rebuild the layer with "
            "layer/build.sh (which trims it)"
        )
    return SizePlan(
        layer_bytes,
        code_bytes,
        query_side_bytes,
        IndexStrategy.S3VECTORS,
        MIN_EPHEMERAL_MB,
    )


def ingest_storage_mb(bundle_bytes: int) -> int:
    """The ingest function's /tmp for a bundle of `bundle_bytes`, before Lambda's 10 GB cap."""
    needed = INGEST_BUNDLE_COPIES * math.ceil(bundle_bytes / MIB) + INGEST_BATCH_MB
    return max(MIN_INGEST_STORAGE_MB, needed)


def check_ingest_fits(*, layer_bytes: int, code_bytes: int) -> None:
    """The ingest function's layer and code against Lambda's 250 MiB unzipped limit."""
    if layer_bytes + code_bytes > UNZIPPED_LIMIT_BYTES:
        raise SizingError(
            f"the ingest layer ({layer_bytes / MIB:.1f} MiB) and its code "
            f"({code_bytes / MIB:.1f} MiB) exceed Lambda's 250 MiB unzipped limit; rebuild it "
            "with `layer/build.sh --profile ingest` (which trims it) and check what it contains"
        )
