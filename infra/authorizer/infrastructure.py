"""`JwtAuthorizer`: the TOKEN authorizer API Gateway puts in front of protected routes, and the
function that runs handler.py beside this module (staged by infra/staging.py)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import OAuthIssuer
from infra.nag import acknowledge_lambda_defaults

HANDLER = "handler.handler"
# RFC 6750 b64token after "Bearer ": anything else gets a 401 without invoking the authorizer.
BEARER_REGEX = r"^Bearer [-0-9A-Za-z._~+/]+=*$"
JWKS_TIMEOUT_SECONDS = 3


class JwtAuthorizer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: Path,
        layer: lambda_.ILayerVersion,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        oauth: OAuthIssuer,
        cache_ttl: Duration,
        log_retention: logs.RetentionDays,
    ) -> None:
        """`code` is the staged handler with the modules it imports; `layer` has the rest."""
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "AuthorizerLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.function = lambda_.Function(
            self,
            "AuthorizerFunction",
            runtime=runtime,
            architecture=architecture,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(code)),
            layers=[layer],
            memory_size=256,
            # Room for one JWKS fetch and its retry after a key rotation.
            timeout=Duration.seconds(10),
            environment={
                **oauth.environment(),
                "ATHENAEUM_JWKS_TIMEOUT_S": str(JWKS_TIMEOUT_SECONDS),
            },
            log_group=self.log_group,
            description="Athenaeum JWT (TOKEN) authorizer",
        )
        acknowledge_lambda_defaults(self.function)
        self.authorizer = apigw.TokenAuthorizer(
            self,
            "JWTAuthorizer",
            handler=self.function,
            identity_source=apigw.IdentitySource.header("Authorization"),
            validation_regex=BEARER_REGEX,
            results_cache_ttl=cache_ttl,
        )
