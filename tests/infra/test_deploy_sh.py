"""deploy.sh's real deploy path, end to end and offline: a copy of the repository, a stub `aws`
first on PATH, a stub CDK CLI (ATHENAEUM_CDK) around the real `cdk synth`, a stub layer build,
and the index upload going to a local moto S3. Every stub appends what it was asked to one log,
so the tests read the order of events from it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PdfLibrary, run_dir

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="the CDK needs Node.js")

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
REGION = "eu-west-1"
ENDPOINT = f"https://abc123.execute-api.{REGION}.amazonaws.com/prod/"
GOOD_OAUTH = {
    "oauth_issuer": "https://issuer.athenaeum.test/",
    "oauth_audience": "https://api.athenaeum.test",
    "oauth_jwks_url": "https://issuer.athenaeum.test/.well-known/jwks.json",
}
# What deploy.sh needs of the repository (never .venv, cdk.out, build or a cdk.context.json).
_COPIED = ("deploy.sh", "app.py", "cdk.json", "pyproject.toml", "uv.lock", "infra", "athenaeum")

_STUB_PRELUDE = """\
import json, os, re, subprocess, sys
from pathlib import Path

args = sys.argv[1:]
state_file = Path(os.environ["DEPLOY_TEST_STATE"])
state = json.loads(state_file.read_text())


def log(tool):
    entry = {"tool": tool, "args": args, "region": os.environ.get("CDK_DEFAULT_REGION")}
    with open(os.environ["DEPLOY_TEST_LOG"], "a") as f:
        f.write(json.dumps(entry) + "\\n")
"""

# The AWS CLI, for the calls deploy.sh makes (`--output text` answers).
_AWS = """
log("aws")
if args[:2] == ["sts", "get-caller-identity"]:
    if not state["credentials"]:
        sys.exit("Unable to locate credentials. You can configure credentials by running "
                 "\\"aws configure\\".")
    print(state["account"])
elif args[:3] == ["configure", "get", "region"]:
    print(state["region"])
elif args[:2] == ["cloudformation", "describe-stacks"]:
    name = args[args.index("--stack-name") + 1]
    if name not in state["stacks"]:
        print("An error occurred (ValidationError) when calling the DescribeStacks operation: "
              f"Stack with id {name} does not exist", file=sys.stderr)
        sys.exit(254)
    if "--query" in args:
        key = re.search(r"OutputKey=='(\\w+)'", args[args.index("--query") + 1]).group(1)
        print(state["stacks"][name].get(key, ""))
    else:
        print(json.dumps({"Stacks": [{"StackName": name}]}))
else:
    sys.exit(f"stub aws: unexpected call {args}")
"""

# The CDK CLI: the real synth (without the dummy S3 credentials, so it asks no AWS for the
# account), once in the run for the same inputs (tests/infra/synth_cache.py); `deploy` writes the
# outputs file as the real CLI does, from the synthesized template.
_CDK = """
log("cdk")
if args[0] == "synth":
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    command = [os.environ["DEPLOY_TEST_UV"], "run", "--no-sync", "cdk", *args]
    sys.path.insert(0, os.environ["DEPLOY_TEST_ROOT"])
    from tests.infra.synth_cache import synth
    sys.exit(synth(
        args, Path.cwd(), env, Path(os.environ["DEPLOY_TEST_SYNTH_CACHE"]),
        lambda: subprocess.run(command, env=env, capture_output=True, text=True, check=False),
    ))
if args[0] == "deploy":
    manifest = json.loads(Path("cdk.out/manifest.json").read_text())
    stack = next(
        a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"
    )
    template = json.loads(Path("cdk.out", stack["properties"]["templateFile"]).read_text())
    outputs = {
        k: v["Value"] for k, v in template["Outputs"].items() if isinstance(v["Value"], str)
    }
    outputs["APIEndpoint"] = state["endpoint"]
    outputs["IndexBucketName"] = state["bucket"]  # the stack always has its bucket
    outputs.update(state["outputs"])  # what CloudFormation would resolve (names, ARNs)
    name = stack["properties"].get("stackName") or stack["displayName"]
    Path(args[args.index("--outputs-file") + 1]).write_text(json.dumps({name: outputs}))
    state["stacks"][name] = outputs
    state_file.write_text(json.dumps(state))
