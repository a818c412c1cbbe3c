"""Load and soak: `athenaeum serve` with API-key auth on a SciFact bundle, under steady load.

Phases, each for a fixed time (not a fixed number of requests): concurrency 1, 8, 32 and 64
for `--seconds` each, then `--soak-seconds` at concurrency 8. For each phase: requests, errors
(any status but 200, or a transport error: must be 0), requests/s, p50 and p99 latency, and the
server's resident memory (VmRSS from /proc) at the start and the end. The last line compares
the server's memory after the soak with its memory after the first phase (growth must stay
under 5%). The baseline, measured in the same run: `engine.search` called directly in this
process, the floor that HTTP adds to.

    uv run python benchmarks/bench_soak.py --index DIR [--seconds 60] [--soak-seconds 600] \
        [--json PATH]

Client and server share this machine's cores, so the figures are a floor; run it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json
from bench_api import DEFAULT_DATASET, TOP_K, Server

from athenaeum.build.evaluation import load_beir
from athenaeum.retrieval.engine import SearchEngine

KEY = "ath-" + "soak-benchmark-key-7Hq2"
CONCURRENCY = (1, 8, 32, 64)
SOAK_CONCURRENCY = 8
# A phase's latency distribution in --json: these percentiles, not each of its ~10^5 requests.
QUANTILES = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def phase(
    url: str, queries: list[str], concurrency: int, seconds: float
) -> tuple[dict[str, Any], list[float]]:
    """The phase's summary as printed, and each request's latency in seconds."""
    latencies: list[float] = []
    errors = 0
    kinds: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    headers = {"Authorization": f"Bearer {KEY}"}
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(
        base_url=url, transport=transport, timeout=30, headers=headers
    ) as client:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                q = queries[i % len(queries)]
                i += concurrency
                t = time.perf_counter()
                try:
                    r = await client.post("/search", json={"query": q, "top_k": TOP_K})
                    ok = r.status_code == 200
                    kind = f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    ok = False
                    kind = type(exc).__name__
                latencies.append(time.perf_counter() - t)
                if not ok:
                    errors += 1
                    kinds[kind] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    summary = {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "error_kinds": dict(kinds),
    }
    return summary, latencies


def results(
    args: argparse.Namespace,
    direct: list[float],
    rows: list[tuple[str, dict[str, Any], float, float]],
    plan: list[tuple[str, int, float]],
    quantiles: list[list[float]],
) -> dict[str, Any]:
    """What --json writes: the table's rows, each phase's latency percentiles, and the
    baseline's every query."""
    ms = np.asarray(direct) * 1000
    phases = [
        {
            "name": name,
            "concurrency": concurrency,
            "seconds": seconds,
            "soak": n == len(plan) - 1,
            **r,
            "rss_start_mb": before,
            "rss_end_mb": after,
            "latency_ms_quantiles": {"q": list(QUANTILES), "ms": q},
        }
        for n, ((name, r, before, after), (_, concurrency, seconds), q) in enumerate(
            zip(rows, plan, quantiles, strict=True)
        )
    ]
    return {
        "index": str(args.index),
        "top_k": TOP_K,
        "baseline": {
            "name": f"baseline: engine.search in-process, {len(direct)} queries",
            "role": "baseline",
            "requests": len(direct),
            "rps": len(direct) / (ms.sum() / 1000),
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "latencies_ms": [round(float(x), 4) for x in ms],
        },
        "phases": phases,
        "rss_growth_pct": (rows[-1][3] - rows[0][3]) / rows[0][3] * 100,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, required=True, help="a SciFact index bundle")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--seconds", type=float, default=60, help="each load phase")
    parser.add_argument("--soak-seconds", type=float, default=600, help="the soak phase")
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run_info = results_json.start("soak", __file__, argv)

    ds = load_beir(args.dataset)
    queries = [ds.queries[q] for q in ds.judged_queries]
    engine = SearchEngine.load(args.index)
    for q in queries[:20]:
        engine.search(q, top_k=TOP_K)
    direct = []
    for q in queries:
        t = time.perf_counter()
        engine.search(q, top_k=TOP_K)
        direct.append(time.perf_counter() - t)
    del engine

    rows: list[tuple[str, dict[str, Any], float, float]] = []
    quantiles: list[list[float]] = []
    plan = [(f"concurrency {c}, {args.seconds:g} s", c, args.seconds) for c in CONCURRENCY]
    plan.append(
        (
            f"soak: concurrency {SOAK_CONCURRENCY}, {args.soak_seconds:g} s",
            SOAK_CONCURRENCY,
            args.soak_seconds,
        )
    )
    with Server(args.index, KEY) as server:
        pid = server.proc.pid
        asyncio.run(phase(server.url, queries, 8, 5))  # warm-up
        for name, concurrency, seconds in plan:
            before = rss_mb(pid)
            result, latencies = asyncio.run(phase(server.url, queries, concurrency, seconds))
            rows.append((name, result, before, rss_mb(pid)))
            quantiles.append(
                [round(float(x), 4) for x in np.percentile(np.asarray(latencies) * 1000, QUANTILES)]
            )
            print(f"{name}: {result}", file=sys.stderr, flush=True)

    ms = np.asarray(direct) * 1000
    print("| phase | requests | errors | req/s | p50 ms | p99 ms | RSS start MB | RSS end MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| baseline: engine.search in-process, {len(direct)} queries | {len(direct)} | 0 | "
        f"{len(direct) / (ms.sum() / 1000):.0f} | {np.percentile(ms, 50):.2f} | "
        f"{np.percentile(ms, 99):.2f} | | |"
    )
    for name, r, before, after in rows:
        print(
            f"| {name} | {r['requests']} | {r['errors']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {before:.0f} | {after:.0f} |"
        )
    first_end, soak_end = rows[0][3], rows[-1][3]
    growth = (soak_end - first_end) / first_end * 100
    total_errors = sum(r["errors"] for _, r, _, _ in rows)
    kinds = Counter[str]()
    for _, r, _, _ in rows:
        kinds.update(r["error_kinds"])
    print(
        f"\nErrors in all phases: {total_errors} {dict(kinds) or ''}. Server RSS after the "
        f"first phase {first_end:.0f} MB, after the soak {soak_end:.0f} MB: {growth:+.1f}%."
    )
    results_json.write(args.json, run_info, results(args, direct, rows, plan, quantiles))


if __name__ == "__main__":
    main()
