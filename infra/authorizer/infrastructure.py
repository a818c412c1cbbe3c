"""`BearerAuthorizer`: the TOKEN authorizer API Gateway puts in front of protected routes, the
function that runs handler.py beside this module (staged by infra/staging.py), and the key set
it checks API keys against.

The key set is a Secrets Manager secret rather than SSM SecureString parameters: CloudFormation
can create a secret (it cannot create a SecureString), so the store exists, encrypted with KMS
and readable by this function only, from the first deploy; the whole set is one read (a path of
parameters is read ten to a page); and the stack already keeps its other secrets there. Its
value is written only by `athenaeum keys --secret` (as one JSON document, never a key, only
hashes)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import OAuthIssuer
from infra.nag import acknowledge, acknowledge_lambda_defaults

HANDLER = "handler.handler"
# RFC 6750 b64token after "Bearer ": anything else gets a 401 without invoking the authorizer.
BEARER_REGEX = r"^Bearer [-0-9A-Za-z._~+/]+=*$"
JWKS_TIMEOUT_SECONDS = 3
# The initial value of the key set: valid and empty (athenaeum.server.auth.keyring). The
# generated field is there only because CloudFormation generates a value or takes a literal one;
# the first `athenaeum keys` write drops it. These properties must never change: CloudFormation
# would then generate a new value, and every key created since would be lost.
EMPTY_KEY_SET = '{"format": "athenaeum-api-keys", "version": 1, "keys": []}'
_GENERATED_FIELD = "created_by_stack"


class BearerAuthorizer(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: Path,
        layer: lambda_.ILayerVersion,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        oauth: OAuthIssuer | None,
        required_scopes: tuple[str, ...],
        keys_refresh_s: int,
        cache_ttl: Duration,
        log_retention: logs.RetentionDays,
    ) -> None:
        """`code` is the staged handler with the modules it imports; `layer` has the rest.
        Without `oauth`, API keys are the only credential accepted."""
        super().__init__(scope, construct_id)
        self.api_keys = secretsmanager.Secret(
            self,
            "ApiKeys",
            description="Athenaeum's API keys: their sha256 hashes, names, scopes and expiry, "
            "written by `athenaeum keys`",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=EMPTY_KEY_SET,
                generate_string_key=_GENERATED_FIELD,
                password_length=16,
                exclude_punctuation=True,
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.api_keys,
            "AwsSolutions-SMG4",
            "the secret holds hashes of API keys, each revoked or replaced with `athenaeum keys`; "
            "a rotation function would have nothing to rotate",
        )
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
                **(oauth.environment() if oauth is not None else {}),
                "ATHENAEUM_OAUTH_REQUIRED_SCOPES": ",".join(required_scopes),
                "ATHENAEUM_JWKS_TIMEOUT_S": str(JWKS_TIMEOUT_SECONDS),
                "ATHENAEUM_API_KEYS_SECRET": self.api_keys.secret_arn,
                "ATHENAEUM_API_KEYS_REFRESH_S": str(keys_refresh_s),
            },
            log_group=self.log_group,
            description="Athenaeum API key and JWT (TOKEN) authorizer",
        )
        acknowledge_lambda_defaults(self.function)
        self.api_keys.grant_read(self.function)
        self.authorizer = apigw.TokenAuthorizer(
            self,
            "JWTAuthorizer",
            handler=self.function,
            identity_source=apigw.IdentitySource.header("Authorization"),
            validation_regex=BEARER_REGEX,
            results_cache_ttl=cache_ttl,
        )
