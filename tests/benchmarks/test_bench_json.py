"""Each benchmark's `--json` file holds what benchmarks/plots.py reads: written by the benchmark's
own code and drawn by plots.py. cold start and the API are real runs of a few seconds on the
SciFact slice; query latency runs its lean engine for real with a made-up baseline (the real
one loads torch, ~15 s); soak and the layer, whose real runs take minutes or a built layer, go
through their writers with samples shaped as their measurements."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import bench_api
import bench_cold_start
import bench_layer
import bench_query_latency
import bench_scale
import bench_soak
import plots
import pytest
import results_json
from matplotlib.figure import Figure

from tests.conftest import SCIFACT_DIR


def drawn(path: Path, benchmark: str, script: str) -> dict[str, Any]:
    """Read `path` as plots.py does and draw every plot of it; the document, for more checks."""
    doc = plots.read(path)
    assert doc["benchmark"] == benchmark
    assert doc["command"][:2] == ["python", f"benchmarks/{script}"]
    assert doc["date"] <= doc["finished"]
    assert doc["machine"]["cpus"] == os.cpu_count()
    assert len(doc["load_average"]["start"]) == len(doc["load_average"]["end"]) == 3
    assert doc["commit"] is None or len(doc["commit"]) == 40
    sources = [plot for plot in plots.PLOTS if plot.source == path.name]
    assert sources, f"no plot reads {path.name}"
    for plot in sources:
        assert isinstance(plot.draw(doc), Figure)
    return doc


@pytest.mark.slow
def test_cold_start_json(scifact_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "cold_start.json"
    argv = ["--index", str(scifact_bundle), "--repeat", "1", "--no-reference", "--json", str(out)]
    bench_cold_start.main(argv)
    doc = drawn(out, "cold_start", "bench_cold_start.py")
    assert doc["command"][2:] == argv
    rows = doc["results"]["rows"]
    assert [r["role"] for r in rows] == ["athenaeum", "baseline"]
    for row in rows:
        assert len(row["runs"]) == 1
        assert row["median"] == row["runs"][0]
        assert 0 < row["median"]["imports"] < row["median"]["first_answer"]


@pytest.mark.slow
def test_api_json(scifact_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    bench_api.main(
        [
            "--index",
            str(scifact_bundle),
            "--dataset",
            str(SCIFACT_DIR),
            "--requests",
            "3",
            "--json",
            str(out),
        ]
    )
    paths = drawn(out, "api", "bench_api.py")["results"]["paths"]
    assert [p["role"] for p in paths] == ["baseline", "athenaeum", "athenaeum", "athenaeum"]
    assert all(len(p["latencies_ms"]) == 3 for p in paths)


def test_query_latency_json(scifact_bundle: Path, tmp_path: Path) -> None:
    lean = bench_query_latency.lean_run(scifact_bundle, SCIFACT_DIR, 4)
    baseline_ms = [40.0, 45.5, 44.0, 90.25]
    results = bench_query_latency.results(scifact_bundle, lean, baseline_ms)
    out = tmp_path / "query_latency.json"
    results_json.write(
        out, results_json.start("query_latency", bench_query_latency.__file__, []), results
    )
    doc = drawn(out, "query_latency", "bench_query_latency.py")
    paths = doc["results"]["paths"]
    assert [p["name"] for p in paths] == [
        "athenaeum bm25",
        "athenaeum dense",
        "athenaeum hybrid",
        bench_query_latency.BASELINE,
    ]
    assert all(len(p["latencies_ms"]) == 4 for p in paths)
    assert paths[-1]["p50_ms"] == pytest.approx(44.75)
    # The printed p50/p99 are the ones written, and they come from the latencies written.
    for path in paths[:3]:
        assert min(path["latencies_ms"]) <= path["p50_ms"] <= max(path["latencies_ms"])


def test_soak_json(tmp_path: Path) -> None:
    plan = [(f"concurrency {c}, 1 s", c, 1.0) for c in bench_soak.CONCURRENCY]
    plan.append(("soak: concurrency 8, 2 s", bench_soak.SOAK_CONCURRENCY, 2.0))
    # What phase() returns for each phase, and the server's RSS before and after it.
    rows = [
        (
            name,
            {
                "requests": 100 * c,
                "errors": 0,
                "rps": 90.0,
                "p50_ms": 10.0 * c,
                "p99_ms": 30.0 * c,
                "error_kinds": {},
            },
            300.0,
            310.0 + c,
        )
        for name, c, _ in plan
    ]
    quantiles = [[float(q) * c for q in bench_soak.QUANTILES] for _, c, _ in plan]
    args = argparse.Namespace(index=Path("/bundle"))
    direct = [0.004, 0.005, 0.006, 0.010]
    results = bench_soak.results(args, direct, rows, plan, quantiles)
    out = tmp_path / "soak.json"
    results_json.write(out, results_json.start("soak", bench_soak.__file__, []), results)
    res = drawn(out, "soak", "bench_soak.py")["results"]
    assert [p["concurrency"] for p in res["phases"]] == [1, 8, 32, 64, 8]
    assert [p["soak"] for p in res["phases"]] == [False] * 4 + [True]
    assert res["baseline"]["rps"] == pytest.approx(4 / 0.025)
    assert res["rss_growth_pct"] == pytest.approx((318 - 311) / 311 * 100)


def test_layer_json(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    python = layer / "python"
    for name, size in [
        ("numpy/core.so", 3000),
        ("numpy.libs/blas.so", 2000),
        ("numpy-2.1.dist-info/RECORD", 10),
        ("onnxruntime/capi/ort.so", 4000),
        ("onnxruntime/__pycache__/x.cpython-312.pyc", 50),
        ("typing_extensions.py", 7),
    ]:
        (python / name).parent.mkdir(parents=True, exist_ok=True)
        (python / name).write_bytes(b"x" * size)
    function = tmp_path / "function"
    (function / "index").mkdir(parents=True)
    (function / "handler.py").write_bytes(b"x" * 100)
    (function / "index" / "vectors.npy").write_bytes(b"x" * 900)
    sizes = bench_layer.layer_sizes(layer, function, bundle_bytes=900)
    # Largest first; a package's dist-info counts with it, its .libs apart (as the docs' table).
    assert list(sizes["packages"].items()) == [
        ("onnxruntime", 4050),
        ("numpy", 3010),
        ("numpy.libs", 2000),
        ("typing_extensions.py", 7),
    ]
    assert (sizes["layer_bytes"], sizes["bytecode_bytes"]) == (9067, 50)
    assert (sizes["code_bytes"], sizes["bundle_bytes"]) == (100, 900)

    # What COLD prints per process, for two variants of three runs each.
    def run(scale: float) -> dict[str, float]:
        parts = {"import": 0.4 * scale, "health": 0.15 * scale, "first_search": 0.02 * scale}
        return {**parts, "warm_search": 0.012, "total": sum(parts.values()), "rss_mb": 195.0}

    rows = [
        bench_layer.cold_row("as built", "athenaeum", 9067, [run(1.0), run(1.2), run(0.9)]),
        bench_layer.cold_row("baseline: no bytecode", "baseline", 8000, [run(2.0)] * 3),
    ]
    assert rows[0]["median"]["total"] == pytest.approx(0.57)
    results = bench_layer.results(sizes, Path("/bundle"), repeat=3, read_only=True, rows=rows)
    out = tmp_path / "layer.json"
    results_json.write(out, results_json.start("layer", bench_layer.__file__, []), results)
    cold = drawn(out, "layer", "bench_layer.py")["results"]["cold_start"]
    assert [r["median"]["total"] for r in cold["rows"]] == pytest.approx([0.57, 1.14])


@pytest.mark.slow
def test_scale_json(scifact_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    argv = ["--source", str(scifact_bundle), "--dataset", str(SCIFACT_DIR)]
    argv += ["--sizes", "300,750", "--repeat", "1", "--queries", "2"]
    argv += ["--work", str(tmp_path / "work"), "--json", str(out)]
    bench_scale.main(argv)
    res = drawn(out, "scale", "bench_scale.py")["results"]
    assert not (tmp_path / "work").exists()  # the bundles are gone unless --keep
    sizes = res["sizes"]
    assert [(r["chunks"], r["dense_kind"]) for r in sizes] == [(300, "flat"), (750, "flat")]
    assert sizes[0]["bundle_bytes"] < sizes[1]["bundle_bytes"]
    assert sizes[0]["vocabulary"] < sizes[1]["vocabulary"]
    for row in sizes:
        assert row["files"]["encoder/model.onnx"] < 30e6  # int8, as `athenaeum index` writes
        assert len(row["latency_ms"]["hybrid"]["samples"]) == 2
        for name in ("record", "full"):
            assert len(row[name]["runs"]) == 1
            assert 0 < row[name]["median"]["load"] < row[name]["median"]["first_answer"]
    assert res["fit_over"] == [300, 750]
    assert set(res["extrapolated"]) >= {"memory_chunks", "load_record_chunks", "package_chunks"}
    record = res["s3vectors_record"]
    assert record["vector_bytes"] == 4 * 384
    assert 0 < record["filterable_metadata_bytes"]["max"] < 2048
