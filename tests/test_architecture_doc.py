"""docs/architecture.md against the code: its package table names every module, every path it
names exists, and its function asset and layers are the ones infra/staging.py and pyproject.toml
enforce. A module added, moved or removed without the page fails here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from infra import staging

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()
PACKAGE = ROOT / "athenaeum"


def table_rows() -> dict[str, str]:
    """The package table: its first cell (a path in backticks) to the whole row."""
    rows = {}
    for line in DOC.splitlines():
        match = re.match(r"\| `([^`]+)` \| [^|]+ \| (.+) \|$", line)
        if match and ("/" in match.group(1) or match.group(1).endswith(".py")):
            rows[match.group(1)] = match.group(2)
    return rows


def named(row: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", row))


def modules(folder: Path) -> set[str]:
    """Every module and subpackage below `folder`, as the page names them: `name` for a module,
    `name/` for a subpackage (whose modules are named by their own names)."""
    found = set()
    for path in folder.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        if path.name == "__init__.py":
            if path.parent != folder:
                found.add(f"{path.parent.name}/")
        else:
            found.add(path.stem)
    return found


def packages() -> list[Path]:
    return sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def test_the_table_has_a_row_for_every_package() -> None:
    rows = table_rows()
    expected = {f"athenaeum/{p.name}/" for p in packages()} | {"athenaeum/errors.py"}
    assert expected <= set(rows), f"packages without a row: {sorted(expected - set(rows))}"
    top_level = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py"}
    assert top_level == {"errors.py"}, "a top-level module needs its row in the package table"


@pytest.mark.parametrize("package", [p.name for p in packages()])
def test_each_package_row_names_every_module(package: str) -> None:
    row = table_rows()[f"athenaeum/{package}/"]
    missing = modules(PACKAGE / package) - named(row)
    assert not missing, f"athenaeum/{package}/ row in docs/architecture.md lacks {sorted(missing)}"


def test_the_infra_row_names_every_module_and_concern() -> None:
    infra = ROOT / "infra"
    row = table_rows()["infra/"]
    expected = {p.stem for p in infra.glob("*.py")} - {"__init__"}
    expected |= {f"{p.name}/" for p in infra.iterdir() if (p / "__init__.py").is_file()}
    missing = expected - named(row)
    assert not missing, f"infra/ row in docs/architecture.md lacks {sorted(missing)}"


def test_the_layer_row_names_every_file() -> None:
    row = table_rows()["layer/"]
    files = {p.name for p in (ROOT / "layer").iterdir() if p.is_file()}
    assert files <= named(row), f"layer/ row lacks {sorted(files - named(row))}"


def test_every_path_the_page_names_exists() -> None:
    paths = {
        name
        for name in re.findall(r"`([^`\s<>]+)`", DOC)
        if re.match(r"(athenaeum|infra|layer|tests|benchmarks|docs)/", name)
    }
    assert paths, "the page names no paths: the pattern above is wrong"
    missing = sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_function_asset_is_what_staging_stages() -> None:
    match = re.search(
        r"The function's code asset holds only the serve half: (.+?)\(`infra", DOC, re.S
    )
    assert match, "the paragraph on the function's code asset is gone"
    listed = {name.removeprefix("athenaeum/") for name in named(match.group(1))}
    staged = set(staging.SERVE_MODULES) | {f"{name}/" for name in staging.SERVE_PACKAGES}
    assert listed == staged


def test_the_layers_table_is_the_import_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    table = re.findall(r"^\| (\d+) \| (.+) \|$", DOC, re.M)
    documented = [sorted(named(cells)) for _, cells in table]
    assert documented == [sorted(layer.replace(" ", "").split("|")) for layer in layers]
