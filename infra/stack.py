"""`AtheneumStack`: API Gateway (REST, regional) with a TOKEN JWT authorizer in front of the
API function (the Mangum handler), a dependency layer, the index packaged or in S3, alarms; and
the optional pieces the context asks for: custom domain, VPC, provisioned concurrency or
SnapStart behind a `live` alias, WAF, CORS and the generating model's upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, Aws, CfnOutput, Duration, Fn, RemovalPolicy, Size, Stack, Token
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from athenaeum.bundle.format import MANIFEST_FILE
from athenaeum.errors import error_body
from infra import sizing, staging, upload
from infra.config import ConfigError, CustomDomain, LlmUpstream, StackConfig, VpcPlacement
from infra.monitoring import Alarms
from infra.nag import acknowledge, managed_policy

API_HANDLER = "athenaeum.server.lambda_handler.handler"
AUTHORIZER_HANDLER = "handler.handler"
API_FUNCTION_ID = "MCPServerFunction"
RUNTIME = lambda_.Runtime.PYTHON_3_12
WELL_KNOWN = ".well-known"
INDEX_PREFIX = upload.INDEX_ROOT
NONCURRENT_INDEX_DAYS = 30
# RFC 6750 b64token after "Bearer ": anything else gets a 401 without invoking the authorizer.
BEARER_REGEX = r"^Bearer [-0-9A-Za-z._~+/]+=*$"
JWKS_TIMEOUT_SECONDS = 3
METADATA_PATH = f"{WELL_KNOWN}/oauth-protected-resource"
# The published version API Gateway calls when provisioned concurrency or SnapStart is on.
LIVE_ALIAS = "live"
# What the app's CORSMiddleware allows (athenaeum/app.py); the gateway answers preflights alike.
CORS_ALLOW_METHODS = ("GET", "POST", "OPTIONS")
CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version")
CORS_MAX_AGE = Duration.minutes(10)

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
    return json.dumps(error_body(message, error_type, code=code))


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
        if not (index_dir / MANIFEST_FILE).is_file():
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
        if config.snapstart and self.plan.strategy is sizing.IndexStrategy.S3:
            raise ConfigError(
                "context key snapstart needs the index packaged with the function, but this "
                "bundle is too large and goes to S3: SnapStart does not combine with ephemeral "
                "storage above 512 MB (the S3 strategy downloads the index to /tmp). Turn "
                "snapstart off, or shrink the bundle (docs/deployment.md, 'Index size strategies')"
            )

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
            # Content-addressed: a new bundle is a new prefix, hence a new function
            # configuration, so no container keeps serving an older copy from its /tmp.
            self.index_prefix = upload.bundle_prefix(index_dir)
            self.index_upload_mode = self._upload_mode(bundle_bytes)
            self.bucket = self._index_bucket(index_dir)
            environment["ATHENAEUM_INDEX_S3_URI"] = (
                f"s3://{self.bucket.bucket_name}/{self.index_prefix}"
            )
            environment["ATHENAEUM_INDEX_CACHE_DIR"] = "/tmp/athenaeum-index"  # noqa: S108
        if self.plan.strategy is sizing.IndexStrategy.PACKAGED or config.publishes_versions:
            # Load in the init phase: it runs on a full CPU, SnapStart snapshots it, and
            # provisioned instances do it before traffic. (Not for an index in S3 on demand: a
            # large download would outlast the 10 s init limit.)
            environment["ATHENAEUM_PRELOAD_INDEX"] = "true"
        if config.custom_domain is not None:
            # Chunk links and the RFC 9728 metadata name the custom domain, not execute-api.
            environment["ATHENAEUM_PUBLIC_BASE_URL"] = config.custom_domain.url
        if config.cors_origins:
            environment["ATHENAEUM_CORS_ORIGINS"] = ",".join(config.cors_origins)
        if config.llm is not None:
            # The secret's ARN only: the function reads the key from Secrets Manager at start.
            environment["ATHENAEUM_LLM_BASE_URL"] = config.llm.base_url
            environment["ATHENAEUM_LLM_MODEL"] = config.llm.model
            environment["ATHENAEUM_LLM_API_KEY_SECRET"] = config.llm.api_key_secret_arn
        vpc, subnets, security_group = (
            self._vpc_placement(config.vpc) if config.vpc is not None else (None, None, None)
        )

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
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group] if security_group is not None else None,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if config.snapstart else None,
            # A version per deploy; the replaced one is deleted once the alias has moved on, so
            # old copies of the code (and a packaged index) do not pile up in Lambda's storage.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        )
        self.live_alias: lambda_.Alias | None = None
        if config.publishes_versions:
            self.live_alias = lambda_.Alias(
                self,
                "LiveAlias",
                alias_name=LIVE_ALIAS,
                version=self.api_function.current_version,
                provisioned_concurrent_executions=config.provisioned_concurrency or None,
            )
        if config.snapstart:
            Annotations.of(self.api_function).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish",
                "the live alias publishes a version on every deploy and API Gateway calls it",
            )
        if vpc is not None:
            acknowledge(
                self.api_function,
                "AwsSolutions-IAM4" + managed_policy("AWSLambdaVPCAccessExecutionRole"),
                "AWSLambdaVPCAccessExecutionRole only lets Lambda manage the function's network "
                "interfaces in the configured subnets; it is the AWS-managed policy for that",
            )
        if config.llm is not None:
            self._grant_llm_secret(config.llm)
        if self.bucket is not None:
            if self.index_copy is not None:
                # A new function version must not start before its index is in the bucket.
                self.api_function.node.add_dependency(self.index_copy)
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
                "ATHENAEUM_OAUTH_REQUIRED_SCOPES": ",".join(config.required_scopes),
                "ATHENAEUM_JWKS_TIMEOUT_S": str(JWKS_TIMEOUT_SECONDS),
            },
            log_group=authorizer_logs,
            description="Athenaeum JWT (TOKEN) authorizer",
        )
        for function in (self.api_function, self.authorizer_function):
            acknowledge(
                function,
                "AwsSolutions-IAM4" + managed_policy("AWSLambdaBasicExecutionRole"),
                "AWSLambdaBasicExecutionRole grants only logs:CreateLogGroup, CreateLogStream and "
                "PutLogEvents (on any log group): no read access and nothing outside CloudWatch "
                "Logs; it is the AWS-managed policy Lambda is designed around",
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
        self._web_acl()
        if config.custom_domain is not None:
            self._custom_domain(config.custom_domain)

        self.alarms = Alarms(
            self,
            "Alarms",
            api=self.api,
            api_function=self.api_function,
            authorizer_logs=authorizer_logs,
            metric_namespace=f"Athenaeum/{config.stack_name}",
            timeout_seconds=config.timeout_seconds,
            alarm_email=config.alarm_email,
        )
        domain = config.custom_domain
        if domain is not None and domain.disable_execute_api_endpoint:
            # The execute-api URL answers 403 now; deploy.sh prints this output's URL.
            CfnOutput(self, "APIEndpoint", value=f"{domain.url}/", description="The API's base URL")
        else:
            CfnOutput(self, "APIEndpoint", value=self.api.url, description="The API's base URL")
        CfnOutput(self, "IndexStrategy", value=self.plan.strategy.value)
        if self.bucket is not None:
            # deploy.sh reads these to upload the bundle itself (index_upload=cli) and to
            # delete older bundles after a deploy.
            CfnOutput(self, "IndexBucketName", value=self.bucket.bucket_name)
            CfnOutput(self, "IndexS3Prefix", value=self.index_prefix)
            CfnOutput(self, "IndexUpload", value=self.index_upload_mode)

    # --- pieces ------------------------------------------------------------------------------

    def _vpc_placement(
        self, placement: VpcPlacement
    ) -> tuple[ec2.IVpc, ec2.SubnetSelection, ec2.SecurityGroup]:
        # Imported by id, not looked up, so synth needs no AWS credentials. The subnets are
        # named explicitly, so the VPC's own subnet lists, zones and route tables are never
        # read (CDK warns that they are unknown at synth time; that is expected here).
        vpc = ec2.Vpc.from_vpc_attributes(
            self, "Vpc", vpc_id=placement.vpc_id, availability_zones=Fn.get_azs()
        )
        subnets = ec2.SubnetSelection(
            subnets=[
                ec2.Subnet.from_subnet_id(self, f"PrivateSubnet{i}", subnet_id)
                for i, subnet_id in enumerate(placement.subnet_ids, start=1)
            ]
        )
        security_group = ec2.SecurityGroup(
            self,
            "MCPServerSecurityGroup",
            vpc=vpc,
            description="Athenaeum API function: no inbound; outbound to S3, Secrets Manager "
            "and the LLM upstream",
            allow_all_outbound=True,
        )
        return vpc, subnets, security_group

    def _grant_llm_secret(self, llm: LlmUpstream) -> None:
        arn = llm.api_key_secret_arn
        # IAM matches the full ARN; a partial one (no "-XXXXXX" suffix) needs the suffix slot.
        resource = arn if llm.secret_arn_is_complete else f"{arn}-??????"
        self.api_function.add_to_role_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[resource])
        )
        if not llm.secret_arn_is_complete:
            acknowledge(
                self.api_function,
                f"AwsSolutions-IAM5[Resource::{resource}]",
                "the secret's ARN was given without its six-character suffix; '??????' matches "
                "exactly that suffix, so the grant covers that one secret only",
            )

    def _index_bucket(self, index_dir: Path) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "IndexBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            # deploy.sh deletes older bundles after each deploy; versioning keeps them
            # recoverable for a while, then this rule removes them.
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=Duration.days(NONCURRENT_INDEX_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "the bucket holds a copy of the index built locally and is read only by the API "
            "function; CloudTrail data events are the place for object-level auditing",
        )
        self.index_copy: s3_deployment.BucketDeployment | None = None
        if self.index_upload_mode == "cli":
            print(
                f"[{self.config.stack_name}] index upload: by deploy.sh (python -m infra.upload) "
                f"to {self.index_prefix}/, not by CloudFormation"
            )
            return bucket
        copy = s3_deployment.BucketDeployment(
            self,
            "IndexCopy",
            sources=[s3_deployment.Source.asset(str(index_dir))],
            destination_bucket=bucket,
            destination_key_prefix=self.index_prefix,
            memory_limit=1024,
            # The copy unzips the CDK asset in /tmp: room for the archive and the bundle.
            ephemeral_storage_size=Size.mebibytes(
                min(sizing.MAX_EPHEMERAL_MB, 2 * self.plan.ephemeral_storage_mb)
            ),
        )
        self._acknowledge_bucket_deployment(copy, bucket)
        self.index_copy = copy
        return bucket

    def _upload_mode(self, bundle_bytes: int) -> str:
        mode = self.config.index_upload
        if mode == "auto":
            mode = "cdk" if bundle_bytes <= sizing.CDK_UPLOAD_MAX_BYTES else "cli"
        return mode

    def _acknowledge_bucket_deployment(
        self, upload: s3_deployment.BucketDeployment, bucket: s3.Bucket
    ) -> None:
        # The upload runs in CDK's own singleton custom-resource function, whose role and
        # runtime CDK chooses; CloudFormation invokes it only when the index changes.
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
        disable_endpoint = (
            config.custom_domain is not None and config.custom_domain.disable_execute_api_endpoint
        )
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=config.stack_name,
            description="Athenaeum: search, chat completions and MCP over a document library",
            endpoint_configuration=apigw.EndpointConfiguration(types=[apigw.EndpointType.REGIONAL]),
            # Left out (not false) unless asked for, so the default template does not change.
            disable_execute_api_endpoint=disable_endpoint or None,
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
        # With a `live` alias, API Gateway calls the published version (warm or restored from
        # a snapshot), not $LATEST.
        target: lambda_.IFunction = self.live_alias or self.api_function
        integration = apigw.LambdaIntegration(target, proxy=True, allow_test_invoke=False)
        self.api.root.add_method("ANY", integration, authorizer=self.authorizer)
        proxy = self.api.root.add_resource("{proxy+}")
        proxy.add_method("ANY", integration, authorizer=self.authorizer)
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
        if self.config.cors_origins:
            for resource in (self.api.root, proxy, health, well_known):
                self._cors_preflight(resource)

    def _cors_preflight(self, resource: apigw.IResource) -> None:
        # Browsers send the preflight without Authorization, so it must not meet the
        # authorizer. The gateway answers it itself (MOCK): no function invocation, so no
        # unauthenticated way into the function and no cold start before the real request.
        preflight = resource.add_cors_preflight(
            allow_origins=list(self.config.cors_origins),
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
        domain = self.config.custom_domain
        metadata_url = (
            f"{domain.url}/{METADATA_PATH}"
            if domain is not None
            else Fn.join(
                "",
                [
                    "https://",
                    self.api.rest_api_id,
                    ".execute-api.",
                    Aws.REGION,
                    ".",
                    Aws.URL_SUFFIX,
                    f"/{self.config.environment}/{METADATA_PATH}",
                ],
            )
        )
        challenge = Fn.join("", ["'Bearer resource_metadata=\"", metadata_url, "\"'"])
        common = {"Content-Type": "'application/json'", **self._cors_response_headers()}
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
            headers = dict(common)
            if with_challenge:
                headers["WWW-Authenticate"] = challenge
            self.api.add_gateway_response(
                name,
                type=kind,
                status_code=status or None,
                response_headers=headers,
                templates={"application/json": _error_body(message, error_type, code)},
            )

    def _cors_response_headers(self) -> dict[str, str]:
        """Headers that let a browser client read the gateway's own errors (401, 403, 5xx)."""
        origins = self.config.cors_origins
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

    def _web_acl(self) -> None:
        stage = self.api.deployment_stage
        if self.config.waf_web_acl_arn is None:
            acknowledge(
                stage,
                "AwsSolutions-APIG3",
                "no WAF web ACL by default: a web ACL costs money and its rules depend on the "
                "deployment; set the context key waf_web_acl_arn to associate one with the stage",
            )
            return
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=stage.stage_arn,
            web_acl_arn=self.config.waf_web_acl_arn,
        )

    def _custom_domain(self, domain: CustomDomain) -> None:
        certificate = acm.Certificate.from_certificate_arn(
            self, "Certificate", domain.certificate_arn
        )
        custom = apigw.DomainName(
            self,
            "CustomDomain",
            domain_name=domain.name,
            certificate=certificate,
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=apigw.SecurityPolicy.TLS_1_2,
            # The stage at the domain's root: https://<domain>/search, no stage in the path.
            mapping=self.api,
        )
        CfnOutput(
            self,
            "CustomDomainTarget",
            value=custom.domain_name_alias_domain_name,
            description=f"Point {domain.name} here (CNAME, or a Route 53 alias record)",
        )
        CfnOutput(
            self,
            "CustomDomainHostedZoneId",
            value=custom.domain_name_alias_hosted_zone_id,
            description="The hosted zone id a Route 53 alias record needs",
        )
        CfnOutput(
            self, "CustomDomainURL", value=f"{domain.url}/", description="The API's public URL"
        )
