"""What the build side's tests share: the `athenaeum` command in a fresh interpreter, which
tells what of the embedding stack it imported, and a model folder to change without copying it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

STACK = ("torch", "sentence_transformers", "transformers")

# The `athenaeum` command in a fresh interpreter; its last line says how it exited and which of
# the packages it is given (the embedding stack) the process imported.
CLI = """
import json, sys
from athenaeum.cli.main import main

stack = tuple(json.loads(sys.argv[1]))
sys.argv = ["athenaeum", *sys.argv[2:]]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
loaded = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in stack})
print(json.dumps({"code": code, "loaded": loaded}))
"""


@dataclass
class CliRun:
    code: int
    loaded: list[str]
    output: str  # stdout before the last line


def athenaeum_fresh(*args: str, watch: tuple[str, ...] = STACK) -> CliRun:
    """`athenaeum ARGS` in a fresh interpreter; asserts it succeeded. `loaded` says which of the
    packages in `watch` (the embedding stack) the process imported."""
    proc = subprocess.run(
        [sys.executable, "-c", CLI, json.dumps(watch), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    *output, last = proc.stdout.strip().splitlines()
    answer = json.loads(last)
    assert answer["code"] == 0, proc.stdout + proc.stderr[-3000:]
    return CliRun(answer["code"], answer["loaded"], "\n".join(output))


def linked_copy(source: Path, target: Path) -> Path:
    """`source`'s files as links in `target`, so that one can be replaced without copying the
    model."""
    for path in source.rglob("*"):
        if path.is_file():
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return target
