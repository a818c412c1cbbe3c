"""The layer build script and the deploy script's arguments."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from infra.sizing import LAYER_GOAL_BYTES, MIB, UNZIPPED_LIMIT_BYTES

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "layer" / "build.sh"


def requirement_names(file: str = "requirements.txt") -> set[str]:
    lines = (ROOT / "layer" / file).read_text().splitlines()
    return {
        re.split(r"[\[<>=~ ]", line.strip())[0].lower()
        for line in lines
        if line.strip() and not line.startswith("#")
    }


def test_layer_holds_only_the_serve_stack() -> None:
    names = requirement_names()
    assert {"fastapi", "mangum", "onnxruntime", "faiss-cpu", "pyjwt", "numpy"} <= names
    # Build side, and what the Lambda runtime already has.
    assert not names & {"torch", "sentence-transformers", "pymupdf", "typer", "boto3", "tokenizers"}


def test_ingest_layer_holds_the_ingest_stack_without_the_web_or_torch() -> None:
    names = requirement_names("ingest-requirements.txt")
    # tokenizers and pymupdf come without their dependencies (layer/build.sh).
    assert {"numpy", "pydantic", "faiss-cpu", "onnxruntime", "pystemmer", "pyyaml"} <= names
    web_and_torch = {"fastapi", "mangum", "pyjwt", "mcp", "torch", "sentence-transformers"}
    assert not names & (web_and_torch | {"boto3", "tokenizers", "pymupdf", "pymupdf4llm"})
    script = BUILD.read_text()
    assert "no_deps=(tokenizers pymupdf)" in script


def test_build_refuses_an_unknown_profile() -> None:
    result = subprocess.run([str(BUILD), "--profile", "web"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "api or ingest" in result.stderr


def test_build_refuses_an_unknown_architecture() -> None:
    result = subprocess.run([str(BUILD), "--arch", "sparc"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "x86_64 or arm64" in result.stderr


def test_deploy_refuses_unknown_arguments() -> None:
    result = subprocess.run(
        [str(ROOT / "deploy.sh"), "--bogus"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2 and "--help" in result.stderr


@pytest.mark.slow
def test_built_layer_is_trimmed_and_compiled_for_312() -> None:
    target = ROOT / "build" / "layer" / "python"
    if not target.is_dir():
        pytest.skip("no built layer; run layer/build.sh")
    assert not list((target / "onnxruntime" / "capi").glob("libonnxruntime.so*"))
    assert not (target / "numpy" / "_core" / "tests").exists()
    for gone in ("boto3", "google", "jsonschema", "pycparser", "yaml", "numpy/random"):
        assert not (target / gone).exists(), gone
    # Bytecode for what the functions import, written by 3.12, and nothing else.
    pycs = list((target / "fastapi").rglob("*.pyc"))
    assert pycs and all(".cpython-312." in p.name for p in pycs)
    assert (target / "faiss" / "__pycache__").is_dir()
    assert not list((target / "numpy" / "linalg" / "tests").glob("*"))
    # The size Lambda counts (file bytes, unzipped) is within the goal.
    total = sum(p.stat().st_size for p in target.parent.rglob("*") if p.is_file())
    assert total <= LAYER_GOAL_BYTES, f"layer is {total / MIB:.1f} MiB"


@pytest.mark.slow
def test_built_ingest_layer_is_trimmed_and_fits_with_its_code(tmp_path: Path) -> None:
    from infra import staging

    target = ROOT / "build" / "ingest-layer" / "python"
    if not target.is_dir():
        pytest.skip("no built ingest layer; run layer/build.sh --profile ingest")
    for present in ("pymupdf", "onnxruntime", "faiss", "tokenizers", "numpy", "Stemmer"):
        assert list(target.glob(f"{present}*")), present
    # pymupdf's own layout model and pymupdf4llm, which the converter never loads, and the web
    # stack, which the ingest function never runs.
    for gone in ("pymupdf/layout", "pymupdf4llm", "fastapi", "mangum", "jwt", "mcp", "torch"):
        assert not (target / gone).exists(), gone
    pycs = list((target / "pymupdf").rglob("*.pyc"))
    assert pycs and all(".cpython-312." in p.name for p in pycs)
    layer = sum(p.stat().st_size for p in target.parent.rglob("*") if p.is_file())
    code = staging.stage_ingest(tmp_path)
    total = layer + sum(p.stat().st_size for p in code.rglob("*") if p.is_file())
    assert total <= UNZIPPED_LIMIT_BYTES, f"ingest layer and code are {total / MIB:.1f} MiB"


def write_dist(folder: Path, name: str, version: str) -> None:
    dist = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def lock_check(*folders: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "python3",
            str(ROOT / "layer" / "lock_check.py"),
            str(ROOT / "uv.lock"),
            *map(str, folders),
        ],
        capture_output=True,
        text=True,
    )


def test_lock_check_refuses_a_version_the_lock_does_not_pin(tmp_path: Path) -> None:
    import tomllib

    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    botocore = next(p["version"] for p in lock["package"] if p["name"] == "botocore")
    write_dist(tmp_path / "ok", "botocore", botocore)
    assert lock_check(tmp_path / "ok").returncode == 0

    write_dist(tmp_path / "newer", "botocore", "99.0.0")
    result = lock_check(tmp_path / "ok", tmp_path / "newer")
    assert result.returncode == 1
    assert f"botocore 99.0.0, but uv.lock pins {botocore}" in result.stderr

    write_dist(tmp_path / "stranger", "left-pad", "1.0.0")
    result = lock_check(tmp_path / "stranger")
    assert result.returncode == 1 and "left-pad is not in uv.lock" in result.stderr


def test_every_install_into_a_layer_is_checked_against_the_lock() -> None:
    script = BUILD.read_text()
    installs = script.count("uv pip install")
    # Each install pins with a constraints file exported from uv.lock, and the folders it wrote
    # are checked: the layer's own (after both of its installs) and the S3 Vectors model's.
    assert installs == 3
    assert script.count('-c "$constraints"') + script.count('-c "$botocore_constraints"') == 3
    assert script.count("lock_check.py") == 2


@pytest.mark.skipif(
    not (ROOT / "build" / "layer" / "python").is_dir(), reason="no built layer; run layer/build.sh"
)
def test_the_built_layer_holds_the_locked_versions() -> None:
    result = lock_check(ROOT / "build" / "layer" / "python")
    # Whatever the trims left, metadata included, is at its locked version.
    assert result.returncode == 0, result.stderr
