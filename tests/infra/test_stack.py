"""The CDK stack, synthesized in-process: template assertions and cdk-nag (AwsSolutions).

No AWS, no CDK CLI and no real layer build: the layer is a stub folder and the bundles are tiny
(a large one declares large byte counts in its manifest, or its size comes from context).
"""

from __future__ import annotations

import hashlib
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
from infra.stack import CORS_ALLOW_HEADERS, AtheneumStack  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {
    "oauth_issuer": "https://issuer.test/",
    "oauth_audience": "https://athenaeum.test",
    "oauth_jwks_url": "https://issuer.test/.well-known/jwks.json",
}
PUBLIC_PATHS = {"/health", "/.well-known/{proxy+}"}
API_FUNCTION_NAME = "AtheneumStack-MCPServerFunction"
CERTIFICATE_ARN = (
    "arn:aws:acm:eu-west-1:123456789012:certificate/0b6c1f9e-1234-4d2a-9c3e-0123456789ab"
)
WEB_ACL_ARN = (
    "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/athenaeum/"
    "0b6c1f9e-1234-4d2a-9c3e-0123456789ab"
)
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:athenaeum/llm-AbC123"
PARTIAL_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:athenaeum/llm"
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0fedcba9876543210")
# A key that might sit in a developer's shell while they synth: it must never reach the template.
PLAIN_LLM_KEY = "sk-proj-plain-key-that-must-not-leak-0123456789"
# Every optional key that can go together (SnapStart excludes provisioned concurrency).
ADVANCED = {
    "domain_name": "api.athenaeum.test",
    "certificate_arn": CERTIFICATE_ARN,
    "vpc_id": "vpc-0123456789abcdef0",
    # As `--context private_subnet_ids=...` gives it: one string.
    "private_subnet_ids": ", ".join(SUBNETS),
    "provisioned_concurrency": 2,
    "waf_web_acl_arn": WEB_ACL_ARN,
    "cors_origins": ["https://app.athenaeum.test", "http://localhost:5173"],
    "llm_base_url": "https://api.openai.com/v1/",
    "llm_model": "gpt-4o-mini",
    "llm_api_key_secret_arn": SECRET_ARN,
}
SNAPSTART = {
    "snapstart": "true",
    "domain_name": "API.Athenaeum.test",
    "certificate_arn": CERTIFICATE_ARN,
    "disable_execute_api_endpoint": True,
    "cors_origins": "*",
    "llm_base_url": "https://llm.internal.test/v1",
    "llm_model": "local-model",
    "llm_api_key_secret_arn": PARTIAL_SECRET_ARN,
}


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


@pytest.fixture(scope="module")
def advanced(tmp_path_factory: pytest.TempPathFactory) -> tuple[AtheneumStack, Template]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ATHENAEUM_LLM_API_KEY", PLAIN_LLM_KEY)
        stack = synth(tmp_path_factory.mktemp("advanced"), **ADVANCED)
        return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def snapstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[AtheneumStack, Template]:
    stack = synth(tmp_path_factory.mktemp("snapstart"), **SNAPSTART)
    return stack, Template.from_stack(stack)


def logical_id(stack: AtheneumStack, construct: Any) -> str:
    return stack.get_logical_id(construct.node.default_child)


def api_function(template: Template) -> dict[str, Any]:
    functions = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"FunctionName": API_FUNCTION_NAME}}
    )
    assert len(functions) == 1
    return dict(next(iter(functions.values()))["Properties"])


def gateway_responses(template: Template) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in template.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }


