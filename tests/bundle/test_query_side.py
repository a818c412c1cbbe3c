"""The query side of a bundle (athenaeum.bundle.query_side) on the sample bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from athenaeum.bundle import MANIFEST_FILE, read_manifest
from athenaeum.bundle.query_side import copy_query_side, load_query_side, query_side_files
from athenaeum.errors import BundleError


def test_copy_keeps_the_manifest_and_the_query_encoder_only(
    scifact_bundle: Path, tmp_path: Path
) -> None:
    target = copy_query_side(scifact_bundle, tmp_path / "query-side")
    kept = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    manifest = read_manifest(scifact_bundle)
    assert kept == sorted([MANIFEST_FILE, *query_side_files(manifest)])
    assert "encoder/model.onnx" in kept and "encoder/tokenizer.json" in kept
    assert "dense.faiss" not in kept and "chunks.z" not in kept
    assert load_query_side(target).documents == manifest.documents


def test_a_damaged_or_missing_encoder_is_refused_by_name(
    scifact_bundle: Path, tmp_path: Path
) -> None:
    target = copy_query_side(scifact_bundle, tmp_path / "query-side")
    tokenizer = target / "encoder" / "tokenizer.json"
    data = bytearray(tokenizer.read_bytes())
    data[100] ^= 1
    tokenizer.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"encoder/tokenizer.json sha256 mismatch"):
        load_query_side(target)
    tokenizer.unlink()
    with pytest.raises(BundleError, match=r"encoder/tokenizer.json is missing"):
        load_query_side(target)
    with pytest.raises(BundleError, match="does not exist"):
        load_query_side(tmp_path / "nowhere")
