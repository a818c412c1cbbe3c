"""Assembles the two code assets from the source tree: the API function (the serve half of the
`athenaeum` package, plus the index when it is packaged) and the authorizer (its handler and the
modules of `athenaeum` it imports). Their dependencies come from the layer."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from athenaeum.bundle import DOCUMENT_ENCODER, VERIFICATION_FILE, verify_bundle

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "athenaeum"
AUTHORIZER_HANDLER = Path(__file__).resolve().parent / "authorizer" / "handler.py"
# The serve half: the bundle contract, retrieval and the server, with the modules they share.
# The build side and the CLI never reach a function (tests/infra/test_artifact.py lists it).
SERVE_MODULES = ("__init__.py", "errors.py")
SERVE_PACKAGES = ("bundle", "retrieval", "server")
# Everything the authorizer imports from the package: the validator, its settings and errors.
AUTHORIZER_MODULES = (
    "__init__.py",
    "errors.py",
    "server/__init__.py",
    "server/auth.py",
    "server/settings.py",
)
PACKAGED_INDEX_DIR = "index"

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def stage_function(staging_dir: Path) -> Path:
    target = _fresh(staging_dir / "function")
    package = target / "athenaeum"
    package.mkdir()
    for name in SERVE_MODULES:
        shutil.copy2(PACKAGE_DIR / name, package / name)
    for name in SERVE_PACKAGES:
        shutil.copytree(PACKAGE_DIR / name, package / name, ignore=_IGNORE)
    return target


def add_index(function_dir: Path, index_dir: Path) -> Path:
    """Copy the bundle into the function's folder and verify the copy in full (every sha256,
    every chunk); raises BundleError for a bundle that fails, so it is refused here rather
    than by the function's first request.

    The copy gets a "read-only package" verification record: Lambda unpacks the function into
    a read-only folder, where the record lets the cold start skip hashing the bundle again
    (athenaeum.bundle.verification). It holds no times, so staging the same bundle twice gives
    the same asset. The document encoder (encoder/document.onnx, build-side only) stays out:
    the function never embeds documents."""
    target = function_dir / PACKAGED_INDEX_DIR
    shutil.copytree(
        index_dir,
        target,
        ignore=shutil.ignore_patterns(
            VERIFICATION_FILE, PurePosixPath(DOCUMENT_ENCODER).name, "__pycache__", "*.pyc"
        ),
    )
    verify_bundle(target, by="athenaeum staging", scope="read-only package")
    return target


def stage_authorizer(staging_dir: Path) -> Path:
    target = _fresh(staging_dir / "authorizer")
    for rel in AUTHORIZER_MODULES:
        dest = target / "athenaeum" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE_DIR / rel, dest)
    shutil.copy2(AUTHORIZER_HANDLER, target / "handler.py")
    return target
