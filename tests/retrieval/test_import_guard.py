"""The serve path must work with the build-side stack made unimportable (docs/architecture.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fresh import FORBID, FORBIDDEN, run_fresh

SCRIPT = (
    FORBID
    + """
from athenaeum.retrieval.engine import SearchEngine

engine = SearchEngine.load(sys.argv[2])
results = engine.search("0-dimensional biomaterials show inductive properties.", top_k=3)
found = [r.chunk.doc_id for r in results]
print(json.dumps({"results": found, "forbidden_loaded": forbidden_loaded()}))
"""
)


def test_serve_path_imports_without_the_build_stack(scifact_bundle: Path) -> None:
    out, _ = run_fresh(SCRIPT, json.dumps(FORBIDDEN), str(scifact_bundle))
    assert out["forbidden_loaded"] == []
    assert len(out["results"]) == 3


@pytest.mark.parametrize("module", ["torch", "rich", "athenaeum.build.chunking", "athenaeum.cli"])
def test_the_guard_itself_works(module: str) -> None:
    # Without this, a typo in the finder would make the tests above pass vacuously.
    proc = subprocess.run(
        [sys.executable, "-c", FORBID + f"import {module}\n", json.dumps(FORBIDDEN)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    refused = next(f for f in FORBIDDEN if module == f or module.startswith(f + "."))
    assert f"{refused} is forbidden on the serve path" in proc.stderr