def acknowledged(stack: AtheneumStack) -> set[str]:
    """Every cdk-nag rule acknowledged anywhere in the stack."""
    return {
        rule
        for construct in stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule in entry.data
    }


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
    responses = gateway_responses(template)
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
            "Handler": "athenaeum.server.lambda_handler.handler",
            "Runtime": "python3.12",
            "Layers": [{"Ref": layer_id}],
            "MemorySize": 2048,
            "Timeout": MAX_TIMEOUT_SECONDS,
            "LoggingConfig": Match.object_like({"LogGroup": Match.any_value()}),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "ATHENAEUM_INDEX_DIR": "/var/task/index",
                        "ATHENAEUM_PRELOAD_INDEX": "true",
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
    assert (staged / "athenaeum" / "server" / "lambda_handler.py").is_file()
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
        {
            "Handler": "athenaeum.server.lambda_handler.handler",
            "EphemeralStorage": {"Size": 2048 + 256},
        },
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
    # Authorizer failures come from its log markers, not its Errors metric (every refused
    # token is an error there).
    template.has_resource_properties(
        "AWS::Logs::MetricFilter",
        {
            "FilterPattern": '?"AUTHORIZER_KEYS_UNAVAILABLE" ?"AUTHORIZER_FAILURE"',
            "MetricTransformations": [
                Match.object_like(
                    {
                        "MetricName": "AuthorizerFailures",
                        "MetricNamespace": "Athenaeum/AtheneumStack",
                        "MetricValue": "1",
                    }
                )
            ],
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "AuthorizerFailures", "Namespace": "Athenaeum/AtheneumStack"},
    )
    assert not template.find_resources(
        "AWS::CloudWatch::Alarm",
        {"Properties": {"MetricName": "Errors", "Namespace": "AWS/Lambda"}},
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


# --- advanced configuration (docs/deployment.md, "Advanced configuration") ---------------------


def test_custom_domain_is_regional_tls12_and_mapped_to_the_stage(
    advanced: tuple[AtheneumStack, Template],
) -> None:
    stack, template = advanced
    template.has_resource_properties(
        "AWS::ApiGateway::DomainName",
        {
            "DomainName": "api.athenaeum.test",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "RegionalCertificateArn": CERTIFICATE_ARN,
            "SecurityPolicy": "TLS_1_2",
        },
    )
    stage_id = logical_id(stack, stack.api.deployment_stage)
    template.has_resource_properties(
        "AWS::ApiGateway::BasePathMapping",
        {
            "RestApiId": {"Ref": logical_id(stack, stack.api)},
            "Stage": {"Ref": stage_id},
            "BasePath": Match.absent(),
        },
    )
    domain_id = next(iter(template.find_resources("AWS::ApiGateway::DomainName")))
    template.has_output(
        "CustomDomainTarget", {"Value": {"Fn::GetAtt": [domain_id, "RegionalDomainName"]}}
    )
    template.has_output("CustomDomainURL", {"Value": "https://api.athenaeum.test/"})
    # The execute-api endpoint stays on (and is still the APIEndpoint) unless disabled.
    template.has_output("APIEndpoint", {"Value": {"Fn::Join": Match.any_value()}})
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"DisableExecuteApiEndpoint": Match.absent()}
    )


def test_custom_domain_is_the_public_url_in_the_app_and_the_challenges(
    advanced: tuple[AtheneumStack, Template],
) -> None:
    _, template = advanced
    variables = api_function(template)["Environment"]["Variables"]
    assert variables["ATHENAEUM_PUBLIC_BASE_URL"] == "https://api.athenaeum.test"
    responses = gateway_responses(template)
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED"):
        challenge = responses[kind]["ResponseParameters"]["gatewayresponse.header.WWW-Authenticate"]
        assert challenge == (
            "'Bearer resource_metadata="
            '"https://api.athenaeum.test/.well-known/oauth-protected-resource"\''
        )


def test_no_custom_domain_by_default(packaged: tuple[AtheneumStack, Template]) -> None:
    _, template = packaged
    assert template.find_resources("AWS::ApiGateway::DomainName") == {}
    assert template.find_resources("AWS::ApiGateway::BasePathMapping") == {}
    assert "CustomDomainURL" not in template.find_outputs("*")
    assert "ATHENAEUM_PUBLIC_BASE_URL" not in api_function(template)["Environment"]["Variables"]
    challenge = json.dumps(
        gateway_responses(template)["UNAUTHORIZED"]["ResponseParameters"][
            "gatewayresponse.header.WWW-Authenticate"
        ]
    )
    assert ".execute-api." in challenge


