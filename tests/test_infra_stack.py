"""The CDK stack, synthesized in-process: template assertions and cdk-nag (AwsSolutions).

No AWS, no CDK CLI and no real layer build: the layer is a stub folder and the bundles are tiny
(a large one declares large byte counts in its manifest, or its size comes from context).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
cdk = pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Validations  # noqa: E402
from aws_cdk import aws_s3 as s3  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import MAX_TIMEOUT_SECONDS, ConfigError, StackConfig  # noqa: E402
from infra.sizing import MIB, IndexStrategy, SizingError, plan  # noqa: E402
from infra.stack import AtheneumStack  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = {
    "oauth_issuer": "https://issuer.test/",
    "oauth_audience": "https://athenaeum.test",
    "oauth_jwks_url": "https://issuer.test/.well-known/jwks.json",
}
PUBLIC_PATHS = {"/health", "/.well-known/{proxy+}"}


def make_layer(root: Path) -> Path:
    layer = root / "layer"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "stub.py").write_text("VALUE = 1\n")
    return layer


def make_bundle(root: Path, *, declared_bytes: int | None = None) -> Path:
    bundle = root / "bundle"
    bundle.mkdir()
    (bundle / "chunks.jsonl").write_text('{"id": "c1", "text": "hello"}\n')
    size = declared_bytes if declared_bytes is not None else 31
    manifest = {
        "format": "athenaeum-index",
        "files": {"chunks.jsonl": {"sha256": "0", "bytes": size}},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def synth(
    tmp: Path, *, nag: bool = True, declared_bytes: int | None = None, **context: Any
) -> AtheneumStack:
    config = StackConfig.from_context(
        {
            **CONTEXT,
            "layer_dir": str(make_layer(tmp)),
            "index_dir": str(make_bundle(tmp, declared_bytes=declared_bytes)),
            **context,
        }.get
    )
    app = App()
    stack = AtheneumStack(app, config.stack_name, config=config, staging_dir=tmp / "staging")
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[AtheneumStack, Template]:
    stack = synth(tmp_path_factory.mktemp("packaged"))
    # from_stack synthesizes the app: with the nag plugin, any unacknowledged error raises.
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def in_s3(tmp_path_factory: pytest.TempPathFactory) -> tuple[AtheneumStack, Template]:
    # The manifest declares 300 MiB: with the code it exceeds 250 MiB, so the index goes to S3.
    stack = synth(tmp_path_factory.mktemp("s3"), declared_bytes=300 * MIB)
    return stack, Template.from_stack(stack)


def method_paths(template: Template) -> dict[str, dict[str, Any]]:
    """Every API method's properties, keyed by 'VERB /path'."""
    resources = template.find_resources("AWS::ApiGateway::Resource")

    def path_of(ref: Any) -> str:
        if "Fn::GetAtt" in ref:  # the API's root resource
            return ""
        props = resources[ref["Ref"]]["Properties"]
        return path_of(props["ParentId"]) + "/" + props["PathPart"]

    return {
        f"{m['Properties']['HttpMethod']} {path_of(m['Properties']['ResourceId']) or '/'}": m[
            "Properties"
        ]
        for m in template.find_resources("AWS::ApiGateway::Method").values()
    }


# --- the API ---------------------------------------------------------------------------------


def test_authorizer_on_every_non_public_method(packaged: tuple[AtheneumStack, Template]) -> None:
    stack, template = packaged
    authorizer_id = stack.get_logical_id(stack.authorizer.node.default_child)  # type: ignore[arg-type]
    methods = method_paths(template)
    assert {"ANY /", "ANY /{proxy+}", "GET /health", "GET /.well-known/{proxy+}"} <= set(methods)
    for name, props in methods.items():
        path = name.split(" ", 1)[1]
        if path in PUBLIC_PATHS:
            assert props["AuthorizationType"] == "NONE", name
        else:
            assert props["AuthorizationType"] == "CUSTOM", name
            assert props["AuthorizerId"] == {"Ref": authorizer_id}, name
        assert props["Integration"]["Type"] == "AWS_PROXY", name


def test_private_health_puts_health_behind_the_authorizer(tmp_path: Path) -> None:
    template = Template.from_stack(synth(tmp_path, nag=False, private_health=True))
    assert method_paths(template)["GET /health"]["AuthorizationType"] == "CUSTOM"


def test_token_authorizer_cached_and_regional_api(packaged: tuple[AtheneumStack, Template]) -> None:
    _, template = packaged
    template.has_resource_properties(
        "AWS::ApiGateway::Authorizer",
        {
            "Type": "TOKEN",
            "IdentitySource": "method.request.header.Authorization",
            "AuthorizerResultTtlInSeconds": 300,
            "IdentityValidationExpression": Match.string_like_regexp("Bearer"),
        },
    )
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"EndpointConfiguration": {"Types": ["REGIONAL"]}}
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "handler.handler", "Runtime": "python3.12", "Timeout": 10},
    )


