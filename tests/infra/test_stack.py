"""The whole stack, synthesized in-process: how the constructs are composed from the context,
cdk-nag (AwsSolutions) clean in every configuration, the logical ids a deployed stack has, and
the outputs deploy.sh and the guide read. What one construct does is in its own test module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import Environment, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from athenaeum.s3vectors.definition import NON_FILTERABLE, IndexDefinition
from athenaeum.server.settings import Settings
from infra import lint
from infra import stack as stack_module
from infra.config import LOG_RETENTION_DAYS, ConfigError
from infra.sizing import MIB, IndexStrategy, SizingError
from infra.stack import AthenaeumStack
from infra.vectors.infrastructure import QUERY_ACTIONS
from tests.infra.helpers import (
    ADVANCED,
    API_FUNCTION_NAME,
    CANONICAL_POLICY,
    CONTEXT,
    PLAIN_LLM_KEY,
    SNAPSTART,
    acknowledged,
    function_named,
    invoked,
    logical_id,
    make_bundle,
    make_layer,
    method_paths,
    synth,
)

ROOT = Path(__file__).resolve().parents[2]
# The ids of a stack deployed before the constructs existed (default environment, index in
# S3): a resource whose id changes is replaced, and these must not be.
DEPLOYED_IDS = {
    "ApiF70053CD": "AWS::ApiGateway::RestApi",
    "ApiDeploymentStageprod3EB9684E": "AWS::ApiGateway::Stage",
    "IndexBucketA89C8461": "AWS::S3::Bucket",
    "MCPServerFunctionA0453C57": "AWS::Lambda::Function",
    "AuthorizerFunctionB4DBAA43": "AWS::Lambda::Function",
    "DependencyLayerE4A0C251": "AWS::Lambda::LayerVersion",
    "JWTAuthorizerE8D8D90E": "AWS::ApiGateway::Authorizer",
}
# And with every option: resources whose replacement would fail the update (a name or path that
# must stay unique) or undo something (a gateway response, the web ACL association).
DEPLOYED_OPTION_IDS = {
    "Apihealth5CB7A415": "AWS::ApiGateway::Resource",
    "ApiUnauthorizedA8540EF3": "AWS::ApiGateway::GatewayResponse",
    "MCPServerLogsACE2FCA9": "AWS::Logs::LogGroup",
    "AccessLogs8B620ECA": "AWS::Logs::LogGroup",
    "LiveAlias9B8FFEA9": "AWS::Lambda::Alias",
    "MCPServerSecurityGroup06FAACE2": "AWS::EC2::SecurityGroup",
    "CustomDomain21DD44B6": "AWS::ApiGateway::DomainName",
    "CustomDomainMapAtheneumStackApi77542C971BC6D44C": "AWS::ApiGateway::BasePathMapping",
    "WebAclAssociation": "AWS::WAFv2::WebACLAssociation",
    "ApiANYApiPermissionAtheneumStackApi77542C97ANY5B9DD6C0": "AWS::Lambda::Permission",
}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[AthenaeumStack, Template]:
    stack = synth(tmp_path_factory.mktemp("packaged"))
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def in_s3(tmp_path_factory: pytest.TempPathFactory) -> tuple[AthenaeumStack, Template]:
    # The manifest declares 300 MiB: with the code it exceeds 250 MiB, so the index goes to S3.
    stack = synth(tmp_path_factory.mktemp("s3"), declared_bytes=300 * MIB)
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def advanced(tmp_path_factory: pytest.TempPathFactory) -> tuple[AthenaeumStack, Template]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ATHENAEUM_LLM_API_KEY", PLAIN_LLM_KEY)
        stack = synth(tmp_path_factory.mktemp("advanced"), **ADVANCED)
        return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> tuple[AthenaeumStack, Template]:
    # The chunks in S3 Vectors; no ingest layer is built for such a stack (deploy.sh).
    tmp = tmp_path_factory.mktemp("s3vectors")
    stack = synth(tmp, index_backend="s3vectors", ingest_layer_dir=str(tmp / "not-built"))
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def snapstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[AthenaeumStack, Template]:
    stack = synth(tmp_path_factory.mktemp("snapstart"), **SNAPSTART)
    return stack, Template.from_stack(stack)


def resource_types(template: Template) -> dict[str, str]:
    return {key: r["Type"] for key, r in template.to_json()["Resources"].items()}


# --- cdk-nag ---------------------------------------------------------------------------------


@pytest.mark.parametrize("configuration", ["packaged", "in_s3", "advanced", "snapstart", "vectors"])
def test_cdk_nag_clean(configuration: str, request: pytest.FixtureRequest) -> None:
    # The fixture synthesized with the AwsSolutions checks: it got this far, so nothing is
    # unacknowledged; and every acknowledgement gives a reason.
    stack, template = request.getfixturevalue(configuration)
    assert template.find_resources("AWS::Lambda::Function")
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                assert all(len(str(reason)) >= 20 for reason in entry.data.values())


@pytest.mark.parametrize("configuration", ["packaged", "in_s3", "advanced", "snapstart", "vectors"])
def test_cfn_lint_clean(configuration: str, request: pytest.FixtureRequest) -> None:
    # Warnings kept on purpose are listed, with their reasons, in infra/lint.py.
    _, template = request.getfixturevalue(configuration)
    assert lint.problems(json.dumps(template.to_json(), indent=1), configuration) == []


def test_cfn_lint_is_live_and_keeps_only_the_listed_warnings() -> None:
    broken = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"Nope": 1}}}}
    assert any(" E3002 " in line for line in lint.problems(json.dumps(broken)))
    # W3005 is kept for a function's role only; any other redundant DependsOn fails.
    redundant = {
        "Resources": {
            "Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {}}},
            "Topic": {
                "Type": "AWS::SNS::Topic",
                "DependsOn": ["Key"],
                "Properties": {"KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]}},
            },
        }
    }
    assert any(" W3005 " in line for line in lint.problems(json.dumps(redundant)))
    assert all(len(kept.reason) >= 20 for kept in lint.KEPT_WARNINGS.values())


def test_nag_is_live_and_catches_an_unjustified_resource(tmp_path: Path) -> None:
    stack = synth(tmp_path)
    s3.Bucket(stack, "Careless")  # no SSL enforcement, no access logs: AwsSolutions errors
    with pytest.raises(Exception, match=r"AwsSolutions-S10"):
        Template.from_stack(stack)


def test_s3_strategy_passes_nag_with_a_concrete_environment(tmp_path: Path) -> None:
    # The CDK CLI sets the account/region; cdk-nag then names the asset bucket concretely.
    stack = synth(
        tmp_path,
        declared_bytes=300 * MIB,
        env=Environment(account="123456789012", region="eu-west-1"),
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::S3::Bucket", {"VersioningConfiguration": {"Status": "Enabled"}}
    )


def test_web_acl_resolves_the_apig3_finding(advanced: tuple[AthenaeumStack, Template]) -> None:
    stack, _ = advanced
    assert not any("APIG3" in rule for rule in acknowledged(stack))
    report = AwsSolutionsChecks(stack.node.scope).validate_scope(stack)
    assert not any("APIG3" in v.rule_name for v in report.violations)


# --- logical ids -----------------------------------------------------------------------------


def test_logical_ids_are_those_of_a_deployed_stack(
    in_s3: tuple[AthenaeumStack, Template], advanced: tuple[AthenaeumStack, Template]
) -> None:
    assert DEPLOYED_IDS.items() <= resource_types(in_s3[1]).items()
    options = resource_types(advanced[1])
    assert DEPLOYED_OPTION_IDS.items() <= options.items()
    assert {k: v for k, v in DEPLOYED_IDS.items() if "Bucket" not in k}.items() <= options.items()
    # The stack's name and construct id stay what the deployment guide names.
    assert in_s3[0].stack_name == in_s3[0].node.id == "AtheneumStack"


# --- composition -----------------------------------------------------------------------------


def test_small_bundle_is_packaged_with_the_function(
    packaged: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = packaged
    assert stack.assets.plan.strategy is IndexStrategy.PACKAGED
    # The bucket is there for the source files only: no copy of the bundle goes into it.
    assert stack.index.upload is None and stack.index.copy is None
    assert len(template.find_resources("AWS::S3::Bucket")) == 1
    assert template.find_resources("Custom::CDKBucketDeployment") == {}
    # The function's asset folder holds the package and the bundle, and nothing of the tests.
    staged = stack.assets.function_dir
    assert (staged / "athenaeum" / "server" / "lambda_handler.py").is_file()
    assert (staged / "index" / "manifest.json").is_file()
    assert not list(staged.rglob("__pycache__"))
    variables = function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"]
    assert variables["ATHENAEUM_INDEX_DIR"] == "/var/task/index"


def test_both_functions_get_the_same_issuer_and_share_the_layer(
    packaged: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = packaged
    functions = template.find_resources("AWS::Lambda::Function")
    api = functions[logical_id(stack.function.function)]["Properties"]
    authorizer = functions[logical_id(stack.authorizer.function)]["Properties"]
    oauth = {k: v for k, v in api["Environment"]["Variables"].items() if "_OAUTH_" in k}
    assert oauth == stack.config.oauth.environment()
    assert oauth.items() <= authorizer["Environment"]["Variables"].items()
    assert api["Layers"] == authorizer["Layers"] == [{"Ref": logical_id(stack.function.layer)}]
    # The authorizer's cache and the stage's name come from the context.
    template.has_resource_properties(
        "AWS::ApiGateway::Authorizer", {"AuthorizerResultTtlInSeconds": 300}
    )
    template.has_resource_properties("AWS::ApiGateway::Stage", {"StageName": "prod"})


@pytest.mark.parametrize("configuration", ["advanced", "snapstart"])
def test_the_access_policy_reaches_the_api_function_and_the_claim_both(
    configuration: str, request: pytest.FixtureRequest
) -> None:
    """The authorizer reads the groups from the claim; the API function applies the policy to
    them, and (holding the issuer's settings too) starts only when the claim is beside it."""
    stack, template = request.getfixturevalue(configuration)
    functions = template.find_resources("AWS::Lambda::Function")
    api = functions[logical_id(stack.function.function)]["Properties"]["Environment"]["Variables"]
    authorizer = functions[logical_id(stack.authorizer.function)]["Properties"]["Environment"][
        "Variables"
    ]
    claim = stack.config.access_claim
    assert authorizer["ATHENAEUM_ACCESS_CLAIM"] == api["ATHENAEUM_ACCESS_CLAIM"] == claim
    assert api["ATHENAEUM_ACCESS_POLICY"] == CANONICAL_POLICY
    assert "ATHENAEUM_ACCESS_POLICY" not in authorizer
    # As the app reads them: the settings accept the policy with the issuer and the claim.
    settings = Settings(
        **{
            name.removeprefix("ATHENAEUM_").lower(): value
            for name, value in api.items()
            if name.startswith(("ATHENAEUM_OAUTH_", "ATHENAEUM_ACCESS_"))
        }
    )
    assert settings.access is not None and settings.access.readable(["eng"]) >= {"engineering"}


def test_without_an_access_policy_no_function_hears_of_groups(
    packaged: tuple[AthenaeumStack, Template],
) -> None:
    _, template = packaged
    for function in template.find_resources("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert not [name for name in variables if name.startswith("ATHENAEUM_ACCESS_")]


def test_without_an_alias_api_gateway_calls_the_function(
    packaged: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = packaged
    assert stack.function.live_alias is None
    function_id = logical_id(stack.function.function)
    for method in method_paths(template).values():
        assert {"Fn::GetAtt": [function_id, "Arn"]} in invoked(method)
    # The authorizer guards the API function's routes.
    authorizer_id = logical_id(stack.authorizer.authorizer)
    assert method_paths(template)["ANY /"]["AuthorizerId"] == {"Ref": authorizer_id}


def test_outputs_named_as_the_guide_expects(packaged: tuple[AthenaeumStack, Template]) -> None:
    _, template = packaged
    template.has_output("APIEndpoint", {"Value": {"Fn::Join": Match.any_value()}})
    template.has_output("IndexStrategy", {"Value": "packaged"})
    outputs = template.find_outputs("*")
    template.has_output("IndexBucketName", {"Value": Match.object_like({"Ref": Match.any_value()})})
    template.has_output("SourcesS3Prefix", {"Value": "sources"})
    assert not {"IndexS3Prefix", "IndexUpload"} & set(outputs)
    assert not {"CustomDomainURL", "CustomDomainTarget", "CustomDomainHostedZoneId"} & set(outputs)


def test_every_accepted_retention_has_its_log_setting() -> None:
    assert set(stack_module._RETENTION) == set(LOG_RETENTION_DAYS)


def test_environment_suffixes_names(tmp_path: Path) -> None:
    stack = synth(tmp_path, nag=False, environment="dev")
    assert stack.stack_name == "AtheneumStack-dev"
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/aws/lambda/AtheneumStack-dev-MCPServerFunction"}
    )
    template.has_resource_properties("AWS::ApiGateway::Stage", {"StageName": "dev"})
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "AuthorizerFailures", "Namespace": "Athenaeum/AtheneumStack-dev"},
    )


@pytest.mark.parametrize("configuration", ["packaged", "in_s3"])
def test_the_function_reads_source_files_only_under_their_prefix(
    configuration: str, request: pytest.FixtureRequest
) -> None:
    """Presigned links carry the function's permissions: it may read the source files, the
    library's documents and the published index, and nothing else in the bucket; it may list
    the index prefix only."""
    stack, template = request.getfixturevalue(configuration)
    bucket = logical_id(stack.index.bucket)
    props = function_named(template, API_FUNCTION_NAME)
    uri = props["Environment"]["Variables"]["ATHENAEUM_SOURCES_S3_URI"]["Fn::Join"][1]
    assert {"Ref": bucket} in uri and uri[-1] == "/sources"
    role = logical_id(stack.function.function.role)
    statements = [
        statement
        for policy in template.find_resources(
            "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role}]}}
        ).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    on_bucket = [st for st in statements if bucket in json.dumps(st.get("Resource"))]
    reads = {
        st["Resource"]["Fn::Join"][1][-1]: st["Action"] for st in on_bucket if "Condition" not in st
    }
    assert reads == {
        "/sources/*": "s3:GetObject",
        "/library/*": "s3:GetObject",
        "/index/*": "s3:GetObject",
    }
    (listing,) = [st for st in on_bucket if "Condition" in st]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["index/*"]}}
    # The key that signs the short links: generated by the stack, readable by the function.
    secret = logical_id(stack.function.link_secret)
    assert props["Environment"]["Variables"]["ATHENAEUM_LINK_SECRET_ARN"] == {"Ref": secret}
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"PasswordLength": 64})},
    )
    reads = [
        st
        for st in statements
        if "secretsmanager:GetSecretValue" in json.dumps(st["Action"])
        and st["Resource"] == {"Ref": secret}
    ]
    assert len(reads) == 1


