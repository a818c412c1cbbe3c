"""The Lambda artifact: layer size and the cold start of the packaged function under Python 3.12.

Builds the layer with layer/build.sh (unless --no-build), stages the API function with the index
packaged as synth would, and prints:

- sizes, unzipped: the layer by package, the code, the bundle, and the total against Lambda's
  250 MiB limit (whether this bundle could be packaged);
- cold start: fresh `python3.12 -I -S` processes with nothing on sys.path but the layer and the
  function, each importing the handler and answering real API Gateway REST events
  (`/health`, which loads and verifies the bundle, then `/search`, then a second `/search`).
  Medians over --repeat runs, interleaved, for the layer as built (3.12 bytecode for the
  modules the functions import) with the packaged bundle's verification record honoured, and,
  as baselines in the same run: every file hashed at load (ATHENAEUM_INDEX_VERIFY=full, the
  load before verification records), and the same layer with bytecode for every module and
  with no bytecode at all (what a layer built without a 3.12 interpreter costs: Lambda's /opt
  is read-only, so nothing is cached between cold starts).

  On Lambda the function's folder is read-only, which is what lets the load trust the record
  staging wrote. Run as root with `unshare`, each process sees the staged function through a
  read-only bind mount, as Lambda does; otherwise the record is not honoured and every row
  hashes (the table says which).

    uv run python benchmarks/bench_layer.py [--index DIR] [--repeat 5] [--no-build] [--before SRC] \
        [--json PATH]

--before SRC adds a row for the serve half of an earlier checkout's athenaeum package (for
example `git archive <commit> athenaeum | tar -x -C SRC`) with the same layer and bundle.

The default bundle is the SciFact one `athenaeum eval` keeps, else the sample library's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import results_json

from athenaeum.build.evaluation import default_index_dir
from infra import sizing, staging

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "build" / "layer"
EVENT = ROOT / "tests" / "events" / "rest_v1_authorizer.json"
PY312 = ("python3.12", str(Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"))
SCIFACT = default_index_dir(ROOT.parent / "shared" / "data" / "beir" / "scifact")
SAMPLE = ROOT / ".athenaeum" / "sample" / "index"
QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."
# What COLD prints, in seconds but the last.
COLD_COLUMNS = ("import", "health", "first_search", "warm_search", "total", "rss_mb")

COLD = """
import json, sys, time
t0 = time.perf_counter()
sys.path[:0] = sys.argv[1].split(":")
import athenaeum.server.lambda_handler as lh
t1 = time.perf_counter()
base = json.load(open(sys.argv[2]))
def call(path, method, body=None):
    event = dict(base, path=path, httpMethod=method, body=body)
    event["pathParameters"] = {"proxy": path[1:]}
    response = lh.handler(event, None)
    assert response["statusCode"] == 200, response["body"][:300]
    return time.perf_counter()
query = json.dumps({"query": sys.argv[3], "top_k": 5})
t2 = call("/health", "GET")
t3 = call("/search", "POST", query)
t4 = call("/search", "POST", query)
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"import": t1 - t0, "health": t2 - t1, "first_search": t3 - t2,
                  "warm_search": t4 - t3, "total": t3 - t0, "rss_mb": rss / 1024}))