def test_gateway_responses_speak_the_api_error_format(
    packaged: tuple[AtheneumStack, Template],
) -> None:
    _, template = packaged
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in template.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }
    for kind, status in (("UNAUTHORIZED", "401"), ("ACCESS_DENIED", "403")):
        props = responses[kind]
        assert props["StatusCode"] == status
        challenge = json.dumps(
            props["ResponseParameters"]["gatewayresponse.header.WWW-Authenticate"]
        )
        assert "Bearer resource_metadata=" in challenge
        assert ".well-known/oauth-protected-resource" in challenge
        body = json.loads(props["ResponseTemplates"]["application/json"])
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert responses["AUTHORIZER_FAILURE"]["StatusCode"] == "503"


def test_json_access_logs_and_stage(packaged: tuple[AtheneumStack, Template]) -> None:
    _, template = packaged
    stage = next(iter(template.find_resources("AWS::ApiGateway::Stage").values()))["Properties"]
    fields = json.loads(stage["AccessLogSetting"]["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert "authorizerError" in fields and "status" in fields
    assert stage["StageName"] == "prod"
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {"MethodSettings": Match.array_with([Match.object_like({"LoggingLevel": "ERROR"})])},
    )


def test_outputs_named_as_the_guide_expects(packaged: tuple[AtheneumStack, Template]) -> None:
    _, template = packaged
    template.has_output("APIEndpoint", {"Value": Match.any_value()})
    template.has_output("IndexStrategy", {"Value": "packaged"})


# --- the API function ------------------------------------------------------------------------


def test_api_function_layer_logs_and_limits(packaged: tuple[AtheneumStack, Template]) -> None:
    stack, template = packaged
    layer_id = stack.get_logical_id(
        next(c for c in stack.node.children if c.node.id == "DependencyLayer").node.default_child  # type: ignore[arg-type]
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": "AtheneumStack-MCPServerFunction",
            "Handler": "athenaeum.lambda_handler.handler",
            "Runtime": "python3.12",
            "Layers": [{"Ref": layer_id}],
            "MemorySize": 2048,
            "Timeout": MAX_TIMEOUT_SECONDS,
            "LoggingConfig": Match.object_like({"LogGroup": Match.any_value()}),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "ATHENAEUM_INDEX_DIR": "/var/task/index",
                        "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
                        "ATHENAEUM_OAUTH_ISSUER": CONTEXT["oauth_issuer"],
                    }
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"LogGroupName": "/aws/lambda/AtheneumStack-MCPServerFunction", "RetentionInDays": 30},
    )
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion", {"CompatibleRuntimes": ["python3.12"]}
    )


def test_small_bundle_is_packaged_with_the_function(
    packaged: tuple[AtheneumStack, Template],
) -> None:
    stack, template = packaged
    assert stack.plan.strategy is IndexStrategy.PACKAGED
    assert template.find_resources("AWS::S3::Bucket") == {}
    # The function's asset folder holds the package and the bundle, and nothing of the tests.
    staged = stack.function_dir
    assert (staged / "athenaeum" / "lambda_handler.py").is_file()
    assert (staged / "index" / "manifest.json").is_file()
    assert not list(staged.rglob("__pycache__"))


# --- the S3 strategy -------------------------------------------------------------------------


def test_large_bundle_goes_to_a_locked_down_bucket(in_s3: tuple[AtheneumStack, Template]) -> None:
    stack, template = in_s3
    assert stack.plan.strategy is IndexStrategy.S3
    template.has_output("IndexStrategy", {"Value": "s3"})
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "VersioningConfiguration": {"Status": "Enabled"},
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_s3_function_reads_only_and_sizes_ephemeral_storage(
    in_s3: tuple[AtheneumStack, Template],
) -> None:
    stack, template = in_s3
    # 300 MiB declared (+ the manifest) rounds up to 301 MiB, plus 256 MiB of headroom.
    assert stack.plan.ephemeral_storage_mb == 301 + 256
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": "AtheneumStack-MCPServerFunction",
            "EphemeralStorage": {"Size": 557},
            "Environment": {
                "Variables": Match.object_like(
                    {"ATHENAEUM_INDEX_S3_URI": Match.object_like({"Fn::Join": Match.any_value()})}
                )
            },
        },
    )
    policies = template.find_resources("AWS::IAM::Policy")
    function_role = stack.get_logical_id(stack.api_function.role.node.default_child)  # type: ignore[union-attr,arg-type]
    function_policy = next(
        p for p in policies.values() if {"Ref": function_role} in p["Properties"]["Roles"]
    )
    actions = {s["Action"] for s in function_policy["Properties"]["PolicyDocument"]["Statement"]}
    assert actions == {"s3:GetObject"}


