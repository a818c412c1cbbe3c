"""The file a benchmark writes with `--json PATH`: the numbers it printed, the raw samples behind
them (per query, per run), and the conditions of the run (command line, date, commit, CPUs and
the load average at the start and the end). benchmarks/plots.py draws docs/img from these files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Raised when a field plots.py reads is renamed or moved, so that an old file is refused by name.
SCHEMA = 1


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write the numbers, the raw samples behind them and the run's conditions "
        "(command, date, commit, CPUs, load average) to PATH; benchmarks/plots.py draws them",
    )


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or None
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), None)


@dataclass(frozen=True)
class Run:
    """What is known when a benchmark starts: taken before anything is measured."""

    benchmark: str
    command: list[str]
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_start: tuple[float, float, float] = field(default_factory=os.getloadavg)


def start(benchmark: str, script: str, argv: list[str] | None) -> Run:
    """Taken when `script` starts, with the arguments its main() parsed (None: sys.argv's)."""
    path = Path(script).resolve()
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    args = sys.argv[1:] if argv is None else argv
    return Run(benchmark, command=["python", str(shown), *args])


def document(run: Run, results: dict[str, Any]) -> dict[str, Any]:
    """The whole file: the run's conditions around `results`, with the load average now."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "schema": SCHEMA,
        "benchmark": run.benchmark,
        "command": run.command,
        "date": run.started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "load_average": {
            "start": [round(x, 2) for x in run.load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "results": results,
    }


def write(path: Path | None, run: Run, results: dict[str, Any]) -> None:
    """Write the file when --json was given; nothing otherwise."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document(run, results), indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
