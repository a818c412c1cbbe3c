"""The REST API construct (infra/gateway), alone in a bare stack with a stand-in function and
authorizer."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Stack, Token
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Match, Template

from infra.config import CustomDomain
from infra.gateway.infrastructure import CORS_ALLOW_HEADERS, Gateway
from tests.infra.helpers import (
    CERTIFICATE_ARN,
    PUBLIC_METHODS,
    WEB_ACL_ARN,
    acknowledged,
    gateway_responses,
    invoked,
    logical_id,
    method_paths,
)

DOMAIN = CustomDomain(name="api.athenaeum.test", certificate_arn=CERTIFICATE_ARN)
ORIGINS = ("https://app.athenaeum.test", "http://localhost:5173")


def _function(stack: Stack, name: str) -> lambda_.Function:
    return lambda_.Function(
        stack,
        name,
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
    )


class Built:
    def __init__(self, **options: Any) -> None:
        stack = Stack(App(), "Bare")
        self.target = _function(stack, "Target")
        self.authorizer = apigw.TokenAuthorizer(
            stack, "Authorizer", handler=_function(stack, "AuthorizerFunction")
        )
        self.gateway = Gateway(
            stack,
            "Gateway",
            name="Athenaeum",
            stage_name="prod",
            target=self.target,
            authorizer=self.authorizer,
            log_retention=logs.RetentionDays.ONE_MONTH,
            throttle_rate_limit=50,
            throttle_burst_limit=100,
            **{"oauth": True, **options},
        )
        self.template = Template.from_stack(stack)

    def challenge(self, kind: str = "UNAUTHORIZED") -> Any:
        headers = gateway_responses(self.template)[kind]["ResponseParameters"]
        return headers["gatewayresponse.header.WWW-Authenticate"]


@pytest.fixture(scope="module")
def default() -> Built:
    return Built()


@pytest.fixture(scope="module")
def with_options() -> Built:
    return Built(cors_origins=ORIGINS, custom_domain=DOMAIN, waf_web_acl_arn=WEB_ACL_ARN)


def test_authorizer_on_every_non_public_method(default: Built) -> None:
    methods = method_paths(default.template)
    assert set(methods) == {
        "ANY /",
        "GET /",
        "ANY /{proxy+}",
        "GET /health",
        "GET /docs",
        "GET /openapi.json",
        "GET /.well-known/{proxy+}",
        "GET /sources/{key}",
        # The OAuth relay, public: where a client gets its first token.
        "GET /oauth/authorize",
        "POST /oauth/token",
    }
    for name, props in methods.items():
        if name in PUBLIC_METHODS:
            assert props["AuthorizationType"] == "NONE", name
        else:
            assert props["AuthorizationType"] == "CUSTOM", name
            assert props["AuthorizerId"] == {"Ref": logical_id(default.authorizer)}, name
        assert props["Integration"]["Type"] == "AWS_PROXY", name
        # Every route goes to the one target.
        assert {"Fn::GetAtt": [logical_id(default.target), "Arn"]} in invoked(props), name


def test_the_front_door_and_the_reference_are_public_and_nothing_else_at_the_root(
    default: Built,
) -> None:
    methods = method_paths(default.template)
    assert methods["GET /"]["AuthorizationType"] == "NONE"
    assert methods["ANY /"]["AuthorizationType"] == "CUSTOM"
    root = default.gateway.api.root
    for resource in (root, root.get_resource("docs"), root.get_resource("openapi.json")):
        assert resource is not None
        method = resource.node.find_child("GET")
        assert "AwsSolutions::AwsSolutions-APIG4" in acknowledged(method), resource.path


def test_private_health_puts_health_behind_the_authorizer() -> None:
    built = Built(private_health=True)
    methods = method_paths(built.template)
    assert methods["GET /health"]["AuthorizationType"] == "CUSTOM"
    # The front door shows what /health shows of the index: it is protected alike.
    assert methods["GET /"]["AuthorizationType"] == "CUSTOM"
    assert methods["GET /docs"]["AuthorizationType"] == "NONE"


def test_regional_api_and_its_stage(default: Built) -> None:
    template = default.template
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "Name": "Athenaeum",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "DisableExecuteApiEndpoint": Match.absent(),
        },
    )
    stage = next(iter(template.find_resources("AWS::ApiGateway::Stage").values()))["Properties"]
    fields = json.loads(stage["AccessLogSetting"]["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert "authorizerError" in fields and "status" in fields
    assert stage["StageName"] == "prod"
    assert stage["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": [logical_id(default.gateway.access_logs), "Arn"]
    }
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "MethodSettings": Match.array_with(
                [
                    Match.object_like(
                        {
                            "LoggingLevel": "ERROR",
                            "DataTraceEnabled": False,
                            "ThrottlingRateLimit": 50,
                            "ThrottlingBurstLimit": 100,
                            # Every method of every resource: the public OAuth relay too.
                            "HttpMethod": "*",
                            "ResourcePath": "/*",
                        }
                    )
                ]
            )
        },
    )
    template.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})
    # Without a custom domain, the API's URL is execute-api's.
    assert Token.is_unresolved(default.gateway.url)


def test_gateway_responses_speak_the_api_error_format(default: Built) -> None:
    responses = gateway_responses(default.template)
    for kind, status in (("UNAUTHORIZED", "401"), ("ACCESS_DENIED", "403")):
        props = responses[kind]
        assert props["StatusCode"] == status
        challenge = json.dumps(default.challenge(kind))
        assert "Bearer resource_metadata=" in challenge
        assert ".well-known/oauth-protected-resource" in challenge
        # No custom domain: the metadata is at the execute-api URL.
        assert ".execute-api." in challenge
    for props in responses.values():
        body = json.loads(props["ResponseTemplates"]["application/json"])
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert responses["AUTHORIZER_FAILURE"]["StatusCode"] == "503"
    assert set(responses) == {
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "AUTHORIZER_FAILURE",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    }


def test_optional_pieces_off_by_default(default: Built) -> None:
    template = default.template
    assert not [name for name in method_paths(template) if name.startswith("OPTIONS ")]
    for props in gateway_responses(template).values():
        assert (
            "gatewayresponse.header.Access-Control-Allow-Origin" not in props["ResponseParameters"]
        )
    assert template.find_resources("AWS::ApiGateway::DomainName") == {}
    assert template.find_resources("AWS::ApiGateway::BasePathMapping") == {}
    assert default.gateway.domain is None
    # No web ACL: cdk-nag's finding is acknowledged on the stage, with its reason.
    assert template.find_resources("AWS::WAFv2::WebACLAssociation") == {}
    assert "AwsSolutions::AwsSolutions-APIG3" in acknowledged(default.gateway.stage)


def test_cors_preflight_is_answered_by_the_gateway_without_the_authorizer(
    with_options: Built,
) -> None:
    methods = method_paths(with_options.template)
    preflights = {name: m for name, m in methods.items() if name.startswith("OPTIONS ")}
    assert set(preflights) == {
        "OPTIONS /",
        "OPTIONS /{proxy+}",
        "OPTIONS /health",
        "OPTIONS /.well-known/{proxy+}",
        "OPTIONS /oauth/token",
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
    authorizer_id = logical_id(with_options.authorizer)
    for name, method in methods.items():
        if name not in preflights and name not in PUBLIC_METHODS:
            assert method["AuthorizerId"] == {"Ref": authorizer_id}, name


def test_cors_headers_on_the_gateway_errors(with_options: Built) -> None:
    for kind, props in gateway_responses(with_options.template).items():
        headers = props["ResponseParameters"]
        # Several origins: the caller's own Origin is echoed (the bodies are fixed messages).
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == (
            "method.request.header.Origin"
        ), kind
        assert headers["gatewayresponse.header.Vary"] == "'Origin'", kind
        assert headers["gatewayresponse.header.Access-Control-Expose-Headers"] == (
            "'WWW-Authenticate'"
        ), kind


def test_any_origin_on_the_gateway_errors() -> None:
    built = Built(cors_origins=("*",))
    for kind, props in gateway_responses(built.template).items():
        headers = props["ResponseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'", kind
        assert "gatewayresponse.header.Vary" not in headers, kind


def test_custom_domain_is_regional_tls12_and_mapped_to_the_stage(with_options: Built) -> None:
    template, gateway = with_options.template, with_options.gateway
    template.has_resource_properties(
        "AWS::ApiGateway::DomainName",
        {
            "DomainName": "api.athenaeum.test",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "RegionalCertificateArn": CERTIFICATE_ARN,
            "SecurityPolicy": "TLS_1_2",
        },
    )
    template.has_resource_properties(
        "AWS::ApiGateway::BasePathMapping",
        {
            "RestApiId": {"Ref": logical_id(gateway.api)},
            "Stage": {"Ref": logical_id(gateway.stage)},
            "BasePath": Match.absent(),
        },
    )
    assert gateway.domain is not None
    # The execute-api endpoint stays on (and is still the API's URL) unless disabled.
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"DisableExecuteApiEndpoint": Match.absent()}
    )
    assert Token.is_unresolved(gateway.url)


def test_with_api_keys_alone_the_challenge_names_no_metadata() -> None:
    """Without OAuth there is no authorization server, so no RFC 9728 metadata to point at:
    the challenge is the bare scheme, never a link that would answer 404."""
    keys_only = Built(oauth=False)
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED"):
        assert keys_only.challenge(kind) == "'Bearer'"
    # And no OAuth relay: /oauth/* goes through the authorizer like any other path.
    paths = {
        r["Properties"]["PathPart"]
        for r in keys_only.template.find_resources("AWS::ApiGateway::Resource").values()
    }
    assert "oauth" not in paths


def test_custom_domain_is_the_public_url_in_the_challenges(with_options: Built) -> None:
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED"):
        assert with_options.challenge(kind) == (
            "'Bearer resource_metadata="
            '"https://api.athenaeum.test/.well-known/oauth-protected-resource"\''
        )


def test_disabled_execute_api_endpoint_makes_the_domain_the_url() -> None:
    domain = CustomDomain(
        name="api.athenaeum.test",
        certificate_arn=CERTIFICATE_ARN,
        disable_execute_api_endpoint=True,
    )
    built = Built(custom_domain=domain)
    built.template.has_resource_properties(
        "AWS::ApiGateway::RestApi", {"DisableExecuteApiEndpoint": True}
    )
    assert built.gateway.url == "https://api.athenaeum.test/"


def test_waf_web_acl_is_associated_with_the_stage(with_options: Built) -> None:
    gateway = with_options.gateway
    with_options.template.has_resource_properties(
        "AWS::WAFv2::WebACLAssociation",
        {
            "WebACLArn": WEB_ACL_ARN,
            "ResourceArn": {
                "Fn::Join": [
                    "",
                    Match.array_with(
                        [
                            {"Ref": logical_id(gateway.api)},
                            "/stages/",
                            {"Ref": logical_id(gateway.stage)},
                        ]
                    ),
                ]
            },
        },
    )
    # With the association the finding is resolved, not acknowledged.
    assert not any("APIG3" in rule for rule in acknowledged(gateway))