def test_size_from_context_override(tmp_path: Path) -> None:
    stack = synth(tmp_path, nag=False, index_size_bytes=2 * 1024 * MIB)
    assert stack.plan.strategy is IndexStrategy.S3
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "athenaeum.lambda_handler.handler", "EphemeralStorage": {"Size": 2048 + 256}},
    )


def test_bundle_over_ten_gb_fails_synth_pointing_to_alternatives(tmp_path: Path) -> None:
    with pytest.raises(SizingError, match=r"docs/deployment\.md"):
        synth(tmp_path, nag=False, index_size_bytes=10 * 1024 * MIB)


def test_plan_boundaries() -> None:
    fits = plan(layer_bytes=180 * MIB, code_bytes=MIB, bundle_bytes=69 * MIB)
    assert fits.strategy is IndexStrategy.PACKAGED
    over = plan(layer_bytes=180 * MIB, code_bytes=MIB, bundle_bytes=69 * MIB + 1)
    assert over.strategy is IndexStrategy.S3 and over.ephemeral_storage_mb == 512
    with pytest.raises(SizingError, match="layer"):
        plan(layer_bytes=250 * MIB, code_bytes=MIB, bundle_bytes=0)


# --- alarms and nag --------------------------------------------------------------------------


def test_alarms(packaged: tuple[AtheneumStack, Template]) -> None:
    _, template = packaged
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "Latency", "ExtendedStatistic": "p99"}
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "Throttles", "Namespace": "AWS/Lambda"}
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "Errors", "Namespace": "AWS/Lambda"}
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Metrics": Match.array_with(
                [Match.object_like({"Expression": Match.string_like_regexp("errors / requests")})]
            )
        },
    )


def test_nag_is_live_and_catches_an_unjustified_resource(tmp_path: Path) -> None:
    stack = synth(tmp_path)
    s3.Bucket(stack, "Careless")  # no SSL enforcement, no access logs: AwsSolutions errors
    with pytest.raises(Exception, match=r"AwsSolutions-S10"):
        Template.from_stack(stack)


def test_alarm_email_topic_passes_nag(tmp_path: Path) -> None:
    stack = synth(tmp_path, alarm_email="ops@example.org")
    Template.from_stack(stack).has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.org"}
    )


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["oauth_issuer", "oauth_audience", "oauth_jwks_url"])
def test_missing_required_context_names_the_key(missing: str) -> None:
    context = {k: v for k, v in CONTEXT.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        StackConfig.from_context(context.get)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timeout_seconds", 30),
        ("memory_mb", 64),
        ("architecture", "sparc"),
        ("environment", "a b"),
        ("oauth_jwks_url", "http://issuer.test/jwks"),
    ],
)
def test_invalid_context_refused(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        StackConfig.from_context({**CONTEXT, key: value}.get)


def test_environment_suffixes_names(tmp_path: Path) -> None:
    stack = synth(tmp_path, nag=False, environment="dev")
    assert stack.stack_name == "AtheneumStack-dev"
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/aws/lambda/AtheneumStack-dev-MCPServerFunction"}
    )
    template.has_resource_properties("AWS::ApiGateway::Stage", {"StageName": "dev"})


def test_default_stack_name() -> None:
    assert StackConfig.from_context(CONTEXT.get).stack_name == "AtheneumStack"


@pytest.mark.slow
def test_app_synth_without_context_fails_clearly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_OUTDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "oauth_issuer" in result.stderr and "cdk.context.json" in result.stderr


def test_s3_strategy_passes_nag_with_a_concrete_environment(tmp_path: Path) -> None:
    # The CDK CLI sets the account/region; cdk-nag then names the asset bucket concretely.
    config = StackConfig.from_context(
        {
            **CONTEXT,
            "layer_dir": str(make_layer(tmp_path)),
            "index_dir": str(make_bundle(tmp_path, declared_bytes=300 * MIB)),
        }.get
    )
    app = App()
    stack = AtheneumStack(
        app,
        config.stack_name,
        config=config,
        staging_dir=tmp_path / "staging",
        env=cdk.Environment(account="123456789012", region="eu-west-1"),
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    Template.from_stack(stack).has_resource_properties(
        "AWS::S3::Bucket", {"VersioningConfiguration": {"Status": "Enabled"}}
    )