elif args[0] != "bootstrap":
    sys.exit(f"stub cdk: unexpected call {args}")
"""

# uv: `uv sync` would install this copy into the test's own venv, which the copy shares.
_UV = """
log("uv")
if args[:1] == ["sync"]:
    sys.exit(0)
uv = os.environ["DEPLOY_TEST_UV"]
os.execv(uv, [uv, *args])
"""

# layer/build.sh: a layer of one file where the real one would go (the real build downloads the
# serve or ingest stack's wheels for the Lambda platform).
_LAYER = """
log("layer")
out = Path(args[args.index("--out") + 1] if "--out" in args else "build/layer")
(out / "python").mkdir(parents=True, exist_ok=True)
(out / "python" / "layer_stub.py").write_text("")
print(f"layer: stub build for {args[args.index('--arch') + 1]} into {out}")
"""


@dataclass
class Deploy:
    repo: Path
    bucket: str
    s3: Any
    run: Callable[..., subprocess.CompletedProcess[str]]
    log_file: Path

    def log(self) -> list[dict[str, Any]]:
        lines = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        return [json.loads(line) for line in lines]

    def events(self) -> list[str]:
        """The calls that matter for ordering: CDK commands, the layer builds (the API's, then
        the ingest function's) and the index upload (infra/index/upload.py)."""
        named = []
        for entry in self.log():
            tool, args = entry["tool"], entry["args"]
            if tool == "cdk":
                named.append(f"cdk {args[0]}")
            elif tool == "layer":
                named.append("ingest layer" if "--profile" in args else "layer")
            elif tool == "uv" and args[2:4] == ["athenaeum", "publish"]:
                named.append("publish vectors")
            elif tool == "uv" and "infra.index.upload" in args:
                if "--sources-only" in args:
                    named.append("sources")
                else:
                    named.append("prune" if "--prune-only" in args else "upload")
        return named

    def keys(self) -> set[str]:
        listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="index/")
        return {item["Key"] for item in listing.get("Contents", [])}


@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_dir(tmp_path_factory) / "deploy-synth-cache"


