"""Throughput and latency of `POST /search` through the HTTP stack, on a SciFact bundle.

Three ways in, one process, the same loaded engine and the same queries (SciFact's judged test
queries, cycled):
- `athenaeum serve` (uvicorn) on 127.0.0.1 in its own process, with an httpx async client
  at concurrency 1 and 8;
- the Mangum handler called in-process with API Gateway HTTP API (v2) events, as Lambda would;
- the engine called directly (the baseline: what the HTTP layers add is the difference).

    uv run python benchmarks/bench_api.py --index DIR [--requests 300] [--dataset DIR] \
        [--json PATH]

Prints a markdown table: requests/s, p50 and p99 latency in milliseconds. On a 2-core machine
the client and the server share the cores, so uvicorn's numbers are a floor, not a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import results_json

from athenaeum.build.evaluation import load_beir
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server.auth.keys import hash_api_key
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.settings import Settings

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
EVENT = Path(__file__).resolve().parents[1] / "tests" / "events" / "http_v2.json"
TOP_K = 5


def percentiles(latencies: list[float]) -> tuple[float, float]:
    ms = np.asarray(latencies) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def row(
    name: str, n: int, seconds: float, latencies: list[float], role: str = "athenaeum"
) -> dict[str, Any]:
    p50, p99 = percentiles(latencies)
    return {
        "path": name,
        "role": role,
        "requests": n,
        "rps": n / seconds,
        "p50_ms": p50,
        "p99_ms": p99,
        "latencies_ms": [round(t * 1000, 4) for t in latencies],
    }


def bench_direct(engine: SearchEngine, queries: list[str]) -> dict[str, Any]:
    latencies = []
    started = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        engine.search(q, top_k=TOP_K)
        latencies.append(time.perf_counter() - t)
    seconds = time.perf_counter() - started
    return row("engine.search (no HTTP)", len(queries), seconds, latencies, role="baseline")


class Server:
    """`athenaeum serve` in its own process, as deployed: a client in the server's process
    would fight it for the GIL and add tens of milliseconds that no real deployment has."""

    def __init__(self, index: Path, key: str, extra_env: dict[str, str] | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATHENAEUM_")}
        env["ATHENAEUM_API_KEY_HASHES"] = hash_api_key(key)
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from athenaeum.cli.main import main; main()",
                "serve",
                "--index",
                str(index),
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(self.url + "/health", timeout=2).raise_for_status()
                return self
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("athenaeum serve did not start") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _http(
    url: str, queries: list[str], concurrency: int, key: str
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    pending = list(reversed(queries))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    # TCP_NODELAY: httpx writes a POST's headers and body separately, and with Nagle's
    # algorithm the body then waits for the server's delayed ACK (40 ms on Linux): a client
    # artefact that would swamp what is measured here. Real clients (curl, the OpenAI SDK over
    # TLS) do not pay it in the same way.
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(
        base_url=url, transport=transport, timeout=60, headers=headers
    ) as client:

        async def worker() -> None:
            while pending:
                q = pending.pop()
                t = time.perf_counter()
                r = await client.post("/search", json={"query": q, "top_k": TOP_K})
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def bench_uvicorn(url: str, queries: list[str], concurrency: int, key: str) -> dict[str, Any]:
    asyncio.run(_http(url, queries[:20], concurrency, key))  # warm-up
    seconds, latencies = asyncio.run(_http(url, queries, concurrency, key))
    return row(
        f"uvicorn (athenaeum serve), concurrency {concurrency}", len(queries), seconds, latencies
    )


WRK_SCRIPT = """
local queries = {%s}
local i = 0
request = function()
  i = i %% #queries + 1
  return wrk.format("POST", "/search", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %s"}, queries[i])
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %%d %%d %%.6f %%d %%d %%d\\n", summary.requests, summary.duration,
    0, latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.read
    + summary.errors.write + summary.errors.timeout + summary.errors.connect))