def test_disabled_execute_api_endpoint_makes_the_domain_the_endpoint(
    snapstart: tuple[AtheneumStack, Template],
) -> None:
    _, template = snapstart
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"DisableExecuteApiEndpoint": True}
    )
    # The domain is normalized: lower case, as API Gateway stores it.
    template.has_output("APIEndpoint", {"Value": "https://api.athenaeum.test/"})
    template.has_resource_properties(
        "AWS::ApiGateway::DomainName", {"DomainName": "api.athenaeum.test"}
    )


def test_vpc_holds_the_api_function_but_not_the_authorizer(
    advanced: tuple[AtheneumStack, Template],
) -> None:
    stack, template = advanced
    assert stack.api_function.connections.security_groups
    group = stack.api_function.connections.security_groups[0]
    assert api_function(template)["VpcConfig"] == {
        "SubnetIds": list(SUBNETS),
        "SecurityGroupIds": [{"Fn::GetAtt": [logical_id(stack, group), "GroupId"]}],
    }
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "VpcId": "vpc-0123456789abcdef0",
            "SecurityGroupEgress": [Match.object_like({"CidrIp": "0.0.0.0/0", "IpProtocol": "-1"})],
            "SecurityGroupIngress": Match.absent(),
        },
    )
    # The authorizer fetches the issuer's JWKS from the internet and reads nothing private.
    template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "handler.handler", "VpcConfig": Match.absent()}
    )
    role = template.find_resources("AWS::IAM::Role")[logical_id(stack, stack.api_function.role)]
    managed = json.dumps(role["Properties"]["ManagedPolicyArns"])
    assert "service-role/AWSLambdaVPCAccessExecutionRole" in managed


def test_no_vpc_by_default(packaged: tuple[AtheneumStack, Template]) -> None:
    _, template = packaged
    assert "VpcConfig" not in api_function(template)
    assert template.find_resources("AWS::EC2::SecurityGroup") == {}


def test_provisioned_concurrency_alias_serves_every_route(
    advanced: tuple[AtheneumStack, Template],
) -> None:
    stack, template = advanced
    assert stack.live_alias is not None
    alias_id = logical_id(stack, stack.live_alias)
    versions = template.find_resources("AWS::Lambda::Version")
    assert len(versions) == 1
    (version_id,) = versions
    template.has_resource_properties(
        "AWS::Lambda::Alias",
        {
            "Name": "live",
            "FunctionVersion": {"Fn::GetAtt": [version_id, "Version"]},
            "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 2},
        },
    )
    # Replaced versions are deleted, so code copies do not pile up in Lambda's storage.
    assert versions[version_id]["DeletionPolicy"] == "Delete"
    proxied = [m for m in method_paths(template).values() if m["Integration"]["Type"] != "MOCK"]
    assert len(proxied) == 4
    for method in proxied:
        assert {"Ref": alias_id} in method["Integration"]["Uri"]["Fn::Join"][1]
    permissions = template.find_resources(
        "AWS::Lambda::Permission", {"Properties": {"Principal": "apigateway.amazonaws.com"}}
    )
    targets = [p["Properties"]["FunctionName"] for p in permissions.values()]
    assert targets.count({"Ref": alias_id}) == 4


def test_without_an_alias_api_gateway_calls_the_function(
    packaged: tuple[AtheneumStack, Template],
) -> None:
    stack, template = packaged
    assert stack.live_alias is None
    assert template.find_resources("AWS::Lambda::Alias") == {}
    assert template.find_resources("AWS::Lambda::Version") == {}
    function_id = logical_id(stack, stack.api_function)
    for method in method_paths(template).values():
        uri = method["Integration"]["Uri"]["Fn::Join"][1]
        assert {"Fn::GetAtt": [function_id, "Arn"]} in uri
    assert "SnapStart" not in api_function(template)


