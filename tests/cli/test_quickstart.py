"""The README's first command: ./quickstart.sh sets up and runs convert, index and search on the
bundled sample library."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_finds_the_answer_in_the_sample_library() -> None:
    shutil.rmtree(ROOT / ".athenaeum" / "sample", ignore_errors=True)
    result = subprocess.run(
        ["bash", "quickstart.sh", "What do I do when a page has no text layer?"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "3 converted (5 pages), 0 skipped, 0 failed" in out
    # the first hit is the troubleshooting note's section on scanned pages, with its page
    first = out[out.index("1. ") :].splitlines()
    assert "troubleshooting.pdf, p. 1" in first[0]
    assert "A page has no text layer" in first[1]
    assert "Tesseract" in out
    bundle = ROOT / ".athenaeum" / "sample" / "index" / "manifest.json"
    assert bundle.is_file()