end
"""


def bench_wrk(
    url: str, queries: list[str], concurrency: int, key: str, seconds: int, label: str
) -> dict[str, Any]:
    """wrk (C, one thread) at `concurrency` connections for `seconds`: a load generator that
    takes little of the two cores from the server."""
    import tempfile

    bodies = ", ".join(
        json.dumps(json.dumps({"query": q, "top_k": TOP_K}, ensure_ascii=False), ensure_ascii=False)
        for q in dict.fromkeys(queries)
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % (bodies, key))
        script = f.name

    def wrk(duration: int) -> str:
        command = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "-s", script, url]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    wrk(2)  # warm-up
    out = wrk(seconds)
    Path(script).unlink()
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    requests, duration_us, _, p50_us, p99_us, errors = line.split()[1:]
    if int(errors):
        raise RuntimeError(f"wrk saw {errors} errors:\n{out}")
    return {
        "path": f"{label}, wrk, concurrency {concurrency}",
        "role": "athenaeum",
        "requests": int(requests),
        "rps": int(requests) / (int(duration_us) / 1e6),
        "p50_ms": int(p50_us) / 1000,
        "p99_ms": int(p99_us) / 1000,
    }


def bench_mangum(
    handler: Callable[[dict[str, Any], Any], Any], queries: list[str]
) -> dict[str, Any]:
    template = json.loads(EVENT.read_text())
    template["headers"].pop("content-length")

    class Context:
        aws_request_id = "bench"

    def call(q: str) -> None:
        event = copy.deepcopy(template)
        event["body"] = json.dumps({"query": q, "top_k": TOP_K})
        response = handler(event, Context())
        assert response["statusCode"] == 200, response["body"]

    for q in queries[:20]:
        call(q)
    latencies = []
    started = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        call(q)
        latencies.append(time.perf_counter() - t)
    return row(
        "Mangum handler in-process (Lambda path)",
        len(queries),
        time.perf_counter() - started,
        latencies,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, required=True, help="a SciFact index bundle")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--requests", type=int, default=300, help="requests per measurement")
    parser.add_argument(
        "--wrk",
        type=int,
        metavar="SECONDS",
        help="also load the server with wrk for SECONDS per row, at concurrency 1 and 8, once "
        "per --encoder-threads value",
    )
    parser.add_argument(
        "--encoder-threads",
        default="",
        help="comma-separated ATHENAEUM_ENCODER_THREADS values for the wrk rows (default: the "
        "server's own default only)",
    )
    parser.add_argument(
        "--blas-threads",
        default="",
        help="comma-separated OPENBLAS_NUM_THREADS values for the wrk rows, each with every "
        "--encoder-threads value (default: the server's own default only, 1)",
    )
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run_info = results_json.start("api", __file__, argv)

    engine = SearchEngine.load(args.index)
    ds = load_beir(args.dataset)
    judged = [ds.queries[q] for q in ds.judged_queries]
    queries = [judged[i % len(judged)] for i in range(args.requests)]
    for q in judged[:20]:
        engine.search(q, top_k=TOP_K)  # warm-up: ONNX session, caches

    # Auth on, as deployed: under uvicorn an API key checked on every request; on the Lambda
    # path the API Gateway authorizer's context in the event (as the stack configures it).
    key = "bench-" + "Kq3vX8pZ1mN6wR4t"
    settings = Settings(api_key_hashes=[hash_api_key(key)], trust_gateway_authorizer=True)

    results = [bench_direct(engine, queries)]
    with Server(args.index, key) as server:
        for concurrency in (1, 8):
            results.append(bench_uvicorn(server.url, queries, concurrency, key))
    results.append(bench_mangum(build_handler(settings, FixedEngineProvider(engine)), queries))
    if args.wrk:
        for blas in [t for t in args.blas_threads.split(",") if t] or [""]:
            for threads in [t for t in args.encoder_threads.split(",") if t] or [""]:
                extra = {"ATHENAEUM_ENCODER_THREADS": threads} if threads else {}
                if blas:
                    extra["OPENBLAS_NUM_THREADS"] = blas
                label = f"uvicorn, encoder threads {threads or 'default'}" + (
                    f", BLAS threads {blas}" if blas else ""
                )
                with Server(args.index, key, extra) as server:
                    for concurrency in (1, 8):
                        results.append(
                            bench_wrk(server.url, queries, concurrency, key, args.wrk, label)
                        )

    facts = engine.facts
    print(
        f"/search top_k={TOP_K}, hybrid, {facts.chunks} chunks ({facts.model_id}), "
        f"{args.requests} requests each; {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| path | requests/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['path']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    direct = results[0]["p50_ms"]
    overhead = statistics.median([r["p50_ms"] - direct for r in results[1:]])
    print(f"\nmedian p50 added by the HTTP layers over engine.search: {overhead:.2f} ms")
    results_json.write(
        args.json,
        run_info,
        {"index": str(args.index), "top_k": TOP_K, "facts": facts.__dict__, "paths": results},
    )


if __name__ == "__main__":
    main()
