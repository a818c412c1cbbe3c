"""The API function construct (infra/function), alone in a bare stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from infra.config import ConfigError, LlmUpstream, VpcPlacement
from infra.function.infrastructure import (
    MAX_ENVIRONMENT_BYTES,
    UNRESOLVED_BYTES,
    ApiFunction,
    PublishedIndex,
    check_environment_size,
    environment_bytes,
)
from tests.infra.helpers import (
    API_FUNCTION_NAME,
    CONTEXT,
    OAUTH,
    PARTIAL_SECRET_ARN,
    SECRET_ARN,
    SUBNETS,
    acknowledged,
    function_named,
    logical_id,
    make_code,
    make_layer,
)

LLM = LlmUpstream(
    base_url="https://api.openai.com/v1", model="gpt-4o-mini", api_key_secret_arn=SECRET_ARN
)


def build(tmp: Path, **options: Any) -> tuple[ApiFunction, Template]:
    """The function with the stack's defaults; `bucket=True` has it follow an index published
    in S3, `packaged_index=False` without a bundle in its code."""
    stack = Stack(App(), "Bare")
    if options.pop("bucket", False):
        options["published"] = PublishedIndex(
            bucket=s3.Bucket(stack, "Bucket"), refresh_s=options.pop("refresh_s", 60)
        )
    function = ApiFunction(
        stack,
        "Function",
        function_name=API_FUNCTION_NAME,
        code=make_code(tmp),
        layer_dir=make_layer(tmp),
        oauth=OAUTH,
        architecture=lambda_.Architecture.X86_64,
        memory_mb=2048,
        timeout=Duration.seconds(options.pop("timeout_s", 29)),
        ephemeral_storage_mb=options.pop("ephemeral_storage_mb", 512),
        log_retention=logs.RetentionDays.ONE_MONTH,
        **options,
    )
    return function, Template.from_stack(stack)


def variables(template: Template) -> dict[str, Any]:
    return dict(function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"])


def role_policies(template: Template, function: ApiFunction) -> dict[str, Any]:
    role = logical_id(function.function.role)  # type: ignore[arg-type]
    return template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role}]}})


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[ApiFunction, Template]:
    return build(tmp_path_factory.mktemp("packaged"))


def test_layer_logs_limits_and_settings(packaged: tuple[ApiFunction, Template]) -> None:
    function, template = packaged
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": API_FUNCTION_NAME,
            "Handler": "athenaeum.server.lambda_handler.handler",
            "Runtime": "python3.12",
            "Architectures": ["x86_64"],
            "Layers": [{"Ref": logical_id(function.layer)}],
            "MemorySize": 2048,
            "Timeout": 29,
            "EphemeralStorage": {"Size": 512},
            "LoggingConfig": Match.object_like(
                {"LogGroup": {"Ref": logical_id(function.log_group)}}
            ),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "ATHENAEUM_INDEX_DIR": "/var/task/index",
                        "ATHENAEUM_PRELOAD_INDEX": "true",
                        "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
                        "ATHENAEUM_OAUTH_ISSUER": CONTEXT["oauth_issuer"],
                        "ATHENAEUM_OAUTH_AUDIENCE": CONTEXT["oauth_audience"],
                        "ATHENAEUM_OAUTH_JWKS_URL": CONTEXT["oauth_jwks_url"],
                        "ATHENAEUM_OAUTH_REQUIRED_SCOPES": "",
                    }
                )
            },
        },
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"LogGroupName": f"/aws/lambda/{API_FUNCTION_NAME}", "RetentionInDays": 30},
    )
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["x86_64"]},
    )


def test_nothing_optional_by_default(packaged: tuple[ApiFunction, Template]) -> None:
    function, template = packaged
    props = function_named(template, API_FUNCTION_NAME)
    assert "VpcConfig" not in props and "SnapStart" not in props
    assert template.find_resources("AWS::EC2::SecurityGroup") == {}
    # No alias: API Gateway calls the function itself.
    assert function.live_alias is None and function.target is function.function
    assert template.find_resources("AWS::Lambda::Alias") == {}
    assert template.find_resources("AWS::Lambda::Version") == {}
    names = set(variables(template))
    assert not {"ATHENAEUM_CORS_ORIGINS", "ATHENAEUM_PUBLIC_BASE_URL"} & names
    assert not [name for name in names if name.startswith("ATHENAEUM_LLM_")]
    assert not [name for name in names if name.startswith("ATHENAEUM_INDEX_S3")]
    # No grant beyond the basic execution role.
    assert role_policies(template, function) == {}


def test_follows_the_published_index_from_its_packaged_bundle(tmp_path: Path) -> None:
    function, template = build(tmp_path, bucket=True, refresh_s=15)
    env = variables(template)
    uri = env["ATHENAEUM_INDEX_S3_URI"]["Fn::Join"][1]
    assert uri[0] == "s3://" and uri[-1] == "/index"
    assert env["ATHENAEUM_INDEX_CACHE_DIR"] == "/tmp/athenaeum-index"
    assert env["ATHENAEUM_INDEX_REFRESH_S"] == "15"
    # The packaged bundle is the version it starts from, loaded in the init phase.
    assert env["ATHENAEUM_INDEX_DIR"] == "/var/task/index"
    assert env["ATHENAEUM_PRELOAD_INDEX"] == "true"
    (policy,) = role_policies(template, function).values()
    bucket = logical_id(function.node.scope.node.find_child("Bucket"))  # type: ignore[union-attr]
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Action": "s3:GetObject",
            "Effect": "Allow",
            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/index/*"]]},
        },
        # A missing pointer reads as 404, not 403.
        {
            "Action": "s3:ListBucket",
            "Condition": {"StringLike": {"s3:prefix": ["index/*"]}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [bucket, "Arn"]},
        },
    ]


def test_without_a_packaged_bundle_it_serves_only_the_published_index(tmp_path: Path) -> None:
    _, template = build(tmp_path, bucket=True, packaged_index=False, ephemeral_storage_mb=557)
    props = function_named(template, API_FUNCTION_NAME)
    assert props["EphemeralStorage"] == {"Size": 557}
    env = props["Environment"]["Variables"]
    assert env["ATHENAEUM_INDEX_S3_URI"]["Fn::Join"][1][-1] == "/index"
    # On demand, the download waits for the first request (init has 10 s).
    assert "ATHENAEUM_PRELOAD_INDEX" not in env and "ATHENAEUM_INDEX_DIR" not in env


def test_a_function_without_any_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="packaged index or a published one"):
        build(tmp_path, packaged_index=False)


def test_provisioned_concurrency_publishes_a_live_alias(tmp_path: Path) -> None:
    function, template = build(
        tmp_path, provisioned_concurrency=2, bucket=True, packaged_index=False
    )
    assert function.live_alias is not None and function.target is function.live_alias
    versions = template.find_resources("AWS::Lambda::Version")
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
    # A published version loads the index before traffic, even from S3.
    assert variables(template)["ATHENAEUM_PRELOAD_INDEX"] == "true"


def test_snapstart_on_published_versions_behind_the_alias(tmp_path: Path) -> None:
    function, template = build(tmp_path, snapstart=True)
    assert function_named(template, API_FUNCTION_NAME)["SnapStart"] == {
        "ApplyOn": "PublishedVersions"
    }
    template.has_resource_properties(
        "AWS::Lambda::Alias", {"Name": "live", "ProvisionedConcurrencyConfig": Match.absent()}
    )
    assert function.target is function.live_alias


def test_vpc_placement(tmp_path: Path) -> None:
    placement = VpcPlacement(vpc_id="vpc-0123456789abcdef0", subnet_ids=SUBNETS)
    function, template = build(tmp_path, vpc=placement)
    assert function.security_group is not None
    assert function_named(template, API_FUNCTION_NAME)["VpcConfig"] == {
        "SubnetIds": list(SUBNETS),
        "SecurityGroupIds": [{"Fn::GetAtt": [logical_id(function.security_group), "GroupId"]}],
    }
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "VpcId": "vpc-0123456789abcdef0",
            "SecurityGroupEgress": [Match.object_like({"CidrIp": "0.0.0.0/0", "IpProtocol": "-1"})],
            "SecurityGroupIngress": Match.absent(),
        },
    )
    role = template.find_resources("AWS::IAM::Role")[logical_id(function.function.role)]  # type: ignore[arg-type]
    managed = json.dumps(role["Properties"]["ManagedPolicyArns"])
    assert "service-role/AWSLambdaVPCAccessExecutionRole" in managed


def test_llm_upstream_names_the_secret_and_may_read_only_it(tmp_path: Path) -> None:
    function, template = build(tmp_path, llm=LLM)
    env = variables(template)
    assert env["ATHENAEUM_LLM_BASE_URL"] == "https://api.openai.com/v1"
    assert env["ATHENAEUM_LLM_MODEL"] == "gpt-4o-mini"
    assert env["ATHENAEUM_LLM_API_KEY_SECRET"] == SECRET_ARN
    (policy,) = role_policies(template, function).values()
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "secretsmanager:GetSecretValue", "Effect": "Allow", "Resource": SECRET_ARN}
    ]


@pytest.mark.parametrize(
    ("timeout_s", "generation_s", "rewrite_s"), [(29, "20", "5"), (20, "13", "3"), (10, "5", "1")]
)
def test_the_model_calls_fit_in_the_function_timeout(
    tmp_path: Path, timeout_s: int, generation_s: str, rewrite_s: str
) -> None:
    _, template = build(tmp_path, llm=LLM, timeout_s=timeout_s)
    env = variables(template)
    assert env["ATHENAEUM_LLM_TIMEOUT_S"] == generation_s
    assert env["ATHENAEUM_LLM_REWRITE_TIMEOUT_S"] == rewrite_s


def test_partial_secret_arn_grants_only_the_suffix_slot(tmp_path: Path) -> None:
    partial = LlmUpstream(
        base_url="https://llm.internal.test/v1",
        model="local-model",
        api_key_secret_arn=PARTIAL_SECRET_ARN,
    )
    function, template = build(tmp_path, llm=partial)
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
    assert variables(template)["ATHENAEUM_LLM_API_KEY_SECRET"] == PARTIAL_SECRET_ARN
    # cdk-nag's finding for that wildcard is acknowledged, with its reason.
    finding = f"AwsSolutions-IAM5[Resource::{PARTIAL_SECRET_ARN}-??????]"
    assert any(rule.endswith(finding) for rule in acknowledged(function))


def test_public_url_and_cors_origins_reach_the_app(tmp_path: Path) -> None:
    origins = ("https://app.athenaeum.test", "http://localhost:5173")
    _, template = build(
        tmp_path, public_base_url="https://api.athenaeum.test", cors_origins=origins
    )
    env = variables(template)
    # Chunk links and the RFC 9728 metadata name the custom domain, not execute-api.
    assert env["ATHENAEUM_PUBLIC_BASE_URL"] == "https://api.athenaeum.test"
    assert env["ATHENAEUM_CORS_ORIGINS"] == "https://app.athenaeum.test,http://localhost:5173"


def test_an_access_policy_too_large_for_lambdas_environment_is_refused(tmp_path: Path) -> None:
    """Lambda refuses more than 4 KB of environment variables, mid-deploy; synth refuses them
    first (here before the template is made), naming the context key that filled them."""
    policy = json.dumps({f"team-{i:03}": [f"group-{i:03}-readers"] for i in range(150)})
    with pytest.raises(
        ConfigError,
        match=r"would take \d+ bytes, over Lambda's 4096 \(4 KB\); context key access_policy",
    ):
        build(tmp_path, bucket=True, access_policy=policy)


def test_the_environment_is_measured_with_what_cloudformation_fills_in() -> None:
    bucket = s3.Bucket(Stack(App(), "Bare"), "Bucket")
    # A bucket's name (a token until deploy) counts as the most such a value may take.
    assert environment_bytes({"A": f"s3://{bucket.bucket_name}/index"}) == environment_bytes(
        {"A": f"s3://{'x' * UNRESOLVED_BYTES}/index"}
    )
    full = {"ATHENAEUM_ACCESS_POLICY": ""}
    full["ATHENAEUM_ACCESS_POLICY"] = "x" * (MAX_ENVIRONMENT_BYTES - environment_bytes(full))
    check_environment_size(full)
    with pytest.raises(ConfigError, match="access_policy takes 4067 of them"):
        check_environment_size({"ATHENAEUM_ACCESS_POLICY": full["ATHENAEUM_ACCESS_POLICY"] + "x"})
    with pytest.raises(ConfigError, match="its largest setting is ATHENAEUM_CORS_ORIGINS"):
        check_environment_size({"ATHENAEUM_CORS_ORIGINS": "x" * MAX_ENVIRONMENT_BYTES})


def test_a_function_searching_s3_vectors_follows_no_published_bundle(tmp_path: Path) -> None:
    """With an S3 Vectors index, the packaged index is the bundle's query side and nothing is
    downloaded: a published bundle to follow, or no packaged query side, is a mistake."""
    from athenaeum.s3vectors.definition import IndexDefinition
    from infra.vectors.infrastructure import VectorStore

    stack = Stack(App(), "Bare")
    vectors = VectorStore(stack, "Vectors", definition=IndexDefinition(dimension=384))
    published = PublishedIndex(bucket=s3.Bucket(stack, "Bucket"))
    for wrong in ({"published": published}, {"packaged_index": False, "published": published}):
        with pytest.raises(ValueError, match="query side and follows no published bundle"):
            ApiFunction(
                stack,
                f"Function{len(wrong)}",
                function_name=API_FUNCTION_NAME,
                code=make_code(tmp_path / str(len(wrong))),
                layer_dir=make_layer(tmp_path / str(len(wrong))),
                oauth=OAUTH,
                architecture=lambda_.Architecture.X86_64,
                memory_mb=2048,
                timeout=Duration.seconds(29),
                ephemeral_storage_mb=512,
                log_retention=logs.RetentionDays.ONE_MONTH,
                vector_index=vectors,
                **wrong,  # type: ignore[arg-type]
            )
