"""Load and soak: `athenaeum serve` with API-key auth on a SciFact bundle, under steady load.

Phases, each for a fixed time (not a fixed number of requests): concurrency 1, 8, 32 and 64
for `--seconds` each, then `--soak-seconds` at concurrency 8. For each phase: requests, errors
(any status but 200, or a transport error: must be 0), requests/s, p50 and p99 latency, and the
server's resident memory (VmRSS from /proc) at the start and the end. The last line compares
the server's memory after the soak with its memory after the first phase (growth must stay
under 5%). The baseline, measured in the same run: `engine.search` called directly in this
process, the floor that HTTP adds to.

    uv run python benchmarks/bench_soak.py --index DIR [--seconds 60] [--soak-seconds 600]

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

from bench_api import DEFAULT_DATASET, TOP_K, Server

from athenaeum.build.evaluation import load_beir
from athenaeum.retrieval.engine import SearchEngine

KEY = "ath-" + "soak-benchmark-key-7Hq2"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def phase(url: str, queries: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
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
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "error_kinds": dict(kinds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, required=True, help="a SciFact index bundle")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--seconds", type=float, default=60, help="each load phase")
    parser.add_argument("--soak-seconds", type=float, default=600, help="the soak phase")
    args = parser.parse_args()

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
    with Server(args.index, KEY) as server:
        pid = server.proc.pid
        asyncio.run(phase(server.url, queries, 8, 5))  # warm-up
        plan = [(f"concurrency {c}, {args.seconds:g} s", c, args.seconds) for c in (1, 8, 32, 64)]
        plan.append((f"soak: concurrency 8, {args.soak_seconds:g} s", 8, args.soak_seconds))
        for name, concurrency, seconds in plan:
            before = rss_mb(pid)
            result = asyncio.run(phase(server.url, queries, concurrency, seconds))
            rows.append((name, result, before, rss_mb(pid)))
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


if __name__ == "__main__":
    main()
