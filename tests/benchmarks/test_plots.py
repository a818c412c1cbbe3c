"""benchmarks/plots.py, run as the docs say, on small synthetic results files written here: every
PNG is drawn and is a real PNG 800 px wide; a missing file skips its plots; a file without a
field a plot reads is refused by name."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import plots
import pytest
import results_json
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _latencies(rng: np.random.Generator, median_ms: float, n: int = 60) -> list[float]:
    return [round(float(x), 4) for x in rng.lognormal(np.log(median_ms), 0.3, n)]


def _summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def _cold_rows(
    rows: list[tuple[str, str, float]], parts: tuple[str, ...], total: str
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    out = []
    for name, role, scale in rows:
        runs = []
        for _ in range(5):
            run = {part: float(scale * rng.uniform(0.05, 0.2)) for part in parts}
            run[total] = sum(run.values()) + 0.02
            run["rss_mb"] = 250.0 * scale
            runs.append(run)
        median = {key: float(np.median([r[key] for r in runs])) for key in runs[0]}
        out.append({"name": name, "role": role, "median": median, "runs": runs})
    return out


def synthetic_results() -> dict[str, dict[str, Any]]:
    """One `results` per file plots.py reads, in the shape the benchmarks write."""
    rng = np.random.default_rng(0)
    cold_start = {
        "index": "/tmp/bundle",
        "chunks": 10704,
        "query": "q",
        "repeat": 5,
        "goal_s": 0.5,
        "rows": _cold_rows(
            [
                ("athenaeum (verified copy)", "athenaeum", 1.0),
                ("baseline: every file hashed", "baseline", 1.4),
                ("before (--before)", "before", 1.5),
                ("LlamaIndex reference", "reference", 30.0),
            ],
            ("imports", "load", "query"),
            "first_answer",
        ),
    }
    packages = {f"package{i}": int(40e6 / (i + 1)) for i in range(15)}
    layer = {
        "sizes": {
            "packages": packages,
            "layer_bytes": sum(packages.values()),
            "bytecode_bytes": 11_000_000,
            "code_bytes": 300_000,
            "bundle_bytes": 58_000_000,
            "limit_bytes": 250 * 1024 * 1024,
            "layer_goal_bytes": 180 * 1024 * 1024,
        },
        "cold_start": {
            "index": "/tmp/bundle",
            "repeat": 5,
            "read_only": True,
            "goal_s": 0.8,
            "rows": [
                {**row, "layer_bytes": 185_000_000}
                for row in _cold_rows(
                    [
                        ("as built, packaged index (record honoured)", "athenaeum", 1.0),
                        ("baseline: every file hashed (VERIFY=full)", "baseline", 1.2),
                        ("baseline: no bytecode", "baseline", 2.0),
                    ],
                    ("import", "health", "first_search"),
                    "total",
                )
            ],
        },
    }
    paths = []
    for name, role, median in [
        ("athenaeum bm25", "athenaeum", 0.06),
        ("athenaeum dense", "athenaeum", 17.0),
        ("athenaeum hybrid", "athenaeum", 12.0),
        ("baseline: sentence-transformers + FAISS", "baseline", 45.0),
    ]:
        ms = _latencies(rng, median)
        paths.append({"name": name, "role": role, "latencies_ms": ms, **_summary(ms)})
    query_latency = {"chunks": 10704, "queries": 60, "top_k": 10, "paths": paths}
    base_ms = _latencies(rng, 5.0)
    phases = []
    for n, (concurrency, seconds) in enumerate([(1, 60), (8, 60), (32, 60), (64, 60), (8, 600)]):
        ms = sorted(_latencies(rng, 8.0 * concurrency, 200))
        phases.append(
            {
                "name": f"concurrency {concurrency}, {seconds} s",
                "concurrency": concurrency,
                "seconds": seconds,
                "soak": n == 4,
                "requests": 200,
                "errors": 6 if concurrency == 64 else 0,
                "rps": 120.0 + 10 * n,
                **_summary(ms),
                "rss_start_mb": 335.0 + n,
                "rss_end_mb": 336.0 + n,
            }
        )
    soak = {
        "top_k": 5,
        "baseline": {"rps": 209.0, "requests": 60, "latencies_ms": base_ms, **_summary(base_ms)},
        "phases": phases,
        "rss_growth_pct": 1.2,
    }
    api_paths = []
    for name, role, median in [
        ("engine.search (no HTTP)", "baseline", 19.0),
        ("uvicorn (athenaeum serve), concurrency 1", "athenaeum", 25.0),
        ("uvicorn (athenaeum serve), concurrency 8", "athenaeum", 117.0),
        ("Mangum handler in-process (Lambda path)", "athenaeum", 26.0),
    ]:
        ms = _latencies(rng, median)
        api_paths.append(
            {"path": name, "role": role, "requests": 60, "rps": 1000 / median, "latencies_ms": ms}
            | _summary(ms)
        )
    api = {"top_k": 5, "facts": {"chunks": 10704}, "paths": api_paths}
    scale_sizes = []
    for chunks in (10_000, 50_000, 100_000, 200_000):
        k = chunks / 100_000
        scale_sizes.append(
            {
                "chunks": chunks,
                "bundle_bytes": int(25e6 + 270e6 * k),
                "rss_after_queries_mb": 200.0 + 350 * k,
                "record": {"median": {"first_answer": 0.6 + 1.5 * k, "rss_mb": 190.0 + 350 * k}},
                "full": {"median": {"first_answer": 0.9 + 3.5 * k, "rss_mb": 200.0 + 430 * k}},
            }
        )
    scale = {
        "repeat": 3,
        "sizes": scale_sizes,
        "fit_over": [100_000, 200_000],
        "fit": {
            "first_answer_record_s": {"intercept": 0.6, "per_100k": 1.5},
            "first_answer_full_s": {"intercept": 0.9, "per_100k": 3.5},
            "rss_record_mb": {"intercept": 190.0, "per_100k": 350.0},
            "rss_full_mb": {"intercept": 200.0, "per_100k": 430.0},
            "rss_after_queries_mb": {"intercept": 200.0, "per_100k": 350.0},
            "bundle_bytes": {"intercept": 25e6, "per_100k": 270e6},
        },
        "limits": {
            "lambda_memory_mb": 10_240,
            "api_gateway_timeout_s": 29.0,
            "package": {"bundle_budget_bytes": 76_500_000},
            "tmp_bytes": 10_468_982_784,
        },
    }
    tables = {
        "kinds": {"ruled": 21, "partly-ruled": 10, "unruled": 3},
        "cases": [],
        "converters": [
            {
                "name": name,
                "role": role,
                "f1": {"overall": f1, "ruled": f1 + 0.1, "partly-ruled": f1 - 0.2, "unruled": None},
                "teds": {"overall": f1, "ruled": f1, "partly-ruled": f1, "unruled": 0.0},
                "text": 0.9,
                "seq_groundtruth": 0.95,
                "pages": 80,
                "seconds": 80 / rate,
                "pages_per_s": rate,
            }
            for name, role, f1, rate in [
                ("athenaeum", "athenaeum", 0.6, 7.0),
                ("PyMuPDF find_tables", "baseline", 0.5, 1.1),
                ("pymupdf4llm", "reference", 0.7, 1.2),
            ]
        ],
    }
    return {
        "tables": tables,
        "cold_start": cold_start,
        "layer": layer,
        "query_latency": query_latency,
        "soak": soak,
        "api": api,
        "scale": scale,
    }


def write_results(
    folder: Path, skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for benchmark, results in synthetic_results().items():
        if benchmark not in skip and (only is None or benchmark in only):
            run = results_json.Run(benchmark, command=["benchmarks/synthetic.py"])
            results_json.write(folder / f"{benchmark}.json", run, results)
            if benchmark == "scale":  # the earlier layout's run, drawn beside it
                results_json.write(folder / plots.SCALE_BEFORE, run, results)


def run_plots(results: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # The command docs/benchmarks.md gives, in a fresh interpreter.
    return subprocess.run(
        [sys.executable, "benchmarks/plots.py", "--results", str(results), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 800, f"{path.name} is {width} px wide"
    assert 250 <= height <= 900, f"{path.name} is {height} px high"
    assert 15_000 < len(data) < 1_000_000, f"{path.name} is {len(data)} bytes"
    with Image.open(path) as image:
        image.load()  # decodes every row: a truncated file raises
        # A picture, not a blank page: at least a few hundred distinct colours.
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24)
        assert colours is not None and len(colours) > 200


def test_every_plot_is_drawn(tmp_path: Path) -> None:
    write_results(tmp_path / "results")
    result = run_plots(tmp_path / "results", tmp_path / "img")
    assert result.returncode == 0, result.stderr
    assert "skipped" not in result.stderr
    drawn = sorted(p.name for p in (tmp_path / "img").iterdir())
    assert drawn == sorted(plot.png for plot in plots.PLOTS)
    for name in drawn:
        assert_png(tmp_path / "img" / name)


def test_a_missing_results_file_skips_only_its_plots(tmp_path: Path) -> None:
    write_results(tmp_path / "results", skip=("layer",))
    result = run_plots(tmp_path / "results", tmp_path / "img")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for png in ("lambda_cold_start.png", "layer_size.png"):
        assert f"skipped {png}: no {tmp_path / 'results' / 'layer.json'}" in result.stderr
        assert not (tmp_path / "img" / png).exists()
    for png in ("cold_start.png", "query_latency.png", "load.png", "api.png"):
        assert_png(tmp_path / "img" / png)


def test_an_empty_results_folder_draws_nothing_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    result = run_plots(tmp_path / "results", tmp_path / "img")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("skipped") == len(plots.PLOTS)


@pytest.mark.parametrize(
    ("benchmark", "path", "field"),
    [
        ("query_latency", ("results", "paths", 0), "latencies_ms"),
        ("cold_start", ("results", "rows", 1, "median"), "first_answer"),
        ("soak", ("results",), "baseline"),
        ("layer", ("results", "sizes"), "packages"),
        ("cold_start", (), "load_average"),
    ],
)
def test_a_file_without_a_field_is_refused_by_name(
    tmp_path: Path, benchmark: str, path: tuple[str | int, ...], field: str
) -> None:
    # In this process (plots.main, what the command runs): a SystemExit with the message. Only
    # the file under test is written, so that no other plot is drawn first.
    write_results(tmp_path / "results", only=(benchmark,))
    source = tmp_path / "results" / f"{benchmark}.json"
    doc = json.loads(source.read_text())
    node = doc
    for key in path:
        node = node[key]
    del node[field]
    source.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as exit_:
        plots.main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "img")])
    message = str(exit_.value.code)
    assert message.startswith(f"plots.py: {source}: ")
    assert repr(field) in message


def test_a_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    write_results(tmp_path / "results", only=("api",))
    source = tmp_path / "results" / "api.json"
    doc = json.loads(source.read_text())
    doc["schema"] = results_json.SCHEMA + 1
    source.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as exit_:
        plots.main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "img")])
    assert f"{source}: schema {results_json.SCHEMA + 1}, plots.py reads" in str(exit_.value.code)


def test_docs_show_every_plot_and_give_the_command_for_each_file() -> None:
    docs = (ROOT / "docs" / "benchmarks.md").read_text()
    shown = set(re.findall(r"!\[[^\]]+\]\(img/([\w.]+\.png)\)\n\*[^*\n]+\*\n", docs))
    assert shown == {plot.png for plot in plots.PLOTS}
    section = docs.split("\n## Plots\n", 1)[1]
    for plot in plots.PLOTS:
        assert f"benchmarks/{plot.benchmark} " in section
        assert f"--json benchmarks/results/{plot.source}" in section
    assert "uv run --group bench python benchmarks/plots.py\n" in section
