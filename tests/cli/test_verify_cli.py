"""`athenaeum verify`: full verification of a bundle, recorded so that loading it is fast."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from athenaeum.bundle import VERIFICATION_FILE, load_bundle
from athenaeum.cli.main import app


def test_verify_records_an_intact_copy_and_refuses_a_damaged_one(
    scifact_bundle: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copied-by-hand"
    shutil.copytree(scifact_bundle, copy)
    assert not load_bundle(copy).verification.by_record  # new inodes: hashed at every load

    result = CliRunner().invoke(app, ["verify", str(copy)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "intact" in output and "300 chunks" in output and VERIFICATION_FILE in output
    assert load_bundle(copy).verification.by_record

    (copy / VERIFICATION_FILE).unlink()
    (copy / "bm25.npz").write_bytes(b"truncated")
    result = CliRunner().invoke(app, ["verify", str(copy)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "bm25.npz has 9 bytes" in " ".join(result.output.split())
    assert not (copy / VERIFICATION_FILE).exists()
