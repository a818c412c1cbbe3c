"""`AthenaeumStack`: composes one construct per concern from what infra/assets.py checked, sized
and staged: the bucket with the library, the published index and a bundle too large for the
function (infra/index), the API function and its layer (infra/function), the JWT authorizer
(infra/authorizer), the REST API in front of them (infra/gateway), the ingest that publishes the
library as new index versions (infra/ingest) and the alarms (infra/monitoring). With
index_backend=s3vectors, the chunks are searched in an S3 Vectors index (infra/vectors) instead:
the function carries the bundle's query side only, and there is no ingest. Its outputs are what
deploy.sh and the deployment guide read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnElement, CfnOutput, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import staging
from infra.assets import prepare
from infra.authorizer.infrastructure import BearerAuthorizer
from infra.config import StackConfig
from infra.function.infrastructure import (
    FUNCTION_ID,
    RUNTIME,
    ApiFunction,
    PublishedIndex,
    SourcesInS3,
)
from infra.gateway.infrastructure import Gateway
from infra.index.infrastructure import IndexStorage
from infra.ingest.infrastructure import FUNCTION_ID as INGEST_FUNCTION_ID
from infra.ingest.infrastructure import BucketLayout, Ingest
from infra.logical_ids import flattened_id
from infra.monitoring.infrastructure import Alarms, IngestWatch
from infra.vectors.infrastructure import STATE_PREFIX, VectorStore

# The concern constructs group code, not CloudFormation resources: what they hold keeps the
# logical id it would have as the stack's own child (infra/logical_ids.py).
TRANSPARENT_CONSTRUCTS = ("Index", "Function", "Authorizer", "Gateway")

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


class AthenaeumStack(Stack):
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
        # The ids of the transparent constructs' children once they are all built, and the
        # logical ids allocated from then on (the CDK asks for each one many times in a synth).
        self._transparent_children: dict[str, list[str]] = {}
        self._allocated: dict[str, str] = {}
        staging_dir = staging_dir or project_root / "cdk.out" / "staging" / config.stack_name
        self.assets = assets = prepare(config, project_root=project_root, staging_dir=staging_dir)
        retention = _RETENTION[config.log_retention_days]
        architecture = _ARCHITECTURE[config.architecture]

        self.vectors: VectorStore | None = None
        if assets.vector_index is not None:
            self.vectors = VectorStore(self, "Vectors", definition=assets.vector_index)
        # The bucket exists either way: it keeps the source files that citations link to.
        self.index = IndexStorage(
            self,
            "Index",
            bundle_dir=assets.index_dir,
            upload=assets.upload,
            bundle_storage_mb=assets.plan.ephemeral_storage_mb,
        )
        domain = config.custom_domain
        metric_namespace = f"Athenaeum/{config.stack_name}"
        self.function = ApiFunction(
            self,
            "Function",
            function_name=f"{config.stack_name}-{FUNCTION_ID}",
            code=assets.function_dir,
            layer_dir=assets.layer_dir,
            oauth=config.oauth,
            architecture=architecture,
            memory_mb=config.memory_mb,
            timeout=Duration.seconds(config.timeout_seconds),
            ephemeral_storage_mb=assets.plan.ephemeral_storage_mb,
            log_retention=retention,
            packaged_index=assets.packaged or self.vectors is not None,
            published=(
                PublishedIndex(
                    bucket=self.index.bucket,
                    prefix=self.index.index_root,
                    refresh_s=config.index_refresh_seconds,
                    start_prefix=None if assets.packaged else self.index.prefix,
                )
                if self.vectors is None
                else None
            ),
            vector_index=self.vectors,
            library=(
                SourcesInS3(bucket=self.index.bucket, prefix=self.index.library_prefix)
                if self.vectors is None
                else None
            ),
            metric_namespace=metric_namespace,
            public_base_url=domain.url if domain is not None else None,
            cors_origins=config.cors_origins,
            llm=config.llm,
            sources=SourcesInS3(bucket=self.index.bucket, prefix=self.index.sources_prefix),
            vpc=config.vpc,
            provisioned_concurrency=config.provisioned_concurrency,
            snapstart=config.snapstart,
            access_policy=config.access_policy,
        )
        if self.index.copy is not None:
            # The starting bundle is in the bucket before the function can be asked for it.
            self.function.function.node.add_dependency(self.index.copy)
        self.authorizer = BearerAuthorizer(
            self,
            "Authorizer",
            code=assets.authorizer_dir,
            layer=self.function.layer,
            runtime=RUNTIME,
            architecture=architecture,
            oauth=config.oauth,
            required_scopes=config.required_scopes,
            keys_refresh_s=config.api_keys_refresh_seconds,
            cache_ttl=Duration.seconds(config.authorizer_cache_seconds),
            log_retention=retention,
        )
        self.gateway = Gateway(
            self,
            "Gateway",
            name=config.stack_name,
            stage_name=config.environment,
            target=self.function.target,
            authorizer=self.authorizer.authorizer,
            oauth=config.oauth is not None,
            log_retention=retention,
            throttle_rate_limit=config.throttle_rate_limit,
            throttle_burst_limit=config.throttle_burst_limit,
            private_health=config.private_health,
            cors_origins=config.cors_origins,
            custom_domain=domain,
            waf_web_acl_arn=config.waf_web_acl_arn,
        )
        self.ingest: Ingest | None = None
        if assets.ingest is not None:
            self.ingest = Ingest(
                self,
                "Ingest",
                layout=BucketLayout(
                    bucket=self.index.bucket,
                    library=self.index.library_prefix,
                    index=self.index.index_root,
                ),
                function_name=f"{config.stack_name}-{INGEST_FUNCTION_ID}",
                code=assets.ingest.code_dir,
                layer_dir=assets.ingest.layer_dir,
                runtime=RUNTIME,
                architecture=architecture,
                memory_mb=config.ingest_memory_mb,
                storage_mb=assets.ingest.storage_mb,
                log_retention=retention,
                passwords=config.ingest_passwords,
            )
        self.alarms = Alarms(
            self,
            "Alarms",
            api=self.gateway.api,
            api_function=self.function.function,
            authorizer_logs=self.authorizer.log_group,
            metric_namespace=metric_namespace,
            timeout_seconds=config.timeout_seconds,
            alarm_email=config.alarm_email,
            ingest=(
                IngestWatch(
                    function=self.ingest.function,
                    dead_letters=self.ingest.dead_letters,
                    served_version_alarm_seconds=config.served_version_alarm_seconds,
                )
                if self.ingest is not None
                else None
            ),
        )
        self._outputs()
        # Logical ids are allocated when the app synthesizes, after this.
        self._transparent_children = {
            child.node.id: [grandchild.node.id for grandchild in child.node.children]
            for child in self.node.children
            if child.node.id in TRANSPARENT_CONSTRUCTS
        }

    def _outputs(self) -> None:
        CfnOutput(self, "APIEndpoint", value=self.gateway.url, description="The API's base URL")
        CfnOutput(
            self,
            "ApiKeysSecretArn",
            value=self.authorizer.api_keys.secret_arn,
            description="The API key set: athenaeum keys create NAME --secret <this>",
        )
        CfnOutput(self, "IndexStrategy", value=self.assets.plan.strategy.value)
        # deploy.sh reads these to upload the source files (always), to upload the bundle
        # itself (index_upload=cli) and to delete older bundles after a deploy.
        CfnOutput(self, "IndexBucketName", value=self.index.bucket.bucket_name)
        CfnOutput(self, "SourcesS3Prefix", value=self.index.sources_prefix)
        if self.vectors is not None:
            # deploy.sh publishes the bundle there, keeping the record of what it put here.
            CfnOutput(
                self,
                "VectorIndexUri",
                value=self.vectors.uri,
                description="The S3 Vectors index the API searches (athenaeum publish fills it)",
            )
            CfnOutput(self, "VectorIndexArn", value=self.vectors.index_arn)
            CfnOutput(
                self,
                "VectorIndexStateS3Uri",
                value=(
                    f"s3://{self.index.bucket.bucket_name}/{STATE_PREFIX}/"
                    f"{self.vectors.index_name}.json"
                ),
                description="athenaeum publish's record of what the index holds (--state)",
            )
        else:
            # Where people put the library's documents, and where the ingest publishes the index.
            CfnOutput(
                self,
                "LibraryS3Uri",
                value=f"s3://{self.index.bucket.bucket_name}/{self.index.library_prefix}",
                description="Add, replace and delete the library's documents here",
            )
            CfnOutput(
                self,
                "IndexS3Uri",
                value=f"s3://{self.index.bucket.bucket_name}/{self.index.index_root}",
                description="The published index (written by the ingest function)",
            )
        if self.index.upload is not None:
            CfnOutput(self, "IndexS3Prefix", value=self.index.prefix)
            CfnOutput(self, "IndexUpload", value=self.index.upload)
        domain, custom = self.config.custom_domain, self.gateway.domain
        if domain is not None and custom is not None:
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

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        # The ids as they were before the concern constructs existed (infra/logical_ids.py).
        # The constructs library escapes "/" in ids, so an element's path splits into them.
        element_path = cfn_element.node.path
        if element_path in self._allocated:
            return self._allocated[element_path]
        stack_path = self.node.path.split("/")
        path = element_path.split("/")[len(stack_path) :]
        if len(path) < 2 or path[0] not in TRANSPARENT_CONSTRUCTS:
            logical_id = super()._allocate_logical_id(cfn_element)
        else:
            logical_id = flattened_id(
                path, stack_path=stack_path, children=self._transparent_children
            )
        if self._transparent_children:
            self._allocated[element_path] = logical_id
        return logical_id
