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


# What the serve side must never import (docs/architecture.md): the build side, the CLI and
# their stack. lint-imports checks the source; a fresh interpreter with FORBID checks what
# really gets imported at run time, dependencies' own imports included.
FORBIDDEN = (
    "athenaeum.build",
    "athenaeum.cli",
    "torch",
    "sentence_transformers",
    "transformers",
    "llama_index",
    "pymupdf",
    "fitz",
    "scipy",
    "typer",
    "rich",
)

# The first lines of a script for run_fresh: modules named in the JSON list argv[1] cannot be
# imported; `forbidden_loaded()` lists those that are loaded anyway.
FORBID = """
import importlib.abc, json, sys

FORBIDDEN = tuple(json.loads(sys.argv[1]))

def _forbidden(name):
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)

class Forbid(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _forbidden(name):
            raise ModuleNotFoundError(f"{name} is forbidden on the serve path", name=name)
        return None

sys.meta_path.insert(0, Forbid())

def forbidden_loaded():
    return sorted(m for m in sys.modules if _forbidden(m))
"""
