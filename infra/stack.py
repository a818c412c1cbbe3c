"""`AtheneumStack`: API Gateway (REST, regional) with a TOKEN JWT authorizer in front of the
API function (the Mangum handler), a dependency layer, the index packaged or in S3, alarms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Fn, RemovalPolicy, Size, Stack, Token
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from infra import sizing, staging
from infra.config import ConfigError, StackConfig
from infra.monitoring import Alarms
from infra.nag import acknowledge, managed_policy

API_HANDLER = "athenaeum.lambda_handler.handler"
AUTHORIZER_HANDLER = "handler.handler"
API_FUNCTION_ID = "MCPServerFunction"
RUNTIME = lambda_.Runtime.PYTHON_3_12
WELL_KNOWN = ".well-known"
INDEX_PREFIX = "index"
# RFC 6750 b64token after "Bearer ": anything else gets a 401 without invoking the authorizer.
BEARER_REGEX = r"^Bearer [-0-9A-Za-z._~+/]+=*$"
JWKS_TIMEOUT_SECONDS = 3

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}
_ARCHITECTURE = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}

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


def _error_body(message: str, error_type: str, code: str) -> str:
    # The API's own error shape (OpenAI style), so clients parse gateway and app errors alike.
    return json.dumps(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    )


class AtheneumStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        project_root: Path = staging.REPO_ROOT,
        staging_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, stack_name=config.stack_name, **kwargs)
        self.config = config
        staging_dir = staging_dir or project_root / "cdk.out" / "staging" / config.stack_name
        retention = _RETENTION.get(config.log_retention_days)
        if retention is None:
            raise ConfigError(
                f"context key log_retention_days={config.log_retention_days} must be one of "
                f"{sorted(_RETENTION)}"
            )
        architecture = _ARCHITECTURE[config.architecture]

        # --- sizes and the index strategy --------------------------------------------------
        layer_dir = (project_root / config.layer_dir).resolve()
        if not layer_dir.is_dir():
            raise ConfigError(
                f"no dependency layer at {layer_dir}; build it with `layer/build.sh` "
                "(or set the context key layer_dir)"
            )
        index_dir = (project_root / config.index_dir).resolve()
        bundle_bytes = (
            config.index_size_bytes
            if config.index_size_bytes is not None
            else sizing.bundle_bytes(index_dir)
        )
        if not (index_dir / sizing.MANIFEST_FILE).is_file():
            raise ConfigError(
                f"no index bundle at {index_dir} (no manifest.json); build one with "
                "`uv run athenaeum index ...` or set the context key index_dir"
            )
        function_dir = staging.stage_function(staging_dir)
        self.function_dir = function_dir
        self.plan = sizing.plan(
            layer_bytes=sizing.tree_bytes(layer_dir),
            code_bytes=sizing.tree_bytes(function_dir),
            bundle_bytes=bundle_bytes,
        )
        # Printed by synth: which strategy was chosen and why.
        print(f"[{config.stack_name}] {self.plan.report()}")

        # --- functions -----------------------------------------------------------------------
        layer = lambda_.LayerVersion(
            self,
            "DependencyLayer",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[architecture],
            description="Athenaeum serve-side dependencies (built by layer/build.sh)",
        )

        environment = {
            "ATHENAEUM_OAUTH_ISSUER": config.oauth_issuer,
            "ATHENAEUM_OAUTH_AUDIENCE": config.oauth_audience,
            "ATHENAEUM_OAUTH_JWKS_URL": config.oauth_jwks_url,
            "ATHENAEUM_OAUTH_REQUIRED_SCOPES": ",".join(config.required_scopes),
            # API Gateway's authorizer has already verified the token on every protected route.
            "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
        }
        self.bucket: s3.Bucket | None = None
        ephemeral = Size.mebibytes(self.plan.ephemeral_storage_mb)
        if self.plan.strategy is sizing.IndexStrategy.PACKAGED:
            staging.add_index(function_dir, index_dir)
            environment["ATHENAEUM_INDEX_DIR"] = f"/var/task/{staging.PACKAGED_INDEX_DIR}"
        else:
            self.bucket = self._index_bucket(index_dir)
            environment["ATHENAEUM_INDEX_S3_URI"] = f"s3://{self.bucket.bucket_name}/{INDEX_PREFIX}"
            environment["ATHENAEUM_INDEX_CACHE_DIR"] = "/tmp/athenaeum-index"  # noqa: S108

        function_name = f"{config.stack_name}-{API_FUNCTION_ID}"
        api_logs = logs.LogGroup(
            self,
            "MCPServerLogs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api_function = lambda_.Function(
            self,
            API_FUNCTION_ID,
            function_name=function_name,
            runtime=RUNTIME,
            architecture=architecture,
            handler=API_HANDLER,
            code=lambda_.Code.from_asset(str(function_dir)),
            layers=[layer],
            memory_size=config.memory_mb,
            timeout=Duration.seconds(config.timeout_seconds),
            ephemeral_storage_size=ephemeral,
            environment=environment,
            log_group=api_logs,
            description="Athenaeum API (FastAPI behind Mangum)",
        )
        if self.bucket is not None:
            # A new function version must not start before its index is in the bucket.
            self.api_function.node.add_dependency(self.index_upload)
            # Read-only and only the index objects: the loader fetches keys the manifest lists.
            self.api_function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[self.bucket.arn_for_objects(f"{INDEX_PREFIX}/*")],
                )
            )
            bucket_ref = self.get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
            acknowledge(
                self.api_function,
                f"AwsSolutions-IAM5[Resource::<{bucket_ref}.Arn>/{INDEX_PREFIX}/*]",
                "s3:GetObject on the index prefix only: the bundle's file names are known only "
                "at run time, from its manifest",
            )

        authorizer_logs = logs.LogGroup(
            self, "AuthorizerLogs", retention=retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.authorizer_function = lambda_.Function(
            self,
            "AuthorizerFunction",
            runtime=RUNTIME,
            architecture=architecture,
            handler=AUTHORIZER_HANDLER,
            code=lambda_.Code.from_asset(str(staging.stage_authorizer(staging_dir))),
            layers=[layer],
            memory_size=256,
            # Room for one JWKS fetch (3 s) and its retry after a key rotation.
            timeout=Duration.seconds(10),
            environment={
                "ATHENAEUM_OAUTH_ISSUER": config.oauth_issuer,
                "ATHENAEUM_OAUTH_AUDIENCE": config.oauth_audience,
                "ATHENAEUM_OAUTH_JWKS_URL": config.oauth_jwks_url,
                "ATHENAEUM_OAUTH_REQUIRED_SCOPES": " ".join(config.required_scopes),
                "ATHENAEUM_JWKS_TIMEOUT_S": str(JWKS_TIMEOUT_SECONDS),
            },
            log_group=authorizer_logs,
            description="Athenaeum JWT (TOKEN) authorizer",
        )
        for function in (self.api_function, self.authorizer_function):
            acknowledge(
                function,
                "AwsSolutions-IAM4" + managed_policy("AWSLambdaBasicExecutionRole"),
                "AWSLambdaBasicExecutionRole only allows writing the function's own logs; it is "
                "the minimal AWS-managed policy for Lambda",
            )
            acknowledge(
                function,
                "AwsSolutions-L1",
                "pinned to python3.12: the dependency layer is built and its bytecode compiled "
                "for exactly this runtime",
            )

        # --- the API -------------------------------------------------------------------------
        self.api = self._rest_api(retention)
        self.authorizer = apigw.TokenAuthorizer(
            self,
            "JWTAuthorizer",
            handler=self.authorizer_function,
            identity_source=apigw.IdentitySource.header("Authorization"),
            validation_regex=BEARER_REGEX,
            results_cache_ttl=Duration.seconds(config.authorizer_cache_seconds),
        )
        self._routes()
        self._gateway_responses()

        self.alarms = Alarms(
            self,
            "Alarms",
            api=self.api,
            api_function=self.api_function,
            authorizer_function=self.authorizer_function,
            timeout_seconds=config.timeout_seconds,
            alarm_email=config.alarm_email,
        )
        CfnOutput(self, "APIEndpoint", value=self.api.url, description="The API's base URL")
        CfnOutput(self, "IndexStrategy", value=self.plan.strategy.value)

    # --- pieces ------------------------------------------------------------------------------

    def _index_bucket(self, index_dir: Path) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "IndexBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "the bucket holds a copy of the index built locally and is read only by the API "
            "function; CloudTrail data events are the place for object-level auditing",
        )
        upload = s3_deployment.BucketDeployment(
            self,
            "IndexUpload",
            sources=[s3_deployment.Source.asset(str(index_dir))],
            destination_bucket=bucket,
            destination_key_prefix=INDEX_PREFIX,
            memory_limit=1024,
            ephemeral_storage_size=Size.mebibytes(self.plan.ephemeral_storage_mb),
        )
        self._acknowledge_bucket_deployment(upload, bucket)
        self.index_upload = upload
        return bucket

    def _acknowledge_bucket_deployment(
        self, upload: s3_deployment.BucketDeployment, bucket: s3.Bucket
    ) -> None:
        # The upload runs in CDK's own singleton custom-resource function, whose role and
        # runtime CDK chooses; it exists only while CloudFormation deploys the stack.
        bucket_ref = self.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        # cdk-nag prints the asset bucket with the concrete account/region when they are known.
        account = "<AWS::AccountId>" if Token.is_unresolved(self.account) else self.account
        region = "<AWS::Region>" if Token.is_unresolved(self.region) else self.region
        acknowledge(
            upload.handler_role,
            "AwsSolutions-IAM4" + managed_policy("AWSLambdaBasicExecutionRole"),
            "CDK's BucketDeployment handler logs with the basic Lambda execution role",
        )
        wildcard_findings = [
            "Action::s3:GetObject*",
            "Action::s3:GetBucket*",
            "Action::s3:List*",
            "Action::s3:DeleteObject*",
            "Action::s3:Abort*",
            f"Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-{account}-{region}/*",
            f"Resource::<{bucket_ref}.Arn>/*",
        ]
        for finding in wildcard_findings:
            acknowledge(
                upload.handler_role,
                f"AwsSolutions-IAM5[{finding}]",
                "CDK's BucketDeployment handler copies the index from the CDK asset bucket "
                "into the index bucket (and prunes old files); its grants cover those two "
                "buckets only",
            )
        for child in self.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                acknowledge(
                    child,
                    "AwsSolutions-L1",
                    "the BucketDeployment handler's runtime is chosen and updated by CDK",
                )

    def _rest_api(self, retention: logs.RetentionDays) -> apigw.RestApi:
        config = self.config
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=retention, removal_policy=RemovalPolicy.DESTROY
        )
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=config.stack_name,
            description="Athenaeum: search, chat completions and MCP over a document library",
            endpoint_configuration=apigw.EndpointConfiguration(types=[apigw.EndpointType.REGIONAL]),
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name=config.environment,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                throttling_rate_limit=config.throttle_rate_limit,
                throttling_burst_limit=config.throttle_burst_limit,
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

    def _routes(self) -> None:
        integration = apigw.LambdaIntegration(
            self.api_function, proxy=True, allow_test_invoke=False
        )
        self.api.root.add_method("ANY", integration, authorizer=self.authorizer)
        self.api.root.add_resource("{proxy+}").add_method(
            "ANY", integration, authorizer=self.authorizer
        )
        health = self.api.root.add_resource("health")
        if self.config.private_health:
            health.add_method("GET", integration, authorizer=self.authorizer)
        else:
            public = health.add_method("GET", integration)
            acknowledge(
                public,
                "AwsSolutions-APIG4",
                "/health is public by design (load balancers and uptime checks); it reveals "
                "only whether the index is loaded. The context flag private_health protects it",
            )
        # RFC 9728 metadata must be readable before the client has a token: it tells it where
        # to get one.
        well_known = self.api.root.add_resource(WELL_KNOWN).add_resource("{proxy+}")
        discovery = well_known.add_method("GET", integration)
        acknowledge(
            discovery,
            "AwsSolutions-APIG4",
            "OAuth protected-resource metadata (RFC 9728) must be public: clients read it to "
            "find the authorization server before they hold a token",
        )

    def _gateway_responses(self) -> None:
        metadata_url = Fn.join(
            "",
            [
                "https://",
                self.api.rest_api_id,
                ".execute-api.",
                Aws.REGION,
                ".",
                Aws.URL_SUFFIX,
                f"/{self.config.environment}/{WELL_KNOWN}/oauth-protected-resource",
            ],
        )
        challenge = Fn.join("", ["'Bearer resource_metadata=\"", metadata_url, "\"'"])
        json_type = {"Content-Type": "'application/json'"}
        responses: list[tuple[str, apigw.ResponseType, str, str, str, str, bool]] = [
            (
                "Unauthorized",
                apigw.ResponseType.UNAUTHORIZED,
                "401",
                "a valid OAuth access token is required (Authorization: Bearer <token>)",
                "invalid_request_error",
                "invalid_token",
                True,
            ),
            (
                "AccessDenied",
                apigw.ResponseType.ACCESS_DENIED,
                "403",
                "the access token does not grant access to this resource",
                "invalid_request_error",
                "insufficient_scope",
                True,
            ),
            (
                "AuthorizerFailure",
                apigw.ResponseType.AUTHORIZER_FAILURE,
                "503",
                "the token could not be verified right now (the identity provider's keys are "
                "unreachable); retry shortly",
                "server_error",
                "auth_unavailable",
                False,
            ),
            (
                "Default4xx",
                apigw.ResponseType.DEFAULT_4_XX,
                "",
                "the request was refused by the API gateway",
                "invalid_request_error",
                "gateway_error",
                False,
            ),
            (
                "Default5xx",
                apigw.ResponseType.DEFAULT_5_XX,
                "",
                "the API gateway could not complete the request",
                "server_error",
                "gateway_error",
                False,
            ),
        ]
        for name, kind, status, message, error_type, code, with_challenge in responses:
            headers = dict(json_type)
            if with_challenge:
                headers["WWW-Authenticate"] = challenge
            self.api.add_gateway_response(
                name,
                type=kind,
                status_code=status or None,
                response_headers=headers,
                templates={"application/json": _error_body(message, error_type, code)},
            )
