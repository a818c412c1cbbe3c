"""Assembles the code assets from the source tree: the API function (the serve half of the
`athenaeum` package, plus the index when it is packaged, or only its query side when the chunks
are in S3 Vectors), the authorizer (its handler and the
modules of `athenaeum` it imports) and the ingest function (the package without its CLI). Their
dependencies come from the layers."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from athenaeum.bundle import DOCUMENT_ENCODER, VERIFICATION_FILE, verify_bundle
from athenaeum.bundle.query_side import copy_query_side

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "athenaeum"
AUTHORIZER_HANDLER = Path(__file__).resolve().parent / "authorizer" / "handler.py"
# The serve half: the storage layer, the bundle contract, retrieval, the S3 Vectors backend and
# the server, with the modules they share. The build side, ingest and the CLI never reach the API
# function (tests/infra/test_artifact.py lists it).
SERVE_MODULES = ("__init__.py", "errors.py")
SERVE_PACKAGES = ("storage", "bundle", "retrieval", "s3vectors", "server")
# Everything the authorizer imports from the package: the validator, the key ring and its
# Secrets Manager store, the bearer header, the principal, its settings (with the index source
# they check, and the S3 address it parses) and errors (not the middleware and its web stack).
AUTHORIZER_MODULES = (
    "__init__.py",
    "errors.py",
    "server/__init__.py",
    "server/auth/__init__.py",
    "server/auth/bearer.py",
    "server/auth/groups.py",
    "server/auth/jwt.py",
    "server/auth/keyring.py",
    "server/auth/keystores.py",
    "server/auth/principal.py",
    "server/index/__init__.py",
    "server/index/source.py",
    "server/settings.py",
    "storage/__init__.py",
    "storage/location.py",
    "storage/secrets.py",
)
# The ingest function converts, chunks, embeds and writes bundles: the build side, the bundle
# contract and retrieval's encoder and BM25, so the whole package but the CLI, whose typer and
# rich are not in its layer (layer/ingest-requirements.txt).
INGEST_LEFT_OUT = ("cli",)
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
        (package / name).parent.mkdir(parents=True, exist_ok=True)
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


def add_query_side(function_dir: Path, index_dir: Path) -> Path:
    """Copy the query side of the bundle (its manifest and query encoder: what a function
    needs when S3 Vectors holds the chunks) into the function's folder, checked in full;
    raises BundleError for a bundle whose query side fails. Vectors, chunks and BM25 stay out."""
    return copy_query_side(index_dir, function_dir / PACKAGED_INDEX_DIR)


def stage_authorizer(staging_dir: Path) -> Path:
    target = _fresh(staging_dir / "authorizer")
    for rel in AUTHORIZER_MODULES:
        dest = target / "athenaeum" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE_DIR / rel, dest)
    shutil.copy2(AUTHORIZER_HANDLER, target / "handler.py")
    return target


def stage_ingest(staging_dir: Path) -> Path:
    target = _fresh(staging_dir / "ingest")

    def ignore(folder: str, names: list[str]) -> set[str]:
        left_out = set(_IGNORE(folder, names))
        if Path(folder) == PACKAGE_DIR:
            left_out.update(name for name in names if name in INGEST_LEFT_OUT)
        return left_out

    shutil.copytree(PACKAGE_DIR, target / "athenaeum", ignore=ignore)
    return target