@pytest.fixture
def deploy(tmp_path: Path, moto_endpoint: str, synth_cache: Path) -> Deploy:
    """A copy of the repository with a stub layer build, stubs for `aws`, uv and the CDK, and an
    empty bucket in moto; `deploy.run(context, *args, ...)` writes that cdk.context.json into
    the copy and runs its ./deploy.sh, the stub AWS answering as the keywords say."""
    import boto3  # type: ignore[import-untyped]

    repo = tmp_path / "repo"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*_COPIED, ".python-version"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, repo / name)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (repo / "layer").mkdir()
    for path, body in (
        (stubs / "aws", _AWS),
        (stubs / "uv", _UV),
        (stubs / "cdk", _CDK),
        (repo / "layer" / "build.sh", _LAYER),
    ):
        path.write_text(f"#!{sys.executable}\n{_STUB_PRELUDE}{body}")
        path.chmod(0o755)

    bucket = f"athenaeum-index-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    log_file = tmp_path / "calls.jsonl"
    state_file = tmp_path / "aws-state.json"

    real_uv = os.environ.get("UV") or shutil.which("uv")
    assert real_uv, "uv is not on PATH"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(
        PATH=f"{stubs}{os.pathsep}{env['PATH']}",
        ATHENAEUM_CDK=str(stubs / "cdk"),
        DEPLOY_TEST_LOG=str(log_file),
        DEPLOY_TEST_STATE=str(state_file),
        DEPLOY_TEST_UV=real_uv,
        DEPLOY_TEST_ROOT=str(ROOT),
        DEPLOY_TEST_SYNTH_CACHE=str(synth_cache),
        # The copy runs in the test's venv, never syncing it (cdk.json's app says --extra).
        UV_PROJECT_ENVIRONMENT=sys.prefix,
        UV_NO_SYNC="1",
        # Only the upload talks to "AWS": moto's S3, with dummy credentials.
        AWS_ENDPOINT_URL_S3=moto_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )

    def run(
        context: dict[str, Any],
        *args: str,
        credentials: bool = True,
        stacks: dict[str, dict[str, str]] | None = None,
        extra_env: dict[str, str] | None = None,
        outputs: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        (repo / "cdk.context.json").write_text(json.dumps(context))
        state = {
            "account": ACCOUNT,
            "region": REGION,
            "credentials": credentials,
            "stacks": stacks or {},
            "endpoint": ENDPOINT,
            "bucket": bucket,
            "outputs": outputs or {},
        }
        state_file.write_text(json.dumps(state))
        return subprocess.run(
            [str(repo / "deploy.sh"), *args],
            cwd=repo,
            env=env | (extra_env or {}),
            capture_output=True,
            text=True,
            timeout=300,
        )

    return Deploy(repo=repo, bucket=bucket, s3=s3, run=run, log_file=log_file)


# A stack whose index goes to S3 by deploy.sh, deployed first and then updated: the same context
# file and command line (the command line's arm64, layer and bundle win over the file's), so the
# two tests synthesize it once. example.com outside the OAuth values is an ordinary address, not
# a placeholder.
S3_STACK_FILE = {
    "index_size_bytes": 300 * 1024 * 1024,  # as if too large to package: the index goes to S3
    "alarm_email": "ops@example.com",
    "cors_origins": ["https://app.example.com"],
    **GOOD_OAUTH,
}


def s3_stack_args(bundle: Path) -> list[str]:
    args = {
        "architecture": "arm64",
        "layer_dir": "build/layer-arm64",
        "index_dir": str(bundle),
        "index_upload": "cli",
    }
    return [a for key, value in args.items() for a in ("--context", f"{key}={value}")]


def example_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.context.json.example").read_text())
    return context | overrides


def seed_older_bundle(deploy: Deploy) -> str:
    old = "index/0123456789abcdef"
    for name in ("manifest.json", "vectors.npy"):
        deploy.s3.put_object(Bucket=deploy.bucket, Key=f"{old}/{name}", Body=b"older bundle")
    return old


def template(deploy: Deploy) -> dict[str, Any]:
    path = deploy.repo / "cdk.out" / "AtheneumStack.template.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_refuses_placeholder_oauth_values_from_the_file(
    deploy: Deploy, scifact_bundle: Path
) -> None:
    placeholders = {
        "oauth_issuer": "https://login.example.com/",
        "oauth_audience": "https://athenaeum.example.com",
        "oauth_jwks_url": "https://login.example.com/.well-known/jwks.json",
    }
    result = deploy.run(example_context(index_dir=str(scifact_bundle), **placeholders))
    assert result.returncode == 1
    assert (
        "placeholder OAuth values (example.com) in oauth_issuer, oauth_audience, oauth_jwks_url"
        in result.stderr
    )
    assert deploy.events() == []


def test_refuses_a_placeholder_given_on_the_command_line(
    deploy: Deploy, scifact_bundle: Path
) -> None:
    context = example_context(index_dir=str(scifact_bundle), **GOOD_OAUTH)
    url = "https://login.example.com/.well-known/jwks.json"
    result = deploy.run(context, "--context", f"oauth_jwks_url={url}")
    assert result.returncode == 1
    assert "placeholder OAuth values (example.com) in oauth_jwks_url;" in result.stderr


def test_command_line_oauth_values_replace_the_files_placeholders(
    deploy: Deploy, scifact_bundle: Path
) -> None:
    # Past the placeholder check, the next gate is the credentials (none here).
    args = [a for key, value in GOOD_OAUTH.items() for a in ("--context", f"{key}={value}")]
    result = deploy.run(example_context(index_dir=str(scifact_bundle)), *args, credentials=False)
    assert result.returncode == 1
    assert "placeholder" not in result.stderr
    assert "no AWS credentials" in result.stderr


def test_refuses_without_aws_credentials(deploy: Deploy, scifact_bundle: Path) -> None:
    context = example_context(index_dir=str(scifact_bundle), **GOOD_OAUTH)
    result = deploy.run(context, credentials=False)
    assert result.returncode == 1
    assert (
        "deploy.sh: no AWS credentials: run 'aws configure' or 'aws sso login' "
        "(or set AWS_PROFILE)" in result.stderr
    )
    assert deploy.events() == []
    assert [e["args"][:2] for e in deploy.log() if e["tool"] == "aws"] == [
        ["sts", "get-caller-identity"]
    ]


