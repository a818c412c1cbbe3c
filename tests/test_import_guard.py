"""The serve path must work with the build-side stack made unimportable (DESIGN: serve side)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fresh import run_fresh

FORBIDDEN = [
    "torch",
    "sentence_transformers",
    "transformers",
    "llama_index",
    "pymupdf",
    "fitz",
    "scipy",
    "typer",
]

SCRIPT = """
import importlib.abc, json, sys

FORBIDDEN = set(json.loads(sys.argv[1]))

class Forbid(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ModuleNotFoundError(f"{name} is forbidden on the serve path", name=name)
        return None

sys.meta_path.insert(0, Forbid())

from athenaeum.search import SearchEngine

engine = SearchEngine.load(sys.argv[2])
results = engine.search("0-dimensional biomaterials show inductive properties.", top_k=3)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
print(json.dumps({"results": [r.doc_id for r in results], "forbidden_loaded": loaded}))
"""


def test_serve_path_imports_without_the_build_stack(scifact_bundle: Path) -> None:
    out, _ = run_fresh(SCRIPT, json.dumps(FORBIDDEN), str(scifact_bundle))
    assert out["forbidden_loaded"] == []
    assert len(out["results"]) == 3


def test_the_guard_itself_works() -> None:
    # Without this, a typo in the finder would make the test above pass vacuously.
    probe = SCRIPT.split("from athenaeum.search")[0] + "import torch\n"
    proc = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(FORBIDDEN)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "torch is forbidden on the serve path" in proc.stderr
