"""`AthenaeumStack`: sizes the deployment, stages the code, and composes one construct per
concern: the index in S3 when it does not fit the function (infra/index), the API function and
its layer (infra/function), the JWT authorizer (infra/authorizer), the REST API in front of them
(infra/gateway) and the alarms (infra/monitoring). Its outputs are what deploy.sh and the
deployment guide read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aws_cdk import CfnElement, CfnOutput, Duration, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from athenaeum.bundle.format import MANIFEST_FILE
from athenaeum.errors import BundleError
from infra import sizing, staging
from infra.authorizer.infrastructure import JwtAuthorizer
from infra.config import ConfigError, StackConfig
from infra.function.infrastructure import (
    FUNCTION_ID,
    RUNTIME,
    ApiFunction,
    IndexInS3,
    SourcesInS3,
)
from infra.gateway.infrastructure import Gateway
from infra.index.infrastructure import IndexStorage, upload_mode
from infra.logical_ids import flattened_id
from infra.monitoring.infrastructure import Alarms

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
        retention = _RETENTION[config.log_retention_days]
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
        self.function_dir = staging.stage_function(staging_dir)
        self.plan = sizing.plan(
            layer_bytes=sizing.tree_bytes(layer_dir),
            code_bytes=sizing.tree_bytes(self.function_dir),
            bundle_bytes=bundle_bytes,
        )
        # Printed by synth: which strategy was chosen and why.
        # On stderr: `cdk synth` prints the template on stdout, which must stay valid YAML.
        print(f"[{config.stack_name}] {self.plan.report()}", file=sys.stderr)
        if config.snapstart and self.plan.strategy is sizing.IndexStrategy.S3:
            raise ConfigError(
                "context key snapstart needs the index packaged with the function, but this "
                "bundle is too large and goes to S3: SnapStart does not combine with ephemeral "
                "storage above 512 MB (the S3 strategy downloads the index to /tmp). Turn "
                "snapstart off, or shrink the bundle (docs/deployment.md, 'Index size strategies')"
            )

        # --- the constructs ------------------------------------------------------------------
        index_in_s3: IndexInS3 | None = None
        packaged = self.plan.strategy is sizing.IndexStrategy.PACKAGED
        if packaged:
            try:
                staging.add_index(self.function_dir, index_dir)
            except BundleError as exc:
                raise ConfigError(f"the index cannot be packaged: {exc.message}") from exc
        upload = None if packaged else upload_mode(config.index_upload, bundle_bytes)
        # The bucket exists either way: it keeps the source files that citations link to.
        self.index = IndexStorage(
            self,
            "Index",
            bundle_dir=index_dir,
            upload=upload,
            bundle_storage_mb=self.plan.ephemeral_storage_mb,
        )
        if upload is not None:
            if upload == "cli":
                print(
                    f"[{config.stack_name}] index upload: by deploy.sh (python -m "
                    f"infra.index.upload) to {self.index.prefix}/, not by CloudFormation",
                    file=sys.stderr,
                )
            index_in_s3 = IndexInS3(
                bucket=self.index.bucket, prefix=self.index.prefix, ready=self.index.copy
            )
        domain = config.custom_domain
        self.function = ApiFunction(
            self,
            "Function",
            function_name=f"{config.stack_name}-{FUNCTION_ID}",
            code=self.function_dir,
            layer_dir=layer_dir,
            oauth=config.oauth,
            architecture=architecture,
            memory_mb=config.memory_mb,
            timeout=Duration.seconds(config.timeout_seconds),
            ephemeral_storage_mb=self.plan.ephemeral_storage_mb,
            log_retention=retention,
            index_in_s3=index_in_s3,
            public_base_url=domain.url if domain is not None else None,
            cors_origins=config.cors_origins,
            llm=config.llm,
            sources=SourcesInS3(bucket=self.index.bucket, prefix=self.index.sources_prefix),
            vpc=config.vpc,
            provisioned_concurrency=config.provisioned_concurrency,
            snapstart=config.snapstart,
        )
        self.authorizer = JwtAuthorizer(
            self,
            "Authorizer",
            code=staging.stage_authorizer(staging_dir),
            layer=self.function.layer,
            runtime=RUNTIME,
            architecture=architecture,
            oauth=config.oauth,
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
            log_retention=retention,
            throttle_rate_limit=config.throttle_rate_limit,
            throttle_burst_limit=config.throttle_burst_limit,
            private_health=config.private_health,
            cors_origins=config.cors_origins,
            custom_domain=domain,
            waf_web_acl_arn=config.waf_web_acl_arn,
        )
        self.alarms = Alarms(
            self,
            "Alarms",
            api=self.gateway.api,
            api_function=self.function.function,
            authorizer_logs=self.authorizer.log_group,
            metric_namespace=f"Athenaeum/{config.stack_name}",
            timeout_seconds=config.timeout_seconds,
            alarm_email=config.alarm_email,
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
        CfnOutput(self, "IndexStrategy", value=self.plan.strategy.value)
        # deploy.sh reads these to upload the source files (always), to upload the bundle
        # itself (index_upload=cli) and to delete older bundles after a deploy.
        CfnOutput(self, "IndexBucketName", value=self.index.bucket.bucket_name)
        CfnOutput(self, "SourcesS3Prefix", value=self.index.sources_prefix)
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