def test_snapstart_on_published_versions_behind_the_alias(
    snapstart: tuple[AtheneumStack, Template],
) -> None:
    stack, template = snapstart
    assert api_function(template)["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    template.has_resource_properties(
        "AWS::Lambda::Alias", {"Name": "live", "ProvisionedConcurrencyConfig": Match.absent()}
    )
    assert stack.live_alias is not None
    alias_id = logical_id(stack, stack.live_alias)
    for method in method_paths(template).values():
        if method["Integration"]["Type"] == "AWS_PROXY":
            assert {"Ref": alias_id} in method["Integration"]["Uri"]["Fn::Join"][1]


def test_snapstart_refuses_an_index_in_s3(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"snapstart.*S3.*512 MB"):
        synth(tmp_path, nag=False, snapstart=True, index_size_bytes=300 * MIB)


def test_waf_web_acl_is_associated_with_the_stage(
    advanced: tuple[AtheneumStack, Template],
) -> None:
    stack, template = advanced
    template.has_resource_properties(
        "AWS::WAFv2::WebACLAssociation",
        {
            "WebACLArn": WEB_ACL_ARN,
            "ResourceArn": {
                "Fn::Join": [
                    "",
                    Match.array_with(
                        [
                            {"Ref": logical_id(stack, stack.api)},
                            "/stages/",
                            {"Ref": logical_id(stack, stack.api.deployment_stage)},
                        ]
                    ),
                ]
            },
        },
    )
    # With the association the finding is resolved, not acknowledged.
    assert not any("APIG3" in rule for rule in acknowledged(stack))
    report = AwsSolutionsChecks(stack.node.scope).validate_scope(stack)
    assert not any("APIG3" in v.rule_name for v in report.violations)


def test_without_waf_the_apig3_finding_is_acknowledged(
    packaged: tuple[AtheneumStack, Template],
) -> None:
    stack, template = packaged
    assert template.find_resources("AWS::WAFv2::WebACLAssociation") == {}
    assert "AwsSolutions::AwsSolutions-APIG3" in acknowledged(stack)


def test_cors_preflight_is_answered_by_the_gateway_without_the_authorizer(
    advanced: tuple[AtheneumStack, Template],
) -> None:
    stack, template = advanced
    methods = method_paths(template)
    preflights = {name: m for name, m in methods.items() if name.startswith("OPTIONS ")}
    assert set(preflights) == {
        "OPTIONS /",
        "OPTIONS /{proxy+}",
        "OPTIONS /health",
        "OPTIONS /.well-known/{proxy+}",
    }
    for name, method in preflights.items():
        assert method["AuthorizationType"] == "NONE", name
        assert "AuthorizerId" not in method, name
        integration = method["Integration"]
        assert integration["Type"] == "MOCK", name
        (response,) = integration["IntegrationResponses"]
        headers = response["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == (
            "'https://app.athenaeum.test'"
        )
        assert headers["method.response.header.Access-Control-Allow-Headers"] == (
            f"'{','.join(CORS_ALLOW_HEADERS)}'"
        )
        # The second origin is answered with itself (API Gateway's template override).
        assert '"http://localhost:5173"' in response["ResponseTemplates"]["application/json"]
    # Everything else keeps the authorizer.
    authorizer_id = logical_id(stack, stack.authorizer)
    for name, method in methods.items():
        if name not in preflights and name.split(" ", 1)[1] not in PUBLIC_PATHS:
            assert method["AuthorizerId"] == {"Ref": authorizer_id}, name
    variables = api_function(template)["Environment"]["Variables"]
    assert variables["ATHENAEUM_CORS_ORIGINS"] == "https://app.athenaeum.test,http://localhost:5173"


