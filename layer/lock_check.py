"""Refuses a layer folder holding any distribution at a version other than uv.lock's.

    python layer/lock_check.py UV_LOCK FOLDER [FOLDER ...]

Every `*.dist-info` in each folder must name a package that uv.lock pins, at the locked version.
A package the lock does not know, or a version the registry moved on to, fails the build: a
layer never floats with the registry. Standard library only (it runs before the layer exists).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path) -> dict[str, set[str]]:
    with lock.open("rb") as handle:
        data = tomllib.load(handle)
    versions: dict[str, set[str]] = {}
    for package in data.get("package", []):
        if "version" in package:
            versions.setdefault(normalize(package["name"]), set()).add(package["version"])
    return versions


def installed(folder: Path) -> list[tuple[str, str, Path]]:
    found = []
    for dist in sorted(folder.glob("*.dist-info")):
        metadata = (dist / "METADATA").read_text(encoding="utf-8", errors="replace")
        fields = dict(line.split(": ", 1) for line in metadata.splitlines()[:20] if ": " in line)
        found.append((normalize(fields["Name"]), fields["Version"], dist))
    return found


def problems(lock: Path, folders: list[Path]) -> list[str]:
    versions = locked_versions(lock)
    found: list[str] = []
    for folder in folders:
        for name, version, dist in installed(folder):
            if name not in versions:
                found.append(f"{dist.name}: {name} is not in {lock.name}")
            elif version not in versions[name]:
                pinned = ", ".join(sorted(versions[name]))
                found.append(f"{dist.name}: {name} {version}, but {lock.name} pins {pinned}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    lock, folders = Path(argv[0]), [Path(folder) for folder in argv[1:]]
    found = problems(lock, folders)
    for line in found:
        print(f"layer: {line}", file=sys.stderr)
    if found:
        print("layer: the layer must hold exactly the versions in uv.lock", file=sys.stderr)
        return 1
    count = sum(len(installed(folder)) for folder in folders)
    print(f"layer: {count} distributions, each at its uv.lock version")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
