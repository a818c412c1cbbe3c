"""Cold start from S3: a fresh process copies a bundle from a local S3 server (moto, on
127.0.0.1), verifies it on the way in, loads it and answers one hybrid query, each step timed
apart; the time on Lambda is then estimated from published throughput, not measured (nothing
here reaches AWS).

What each fresh interpreter does, --repeat times, one bundle at a time:
- imports: the storage layer (boto3) and the engine;
- client: the process's first S3 client and its first request (the manifest): botocore loads
  its service model once per process;
- copy: athenaeum.storage.download.fetch_s3_bundle into an empty cache, what the API function
  does on a cold start with ATHENAEUM_INDEX_S3_URI: every file streamed to /tmp and hashed on the
  way in, the manifest last, the verification record written;
- transfer: the same objects streamed to files without hashing, with a client of its own, so
  that copy - transfer is the verification's share (and the record's writing);
- hash: sha256 of the copied files read back (from the page cache): the verification's CPU
  cost on its own;
- load: SearchEngine.load of the copy (its record current: no second hashing pass);
- first answer: one hybrid query.

The Lambda estimate: the bytes at the effective S3-to-Lambda throughput published by a
third-party measurement (400 to 700 Mbit/s, 50 to 87.5 MB/s, for single-stream downloads of
large files: docs/benchmarks.md names the source), plus this machine's first client, hash, load
and first answer. A Lambda function's CPU share depends on its memory setting, so those terms
are this machine's, not Lambda's.

    uv run python benchmarks/bench_s3_cold_start.py [--index DIR ...] [--repeat 3] [--json PATH]

The default bundle is the SciFact one `athenaeum eval` builds; give --index several times for
more (a bench_scale.py --keep bundle, for example).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import results_json

from athenaeum.build.evaluation import default_index_dir

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir" / "scifact"
DEFAULT_INDEX = default_index_dir(DEFAULT_DATASET)
BUCKET = "bench-cold-start"
# Effective single-stream S3 -> Lambda throughput, bytes per second (see the module docstring).
LAMBDA_THROUGHPUT = (50e6, 87.5e6)
QUERY = "vitamin D deficiency and bone mineral density in children"
STEPS = ("imports", "client", "copy", "transfer", "hash", "load", "first_answer")

CHILD = """
import hashlib, json, shutil, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from athenaeum.storage.download import fetch_s3_bundle, manifest_files
from athenaeum.storage.client import s3_client
from athenaeum.storage.location import S3Location
from athenaeum.retrieval.engine import SearchEngine
out = {"imports": time.perf_counter() - t0}
endpoint, uri = sys.argv[1], sys.argv[2]
location = S3Location.parse(uri, what="bench")
work = Path(tempfile.mkdtemp(prefix="bench-cold-s3-"))
try:
    # The process's first client loads botocore's service model: timed on its own, so that
    # the copy and the transfer below each pay only for a client of their own.
    t = time.perf_counter()
    first = s3_client(endpoint)
    manifest = first.get_object(Bucket=location.bucket, Key=location.key("manifest.json"))
    files = manifest_files(manifest["Body"].read(), uri)
    out["client"] = time.perf_counter() - t
    t = time.perf_counter()
    path, downloaded = fetch_s3_bundle(location, work / "cache", endpoint_url=endpoint)
    out["copy"] = time.perf_counter() - t
    assert downloaded
    t = time.perf_counter()
    client = s3_client(endpoint)
    raw = work / "raw"
    raw.mkdir()
    for rel in files:
        body = client.get_object(Bucket=location.bucket, Key=location.key(rel))["Body"]
        with (raw / rel.replace("/", "_")).open("wb") as f:
            for block in body.iter_chunks(1 << 20):
                f.write(block)
    out["transfer"] = time.perf_counter() - t
    t = time.perf_counter()
    for rel in files:
        hashlib.sha256((path / rel).read_bytes()).hexdigest()
    out["hash"] = time.perf_counter() - t
    out["bytes"] = sum(size for _, size in files.values())
    t = time.perf_counter()
    engine = SearchEngine.load(path)
    out["load"] = time.perf_counter() - t
    t = time.perf_counter()
    engine.search(sys.argv[3], top_k=10, mode="hybrid")
    out["first_answer"] = time.perf_counter() - t
finally:
    shutil.rmtree(work, ignore_errors=True)
print(json.dumps(out))
"""


def upload(client: Any, bundle: Path, prefix: str) -> int:
    """Every file of `bundle` (the manifest and what it lists, no verification record) under
    `prefix`; returns the bytes."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    total = 0
    for rel in [*manifest["files"], "manifest.json"]:
        client.upload_file(str(bundle / rel), BUCKET, f"{prefix}/{rel}")
        total += (bundle / rel).stat().st_size
    return total


def child(endpoint: str, uri: str) -> dict[str, float]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, endpoint, uri, QUERY],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, action="append")
    parser.add_argument("--repeat", type=int, default=3)
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run = results_json.start("s3_cold_start", __file__, argv)
    bundles: list[Path] = args.index or [DEFAULT_INDEX]

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from moto.server import ThreadedMotoServer

    from athenaeum.storage.client import s3_client

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = s3_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        print(
            f"cold start from S3 (moto on loopback), {os.cpu_count()} CPUs, load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, median of {args.repeat}"
        )
        results: dict[str, Any] = {"repeat": args.repeat, "bundles": []}
        for n, bundle in enumerate(bundles):
            chunks = json.loads((bundle / "manifest.json").read_text())["counts"]["chunks"]
            size = upload(client, bundle, f"b{n}")
            uri = f"s3://{BUCKET}/b{n}"
            samples = [child(endpoint, uri) for _ in range(args.repeat)]
            median = {step: statistics.median(s[step] for s in samples) for step in STEPS}
            local = median["client"] + median["hash"] + median["load"] + median["first_answer"]
            estimate = [size / rate + local for rate in reversed(LAMBDA_THROUGHPUT)]
            row = {
                "bundle": str(bundle),
                "chunks": chunks,
                "bytes": size,
                "median_s": {k: round(v, 3) for k, v in median.items()},
                "loopback_mb_s": round(size / median["transfer"] / 1e6, 1),
                "verification_s": round(max(0.0, median["copy"] - median["transfer"]), 3),
                "lambda_estimate_s": [round(x, 2) for x in estimate],
                "samples": samples,
            }
            results["bundles"].append(row)
            print(f"\n{bundle.name}: {chunks:,} chunks, {size / 1e6:,.1f} MB in S3")
            for step in STEPS:
                print(f"  {step:<13} {median[step]:8.3f} s")
            print(
                f"  loopback transfer {row['loopback_mb_s']} MB/s; verification's share of "
                f"the copy {row['verification_s']} s"
            )
            print(
                f"  on Lambda (estimate: transfer at 50-87.5 MB/s + this machine's client, "
                f"hash, load and first answer): {estimate[0]:.2f}-{estimate[1]:.2f} s"
            )
    finally:
        server.stop()
    results_json.write(args.json, run, results)


if __name__ == "__main__":
    main()