def test_cors_headers_on_the_gateway_errors(
    advanced: tuple[AtheneumStack, Template], snapstart: tuple[AtheneumStack, Template]
) -> None:
    for kind, props in gateway_responses(advanced[1]).items():
        headers = props["ResponseParameters"]
        # Several origins: the caller's own Origin is echoed (the bodies are fixed messages).
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == (
            "method.request.header.Origin"
        ), kind
        assert headers["gatewayresponse.header.Vary"] == "'Origin'", kind
        assert headers["gatewayresponse.header.Access-Control-Expose-Headers"] == (
            "'WWW-Authenticate'"
        ), kind
    for kind, props in gateway_responses(snapstart[1]).items():
        headers = props["ResponseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'", kind
    assert api_function(snapstart[1])["Environment"]["Variables"]["ATHENAEUM_CORS_ORIGINS"] == "*"


def test_cors_off_by_default(packaged: tuple[AtheneumStack, Template]) -> None:
    _, template = packaged
    assert not [name for name in method_paths(template) if name.startswith("OPTIONS ")]
    for props in gateway_responses(template).values():
        assert (
            "gatewayresponse.header.Access-Control-Allow-Origin" not in props["ResponseParameters"]
        )
    assert "ATHENAEUM_CORS_ORIGINS" not in api_function(template)["Environment"]["Variables"]


def test_llm_upstream_names_the_secret_and_may_read_only_it(
    advanced: tuple[AtheneumStack, Template],
) -> None:
    stack, template = advanced
    variables = api_function(template)["Environment"]["Variables"]
    assert variables["ATHENAEUM_LLM_BASE_URL"] == "https://api.openai.com/v1"
    assert variables["ATHENAEUM_LLM_MODEL"] == "gpt-4o-mini"
    assert variables["ATHENAEUM_LLM_API_KEY_SECRET"] == SECRET_ARN
    role = logical_id(stack, stack.api_function.role)
    (policy,) = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role}]}}
    ).values()
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "secretsmanager:GetSecretValue", "Effect": "Allow", "Resource": SECRET_ARN}
    ]


def test_partial_secret_arn_grants_only_the_suffix_slot(
    snapstart: tuple[AtheneumStack, Template],
) -> None:
    _, template = snapstart
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "secretsmanager:GetSecretValue",
                        "Effect": "Allow",
                        "Resource": f"{PARTIAL_SECRET_ARN}-??????",
                    }
                ]
            }
        },
    )
    assert (
        api_function(template)["Environment"]["Variables"]["ATHENAEUM_LLM_API_KEY_SECRET"]
        == PARTIAL_SECRET_ARN
    )


def test_plain_llm_key_never_reaches_the_template(
    advanced: tuple[AtheneumStack, Template],
) -> None:
    # The fixture synthesized with ATHENAEUM_LLM_API_KEY set in the environment.
    _, template = advanced
    assert PLAIN_LLM_KEY not in json.dumps(template.to_json())
    for function in template.find_resources("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "ATHENAEUM_LLM_API_KEY" not in variables
    with pytest.raises(ConfigError, match="llm_api_key_secret_arn"):
        StackConfig.from_context({**CONTEXT, **ADVANCED, "llm_api_key": PLAIN_LLM_KEY}.get)


def test_no_llm_upstream_by_default(packaged: tuple[AtheneumStack, Template]) -> None:
    stack, template = packaged
    variables = api_function(template)["Environment"]["Variables"]
    assert not [name for name in variables if name.startswith("ATHENAEUM_LLM_")]
    role = logical_id(stack, stack.api_function.role)
    assert (
        template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role}]}})
        == {}
    )


# --- advanced configuration: parsing ---------------------------------------------------------


def test_advanced_keys_default_to_off() -> None:
    config = StackConfig.from_context(CONTEXT.get)
    assert config.custom_domain is None and config.vpc is None and config.llm is None
    assert config.provisioned_concurrency == 0 and not config.snapstart
    assert config.waf_web_acl_arn is None and config.cors_origins == ()
    assert not config.publishes_versions


