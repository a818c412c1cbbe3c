"""Assembles the two code assets from the source tree: the API function (the `athenaeum`
package, plus the index when it is packaged) and the authorizer (its handler and the two
modules of `athenaeum` it imports). Their dependencies come from the layer."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "athenaeum"
AUTHORIZER_HANDLER = Path(__file__).resolve().parent / "authorizer" / "handler.py"
# Everything the authorizer imports from the package: the validator and its errors.
AUTHORIZER_MODULES = ("__init__.py", "auth.py", "errors.py")
PACKAGED_INDEX_DIR = "index"

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def stage_function(staging_dir: Path) -> Path:
    target = _fresh(staging_dir / "function")
    shutil.copytree(PACKAGE_DIR, target / "athenaeum", ignore=_IGNORE)
    return target


def add_index(function_dir: Path, index_dir: Path) -> Path:
    target = function_dir / PACKAGED_INDEX_DIR
    shutil.copytree(index_dir, target, ignore=_IGNORE)
    return target


def stage_authorizer(staging_dir: Path) -> Path:
    target = _fresh(staging_dir / "authorizer")
    (target / "athenaeum").mkdir()
    for name in AUTHORIZER_MODULES:
        shutil.copy2(PACKAGE_DIR / name, target / "athenaeum" / name)
    shutil.copy2(AUTHORIZER_HANDLER, target / "handler.py")
    return target
