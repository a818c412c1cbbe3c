"""`Gateway`: the REST API (regional) in front of the API function: its stage and JSON access
logs, the routes and which of them the authorizer guards, CORS preflights, the gateway's own
errors in the API's error shape, and optionally a WAF web ACL and a custom domain."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration, Fn, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from athenaeum.errors import (
    AthenaeumError,
    AuthenticationError,
    AuthUnavailableError,
    GatewayFailedError,
    GatewayRefusedError,
    InsufficientScopeError,
)
from infra.config import CustomDomain
from infra.nag import acknowledge, managed_policy

WELL_KNOWN = ".well-known"
METADATA_PATH = f"{WELL_KNOWN}/oauth-protected-resource"
# What the app's CORSMiddleware allows (athenaeum/server/http/app.py); the gateway answers
# preflights alike.
CORS_ALLOW_METHODS = ("GET", "POST", "OPTIONS")
CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version")
CORS_MAX_AGE = Duration.minutes(10)

# One line of JSON per request; the authorizer fields say why a request was refused.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "path": "$context.path",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "principalId": "$context.authorizer.principalId",
    "authorizerError": "$context.authorizer.error",
    "errorMessage": "$context.error.message",
}


@dataclass(frozen=True, kw_only=True)
class GatewayError:
    """One of the gateway's own answers: the API's error (status, type, code and the one error
    body of athenaeum.errors), so clients parse gateway and app errors alike."""

    name: str
    kind: apigw.ResponseType
    error: AthenaeumError
    # The DEFAULT_4XX/5XX responses keep the status the gateway chose; the others set theirs.
    keep_status: bool = False
    # 401 and 403 tell the client where the protected-resource metadata is (RFC 9728).
    challenge: bool = False

    @property
    def status(self) -> str | None:
        return None if self.keep_status else str(self.error.status_code)

    def body(self) -> str:
        return json.dumps(self.error.body())


GATEWAY_ERRORS = (
    GatewayError(
        name="Unauthorized",
        kind=apigw.ResponseType.UNAUTHORIZED,
        error=AuthenticationError(
            "a valid OAuth access token is required (Authorization: Bearer <token>)"
        ),
        challenge=True,
    ),
    GatewayError(
        name="AccessDenied",
        kind=apigw.ResponseType.ACCESS_DENIED,
        error=InsufficientScopeError("the access token does not grant access to this resource"),
        challenge=True,
    ),
    GatewayError(
        name="AuthorizerFailure",
        kind=apigw.ResponseType.AUTHORIZER_FAILURE,
        error=AuthUnavailableError(
            "the token could not be verified right now (the identity provider's keys are "
            "unreachable); retry shortly"
        ),
    ),
    GatewayError(
        name="Default4xx",
        kind=apigw.ResponseType.DEFAULT_4_XX,
        error=GatewayRefusedError("the request was refused by the API gateway"),
        keep_status=True,
    ),
    GatewayError(
        name="Default5xx",
        kind=apigw.ResponseType.DEFAULT_5_XX,
        error=GatewayFailedError("the API gateway could not complete the request"),
        keep_status=True,
    ),
)


class Gateway(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        stage_name: str,
        target: lambda_.IFunction,
        authorizer: apigw.IAuthorizer,
        oauth: bool,
        log_retention: logs.RetentionDays,
        throttle_rate_limit: float,
        throttle_burst_limit: int,
        private_health: bool = False,
        cors_origins: Sequence[str] = (),
        custom_domain: CustomDomain | None = None,
        waf_web_acl_arn: str | None = None,
    ) -> None:
        """`target` serves every route; `authorizer` guards all but the public ones."""
        super().__init__(scope, construct_id)
        self.stage_name = stage_name
        self.cors_origins = tuple(cors_origins)
        self.custom_domain = custom_domain
        self.oauth = oauth
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.api = self._rest_api(name, throttle_rate_limit, throttle_burst_limit)
        self.stage = self.api.deployment_stage
        self._routes(target, authorizer, private_health=private_health)
        self._gateway_responses()
        self._web_acl(waf_web_acl_arn)
        self.domain: apigw.DomainName | None = None
        if custom_domain is not None:
            self.domain = self._custom_domain(custom_domain)

    @property
    def url(self) -> str:
        """The API's base URL: the custom domain's when the execute-api endpoint is off."""
        domain = self.custom_domain
        if domain is not None and domain.disable_execute_api_endpoint:
            # The execute-api URL answers 403 then.
            return f"{domain.url}/"
        return self.api.url

    def _rest_api(
        self, name: str, throttle_rate_limit: float, throttle_burst_limit: int
    ) -> apigw.RestApi:
        domain = self.custom_domain
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=name,
            description="Athenaeum: search, chat completions and MCP over a document library",
            endpoint_configuration=apigw.EndpointConfiguration(types=[apigw.EndpointType.REGIONAL]),
            # Left out (not false) unless asked for, so the default template does not change.
            disable_execute_api_endpoint=(
                domain is not None and domain.disable_execute_api_endpoint
            )
            or None,
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name=self.stage_name,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                throttling_rate_limit=throttle_rate_limit,
                throttling_burst_limit=throttle_burst_limit,
            ),
        )
        acknowledge(
            api,
            "AwsSolutions-APIG2",
            "every route is a proxy to one FastAPI app, which validates each request body and "
            "parameter itself and answers in the API's own error shape (400/422)",
        )
        acknowledge(
            api,
            "AwsSolutions-IAM4" + managed_policy("AmazonAPIGatewayPushToCloudWatchLogs"),
            "the account-level API Gateway role that writes access logs uses the AWS-managed "
            "AmazonAPIGatewayPushToCloudWatchLogs policy, which is scoped to exactly that",
        )
        acknowledge(
            api,
            "AwsSolutions-COG4",
            "callers authenticate with OAuth access tokens from the configured issuer (any "
            "OIDC provider), verified by the TOKEN Lambda authorizer, not by Cognito",
        )
        return api

    def _routes(
        self, target: lambda_.IFunction, authorizer: apigw.IAuthorizer, *, private_health: bool
    ) -> None:
        root = self.api.root
        integration = apigw.LambdaIntegration(target, proxy=True, allow_test_invoke=False)
        root.add_method("ANY", integration, authorizer=authorizer)
        # The front door, the API reference and its schema are what a person opens in a
        # browser, without a token. The front door shows what /health shows of the index, so it
        # is as public as /health.
        public = [
            root.add_resource(part).add_method("GET", integration)
            for part in ("docs", "openapi.json")
        ]
        if private_health:
            root.add_method("GET", integration, authorizer=authorizer)
        else:
            public.append(root.add_method("GET", integration))
        for method in public:
            acknowledge(
                method,
                "AwsSolutions-APIG4",
                "the front page (GET /), the API reference (/docs) and the OpenAPI schema are "
                "public by design, as the app serves them: they describe the API and show only "
                "what /health shows of the index",
            )
        proxy = root.add_resource("{proxy+}")
        proxy.add_method("ANY", integration, authorizer=authorizer)
        health = root.add_resource("health")
        if private_health:
            health.add_method("GET", integration, authorizer=authorizer)
        else:
            acknowledge(
                health.add_method("GET", integration),
                "AwsSolutions-APIG4",
                "/health is public by design (load balancers and uptime checks); it reveals "
                "only whether the index is loaded. The context flag private_health protects it",
            )
        # RFC 9728 metadata must be readable before the client has a token: it tells it where
        # to get one.
        well_known = root.add_resource(WELL_KNOWN).add_resource("{proxy+}")
        discovery = well_known.add_method("GET", integration)
        acknowledge(
            discovery,
            "AwsSolutions-APIG4",
            "OAuth protected-resource metadata (RFC 9728) must be public: clients read it to "
            "find the authorization server before they hold a token",
        )
        # Links to source files are opened by people in a browser, who hold no token: the
        # link's own signature and expiry are checked by the function.
        sources = root.add_resource("sources").add_resource("{key}")
        opened = sources.add_method("GET", integration)
        acknowledge(
            opened,
            "AwsSolutions-APIG4",
            "links to source files are signed (HMAC-SHA256 over the file and an expiry) and "
            "checked by the function; a person opens them in a browser, without a token",
        )
        # Without OAuth (API keys only) there is nothing to relay to: the routes stay private.
        token = self._oauth_relay(root, integration) if self.oauth else None
        if self.cors_origins:
            # The token endpoint too: MCP clients that run in a browser exchange codes there.
            for resource in (root, proxy, health, well_known, token):
                if resource is not None:
                    self._cors_preflight(resource)

    def _oauth_relay(
        self, root: apigw.IResource, integration: apigw.LambdaIntegration
    ) -> apigw.IResource:
        """The OAuth relay (athenaeum.server.auth.relay): a client calls it to get its first
        token, so it cannot ask for one. The stage's throttling applies to it as to every
        method. Returns the token endpoint's resource."""
        oauth = root.add_resource("oauth")
        token = oauth.add_resource("token")
        for method in (
            oauth.add_resource("authorize").add_method("GET", integration),
            token.add_method("POST", integration),
        ):
            acknowledge(
                method,
                "AwsSolutions-APIG4",
                "the OAuth relay's authorization and token endpoints are where a client gets a "
                "token, so they cannot require one; the token endpoint checks the client's "
                "credentials at the identity provider, and the stage's throttling applies",
            )
        return token

    def _cors_preflight(self, resource: apigw.IResource) -> None:
        # Browsers send the preflight without Authorization, so it must not meet the
        # authorizer. The gateway answers it itself (MOCK): no function invocation, so no
        # unauthenticated way into the function and no cold start before the real request.
        preflight = resource.add_cors_preflight(
            allow_origins=list(self.cors_origins),
            allow_methods=list(CORS_ALLOW_METHODS),
            allow_headers=list(CORS_ALLOW_HEADERS),
            max_age=CORS_MAX_AGE,
        )
        acknowledge(
            preflight,
            "AwsSolutions-APIG4",
            "CORS preflight (OPTIONS) requests carry no credentials by the Fetch standard; the "
            "gateway answers them itself (MOCK integration) and they reach no code or data",
        )

    def _gateway_responses(self) -> None:
        # The RFC 9728 metadata exists only where there is an authorization server to name;
        # with API keys alone the challenge is a bare scheme, never a link to a 404.
        challenge = (
            Fn.join("", ["'Bearer resource_metadata=\"", self._metadata_url(), "\"'"])
            if self.oauth
            else "'Bearer'"
        )
        common = {"Content-Type": "'application/json'", **self._cors_response_headers()}
        for error in GATEWAY_ERRORS:
            headers = dict(common)
            if error.challenge:
                headers["WWW-Authenticate"] = challenge
            self.api.add_gateway_response(
                error.name,
                type=error.kind,
                status_code=error.status,
                response_headers=headers,
                templates={"application/json": error.body()},
            )

    def _metadata_url(self) -> str:
        if self.custom_domain is not None:
            return f"{self.custom_domain.url}/{METADATA_PATH}"
        return Fn.join(
            "",
            [
                "https://",
                self.api.rest_api_id,
                ".execute-api.",
                Aws.REGION,
                ".",
                Aws.URL_SUFFIX,
                f"/{self.stage_name}/{METADATA_PATH}",
            ],
        )

    def _cors_response_headers(self) -> dict[str, str]:
        """Headers that let a browser client read the gateway's own errors (401, 403, 5xx)."""
        origins = self.cors_origins
        if not origins:
            return {}
        if origins == ("*",):
            return {
                "Access-Control-Allow-Origin": "'*'",
                "Access-Control-Expose-Headers": "'WWW-Authenticate'",
            }
        # One origin is a constant. For several, a gateway response cannot choose among them,
        # so it echoes the caller's Origin: these bodies are fixed error messages, sent without
        # Access-Control-Allow-Credentials, so no origin can read anything it could not guess.
        allow = f"'{origins[0]}'" if len(origins) == 1 else "method.request.header.Origin"
        return {
            "Access-Control-Allow-Origin": allow,
            "Access-Control-Expose-Headers": "'WWW-Authenticate'",
            "Vary": "'Origin'",
        }

    def _web_acl(self, web_acl_arn: str | None) -> None:
        if web_acl_arn is None:
            acknowledge(
                self.stage,
                "AwsSolutions-APIG3",
                "no WAF web ACL by default: a web ACL costs money and its rules depend on the "
                "deployment; set the context key waf_web_acl_arn to associate one with the stage",
            )
            return
        wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", resource_arn=self.stage.stage_arn, web_acl_arn=web_acl_arn
        )

    def _custom_domain(self, domain: CustomDomain) -> apigw.DomainName:
        certificate = acm.Certificate.from_certificate_arn(
            self, "Certificate", domain.certificate_arn
        )
        return apigw.DomainName(
            self,
            "CustomDomain",
            domain_name=domain.name,
            certificate=certificate,
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=apigw.SecurityPolicy.TLS_1_2,
            # The stage at the domain's root: https://<domain>/search, no stage in the path.
            mapping=self.api,
        )