def test_advanced_keys_parse_lists_flags_and_urls() -> None:
    config = StackConfig.from_context({**CONTEXT, **ADVANCED}.get)
    assert config.vpc is not None and config.vpc.subnet_ids == SUBNETS
    assert config.cors_origins == ("https://app.athenaeum.test", "http://localhost:5173")
    assert config.llm is not None and config.llm.base_url == "https://api.openai.com/v1"
    assert config.llm.secret_arn_is_complete
    assert config.publishes_versions
    spaced = StackConfig.from_context(
        {**CONTEXT, "cors_origins": "https://a.test https://b.test:8443"}.get
    )
    assert spaced.cors_origins == ("https://a.test", "https://b.test:8443")
    snap = StackConfig.from_context({**CONTEXT, **SNAPSTART}.get)
    assert snap.snapstart and snap.publishes_versions
    assert snap.custom_domain is not None and snap.custom_domain.disable_execute_api_endpoint
    assert snap.llm is not None and not snap.llm.secret_arn_is_complete


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"domain_name": "api.athenaeum.test"}, "certificate_arn"),
        ({"certificate_arn": CERTIFICATE_ARN}, "domain_name"),
        (
            {"domain_name": "https://api.athenaeum.test", "certificate_arn": CERTIFICATE_ARN},
            "domain_name",
        ),
        (
            {
                "domain_name": "api.athenaeum.test",
                "certificate_arn": "arn:aws:iam::123456789012:cert/x",
            },
            "certificate_arn",
        ),
        ({"disable_execute_api_endpoint": True}, "disable_execute_api_endpoint"),
        ({"disable_execute_api_endpoint": "maybe"}, "disable_execute_api_endpoint"),
        ({"vpc_id": "vpc-0123456789abcdef0"}, "private_subnet_ids"),
        ({"private_subnet_ids": list(SUBNETS)}, "vpc_id"),
        ({"vpc_id": "my-vpc", "private_subnet_ids": list(SUBNETS)}, "vpc_id"),
        (
            {"vpc_id": "vpc-0123456789abcdef0", "private_subnet_ids": "subnet-1"},
            "private_subnet_ids",
        ),
        ({"provisioned_concurrency": -1}, "provisioned_concurrency"),
        ({"provisioned_concurrency": 1001}, "provisioned_concurrency"),
        ({"provisioned_concurrency": "two"}, "provisioned_concurrency"),
        ({"snapstart": "on"}, "snapstart"),
        (
            {"snapstart": True, "provisioned_concurrency": 1},
            "snapstart and provisioned_concurrency",
        ),
        (
            {"waf_web_acl_arn": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/a/0b6c"},
            "waf_web_acl_arn",
        ),
        ({"waf_web_acl_arn": "my-acl"}, "waf_web_acl_arn"),
        ({"cors_origins": ["https://app.test/"]}, "cors_origins"),
        ({"cors_origins": "app.test"}, "cors_origins"),
        ({"cors_origins": ["*", "https://app.test"]}, "cors_origins"),
        ({"llm_model": "gpt-4o-mini"}, "llm_base_url, llm_api_key_secret_arn missing"),
        (
            {
                **{k: v for k, v in ADVANCED.items() if k.startswith("llm_")},
                "llm_base_url": "http://llm.test",
            },
            "llm_base_url",
        ),
        (
            {
                **{k: v for k, v in ADVANCED.items() if k.startswith("llm_")},
                "llm_api_key_secret_arn": "sk-123",
            },
            "llm_api_key_secret_arn",
        ),
        ({"llm_api_key": "sk-123"}, "llm_api_key"),
    ],
)
def test_invalid_advanced_context_refused(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StackConfig.from_context({**CONTEXT, **context}.get)


def test_context_example_parses_as_deploy_sh_passes_it() -> None:
    example = json.loads((ROOT / "cdk.context.json.example").read_text())
    # deploy.sh drops null, "" and [] and turns the rest into `--context key=text`.
    as_flags = {
        key: " ".join(value)
        if isinstance(value, list)
        else json.dumps(value)
        if isinstance(value, bool)
        else str(value)
        for key, value in example.items()
        if value not in (None, "", [])
    }
    for context in (example, as_flags):
        config = StackConfig.from_context(context.get)
        assert config.custom_domain is None and config.vpc is None and config.llm is None


def test_every_context_key_read_is_documented() -> None:
    # Records the keys from_context really asks for, however a helper reads them.
    asked: list[str] = []

    def get(key: str) -> Any:
        asked.append(key)
        return CONTEXT.get(key)

    StackConfig.from_context(get)
    guide = (ROOT / "docs" / "deployment.md").read_text()
    undocumented = sorted({key for key in asked if f"`{key}`" not in guide})
    assert not undocumented, f"context keys missing from docs/deployment.md: {undocumented}"


# --- how the index reaches S3 ----------------------------------------------------------------


def _copies(template: Template) -> dict[str, Any]:
    return template.find_resources("Custom::CDKBucketDeployment")


def test_s3_bundle_lives_under_its_content_address(in_s3: tuple[AtheneumStack, Template]) -> None:
    stack, template = in_s3
    manifest = (Path(stack.config.index_dir) / "manifest.json").read_bytes()
    prefix = "index/" + hashlib.sha256(manifest).hexdigest()[:16]
    assert stack.index_prefix == prefix and stack.index_upload_mode == "cdk"
    # CloudFormation copies the bundle there, and the function reads exactly that prefix.
    (copy,) = _copies(template).values()
    assert copy["Properties"]["DestinationBucketKeyPrefix"] == prefix
    (function,) = [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == "AtheneumStack-MCPServerFunction"
    ]
    uri = function["Properties"]["Environment"]["Variables"]["ATHENAEUM_INDEX_S3_URI"]
    assert uri["Fn::Join"][1][-1] == f"/{prefix}"
    template.has_output("IndexS3Prefix", {"Value": prefix})
    template.has_output("IndexUpload", {"Value": "cdk"})
    # On demand with the index in S3, the download waits for the first request (init has 10 s).
    assert "ATHENAEUM_PRELOAD_INDEX" not in function["Properties"]["Environment"]["Variables"]
    template.has_output("IndexBucketName", {"Value": Match.any_value()})
    # Older bundles deleted by deploy.sh stay recoverable for a while, then expire.
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": [
                    Match.object_like(
                        {"NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "Status": "Enabled"}
                    )
                ]
            }
        },
    )