def test_checks_the_bundle_named_on_the_command_line(deploy: Deploy, scifact_bundle: Path) -> None:
    context = example_context(index_dir=str(scifact_bundle), **GOOD_OAUTH)
    result = deploy.run(context, "--context", "index_dir=no-such-bundle")
    assert result.returncode == 1
    assert "no index bundle at no-such-bundle" in result.stderr
    assert deploy.events() == []


@pytest.mark.slow
def test_first_deploy_bootstraps_then_uploads_after_the_deploy(
    deploy: Deploy, scifact_bundle: Path
) -> None:
    result = deploy.run(example_context(**S3_STACK_FILE), *s3_stack_args(scifact_bundle))
    assert result.returncode == 0, result.stderr[-3000:]

    calls = deploy.log()
    # No region in the environment: deploy.sh asks the AWS CLI's configuration.
    assert ["configure", "get", "region"] in [e["args"] for e in calls if e["tool"] == "aws"]
    bootstrap = [e for e in calls if e["tool"] == "cdk" and e["args"][0] == "bootstrap"]
    assert [e["args"] for e in bootstrap] == [["bootstrap", f"aws://{ACCOUNT}/{REGION}"]]
    # A first deploy: the bucket exists only after `cdk deploy`, so the upload comes after it.
    assert deploy.events() == [
        "layer",
        "ingest layer",
        "cdk synth",
        "cdk bootstrap",
        "cdk deploy",
        "upload",
        "prune",
        "sources",
    ]
    deploy_call = next(e for e in calls if e["tool"] == "cdk" and e["args"][0] == "deploy")
    assert deploy_call["region"] == REGION
    assert deploy_call["args"][:5] == [
        "deploy",
        "--require-approval",
        "never",
        "--outputs-file",
        "cdk.out/outputs.json",
    ]

    prefix = template(deploy)["Outputs"]["IndexS3Prefix"]["Value"]
    manifest = json.loads((scifact_bundle / "manifest.json").read_text())
    assert deploy.keys() == {f"{prefix}/manifest.json"} | {
        f"{prefix}/{rel}" for rel in manifest["files"]
    }
    assert f"==> uploading the index bundle to s3://{deploy.bucket}/{prefix}/" in result.stdout
    assert f"==> deployed: {ENDPOINT}" in result.stdout
    assert f"curl -s {ENDPOINT}health" in result.stdout
    assert f'curl -s -X POST {ENDPOINT}search -H "Authorization: Bearer $TOKEN"' in result.stdout
    # The key the curl sends is made against the stack's own key set.
    assert "TOKEN=$(uv run athenaeum keys create my-first-key --secret " in result.stdout


