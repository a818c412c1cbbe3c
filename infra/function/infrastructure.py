"""`ApiFunction`: the API function (the FastAPI app behind Mangum, staged by infra/staging.py)
with its dependency layer, its log group, the app's settings in its environment, and what the
options add: a `live` alias (provisioned concurrency or SnapStart), a place in a VPC, read
access to the LLM key's secret, to the published index it follows (or the S3 Vectors index it
searches) and to the documents its citations link to."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Annotations, Duration, Fn, RemovalPolicy, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import staging
from infra.config import ConfigError, LlmTimeouts, LlmUpstream, OAuthIssuer, VpcPlacement
from infra.index.upload import INDEX_ROOT
from infra.nag import acknowledge, acknowledge_lambda_defaults, managed_policy
from infra.vectors.infrastructure import VectorStore

# The layer is built, and its bytecode compiled, for exactly this runtime (layer/build.sh).
RUNTIME = lambda_.Runtime.PYTHON_3_12
HANDLER = "athenaeum.server.lambda_handler.handler"
FUNCTION_ID = "MCPServerFunction"
# The published version API Gateway calls when provisioned concurrency or SnapStart is on.
LIVE_ALIAS = "live"
PACKAGED_INDEX_DIR = f"/var/task/{staging.PACKAGED_INDEX_DIR}"
INDEX_CACHE_DIR = "/tmp/athenaeum-index"  # noqa: S108
S3VECTORS_BACKEND = "s3vectors"
# Where layer/build.sh puts the S3 Vectors service model (a layer is unpacked under /opt).
AWS_MODELS_DIR = "/opt/python/aws_models"
# Lambda refuses a function whose environment variables take more than 4 KB in all. They are
# counted here as their JSON, a little more than the names and values alone, so a refusal errs
# early; a value CloudFormation fills in at deploy time (a bucket's name, a secret's ARN) is
# counted at UNRESOLVED_BYTES, more than any of those resolves to.
MAX_ENVIRONMENT_BYTES = 4096
UNRESOLVED_BYTES = 128
_TOKEN = re.compile(r"\$\{Token\[[^\]]*\]\}")
ACCESS_POLICY_VARIABLE = "ATHENAEUM_ACCESS_POLICY"


@dataclass(frozen=True, kw_only=True)
class PublishedIndex:
    """The index published under `prefix` in `bucket` (by the ingest function, and first by
    deploy.sh): the function follows its pointer, checking it every `refresh_s` seconds, and
    downloads each new version to /tmp."""

    bucket: s3.Bucket
    prefix: str = INDEX_ROOT
    refresh_s: int = 60
    # A bundle too large to package, uploaded under index/<bundle id>/: served until the first
    # version is published.
    start_prefix: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{self.prefix}"


@dataclass(frozen=True, kw_only=True)
class SourcesInS3:
    """The original files citations link to: the function presigns GET URLs for them."""

    bucket: s3.Bucket
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{self.prefix}"


class ApiFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        code: Path,
        layer_dir: Path,
        oauth: OAuthIssuer | None,
        architecture: lambda_.Architecture,
        memory_mb: int,
        timeout: Duration,
        ephemeral_storage_mb: int,
        log_retention: logs.RetentionDays,
        packaged_index: bool = True,
        published: PublishedIndex | None = None,
        vector_index: VectorStore | None = None,
        sources: SourcesInS3 | None = None,
        library: SourcesInS3 | None = None,
        metric_namespace: str | None = None,
        public_base_url: str | None = None,
        cors_origins: Sequence[str] = (),
        llm: LlmUpstream | None = None,
        vpc: VpcPlacement | None = None,
        provisioned_concurrency: int = 0,
        snapstart: bool = False,
        access_policy: str | None = None,
    ) -> None:
        """`code` is the staged function, with the index in it when `packaged_index`: then that
        bundle is the version it starts from, and any newer one `published` wins. Without a
        packaged index the function serves only what is `published`. With `vector_index` it
        searches that S3 Vectors index, and the packaged index is the bundle's query side only
        (its manifest and query encoder; infra/staging.py). `library` holds the documents that
        citations of published versions link to. `access_policy` (JSON) says which callers'
        groups read which collections; ConfigError when it leaves the environment too large."""
        if not packaged_index and published is None:
            raise ValueError("the function needs a packaged index or a published one")
        if vector_index is not None and (published is not None or not packaged_index):
            raise ValueError(
                "a function that searches S3 Vectors carries the bundle's query side and "
                "follows no published bundle"
            )
        super().__init__(scope, construct_id)
        publishes_versions = provisioned_concurrency > 0 or snapstart
        self.layer = lambda_.LayerVersion(
            self,
            "DependencyLayer",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[architecture],
            description="Athenaeum serve-side dependencies (built by layer/build.sh)",
        )
        self.log_group = logs.LogGroup(
            self,
            "MCPServerLogs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        network, subnets, security_group = (
            self._vpc_placement(vpc) if vpc is not None else (None, None, None)
        )
        self.security_group: ec2.SecurityGroup | None = security_group
        # Signs the short links to source files (athenaeum.server.http.sources); every instance of
        # the function must sign and check with the same key, so it lives in Secrets Manager.
        self.link_secret = self._link_secret() if sources is not None else None
        environment = _environment(
            oauth=oauth,
            packaged_index=packaged_index,
            published=published,
            vector_index_uri=vector_index.uri if vector_index is not None else None,
            sources=sources,
            metric_namespace=metric_namespace,
            link_secret_arn=self.link_secret.secret_arn if self.link_secret else None,
            preload=packaged_index or publishes_versions,
            public_base_url=public_base_url,
            cors_origins=cors_origins,
            llm=llm,
            timeout_s=int(timeout.to_seconds()),
            access_policy=access_policy,
        )
        check_environment_size(environment)
        self.function = lambda_.Function(
            self,
            FUNCTION_ID,
            function_name=function_name,
            runtime=RUNTIME,
            architecture=architecture,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(code)),
            layers=[self.layer],
            memory_size=memory_mb,
            timeout=timeout,
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mb),
            environment=environment,
            log_group=self.log_group,
            description="Athenaeum API (FastAPI behind Mangum)",
            vpc=network,
            vpc_subnets=subnets,
            security_groups=[self.security_group] if self.security_group is not None else None,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snapstart else None,
            # A version per deploy; the replaced one is deleted once the alias has moved on, so
            # old copies of the code (and a packaged index) do not pile up in Lambda's storage.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        )
        acknowledge_lambda_defaults(self.function)
        self.live_alias = (
            self._live_alias(provisioned_concurrency, snapstart) if publishes_versions else None
        )
        if vpc is not None:
            acknowledge(
                self.function,
                "AwsSolutions-IAM4" + managed_policy("AWSLambdaVPCAccessExecutionRole"),
                "AWSLambdaVPCAccessExecutionRole only lets Lambda manage the function's network "
                "interfaces in the configured subnets; it is the AWS-managed policy for that",
            )
        self._grant_reads(llm, published, vector_index, sources, library)

    def _link_secret(self) -> secretsmanager.Secret:
        """Signs the short links to source files (athenaeum.server.http.sources); every instance
        of the function must sign and check with the same key, so it lives in Secrets Manager."""
        secret = secretsmanager.Secret(
            self,
            "LinkSecret",
            description="Signs Athenaeum's links to source files (HMAC-SHA256)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "the key only signs links that expire within hours; replacing it (a new "
            "deployment of the secret) just ends the links already given out",
        )
        return secret

    def _live_alias(self, provisioned_concurrency: int, snapstart: bool) -> lambda_.Alias:
        """The `live` alias on the version each deploy publishes, warm or from a snapshot."""
        alias = lambda_.Alias(
            self,
            "LiveAlias",
            alias_name=LIVE_ALIAS,
            version=self.function.current_version,
            provisioned_concurrent_executions=provisioned_concurrency or None,
        )
        if snapstart:
            Annotations.of(self.function).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish",
                "the live alias publishes a version on every deploy and API Gateway calls it",
            )
        return alias

    def _grant_reads(
        self,
        llm: LlmUpstream | None,
        published: PublishedIndex | None,
        vector_index: VectorStore | None,
        sources: SourcesInS3 | None,
        library: SourcesInS3 | None,
    ) -> None:
        """Read access to what the options name, and to nothing else."""
        if llm is not None:
            self._grant_llm_secret(llm)
        if published is not None:
            self._grant_index(published)
        if vector_index is not None:
            vector_index.grant_query(self.function)
        if sources is not None:
            self._grant_sources(sources)
        if library is not None:
            self._grant_read(
                library.bucket,
                library.prefix,
                "s3:GetObject on the library prefix only: citations of published versions link "
                "to the library's documents, whose keys people choose",
            )
        if self.link_secret is not None:
            self.link_secret.grant_read(self.function)

    @property
    def target(self) -> lambda_.IFunction:
        """What API Gateway invokes: with a `live` alias the published version (warm, or
        restored from a snapshot), not $LATEST."""
        return self.live_alias or self.function

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
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[resource])
        )
        if not llm.secret_arn_is_complete:
            acknowledge(
                self.function,
                f"AwsSolutions-IAM5[Resource::{resource}]",
                "the secret's ARN was given without its six-character suffix; '??????' matches "
                "exactly that suffix, so the grant covers that one secret only",
            )

    def _grant_index(self, index: PublishedIndex) -> None:
        # Read-only and only the index objects: the pointer, then the keys it and the version's
        # manifest name.
        self._grant_read(
            index.bucket,
            index.prefix,
            "s3:GetObject on the index prefix only: the version's file names are known only "
            "at run time, from the pointer and its manifest",
        )
        # Listing under the index prefix makes a missing pointer (nothing published yet) a
        # 404 rather than a 403.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[index.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{index.prefix}/*"]}},
            )
        )

    def _grant_sources(self, sources: SourcesInS3) -> None:
        # A presigned URL carries the signer's permissions: the function may read the source
        # files and nothing else in the bucket, so a link can open nothing else either.
        self._grant_read(
            sources.bucket,
            sources.prefix,
            "s3:GetObject on the source-file prefix only: the function presigns URLs for the "
            "files the index names, whose keys are content-addressed",
        )

    def _grant_read(self, bucket: s3.Bucket, prefix: str, reason: str) -> None:
        """s3:GetObject on the objects under `prefix` in `bucket`, and nothing else."""
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{prefix}/*")]
            )
        )
        bucket_id = Stack.of(self).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            self.function, f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}/*]", reason
        )


def _environment(
    *,
    oauth: OAuthIssuer | None,
    packaged_index: bool,
    published: PublishedIndex | None,
    vector_index_uri: str | None,
    sources: SourcesInS3 | None,
    metric_namespace: str | None,
    link_secret_arn: str | None,
    preload: bool,
    public_base_url: str | None,
    cors_origins: Sequence[str],
    llm: LlmUpstream | None,
    timeout_s: int,
    access_policy: str | None = None,
) -> Mapping[str, str]:
    """The app's settings (athenaeum.server.settings), as the function reads them."""
    environment = {
        # The issuer, for the RFC 9728 metadata that tells clients where to log in.
        **(oauth.environment() if oauth is not None else {}),
        # API Gateway's authorizer has already verified the token on every protected route.
        "ATHENAEUM_TRUST_GATEWAY_AUTHORIZER": "true",
    }
    if packaged_index:
        # The version a new instance starts from; a newer published one wins. With S3 Vectors,
        # the bundle's query side: its documents and the encoder queries are embedded with.
        environment["ATHENAEUM_INDEX_DIR"] = PACKAGED_INDEX_DIR
    if vector_index_uri is not None:
        environment["ATHENAEUM_INDEX_BACKEND"] = S3VECTORS_BACKEND
        environment["ATHENAEUM_S3VECTORS_INDEX"] = vector_index_uri
        # The layer's copy of the locked botocore's S3 Vectors model (layer/build.sh): botocore
        # reads it before the runtime's own, which may predate QueryVectors' queryTexts.
        environment["AWS_DATA_PATH"] = AWS_MODELS_DIR
    if published is not None:
        # The pointer's prefix: new versions are downloaded to the cache and swapped in.
        environment["ATHENAEUM_INDEX_S3_URI"] = published.uri
        environment["ATHENAEUM_INDEX_CACHE_DIR"] = INDEX_CACHE_DIR
        environment["ATHENAEUM_INDEX_REFRESH_S"] = str(published.refresh_s)
        if published.start_prefix is not None:
            start = f"s3://{published.bucket.bucket_name}/{published.start_prefix}"
            environment["ATHENAEUM_INDEX_START_S3_URI"] = start
    if metric_namespace is not None:
        # Its metrics (ServedVersionBehindSeconds) in embedded metric format on stdout, which
        # CloudWatch Logs turns into metrics there; the alarms watch them (infra/monitoring).
        environment["ATHENAEUM_METRIC_NAMESPACE"] = metric_namespace
    if sources is not None:
        # Citations link to the original files there, by presigned URL.
        environment["ATHENAEUM_SOURCES_S3_URI"] = sources.uri
    if link_secret_arn is not None:
        environment["ATHENAEUM_LINK_SECRET_ARN"] = link_secret_arn
    if preload:
        # Load in the init phase: it runs on a full CPU, SnapStart snapshots it, and
        # provisioned instances do it before traffic. (Not for an index in S3 on demand: a
        # large download would outlast the 10 s init limit.)
        environment["ATHENAEUM_PRELOAD_INDEX"] = "true"
    if public_base_url is not None:
        # Chunk links and the RFC 9728 metadata name the custom domain, not execute-api.
        environment["ATHENAEUM_PUBLIC_BASE_URL"] = public_base_url
    if cors_origins:
        environment["ATHENAEUM_CORS_ORIGINS"] = ",".join(cors_origins)
    if llm is not None:
        # The secret's ARN only: the function reads the key from Secrets Manager at start.
        environment["ATHENAEUM_LLM_BASE_URL"] = llm.base_url
        environment["ATHENAEUM_LLM_MODEL"] = llm.model
        environment["ATHENAEUM_LLM_API_KEY_SECRET"] = llm.api_key_secret_arn
        # The model calls and the rest of the request must end before the function does
        # (infra.config.LlmTimeouts says how the time is split), or API Gateway answers 504
        # instead of the app's own 503.
        timeouts = LlmTimeouts.within(timeout_s)
        environment["ATHENAEUM_LLM_TIMEOUT_S"] = str(timeouts.generation_s)
        environment["ATHENAEUM_LLM_REWRITE_TIMEOUT_S"] = str(timeouts.rewrite_s)
    if access_policy is not None:
        # Applied to every caller's groups, as the authorizer's context carries them.
        environment[ACCESS_POLICY_VARIABLE] = access_policy
    return environment


