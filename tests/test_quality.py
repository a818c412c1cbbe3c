"""The linters are part of the test command, so CI fails on a lint or type error."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PYCACHE = shutil.ignore_patterns("__pycache__")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def _imported_modules(package: str) -> set[str]:
    """The modules of `package` that the files mypy checks import: `from package import name`
    counts as `package.name` where that is a module, else as `package`."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["mypy"]
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    assert spec is not None and spec.submodule_search_locations, package
    (folder,) = (Path(p) for p in spec.submodule_search_locations)
    files = [p for f in config["files"] for p in ([ROOT / f] if f.endswith(".py") else [])]
    files += [p for f in config["files"] if not f.endswith(".py") for p in (ROOT / f).rglob("*.py")]
    found: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == package}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == package:
                module = node.module or package
                sub = folder.joinpath(*module.split(".")[1:])
                for alias in node.names:
                    is_module = (sub / alias.name).is_dir() or (sub / f"{alias.name}.py").is_file()
                    found.add(f"{module}.{alias.name}" if is_module else module)
    return found


def test_mypy_follows_every_module_of_a_skipped_package_that_the_code_imports() -> None:
    """pyproject.toml skips aws-cdk-lib's and transformers' modules (checking all of them took
    most of mypy's time) except those the code imports: an import left off that list would be
    checked against Any."""
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["mypy"][
        "overrides"
    ]
    skipped = next(o["module"] for o in overrides if o.get("follow_imports") == "skip")
    followed = set(next(o["module"] for o in overrides if o.get("follow_imports") == "normal"))
    assert skipped == ["aws_cdk.*", "transformers.*"]
    imported = _imported_modules("aws_cdk") | _imported_modules("transformers")
    assert "aws_cdk.aws_lambda" in imported and "aws_cdk" in imported
    assert followed == imported


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint_imports), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _lint_with_imports(tmp_path: Path, added: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """lint-imports over a copy of the package with `added[module path]` appended to each."""
    shutil.copytree(ROOT / "athenaeum", tmp_path / "athenaeum", ignore=_PYCACHE)
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for rel, line in added.items():
        module = tmp_path / "athenaeum" / rel
        module.write_text(module.read_text() + f"\n{line}  # noqa\n")
    return _lint_imports(tmp_path)


def test_import_contracts_catch_a_build_side_import(tmp_path: Path) -> None:
    # The contract must bite: the same package with one serve module importing the build side
    # and one importing typer is refused, naming both.
    result = _lint_with_imports(
        tmp_path,
        {
            "retrieval/engine.py": "from athenaeum.build import chunking",
            "server/http/middleware.py": "import typer",
        },
    )
    assert result.returncode != 0
    assert "athenaeum.retrieval.engine -> athenaeum.build.chunking" in result.stdout
    assert "athenaeum.server.http.middleware -> typer" in result.stdout


def test_the_layers_contract_catches_an_upward_and_a_sideways_import(tmp_path: Path) -> None:
    # The layers must bite too: storage importing the server (upward) and the server importing
    # push (a sibling on its layer), which no other contract forbids, are refused, naming both.
    result = _lint_with_imports(
        tmp_path,
        {
            "storage/location.py": "from athenaeum.server import settings",
            "server/index/provider.py": "from athenaeum.library import push",
        },
    )
    assert result.returncode != 0
    assert "Contracts: 4 kept, 1 broken." in result.stdout
    assert "athenaeum.storage.location -> athenaeum.server.settings" in result.stdout
    assert "athenaeum.server.index.provider -> athenaeum.library.push" in result.stdout


def _s3_clients(source: str) -> list[int]:
    """Lines of `source` that make an S3 client or resource (boto3's or a session's)."""
    import ast

    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"client", "resource"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "s3"
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_storage_layer_makes_s3_clients() -> None:
    assert _s3_clients('import boto3\nboto3.client("s3", endpoint_url=None)\n') == [2]
    sources = [*(ROOT / "athenaeum").rglob("*.py"), *(ROOT / "infra").rglob("*.py")]
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources
        if "storage" not in path.relative_to(ROOT).parts
        for line in _s3_clients(path.read_text())
    ]
    assert not found, f"S3 clients made outside athenaeum/storage: {found}"
    assert _s3_clients((ROOT / "athenaeum" / "storage" / "client.py").read_text())