@pytest.mark.slow
def test_update_uploads_before_the_deploy_and_prunes_after(
    deploy: Deploy, scifact_bundle: Path
) -> None:
    old = seed_older_bundle(deploy)
    # The file says x86_64, the default layer and another bundle; the command line wins.
    context = example_context(**S3_STACK_FILE)
    assert (context["architecture"], context["index_dir"]) == ("x86_64", "index")
    stacks = {"CDKToolkit": {}, "AtheneumStack": {"IndexBucketName": deploy.bucket}}
    result = deploy.run(context, *s3_stack_args(scifact_bundle), stacks=stacks)
    assert result.returncode == 0, result.stderr[-3000:]

    # The toolkit exists: no bootstrap. The stack exists: its bucket gets the bundle first, so
    # the new function version only ever sees a whole bundle; older bundles go afterwards.
    assert deploy.events() == [
        "layer",
        "ingest layer",
        "cdk synth",
        "upload",
        "cdk deploy",
        "prune",
        "sources",
    ]
    calls = deploy.log()
    layers = [e["args"] for e in calls if e["tool"] == "layer"]
    assert layers == [
        ["--arch", "arm64", "--out", "build/layer-arm64"],
        ["--profile", "ingest", "--arch", "arm64", "--out", "build/ingest-layer"],
    ]
    assert "==> building the dependency layer (arm64)" in result.stdout
    assert "==> building the ingest function's layer (arm64)" in result.stdout

    # The synthesized stack is arm64 and its layers are the ones just built.
    resources = template(deploy)["Resources"].values()
    functions = [
        r for r in resources if r["Type"] == "AWS::Lambda::Function" and "Layers" in r["Properties"]
    ]
    assert len(functions) == 3  # the API function, the authorizer and the ingest function
    assert all(f["Properties"]["Architectures"] == ["arm64"] for f in functions)
    layer_versions = [r for r in resources if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert len(layer_versions) == 2
    assert all(v["Properties"]["CompatibleArchitectures"] == ["arm64"] for v in layer_versions)

    prefix = template(deploy)["Outputs"]["IndexS3Prefix"]["Value"]
    keys = deploy.keys()
    assert f"{prefix}/manifest.json" in keys
    assert not any(key.startswith(f"{old}/") for key in keys)
    assert f"index: deleted the older bundle s3://{deploy.bucket}/{old}/" in result.stdout
    assert f"==> deployed: {ENDPOINT}" in result.stdout
    outputs = json.loads((deploy.repo / "cdk.out" / "outputs.json").read_text())
    assert outputs["AtheneumStack"]["IndexUpload"] == "cli"


@pytest.mark.slow
def test_deploy_uploads_the_source_files_the_bundle_names(
    deploy: Deploy, pdf_library: PdfLibrary, tmp_path: Path
) -> None:
    """A packaged bundle still keeps its sources in the bucket: deploy.sh uploads exactly the
    files the manifest names (found under `sources_dir`, checked by sha256), content-addressed,
    and deletes source files no longer named."""
    stale = "sources/" + "0" * 64 + "/removed.pdf"
    deploy.s3.put_object(Bucket=deploy.bucket, Key=stale, Body=b"an older library's file")
    # The PDFs moved since they were converted: sources_dir says where they are now.
    moved = tmp_path / "moved-pdfs"
    shutil.copytree(pdf_library.pdfs, moved)
    (moved / "unrelated.pdf").write_bytes(b"%PDF-1.4 not in the index")
    context = example_context(
        index_dir=str(pdf_library.bundle), sources_dir=str(moved), **GOOD_OAUTH
    )
    result = deploy.run(context, stacks={"CDKToolkit": {}}, extra_env={"AWS_REGION": REGION})
    assert result.returncode == 0, result.stderr[-3000:]
    assert deploy.events() == ["layer", "ingest layer", "cdk synth", "cdk deploy", "sources"]
    # The region is in the environment: deploy.sh asks the AWS CLI's configuration nothing.
    calls = deploy.log()
    assert ["configure", "get", "region"] not in [e["args"] for e in calls if e["tool"] == "aws"]
    assert {e["region"] for e in calls if e["tool"] == "cdk"} == {REGION}
    assert template(deploy)["Outputs"]["IndexStrategy"]["Value"] == "packaged"

    listing = deploy.s3.list_objects_v2(Bucket=deploy.bucket, Prefix="sources/")
    keys = {item["Key"] for item in listing.get("Contents", [])}
    manifest = json.loads((pdf_library.bundle / "manifest.json").read_text())
    expected = {
        f"sources/{d['source_file']['sha256']}/{Path(d['source']).name}": d["source"]
        for d in manifest["documents"]
    }
    assert keys == set(expected)
    for key, source in expected.items():
        body = deploy.s3.get_object(Bucket=deploy.bucket, Key=key)["Body"].read()
        assert body == (moved / source).read_bytes()
    assert f"==> uploading the source files the index names to s3://{deploy.bucket}/sources/" in (
        result.stdout
    )
    assert "1 no longer named deleted" in result.stdout


@pytest.mark.slow
def test_dry_run_builds_both_layers_and_synthesizes_without_aws(
    deploy: Deploy, scifact_bundle: Path
) -> None:
    # The example's placeholders are accepted in a dry run, and no AWS is asked anything.
    context = example_context(index_dir=str(scifact_bundle), ingest_layer_dir="build/ingest")
    result = deploy.run(context, "--dry-run", credentials=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert deploy.events() == ["layer", "ingest layer", "cdk synth"]
    assert [e for e in deploy.log() if e["tool"] == "aws"] == []
    layers = [e["args"] for e in deploy.log() if e["tool"] == "layer"]
    assert layers == [
        ["--arch", "x86_64"],
        ["--profile", "ingest", "--arch", "x86_64", "--out", "build/ingest"],
    ]
    assert (deploy.repo / "build" / "layer" / "python").is_dir()
    assert (deploy.repo / "build" / "ingest" / "python").is_dir()
    assert "==> dry run complete" in result.stdout
    # The template holds both layers, the ingest function on its own, and its queue.
    resources = template(deploy)["Resources"].values()
    assert len([r for r in resources if r["Type"] == "AWS::Lambda::LayerVersion"]) == 2
    (ingest,) = [
        r["Properties"]
        for r in resources
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"].get("Handler") == "athenaeum.ingest.lambda_handler.handler"
    ]
    assert ingest["ReservedConcurrentExecutions"] == 1
    assert [r for r in resources if r["Type"] == "AWS::Lambda::EventSourceMapping"]


# --- index_backend=s3vectors -----------------------------------------------------------------


@pytest.mark.slow
def test_s3vectors_deploy_synthesizes_the_index_and_publishes_the_bundle_into_it(
    deploy: Deploy, scifact_bundle: Path, moto_endpoint: str
) -> None:
    """No ingest layer is built and the stack holds a vector index; after `cdk deploy`,
    deploy.sh runs `athenaeum publish` into it, keeping the state record in the stack's bucket;
    the library of the ingest is not started. The index is the one moto holds (moto has no
    full-text search, so publish creates the index here instead of finding CloudFormation's)."""
    import boto3

    vectors = boto3.client(
        "s3vectors",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    vector_bucket = f"athenaeum-vectors-{uuid.uuid4().hex[:8]}"
    vectors.create_vector_bucket(vectorBucketName=vector_bucket)  # what CloudFormation makes
    index_uri = f"s3vectors://{vector_bucket}/library-index"
    state_uri = f"s3://{deploy.bucket}/s3vectors/library-index.json"
    context = example_context(index_dir=str(scifact_bundle), index_backend="s3vectors")
    result = deploy.run(
        context | GOOD_OAUTH,
        stacks={"CDKToolkit": {}},
        extra_env={"AWS_ENDPOINT_URL_S3VECTORS": moto_endpoint},
        outputs={"VectorIndexUri": index_uri, "VectorIndexStateS3Uri": state_uri},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert deploy.events() == ["layer", "cdk synth", "cdk deploy", "publish vectors", "sources"]
    assert "no ingest function with index_backend=s3vectors" in result.stdout
    assert "index_backend=s3vectors: no ingest function" in result.stderr
    types = [r["Type"] for r in template(deploy)["Resources"].values()]
    assert types.count("AWS::S3Vectors::VectorBucket") == types.count("AWS::S3Vectors::Index") == 1
    assert template(deploy)["Outputs"]["IndexStrategy"]["Value"] == "s3vectors"
    (publish,) = [e for e in deploy.log() if e["tool"] == "uv" and "publish" in e["args"]]
    assert publish["args"] == [
        "run",
        "--no-sync",
        "athenaeum",
        "publish",
        str(scifact_bundle),
        index_uri,
        "--state",
        state_uri,
    ]
    assert not [e for e in deploy.log() if "infra.index.publish" in e["args"]]
    assert f"==> publishing the bundle's chunks into {index_uri}" in result.stdout

    chunks = json.loads((scifact_bundle / "manifest.json").read_text())["counts"]["chunks"]
    where = {"vectorBucketName": vector_bucket, "indexName": "library-index"}
    page = vectors.list_vectors(**where)
    keys = [v["key"] for v in page["vectors"]]
    while page.get("nextToken"):
        page = vectors.list_vectors(**where, nextToken=page["nextToken"])
        keys += [v["key"] for v in page["vectors"]]
    assert len(set(keys)) == chunks > 0
    key = "s3vectors/library-index.json"
    record = json.loads(deploy.s3.get_object(Bucket=deploy.bucket, Key=key)["Body"].read())
    assert record["index"] == index_uri and len(record["vectors"]) == chunks
    assert "uv run athenaeum push" not in result.stdout  # no library without the ingest
