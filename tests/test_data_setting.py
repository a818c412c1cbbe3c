"""The tests find the evaluation data through one setting, and say so when it is not there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "ATHENAEUM_TEST_DATA")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "0",  # one process: what is checked is the setting, not the workers
            "-p",
            "no:cacheprovider",
            "-rs",
            "tests/build/test_evaluation.py",
            "tests/retrieval/test_citations.py",
        ],
        cwd=ROOT,
        env={**clean, "ATHENAEUM_TEST_DATA": str(tmp_path / "nowhere"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_the_data_tests_that_need_it_skip_with_the_reason(tmp_path: Path) -> None:
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout[-2000:]
    # test_evaluation reads the data and is skipped; test_citations does not, and runs.
    assert "skipped" in result.stdout and "passed" in result.stdout
    assert f"the evaluation data is not at {tmp_path / 'nowhere'}" in result.stdout
    assert "ATHENAEUM_TEST_DATA" in result.stdout


def test_in_ci_missing_data_is_an_error_not_a_green_run(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, CI="true")
    assert result.returncode == 4  # pytest's usage error
    assert "the evaluation data is not at" in result.stderr + result.stdout
