"""The real artifacts: what infra/staging.py puts in each function's code, and a fresh Python 3.12
with nothing on its path but the built layer and that code, answering real API Gateway REST (v1)
events from a packaged bundle, refusing a token in the authorizer, or (the ingest function, from
its own layer) publishing a batch of real S3 notifications."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import athenaeum
from athenaeum.bundle import VERIFICATION_FILE
from athenaeum.errors import BundleError
from athenaeum.retrieval import citations
from infra import staging
from tests.conftest import DATA_DIR, LIBRARY_PDFS, PdfLibrary

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "build" / "layer" / "python"
EVENT = Path(__file__).resolve().parents[1] / "events" / "rest_v1_authorizer.json"
PY312_CANDIDATES = ("python3.12", str(Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"))
# The serve half of the package (with the S3 Vectors backend) and the storage layer it reads the
# index through; the build side, ingest and the CLI never reach the API function.
SERVE_TOP_LEVEL = {
    "__init__.py",
    "errors.py",
    "storage",
    "bundle",
    "retrieval",
    "s3vectors",
    "server",
}

SCRIPT = """
import json, sys, time
start = time.perf_counter()
sys.path[:0] = sys.argv[1].split(":")
if sys.argv[2]:
    sys.path.append(sys.argv[2])
import athenaeum.server.lambda_handler as lh
base = json.load(open(sys.argv[3]))
mcp = {"Accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
def rpc(method, params):
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
call = rpc("tools/call", {"name": "search", "arguments": {"query": "cells"}})
chat = {"model": "athenaeum-index-retrieval", "messages": [{"role": "user", "content": "cells"}]}
answers = {}
for name, path, method, body, headers in (
    ("health", "/health", "GET", None, {}),
    ("search", "/search", "POST", json.dumps({"query": "cells", "top_k": 2}), {}),
    ("chat", "/chat/completions", "POST", json.dumps(chat), {}),
    ("rag", "/chat/completions", "POST", json.dumps({**chat, "model": "athenaeum-index-rag"}), {}),
    ("mcp", "/mcp", "POST", call, mcp),
):
    event = dict(base, path=path, httpMethod=method, body=body)
    event["headers"] = {**base["headers"], **headers}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["pathParameters"] = {"proxy": path[1:]}
    response = lh.handler(event, None)
    answers[name] = [response["statusCode"], json.loads(response["body"])]
answers["seconds"] = time.perf_counter() - start
answers["site"] = [p for p in sys.path if "site-packages" in p]
answers["outside"] = sorted(
    {m.split(".")[0] for m, mod in list(sys.modules.items())
     if getattr(mod, "__file__", None) and not any(mod.__file__.startswith(p) for p in sys.path[:2])
     and not mod.__file__.startswith(sys.base_prefix)}
)
print(json.dumps(answers))
"""


AUTHORIZER_SCRIPT = """
import json, sys
sys.path[:0] = sys.argv[1].split(":")
import handler
event = {
    "type": "TOKEN",
    "methodArn": "arn:aws:execute-api:us-east-2:123456789012:abc123/prod/GET/health",
    "authorizationToken": "Bearer not.a.jwt",
}
try:
    handler.handler(event, None)
    refusal = None
except Exception as exc:
    refusal = [type(exc).__name__, str(exc)]
print(json.dumps({
    "refusal": refusal,
    "athenaeum": sorted(m for m in sys.modules if m.split(".")[0] == "athenaeum"),
    "files": sorted({
        m.__file__ for m in list(sys.modules.values())
        if getattr(m, "__file__", None) and not m.__file__.startswith(sys.base_prefix)
    }),
}))
"""


def staged_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_function_artifact_holds_the_serve_half_only(tmp_path: Path) -> None:
    function = staging.stage_function(tmp_path)
    assert [p.name for p in function.iterdir()] == ["athenaeum"]
    assert {p.name for p in (function / "athenaeum").iterdir()} == SERVE_TOP_LEVEL
    # Every file of the serve packages, as in the source tree, and nothing else.
    source = ROOT / "athenaeum"
    expected = {f"athenaeum/{name}" for name in staging.SERVE_MODULES} | {
        "athenaeum/" + path.relative_to(source).as_posix()
        for name in ("storage", "bundle", "retrieval", "s3vectors", "server")
        for path in (source / name).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    files = staged_files(function)
    assert files == expected
    assert "athenaeum/server/lambda_handler.py" in files
    assert "athenaeum/storage/published.py" in files  # the published index serving follows
    assert not [
        f
        for f in files
        if f.startswith(("athenaeum/build/", "athenaeum/cli/", "athenaeum/ingest/"))
    ]
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


def test_a_packaged_index_is_verified_at_staging(scifact_bundle: Path, tmp_path: Path) -> None:
    """Staging hashes the copy it packages and records it for Lambda's read-only code folder,
    with the same bytes every time (so the function's asset hash does not change), and refuses
    a bundle that fails verification instead of deploying it."""
    first = staging.add_index(staging.stage_function(tmp_path / "a"), scifact_bundle)
    second = staging.add_index(staging.stage_function(tmp_path / "b"), scifact_bundle)
    record = json.loads((first / VERIFICATION_FILE).read_text())
    assert record["scope"] == "read-only package" and record["verified_by"] == "athenaeum staging"
    assert (first / VERIFICATION_FILE).read_bytes() == (second / VERIFICATION_FILE).read_bytes()

    damaged = tmp_path / "damaged"
    shutil.copytree(scifact_bundle, damaged)
    chunks = damaged / "chunks.z"
    data = bytearray(chunks.read_bytes())
    data[len(data) // 3] ^= 0x20
    chunks.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"chunks\.z sha256 mismatch"):
        staging.add_index(staging.stage_function(tmp_path / "c"), damaged)


def test_authorizer_artifact_is_the_handler_and_the_modules_it_names(tmp_path: Path) -> None:
    authorizer = staging.stage_authorizer(tmp_path)
    assert staged_files(authorizer) == {"handler.py"} | {
        f"athenaeum/{module}" for module in staging.AUTHORIZER_MODULES
    }


@pytest.mark.slow
def test_authorizer_artifact_runs_under_the_layer(tmp_path: Path) -> None:
    if not LAYER.is_dir():
        pytest.skip("no built layer; run layer/build.sh")
    authorizer = staging.stage_authorizer(tmp_path / "staging")
    result = subprocess.run(
        [
            python312(),
            "-I",
            "-S",
            "-c",
            AUTHORIZER_SCRIPT,
            os.pathsep.join([str(LAYER), str(authorizer)]),
        ],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ATHENAEUM_OAUTH_ISSUER": "https://issuer.test/",
            "ATHENAEUM_OAUTH_AUDIENCE": "https://athenaeum.test",
            "ATHENAEUM_OAUTH_JWKS_URL": "https://issuer.test/jwks",
            # As the stack sets it with access_claim: read by the staged modules alone.
            "ATHENAEUM_ACCESS_CLAIM": "cognito:groups",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    # A malformed token is refused as API Gateway expects (a 401), without a key fetch.
    assert answers["refusal"] == ["Exception", "Unauthorized"]
    # Everything came from the layer, the staged code or the standard library.
    assert all(f.startswith((str(LAYER), str(authorizer))) for f in answers["files"])
    staged = {
        "athenaeum." + m.removesuffix(".py").replace("/", ".") for m in staging.AUTHORIZER_MODULES
    }
    loaded = {m.removesuffix(".__init__") for m in answers["athenaeum"]}
    assert loaded <= {m.removesuffix(".__init__") for m in staged}
    assert "athenaeum.server.auth.jwt" in loaded


def python312() -> str:
    for candidate in PY312_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.skip("no python3.12 interpreter")


# What the Lambda Python runtime itself provides (boto3 and its dependencies), for the S3 case.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def run_artifact(
    function: Path, env: dict[str, str], extra_path: Path | None = None, script: str = SCRIPT
) -> Any:
    if not LAYER.is_dir():
        pytest.skip("no built layer; run layer/build.sh")
    paths = [str(LAYER), str(function)]
    result = subprocess.run(
        [
            python312(),
            "-I",
            "-S",
            "-c",
            script,
            os.pathsep.join(paths),
            str(extra_path or ""),
            str(EVENT),
        ],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
            "ATHENAEUM_OAUTH_ISSUER": "https://issuer.test/",
            "ATHENAEUM_OAUTH_AUDIENCE": "https://athenaeum.test",
            "ATHENAEUM_OAUTH_JWKS_URL": "https://issuer.test/jwks",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_answers(answers: dict[str, Any]) -> None:
    status, health = answers["health"]
    assert status == 200 and health["status"] == "ok"
    # The function runs the package uninstalled: the version must still be the real one.
    assert health["version"] == athenaeum.__version__
    status, search = answers["search"]
    assert status == 200 and len(search["results"]) == 2
    status, chat = answers["chat"]
    assert status == 200 and "[1]" in chat["choices"][0]["message"]["content"]
    # No upstream model is configured: a clean error in the API's shape, not a crash.
    status, rag = answers["rag"]
    assert status >= 400 and set(rag["error"]) == {"message", "type", "param", "code"}
    status, mcp = answers["mcp"]
    assert status == 200 and mcp["result"]["structuredContent"]["results"]
    print(f"fresh process to five answers: {answers['seconds']:.2f} s")


@pytest.mark.slow
def test_packaged_artifact_answers_rest_events(scifact_bundle: Path, tmp_path: Path) -> None:
    function = staging.stage_function(tmp_path)
    index = staging.add_index(function, scifact_bundle)
    answers = run_artifact(function, {"ATHENAEUM_INDEX_DIR": str(index)})
    # Everything came from the layer, the code or the standard library.
    assert answers["site"] == [] and answers["outside"] == []
    check_answers(answers)


@pytest.mark.slow
def test_s3_artifact_answers_rest_events(
    scifact_bundle: Path, moto_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket="artifact-index")
    for path in sorted(scifact_bundle.rglob("*")):
        if path.is_file():
            key = "index/" + path.relative_to(scifact_bundle).as_posix()
            client.upload_file(str(path), "artifact-index", key)
    runtime = runtime_modules(tmp_path)
    function = staging.stage_function(tmp_path / "staging")
    answers = run_artifact(
        function,
        {
            "ATHENAEUM_INDEX_S3_URI": "s3://artifact-index/index",
            "ATHENAEUM_S3_ENDPOINT_URL": moto_endpoint,
            "ATHENAEUM_INDEX_CACHE_DIR": str(tmp_path / "cache"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        extra_path=runtime,
    )
    check_answers(answers)
    assert (tmp_path / "cache").is_dir()


@pytest.mark.slow
def test_packaged_artifact_follows_an_index_with_nothing_published_yet(
    scifact_bundle: Path, moto_endpoint: str, tmp_path: Path
) -> None:
    """As the stack configures it: the packaged bundle and the published index's prefix, where
    nothing is published yet; the function serves the packaged bundle."""
    import boto3

    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="artifact-published")
    function = staging.stage_function(tmp_path / "staging")
    index = staging.add_index(function, scifact_bundle)
    answers = run_artifact(
        function,
        {
            "ATHENAEUM_INDEX_DIR": str(index),
            "ATHENAEUM_INDEX_S3_URI": "s3://artifact-published/index",
            "ATHENAEUM_INDEX_REFRESH_S": "60",
            "ATHENAEUM_INDEX_CACHE_DIR": str(tmp_path / "cache"),
            "ATHENAEUM_S3_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        extra_path=runtime_modules(tmp_path),
    )
    check_answers(answers)


def runtime_modules(tmp_path: Path) -> Path:
    """Stand-in for the runtime's own boto3: only those packages, linked from the dev venv."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in RUNTIME_MODULES:
        module = importlib.import_module(name)
        source = Path(module.__file__ or "")
        origin = source.parent if source.name == "__init__.py" else source
        (runtime / origin.name).symlink_to(origin)
    return runtime


SOURCES_SCRIPT = """
import json, sys
from urllib.parse import urlsplit, parse_qsl
sys.path[:0] = sys.argv[1].split(":")
if sys.argv[2]:
    sys.path.append(sys.argv[2])
import athenaeum.server.lambda_handler as lh
base = json.load(open(sys.argv[3]))
def call(method, path, body=None, query=None, headers=None):
    event = dict(base, path=path, httpMethod=method, body=body)
    event["headers"] = {**base["headers"], **(headers or {})}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    event["pathParameters"] = {"proxy": path[1:]}
    return lh.handler(event, None)
found = json.loads(call("POST", "/search", json.dumps({"query": "cells", "top_k": 5}))["body"])
clicks = []
for result in found["results"]:
    url = urlsplit(result["source_url"])
    # The link names the stage, which API Gateway takes off the path it hands the function.
    path = url.path.removeprefix("/" + base["requestContext"]["stage"])
    response = call("GET", path, query=dict(parse_qsl(url.query)))
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    clicks.append([result["source"], result["page_start"], result["source_url"],
                   response["statusCode"], headers.get("location")])
print(json.dumps(clicks))
"""


@pytest.mark.slow
def test_artifact_links_citations_to_presigned_source_files(
    pdf_library: PdfLibrary, moto_endpoint: str, tmp_path: Path
) -> None:
    """The packaged function under python3.12, its sources in (moto's) S3 as deploy.sh puts
    them: every search result carries a short signed link, and the function answers that link
    with a redirect to a presigned URL that downloads the very file the passage came from."""
    import boto3
    import httpx

    from infra.index.upload import upload_sources

    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket="artifact-sources")
    report = upload_sources(client, pdf_library.bundle, "artifact-sources")
    assert report.uploaded == len(LIBRARY_PDFS) and report.not_uploaded == ()
    function = staging.stage_function(tmp_path / "staging")
    index = staging.add_index(function, pdf_library.bundle)
    clicks = run_artifact(
        function,
        {
            "ATHENAEUM_INDEX_DIR": str(index),
            "ATHENAEUM_SOURCES_S3_URI": "s3://artifact-sources/sources",
            "ATHENAEUM_S3_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        extra_path=runtime_modules(tmp_path),
        script=SOURCES_SCRIPT,
    )
    assert len(clicks) == 5
    for source, page, link, status, location in clicks:
        assert "/sources/" in link and link.endswith(f"#page={page}") and len(link) < 150
        assert status == 302, (source, status)
        assert location.startswith(f"{moto_endpoint}/artifact-sources/sources/")
        assert "X-Amz-Expires=300" in location and "X-Amz-Signature=" in location
        response = httpx.get(location)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert response.content == (pdf_library.pdfs / source).read_bytes()


INGEST_LAYER = ROOT / "build" / "ingest-layer" / "python"
INGEST_SCRIPT = """
import json, sys
sys.path[:0] = sys.argv[1].split(":")
import athenaeum.ingest.lambda_handler as ingest
class Context:
    aws_request_id = "artifact"
    def get_remaining_time_in_millis(self):
        return 900_000
result = ingest.handler({"Records": json.load(open(sys.argv[2]))}, Context())
layers = sys.argv[1].split(":")
print(json.dumps({
    "result": result,
    "outside": sorted(
        {m.split(".")[0] for m, mod in list(sys.modules.items())
         if getattr(mod, "__file__", None) and not mod.__file__.startswith(tuple(layers))
         and not mod.__file__.startswith(sys.base_prefix)}
    ),
    "loaded": sorted({m.split(".")[0] for m in sys.modules}),
}))
"""
# An encrypted PDF whose password nobody gave: the run names it in its report, and goes on.
LOCKED_PDF = "crazyones-encrypted-256.pdf"
ADDED_PHRASE = "The quokka colony on Rottnest Island was counted at dawn by volunteers."


MIXED_FORMATS = {
    "tracked-changes-insertions-deletions.docx": "mixed/tika.docx",
    "slides-table-merged-cells.pptx": "mixed/deck.pptx",
    "tax-rates-ireland-three-sheets.xlsx": "mixed/tax-rates.xlsx",
    "story-japanese-aesop-fable.html": "mixed/fable.html",
    "poem-the-waste-land.epub": "mixed/waste-land.epub",
}
# A phrase of each, where it is cited (a pattern of `citations.pages`).
MIXED_PHRASES = [
    ("March 2009: Apache Tika Release", "mixed/tika.docx", r".*"),
    ("April is the cruellest month", "mixed/waste-land.epub", r".*THE BURIAL OF THE DEAD"),
    ("Test Table Slide", "mixed/deck.pptx", r"slides? \d+(-\d+)?"),
    (
        "Levies and PRSI as a proportion of gross income",
        "mixed/tax-rates.xlsx",
        r"sheets? .*![A-Z]+\d+:[A-Z]+\d+.*",
    ),
]


@pytest.mark.slow
def test_ingest_artifact_publishes_a_batch_of_real_s3_events(
    pdf_library: PdfLibrary, moto_endpoint: str, tmp_path: Path
) -> None:
    """The ingest function as Lambda runs it: a fresh python3.12 with nothing on its path but
    the built ingest layer, the staged code and the runtime's own boto3, handed the SQS batch
    that the bucket's real notifications (moto's) made of an upload of a PDF, a markdown file
    and a locked PDF; it publishes a version holding exactly the library."""
    import boto3

    from athenaeum.ingest.pipeline import ingest
    from athenaeum.retrieval.engine import SearchEngine
    from athenaeum.storage.client import s3_client
    from athenaeum.storage.location import S3Location
    from athenaeum.storage.published import PublishedIndex
    from tests.conftest import PDF_DIR

    if not INGEST_LAYER.is_dir():
        pytest.skip("no built ingest layer; run layer/build.sh --profile ingest")
    bucket = "artifact-library"
    client = s3_client(moto_endpoint)
    client.create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    queue = sqs.create_queue(QueueName="artifact-ingest")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    client.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn["QueueArn"],
                    "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "library/"}]}},
                }
            ]
        },
    )

    def drain() -> list[dict[str, Any]]:
        records = []
        while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in got:
                records.append({"messageId": message["MessageId"], "body": message["Body"]})
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return records

    # The first version, as deploy.sh publishes it: the local bundle and its documents.
    library, index = S3Location(bucket, "library"), S3Location(bucket, "index")
    for rel in LIBRARY_PDFS:
        client.upload_file(str(pdf_library.pdfs / rel), bucket, f"library/{rel}")
    drain()
    first = ingest(
        library, index, client=client, work_dir=tmp_path / "first", from_bundle=pdf_library.bundle
    )
    assert first.published

    added = tmp_path / "added-last.md"
    added.write_text(f"# Field notes\n\n{ADDED_PHRASE}\n")
    client.upload_file(str(added), bucket, "library/notes/added-last.md")
    client.upload_file(str(PDF_DIR / "habibi.pdf"), bucket, "library/new/habibi.pdf")
    client.upload_file(str(PDF_DIR / LOCKED_PDF), bucket, f"library/new/{LOCKED_PDF}")
    # A mixed library: a Word document, a deck, a workbook, a web page and a book beside them.
    for name, rel in MIXED_FORMATS.items():
        client.upload_file(str(DATA_DIR / "formats" / name), bucket, f"library/{rel}")
    records = drain()
    assert len(records) == 3 + len(MIXED_FORMATS)
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps(records + records[:1]))  # one delivered twice

    code = staging.stage_ingest(tmp_path / "staging")
    path = [str(INGEST_LAYER), str(code), str(runtime_modules(tmp_path))]
    result = subprocess.run(
        [python312(), "-I", "-S", "-c", INGEST_SCRIPT, os.pathsep.join(path), str(batch)],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ATHENAEUM_LIBRARY_S3_URI": library.uri,
            "ATHENAEUM_INDEX_S3_URI": index.uri,
            "ATHENAEUM_INGEST_WORK_DIR": str(tmp_path / "work"),
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYMUPDF_SUGGEST_LAYOUT_ANALYZER": "0",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    summary = answers["result"]
    assert summary["published"] and summary["keys_in_events"] == 4 + len(MIXED_FORMATS)
    assert (summary["added"], summary["failed"]) == (2 + len(MIXED_FORMATS), 1)
    # Everything came from the layer, the code, the runtime's boto3 or the standard library,
    # and nothing of the web side or of PyTorch was loaded.
    assert answers["outside"] == []
    assert not {"torch", "fastapi", "mangum", "starlette", "pymupdf4llm"} & set(answers["loaded"])

    store = PublishedIndex(index, client)
    pointer = store.read_pointer()
    assert pointer is not None and pointer.version == summary["version"]
    served = SearchEngine.load(store.fetch(pointer.version, tmp_path / "served"))
    sources = {doc.source for doc in served.bundle.manifest.documents}
    assert sources == {
        *LIBRARY_PDFS,
        "notes/added-last.md",
        "new/habibi.pdf",
        *MIXED_FORMATS.values(),
    }
    hits = served.search(ADDED_PHRASE, top_k=1)
    assert hits[0].chunk.source == "notes/added-last.md"
    # Each format is searchable, cited where the format has places.
    for phrase, source, where in MIXED_PHRASES:
        [hit] = served.search(phrase, top_k=1, mode="bm25")
        assert hit.chunk.source == source, phrase
        assert re.fullmatch(where, citations.pages(hit.chunk) or ""), (phrase, hit.chunk.location)
    report = json.loads(
        client.get_object(Bucket=bucket, Key="index/reports/latest.json")["Body"].read()
    )
    assert [Path(f["key"]).name for f in report["failed"]] == [LOCKED_PDF]


BOTOCORE_OVERRIDE = """
import json, sys, boto3
client = boto3.Session(region_name="us-east-1").client("s3vectors")
shape = client.meta.service_model.operation_model("QueryVectors").input_shape
print(json.dumps(sorted(shape.members)))
"""


def test_the_layer_s_s3vectors_model_is_read_before_the_runtime_s(tmp_path: Path) -> None:
    """With index_backend=s3vectors the function sets AWS_DATA_PATH to the layer's copy of the
    locked botocore's S3 Vectors model, so a runtime botocore that predates `queryTexts` still
    sends it. Shown with a runtime model lacking `queryTexts` and the layer's copy beside it."""
    import botocore

    builtin = Path(botocore.__file__).parent / "data" / "s3vectors"
    (version,) = [p.name for p in builtin.iterdir() if p.is_dir()]
    if LAYER.is_dir():  # built by layer/build.sh: the copy is the locked botocore's own
        copied = LAYER / "aws_models" / "s3vectors" / version
        assert sorted(p.name for p in copied.iterdir()) == sorted(
            p.name for p in (builtin / version).iterdir()
        )
        for file in copied.iterdir():
            assert file.read_bytes() == (builtin / version / file.name).read_bytes(), file.name

    # botocore reads a service's model from the first place on its search path that has it:
    # ~/.aws/models, then each AWS_DATA_PATH entry, then its own data. An older runtime's model
    # (QueryVectors without queryTexts) stands second here, the layer's copy first.
    import gzip

    def copy_model(root: Path) -> Path:
        folder = root / "s3vectors" / version
        folder.mkdir(parents=True)
        for file in (builtin / version).iterdir():
            (folder / file.name).write_bytes(file.read_bytes())
        return folder

    model_file = next(copy_model(tmp_path / "older").glob("service-2.json*"))
    raw = model_file.read_bytes()
    model = json.loads(gzip.decompress(raw) if model_file.suffix == ".gz" else raw)
    model["shapes"]["QueryVectorsInput"]["members"].pop("queryTexts")
    data = json.dumps(model).encode()
    model_file.write_bytes(gzip.compress(data) if model_file.suffix == ".gz" else data)
    copy_model(tmp_path / "layer")

    def members(data_path: str) -> list[str]:
        env = {**os.environ, "AWS_DATA_PATH": data_path, "HOME": str(tmp_path)}
        out = subprocess.run(
            [sys.executable, "-c", BOTOCORE_OVERRIDE],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return list(json.loads(out.stdout))

    assert "queryTexts" not in members(str(tmp_path / "older"))
    both = os.pathsep.join([str(tmp_path / "layer"), str(tmp_path / "older")])
    assert "queryTexts" in members(both)