def environment_bytes(environment: Mapping[str, str]) -> int:
    """What `environment` takes of Lambda's MAX_ENVIRONMENT_BYTES, as counted here."""
    text = json.dumps(dict(environment), ensure_ascii=False, separators=(",", ":"))
    return len(_TOKEN.sub("x" * UNRESOLVED_BYTES, text).encode())


def check_environment_size(environment: Mapping[str, str]) -> None:
    """ConfigError when Lambda would refuse `environment`, at synth rather than mid-deploy."""
    size = environment_bytes(environment)
    if size <= MAX_ENVIRONMENT_BYTES:
        return
    policy = environment.get(ACCESS_POLICY_VARIABLE)
    if policy is not None:
        raise ConfigError(
            f"the API function's environment would take {size} bytes, over Lambda's "
            f"{MAX_ENVIRONMENT_BYTES} (4 KB); context key access_policy takes "
            f"{len(policy.encode())} of them: shorten it (fewer or shorter group names, one "
            'group granted several collections, "*" where every caller may read)'
        )
    largest = max(environment, key=lambda name: len(environment[name]))
    raise ConfigError(
        f"the API function's environment would take {size} bytes, over Lambda's "
        f"{MAX_ENVIRONMENT_BYTES} (4 KB); its largest setting is {largest}"
    )