"""


def python312() -> str:
    for candidate in PY312:
        found = shutil.which(candidate)
        if found:
            return found
    sys.exit("needs a Python 3.12 interpreter (uv python install 3.12)")


def mib(n: float) -> str:
    return f"{n / sizing.MIB:.1f} MiB"


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def layer_sizes(layer: Path, function: Path, bundle_bytes: int) -> dict[str, Any]:
    """Bytes, unzipped: every top-level entry of the layer's python/ folder, largest first (a
    package with its dist-info together, its .libs apart), the layer, its bytecode, the
    function's code and the bundle, with Lambda's limit and the layer goal."""
    packages: dict[str, int] = {}
    for child in (layer / "python").iterdir():
        name = child.name.split("-")[0].split(".cpython")[0]
        size = tree_bytes(child) if child.is_dir() else child.stat().st_size
        packages[name] = packages.get(name, 0) + size
    return {
        "packages": dict(sorted(packages.items(), key=lambda kv: -kv[1])),
        "layer_bytes": tree_bytes(layer),
        "bytecode_bytes": sum(p.stat().st_size for p in layer.rglob("*.pyc")),
        "code_bytes": tree_bytes(function) - bundle_bytes,
        "bundle_bytes": bundle_bytes,
        "limit_bytes": sizing.UNZIPPED_LIMIT_BYTES,
        "layer_goal_bytes": sizing.LAYER_GOAL_BYTES,
    }


def size_table(sizes: dict[str, Any]) -> None:
    layer_bytes, code, bundle_bytes = (
        sizes["layer_bytes"],
        sizes["code_bytes"],
        sizes["bundle_bytes"],
    )
    print("\nLayer, unzipped (file bytes, as Lambda counts them)")
    print(f"| {'package':<24} | {'size':>10} |")
    print(f"|{'-' * 26}|{'-' * 12}|")
    for name, size in list(sizes["packages"].items())[:12]:
        print(f"| {name:<24} | {mib(size):>10} |")
    print(f"| {'(3.12 bytecode, in the above)':<24} | {mib(sizes['bytecode_bytes']):>10} |")
    print(f"| {'layer total':<24} | {mib(layer_bytes):>10} |")
    total = layer_bytes + code + bundle_bytes
    verdict = "fits: packaged" if total <= sizing.UNZIPPED_LIMIT_BYTES else "too big: S3"
    print(
        f"\nlayer {mib(layer_bytes)} + code {mib(code)} + bundle {mib(bundle_bytes)} = "
        f"{mib(total)} of {mib(sizing.UNZIPPED_LIMIT_BYTES)} ({verdict}); the layer goal is "
        f"{mib(sizing.LAYER_GOAL_BYTES)}, room left for a packaged bundle: "
        f"{mib(sizing.UNZIPPED_LIMIT_BYTES - layer_bytes - code)}"
    )


def cold_row(
    name: str, role: str, layer_bytes: int, runs: list[dict[str, float]]
) -> dict[str, Any]:
    """A row of the cold-start table: its medians, and each run as COLD printed it."""
    return {
        "name": name,
        "role": role,
        "layer_bytes": layer_bytes,
        "median": {key: statistics.median(r[key] for r in runs) for key in COLD_COLUMNS},
        "runs": runs,
    }


def results(
    sizes: dict[str, Any], index: Path, *, repeat: int, read_only: bool, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """What --json writes: the sizes (every package, not only the table's 12) and the cold start."""
    return {
        "sizes": sizes,
        "cold_start": {
            "index": str(index),
            "repeat": repeat,
            "read_only": read_only,
            "goal_s": 0.8,
            "rows": rows,
        },
    }


def read_only_mount_works(path: Path) -> bool:
    """Whether this process may show `path` read-only to a child (root, with unshare)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"{READ_ONLY.format(path=path)} && touch {path}/probe"],
        capture_output=True,
        check=False,
    )
    return probe.returncode != 0 and b"Read-only" in probe.stderr


READ_ONLY = "mount --bind {path} {path} && mount -o remount,bind,ro {path} {path}"


def cold_run(
    python: str, layer: Path, function: Path, index: Path, *, read_only: bool, verify: str
) -> dict[str, float]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
        "ATHENAEUM_OAUTH_ISSUER": "https://issuer.test/",
        "ATHENAEUM_OAUTH_AUDIENCE": "https://athenaeum.test",
        "ATHENAEUM_OAUTH_JWKS_URL": "https://issuer.test/jwks",
        "ATHENAEUM_INDEX_DIR": str(index),
        "ATHENAEUM_INDEX_VERIFY": verify,
    }
    command = [python, "-I", "-S", "-B", "-c", COLD, f"{layer}:{function}", str(EVENT), QUERY]
    if read_only:
        mount = READ_ONLY.format(path=function)
        command = ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh", *command]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    out: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def function_of(source: Path, function: Path, where: Path) -> Path:
    """A copy of the staged function (its packaged index included) whose code is the serve half
    of the athenaeum package under `source`."""
    target = where / "function"
    shutil.copytree(function, target, symlinks=True)
    package = target / "athenaeum"
    for name in staging.SERVE_MODULES:
        if (source / "athenaeum" / name).is_file():  # an older checkout may lack some
            shutil.copy2(source / "athenaeum" / name, package / name)
    for name in staging.SERVE_PACKAGES:
        shutil.rmtree(package / name)
        shutil.copytree(
            source / "athenaeum" / name,
            package / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-build", action="store_true", help="use build/layer as it is")
    parser.add_argument(
        "--before",
        type=Path,
        help="a folder holding an earlier checkout's athenaeum package: one more row, the same "
        "layer and bundle with that package's serve half as the function's code",
    )
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run_info = results_json.start("layer", __file__, argv)
    index = args.index or next(
        (p for p in (SCIFACT, SAMPLE) if (p / "manifest.json").is_file()), None
    )
    if index is None:
        sys.exit("no index bundle: pass --index, or run ./quickstart.sh first")
    python = python312()
    if not args.no_build:
        subprocess.run([str(ROOT / "layer" / "build.sh")], check=True)
    if not (LAYER / "python").is_dir():
        sys.exit("no built layer at build/layer; run layer/build.sh")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        function = staging.stage_function(tmp / "staging")
        packaged = staging.add_index(function, index)
        sizes = layer_sizes(LAYER, function, sizing.bundle_bytes(index))
        size_table(sizes)

        every = tmp / "every" / "python"
        shutil.copytree(LAYER / "python", every, symlinks=True)
        subprocess.run(
            [
                python,
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                str(every),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        bare = tmp / "bare" / "python"
        shutil.copytree(
            LAYER / "python", bare, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
        read_only = read_only_mount_works(function)
        honoured = "record honoured" if read_only else "writable here: record NOT honoured"
        functions = {"current": function}
        variants = [
            (f"as built, packaged index ({honoured})", LAYER / "python", "auto", "current"),
            ("baseline: every file hashed (VERIFY=full)", LAYER / "python", "full", "current"),
            ("baseline: bytecode for every module", every, "auto", "current"),
            ("baseline: no bytecode", bare, "auto", "current"),
        ]
        if args.before is not None:
            functions["before"] = function_of(args.before, function, tmp / "before")
            variants.append(("before (--before), as built", LAYER / "python", "auto", "before"))
        load_before = os.getloadavg()
        print(
            f"\nCold start of the packaged function, python3.12 -I -S, bundle {index} "
            f"({mib(sizing.bundle_bytes(index))}), median of {args.repeat} fresh processes, "
            f"interleaved; function folder {'read-only' if read_only else 'writable'}"
        )
        print(
            f"| {'layer':<52} | {'size':>9} | {'import':>7} | {'/health':>7} | "
            f"{'1st /search':>11} | {'to 1st answer':>13} | {'warm /search':>12} | {'RSS':>7} |"
        )
        print("|" + "|".join("-" * w for w in (54, 11, 9, 9, 13, 15, 14, 9)) + "|")
        samples: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in variants}
        for _ in range(args.repeat):
            for label, layer, verify, code in variants:
                where = functions[code]
                samples[label].append(
                    cold_run(
                        python,
                        layer,
                        where,
                        where / packaged.relative_to(function),
                        read_only=read_only,
                        verify=verify,
                    )
                )
        medians: dict[str, float] = {}
        rows: list[dict[str, Any]] = []
        for n, (label, layer, _, code) in enumerate(variants):
            role = "athenaeum" if n == 0 else "before" if code == "before" else "baseline"
            row = cold_row(label, role, tree_bytes(layer.parent), samples[label])
            rows.append(row)
            med = row["median"]
            medians[label] = med["total"]
            print(
                f"| {label:<52} | {mib(row['layer_bytes']):>9} | {med['import']:>6.2f}s | "
                f"{med['health']:>6.2f}s | {med['first_search']:>10.2f}s | "
                f"{med['total']:>12.2f}s | {med['warm_search'] * 1000:>9.1f} ms | "
                f"{med['rss_mb']:>4.0f} MB |"
            )
        built, full, every_total, bare_total = (medians[label] for label, *_ in variants[:4])
        print(
            f"\nto the first answer: as built {built:.2f} s (goal <= 0.8 s); every file hashed "
            f"{full / built:.2f}x, every-module bytecode {every_total / built:.2f}x, "
            f"no bytecode {bare_total / built:.2f}x of that"
            + (
                f"; before (--before) {medians[variants[4][0]] / built:.2f}x"
                if len(variants) > 4
                else ""
            )
        )
        print(
            "load average before / after: "
            f"{' '.join(f'{x:.2f}' for x in load_before)} / "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
    results_json.write(
        args.json,
        run_info,
        results(sizes, index, repeat=args.repeat, read_only=read_only, rows=rows),
    )


if __name__ == "__main__":
    main()
