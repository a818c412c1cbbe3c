"""The real `cdk synth` of deploy.sh's tests, run once for the same inputs in a test run.

A synth is a CDK app in a fresh interpreter and Node (about 10 s); tests that deploy the same
stack in different states of the account (a first deploy, an update) synthesize it alike. The
stub CDK of tests/infra/test_deploy_sh.py calls `synth` below, which keeps the cloud assembly
and what the synth printed, keyed on everything the synth reads: the command's arguments (the
context), cdk.context.json and cdk.json, the CDK's default account and region and the
ATHENAEUM_ settings, the app's source, the layers built in the copy, and every file a context
value names. Any other input runs the synth again."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# What the app reads of the repository it runs in (relative to it): the app, the CDK's settings,
# its code, the layers deploy.sh built there.
_SOURCES = ("app.py", "cdk.json", "cdk.context.json", "infra", "athenaeum", "build")
# The settings the CDK CLI and the app read; a file one names counts by its content (a test's
# stub or absent configuration file lies in that test's own folder).
_ENV_PREFIXES = ("AWS_", "CDK_", "ATHENAEUM_", "JSII_")


def _context_values(args: list[str], repo: Path) -> list[str]:
    values = [arg.split("=", 1)[1] for arg in args if "=" in arg]
    context_file = repo / "cdk.context.json"
    if context_file.is_file():
        loaded = json.loads(context_file.read_text())
        values += [value for value in loaded.values() if isinstance(value, str)]
    return values


def _add_files(digest: Any, path: Path, name: str) -> None:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if "__pycache__" in file.parts:
            continue
        label = name if file == path else f"{name}/{file.relative_to(path).as_posix()}"
        digest.update(f"\0{label}\0{file.stat().st_size}\0".encode())
        digest.update(file.read_bytes())


def _setting(value: str) -> str:
    path = Path(value)
    if not path.is_absolute():
        return value
    if not path.exists():
        return "(absent)"
    digest = hashlib.sha256()
    _add_files(digest, path, "")
    return digest.hexdigest()


def synth_key(args: list[str], repo: Path, env: dict[str, str]) -> str:
    digest = hashlib.sha256()
    settings = {k: _setting(v) for k, v in sorted(env.items()) if k.startswith(_ENV_PREFIXES)}
    digest.update(json.dumps([args, settings]).encode())
    for name in _SOURCES:
        if (repo / name).exists():
            _add_files(digest, repo / name, name)
    for value in _context_values(args, repo):
        path = repo / value  # an absolute value stays absolute
        if value and path.exists() and not path.resolve().is_relative_to(repo.resolve()):
            _add_files(digest, path, str(path.resolve()))
    return digest.hexdigest()[:24]


def synth(
    args: list[str],
    repo: Path,
    env: dict[str, str],
    cache: Path,
    run: Callable[[], subprocess.CompletedProcess[str]],
) -> int:
    """`run()`, the real synth into repo/cdk.out, unless a synth of the same inputs is kept in
    `cache`: then its cdk.out and its output, as it printed them."""
    from filelock import FileLock

    kept = cache / synth_key(args, repo, env)
    out = repo / "cdk.out"
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(kept.with_suffix(".lock")):
        if not (kept / "done").is_file():
            result = run()
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            if result.returncode != 0:
                return result.returncode
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(out, kept / "cdk.out")
            (kept / "stdout").write_text(result.stdout)
            (kept / "stderr").write_text(result.stderr)
            (kept / "done").touch()
            return 0
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(kept / "cdk.out", out)
    sys.stdout.write((kept / "stdout").read_text())
    sys.stderr.write((kept / "stderr").read_text())
    return 0
