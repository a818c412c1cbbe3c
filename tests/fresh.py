"""Running a script in a fresh interpreter, for tests that must see a cold process: what it
imports, what it loads at start. The script prints one JSON line last; that is the answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_fresh(
    script: str,
    *args: str,
    python: str = sys.executable,
    flags: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> tuple[Any, str]:
    """Runs `python [flags] -c script args...`; asserts it succeeded and returns the JSON of its
    last stdout line and its stderr."""
    proc = subprocess.run(
        [python, *flags, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr
