"""The JWT authorizer construct (infra/authorizer/infrastructure.py), alone in a bare stack; its
handler's behaviour is tests/infra/test_authorizer.py."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Match, Template

from infra.authorizer.infrastructure import BearerAuthorizer
from tests.infra.helpers import CONTEXT, OAUTH, logical_id, make_code, make_layer


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[BearerAuthorizer, lambda_.LayerVersion, Template]:
    tmp = tmp_path_factory.mktemp("authorizer")
    stack = Stack(App(), "Bare")
    layer = lambda_.LayerVersion(stack, "Layer", code=lambda_.Code.from_asset(str(make_layer(tmp))))
    authorizer = BearerAuthorizer(
        stack,
        "Authorizer",
        code=make_code(tmp),
        layer=layer,
        runtime=lambda_.Runtime.PYTHON_3_12,
        architecture=lambda_.Architecture.ARM_64,
        oauth=dataclasses.replace(
            OAUTH, required_scopes=("search:read", "chat"), access_claim="cognito:groups"
        ),
        required_scopes=("search:read", "chat"),
        keys_refresh_s=60,
        cache_ttl=Duration.seconds(300),
        log_retention=logs.RetentionDays.ONE_WEEK,
    )
    # The API Gateway authorizer exists once a method uses it.
    api = apigw.RestApi(stack, "Api")
    api.root.add_method("GET", apigw.MockIntegration(), authorizer=authorizer.authorizer)
    return authorizer, layer, Template.from_stack(stack)


def test_token_authorizer_reads_the_bearer_header_and_caches(
    built: tuple[BearerAuthorizer, lambda_.LayerVersion, Template],
) -> None:
    authorizer, _, template = built
    template.has_resource_properties(
        "AWS::ApiGateway::Authorizer",
        {
            "Type": "TOKEN",
            "IdentitySource": "method.request.header.Authorization",
            "AuthorizerResultTtlInSeconds": 300,
            "IdentityValidationExpression": Match.string_like_regexp("Bearer"),
            "AuthorizerUri": {
                "Fn::Join": [
                    "",
                    Match.array_with([{"Fn::GetAtt": [logical_id(authorizer.function), "Arn"]}]),
                ]
            },
        },
    )


def test_function_runs_the_handler_with_the_oauth_settings(
    built: tuple[BearerAuthorizer, lambda_.LayerVersion, Template],
) -> None:
    authorizer, layer, template = built
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "handler.handler",
            "Runtime": "python3.12",
            "Architectures": ["arm64"],
            "MemorySize": 256,
            "Timeout": 10,
            "Layers": [{"Ref": logical_id(layer)}],
            "VpcConfig": Match.absent(),
            "LoggingConfig": Match.object_like(
                {"LogGroup": {"Ref": logical_id(authorizer.log_group)}}
            ),
            "Environment": {
                "Variables": {
                    "ATHENAEUM_OAUTH_ISSUER": CONTEXT["oauth_issuer"],
                    "ATHENAEUM_OAUTH_AUDIENCE": CONTEXT["oauth_audience"],
                    "ATHENAEUM_OAUTH_JWKS_URL": CONTEXT["oauth_jwks_url"],
                    # As the API function gets them: the app's settings split on commas.
                    "ATHENAEUM_OAUTH_REQUIRED_SCOPES": "search:read,chat",
                    # The claim its tokens carry the caller's groups in (never the policy:
                    # the API function applies that).
                    "ATHENAEUM_ACCESS_CLAIM": "cognito:groups",
                    "ATHENAEUM_JWKS_TIMEOUT_S": "3",
                    # The key set it reads, and how often.
                    "ATHENAEUM_API_KEYS_SECRET": {"Ref": logical_id(authorizer.api_keys)},
                    "ATHENAEUM_API_KEYS_REFRESH_S": "60",
                }
            },
        },
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 7})


def test_the_key_set_is_a_secret_only_the_authorizer_reads(
    built: tuple[BearerAuthorizer, lambda_.LayerVersion, Template],
) -> None:
    """Created by the stack with a valid, empty key set as its value (KMS encrypted by Secrets
    Manager's own key); the authorizer may read it, and nothing in the stack may write it."""
    authorizer, _, template = built
    secret = template.to_json()["Resources"][logical_id(authorizer.api_keys)]
    generated = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generated["SecretStringTemplate"]) == {
        "format": "athenaeum-api-keys",
        "version": 1,
        "keys": [],
    }
    assert "SecretString" not in secret["Properties"]
    from athenaeum.server.auth.keyring import parse_keyset

    value = json.loads(generated["SecretStringTemplate"])
    value[generated["GenerateStringKey"]] = "x" * 16
    assert parse_keyset(json.dumps(value), "the stack's initial value") == []
    policies = [
        statement
        for resource in template.find_resources("AWS::IAM::Policy").values()
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]
    on_secret = [s for s in policies if s["Resource"] == {"Ref": logical_id(authorizer.api_keys)}]
    actions = {
        a
        for s in on_secret
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
