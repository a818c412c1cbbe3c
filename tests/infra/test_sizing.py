"""Where the index goes (infra/sizing.py): packaged when everything fits Lambda's 250 MB, else
in S3 with ephemeral storage sized from the bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.sizing import MIB, IndexStrategy, SizingError, bundle_bytes, plan, plan_s3vectors
from tests.infra.helpers import make_bundle


def test_plan_boundaries() -> None:
    fits = plan(layer_bytes=180 * MIB, code_bytes=MIB, bundle_bytes=69 * MIB)
    assert fits.strategy is IndexStrategy.PACKAGED
    over = plan(layer_bytes=180 * MIB, code_bytes=MIB, bundle_bytes=69 * MIB + 1)
    assert over.strategy is IndexStrategy.S3 and over.ephemeral_storage_mb == 512
    with pytest.raises(SizingError, match="layer"):
        plan(layer_bytes=250 * MIB, code_bytes=MIB, bundle_bytes=0)


def test_ephemeral_storage_is_the_bundle_and_headroom(tmp_path: Path) -> None:
    # 300 MiB declared (+ the manifest) rounds up to 301 MiB, plus 256 MiB of headroom.
    size = bundle_bytes(make_bundle(tmp_path, declared_bytes=300 * MIB))
    assert plan(layer_bytes=MIB, code_bytes=MIB, bundle_bytes=size).ephemeral_storage_mb == 557


def test_bundle_over_ten_gb_points_to_alternatives() -> None:
    with pytest.raises(SizingError, match=r"docs/deployment\.md"):
        plan(layer_bytes=MIB, code_bytes=MIB, bundle_bytes=10 * 1024 * MIB)


def test_with_s3_vectors_the_query_side_is_packaged_and_must_fit() -> None:
    fits = plan_s3vectors(layer_bytes=180 * MIB, code_bytes=MIB, query_side_bytes=23 * MIB)
    assert fits.strategy is IndexStrategy.S3VECTORS and fits.ephemeral_storage_mb == 512
    assert "query side 23.0 MiB" in fits.report() and "Amazon S3 Vectors" in fits.report()
    # An fp32 encoder beside a full layer does not fit, and nothing can be downloaded instead.
    with pytest.raises(SizingError, match="int8 query encoder"):
        plan_s3vectors(layer_bytes=180 * MIB, code_bytes=MIB, query_side_bytes=90 * MIB)