def test_a_new_bundle_is_a_new_function_configuration(tmp_path: Path) -> None:
    first = synth(tmp_path / "a", nag=False, declared_bytes=300 * MIB)
    second = synth(tmp_path / "b", nag=False, declared_bytes=301 * MIB)
    assert first.index_prefix != second.index_prefix


def test_bundles_over_the_copy_limit_are_uploaded_by_deploy_sh(tmp_path: Path) -> None:
    stack = synth(tmp_path, declared_bytes=3 * 1024 * MIB)
    template = Template.from_stack(stack)
    assert stack.index_upload_mode == "cli"
    assert _copies(template) == {}
    template.has_output("IndexUpload", {"Value": "cli"})
    template.has_output("IndexS3Prefix", {"Value": stack.index_prefix})


def test_index_upload_can_be_forced(tmp_path: Path) -> None:
    cli = synth(tmp_path / "cli", nag=False, declared_bytes=300 * MIB, index_upload="cli")
    assert cli.index_upload_mode == "cli" and _copies(Template.from_stack(cli)) == {}
    cdk = synth(tmp_path / "cdk", nag=False, declared_bytes=3 * 1024 * MIB, index_upload="cdk")
    assert cdk.index_upload_mode == "cdk" and len(_copies(Template.from_stack(cdk))) == 1
    with pytest.raises(ConfigError, match="index_upload"):
        synth(tmp_path / "bad", nag=False, index_upload="ftp")