# --- the index in S3 -------------------------------------------------------------------------


def test_large_bundle_goes_to_s3_and_the_function_follows_the_published_index(
    in_s3: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = in_s3
    assert stack.assets.plan.strategy is IndexStrategy.S3 and stack.index is not None
    # 300 MiB declared (+ the manifest) rounds up to 301 MiB, plus 256 MiB of headroom.
    assert stack.assets.plan.ephemeral_storage_mb == 301 + 256
    props = function_named(template, API_FUNCTION_NAME)
    assert props["EphemeralStorage"] == {"Size": 557}
    # It serves what is published under index/ (the pointer), with no bundle in its code; the
    # bundle is still copied under its content address.
    uri = props["Environment"]["Variables"]["ATHENAEUM_INDEX_S3_URI"]["Fn::Join"][1]
    assert {"Ref": logical_id(stack.index.bucket)} in uri
    assert uri[-1] == "/index"
    assert "ATHENAEUM_INDEX_DIR" not in props["Environment"]["Variables"]
    assert stack.index.copy is not None
    template.has_resource_properties(
        "Custom::CDKBucketDeployment", {"DestinationBucketKeyPrefix": stack.index.prefix}
    )
    template.has_output("IndexStrategy", {"Value": "s3"})
    template.has_output("IndexBucketName", {"Value": {"Ref": logical_id(stack.index.bucket)}})
    template.has_output("IndexS3Prefix", {"Value": stack.index.prefix})
    template.has_output("IndexUpload", {"Value": "cdk"})


def test_bundles_over_the_copy_limit_are_uploaded_by_deploy_sh(tmp_path: Path) -> None:
    stack = synth(tmp_path, declared_bytes=3 * 1024 * MIB)
    template = Template.from_stack(stack)
    assert stack.index is not None and stack.index.upload == "cli"
    assert template.find_resources("Custom::CDKBucketDeployment") == {}
    template.has_output("IndexUpload", {"Value": "cli"})
    template.has_output("IndexS3Prefix", {"Value": stack.index.prefix})


def test_index_upload_can_be_forced(tmp_path: Path) -> None:
    cli = synth(tmp_path / "cli", nag=False, declared_bytes=300 * MIB, index_upload="cli")
    assert cli.index is not None and cli.index.upload == "cli" and cli.index.copy is None
    cdk = synth(tmp_path / "cdk", nag=False, declared_bytes=3 * 1024 * MIB, index_upload="cdk")
    assert cdk.index is not None and cdk.index.upload == "cdk" and cdk.index.copy is not None
    with pytest.raises(ConfigError, match="index_upload"):
        synth(tmp_path / "bad", nag=False, index_upload="ftp")


def test_a_damaged_bundle_is_not_packaged(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "index")
    vectors = bundle / "dense.faiss"
    vectors.write_bytes(vectors.read_bytes()[:-4] + b"\x00\x7e\x00\x7e")  # fp16 NaNs, same size
    with pytest.raises(ConfigError, match=r"cannot be packaged: .*dense\.faiss sha256 mismatch"):
        synth(tmp_path, nag=False, index_dir=str(bundle))


def test_size_from_context_override(tmp_path: Path) -> None:
    stack = synth(tmp_path, nag=False, index_size_bytes=2 * 1024 * MIB)
    assert stack.assets.plan.strategy is IndexStrategy.S3
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


def test_snapstart_refuses_an_index_in_s3(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"snapstart.*S3.*512 MB"):
        synth(tmp_path, nag=False, snapstart=True, index_size_bytes=300 * MIB)


# --- the index in S3 Vectors ----------------------------------------------------------------


def role_statements(stack: AthenaeumStack, template: Template) -> list[dict[str, Any]]:
    """Every statement of the API function role's own policies."""
    role = logical_id(stack.function.function.role)
    return [
        statement
        for policy in template.find_resources(
            "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role}]}}
        ).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_s3vectors_creates_the_index_publish_would_in_an_encrypted_vector_bucket(
    vectors: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = vectors
    assert stack.assets.plan.strategy is IndexStrategy.S3VECTORS and stack.vectors is not None
    (bucket_id,) = template.find_resources("AWS::S3Vectors::VectorBucket")
    bucket = template.to_json()["Resources"][bucket_id]
    assert bucket["Properties"] == {"EncryptionConfiguration": {"SseType": "AES256"}}
    (index,) = template.find_resources("AWS::S3Vectors::Index").values()
    # What `athenaeum publish` creates for this bundle (dimension 2), but for the one property
    # CloudFormation lacks, which publish adds (athenaeum.s3vectors.definition).
    wanted = IndexDefinition(dimension=2).create_index_parameters()
    assert wanted["metadataConfiguration"].pop("textSearchConfigurations") == [
        {"metadataKey": "text", "language": "en"}
    ]
    assert index["Properties"] == {
        "VectorBucketArn": {"Fn::GetAtt": [bucket_id, "VectorBucketArn"]},
        "DataType": wanted["dataType"],
        "Dimension": 2,
        "DistanceMetric": "cosine",
        "MetadataConfiguration": {"NonFilterableMetadataKeys": list(NON_FILTERABLE)},
        "EncryptionConfiguration": {"SseType": "AES256"},
    }
    # A deleted stack keeps the vectors, as it keeps the library's bucket.
    assert bucket["DeletionPolicy"] == index["DeletionPolicy"] == "Retain"


def test_s3vectors_function_may_query_that_index_and_nothing_of_a_bundle_in_s3(
    vectors: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = vectors
    assert stack.vectors is not None
    index_id = stack.get_logical_id(stack.vectors.index)
    statements = role_statements(stack, template)
    on_vectors = [st for st in statements if "s3vectors:" in json.dumps(st["Action"])]
    assert [{**st, "Action": sorted(st["Action"])} for st in on_vectors] == [
        {
            "Action": sorted(QUERY_ACTIONS),
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [index_id, "IndexArn"]},
        }
    ]
    assert QUERY_ACTIONS == ("s3vectors:QueryVectors", "s3vectors:GetVectors")
    # Of the stack's bucket, the source files only: no published index to follow, no bundle
    # to download, no listing, no library.
    bucket = logical_id(stack.index.bucket)
    on_bucket = [st for st in statements if bucket in json.dumps(st.get("Resource"))]
    assert [(st["Action"], st["Resource"]["Fn::Join"][1][-1]) for st in on_bucket] == [
        ("s3:GetObject", "/sources/*")
    ]
    assert not any("s3:ListBucket" in json.dumps(st["Action"]) for st in statements)


def test_s3vectors_function_carries_the_query_side_and_names_the_index(
    vectors: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = vectors
    assert stack.vectors is not None
    variables = function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"]
    assert variables["ATHENAEUM_INDEX_BACKEND"] == "s3vectors"
    assert variables["ATHENAEUM_INDEX_DIR"] == "/var/task/index"
    arn = {"Fn::GetAtt": [stack.get_logical_id(stack.vectors.index), "IndexArn"]}
    assert variables["ATHENAEUM_S3VECTORS_INDEX"] == {
        "Fn::Join": [
            "",
            [
                "s3vectors://",
                {"Fn::Select": [1, {"Fn::Split": ["/", arn]}]},
                "/",
                {"Fn::Select": [3, {"Fn::Split": ["/", arn]}]},
            ],
        ]
    }
    assert not {k for k in variables if k.startswith("ATHENAEUM_INDEX_") and "S3" in k}
    assert "ATHENAEUM_INDEX_CACHE_DIR" not in variables
    assert variables["AWS_DATA_PATH"] == "/opt/python/aws_models"  # the layer's service model
    # The asset: the package (with its S3 Vectors backend) and the bundle's manifest and query
    # encoder; not its vectors, chunks or BM25, which the service holds.
    staged = stack.assets.function_dir
    assert (staged / "athenaeum" / "s3vectors" / "backend.py").is_file()
    index_files = {
        p.relative_to(staged / "index").as_posix() for p in (staged / "index").rglob("*")
    }
    assert {f for f in index_files if "." in f} == {
        "manifest.json",
        "encoder/model.onnx",
        "encoder/tokenizer.json",
    }
    assert template.find_resources("Custom::CDKBucketDeployment") == {}


def test_s3vectors_stack_has_no_ingest_and_outputs_where_to_publish(
    vectors: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = vectors
    assert stack.vectors is not None and stack.ingest is None
    handlers = [
        f["Properties"].get("Handler")
        for f in template.find_resources("AWS::Lambda::Function").values()
    ]
    assert "athenaeum.ingest.lambda_handler.handler" not in handlers
    assert template.find_resources("AWS::SQS::Queue") == {}
    template.has_output("IndexStrategy", {"Value": "s3vectors"})
    variables = function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"]
    template.has_output("VectorIndexUri", {"Value": variables["ATHENAEUM_S3VECTORS_INDEX"]})
    template.has_output(
        "VectorIndexArn",
        {"Value": {"Fn::GetAtt": [stack.get_logical_id(stack.vectors.index), "IndexArn"]}},
    )
    state = template.find_outputs("VectorIndexStateS3Uri")["VectorIndexStateS3Uri"]["Value"]
    parts = state["Fn::Join"][1]
    assert parts[:3] == ["s3://", {"Ref": logical_id(stack.index.bucket)}, "/s3vectors/"]
    assert parts[-1] == ".json"
    outputs = template.find_outputs("*")
    assert not {"LibraryS3Uri", "IndexS3Uri", "IndexS3Prefix", "IndexUpload"} & set(outputs)


@pytest.mark.parametrize("configuration", ["packaged", "in_s3"])
def test_a_bundle_stack_has_no_vector_index(
    configuration: str, request: pytest.FixtureRequest
) -> None:
    stack, template = request.getfixturevalue(configuration)
    assert stack.vectors is None and stack.ingest is not None
    assert "S3Vectors" not in json.dumps(template.to_json())
    assert not any("s3vectors" in json.dumps(st) for st in role_statements(stack, template))
    variables = function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"]
    assert "ATHENAEUM_INDEX_BACKEND" not in variables


def test_s3vectors_refuses_what_only_the_ingest_would_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ingest_passwords_secret.*index_backend=s3vectors"):
        synth(
            tmp_path / "passwords",
            nag=False,
            index_backend="s3vectors",
            ingest_passwords_secret="pdfs",
        )
    with pytest.raises(ConfigError, match="index_backend='opensearch' must be one of"):
        synth(tmp_path / "other", nag=False, index_backend="opensearch")


def test_s3vectors_refuses_a_damaged_query_encoder(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "index")
    (bundle / "encoder" / "model.onnx").write_bytes(b"stand-by")  # same size, other bytes
    with pytest.raises(ConfigError, match=r"query side cannot be packaged: .*model\.onnx sha256"):
        synth(tmp_path, nag=False, index_backend="s3vectors", index_dir=str(bundle))


# --- every option ----------------------------------------------------------------------------


def test_custom_domain_outputs_and_public_url(advanced: tuple[AthenaeumStack, Template]) -> None:
    stack, template = advanced
    assert stack.gateway.domain is not None
    template.has_output(
        "CustomDomainTarget",
        {"Value": {"Fn::GetAtt": [logical_id(stack.gateway.domain), "RegionalDomainName"]}},
    )
    template.has_output(
        "CustomDomainHostedZoneId",
        {"Value": {"Fn::GetAtt": [logical_id(stack.gateway.domain), "RegionalHostedZoneId"]}},
    )
    template.has_output("CustomDomainURL", {"Value": "https://api.athenaeum.test/"})
    # The execute-api endpoint stays on, and is still the APIEndpoint.
    template.has_output("APIEndpoint", {"Value": {"Fn::Join": Match.any_value()}})
    variables = function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"]
    assert variables["ATHENAEUM_PUBLIC_BASE_URL"] == "https://api.athenaeum.test"
    assert variables["ATHENAEUM_CORS_ORIGINS"] == "https://app.athenaeum.test,http://localhost:5173"


def test_disabled_execute_api_endpoint_makes_the_domain_the_endpoint(
    snapstart: tuple[AthenaeumStack, Template],
) -> None:
    _, template = snapstart
    template.has_output("APIEndpoint", {"Value": "https://api.athenaeum.test/"})
    template.has_resource_properties(
        "AWS::ApiGateway::DomainName", {"DomainName": "api.athenaeum.test"}
    )
    variables = function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"]
    assert variables["ATHENAEUM_CORS_ORIGINS"] == "*"


def test_provisioned_concurrency_alias_serves_every_route(
    advanced: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = advanced
    assert stack.function.live_alias is not None
    alias_id = logical_id(stack.function.live_alias)
    proxied = [m for m in method_paths(template).values() if m["Integration"]["Type"] != "MOCK"]
    # ANY / and GET /, /{proxy+}, /health, /docs, /openapi.json, /.well-known/{proxy+},
    # /sources/{key}, /oauth/authorize and token
    assert len(proxied) == 10
    for method in proxied:
        assert {"Ref": alias_id} in invoked(method)
    permissions = template.find_resources(
        "AWS::Lambda::Permission", {"Properties": {"Principal": "apigateway.amazonaws.com"}}
    )
    targets = [p["Properties"]["FunctionName"] for p in permissions.values()]
    assert targets.count({"Ref": alias_id}) == 10


def test_snapstart_alias_serves_every_route(snapstart: tuple[AthenaeumStack, Template]) -> None:
    stack, template = snapstart
    assert stack.function.live_alias is not None
    alias_id = logical_id(stack.function.live_alias)
    for method in method_paths(template).values():
        if method["Integration"]["Type"] == "AWS_PROXY":
            assert {"Ref": alias_id} in invoked(method)


def test_vpc_holds_the_api_function_but_not_the_authorizer(
    advanced: tuple[AthenaeumStack, Template],
) -> None:
    stack, template = advanced
    functions = template.find_resources("AWS::Lambda::Function")
    assert "VpcConfig" in functions[logical_id(stack.function.function)]["Properties"]
    # The authorizer fetches the issuer's JWKS from the internet and reads nothing private.
    assert "VpcConfig" not in functions[logical_id(stack.authorizer.function)]["Properties"]


def test_plain_llm_key_never_reaches_the_template(
    advanced: tuple[AthenaeumStack, Template],
) -> None:
    # The fixture synthesized with ATHENAEUM_LLM_API_KEY set in the environment.
    _, template = advanced
    assert PLAIN_LLM_KEY not in json.dumps(template.to_json())
    for function in template.find_resources("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        assert "ATHENAEUM_LLM_API_KEY" not in variables


# --- the CDK app -----------------------------------------------------------------------------


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
    # No key is required (OAuth is optional): what is missing is the index to serve.
    assert result.returncode == 1
    assert "no index bundle" in result.stderr and "index_dir" in result.stderr


def test_the_cdk_app_prints_nothing_on_stdout(tmp_path: Path) -> None:
    """`cdk synth` prints the template on stdout (and `cdk ls` the stack names): whatever the app
    itself says goes to stderr, so `cdk synth > template.yaml` stays valid YAML."""
    import subprocess
    import sys

    context = {
        **CONTEXT,
        "layer_dir": str(make_layer(tmp_path)),
        "ingest_layer_dir": str(make_layer(tmp_path, "ingest-layer")),
        "index_dir": str(make_bundle(tmp_path, declared_bytes=300 * MIB)),
        "index_upload": "cli",
        "nag": False,
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env={
            **os.environ,
            "CDK_OUTDIR": str(tmp_path / "out"),
            "CDK_CONTEXT_JSON": json.dumps(context),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == ""
    assert "index upload: by deploy.sh" in result.stderr and "MiB" in result.stderr
    assert (tmp_path / "out" / "AtheneumStack.template.json").is_file()
