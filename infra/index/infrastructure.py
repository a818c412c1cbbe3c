"""`IndexStorage`: the stack's private bucket. Its prefixes:

- `library/`: the documents of the living library, which people add, replace and delete with
  any S3 tool; the ingest function (infra/ingest) reads them.
- `index/`: the published index: the pointer `index/current.json`, `index/versions/`,
  `index/blobs/`, `index/reports/`, `index/state/` and `index/lock.json`, written only by the
  ingest function (and by deploy.sh's first publish). An index bundle too large to package with
  the function is also copied under its content address `index/<bundle id>/`, by
  CloudFormation unless deploy.sh uploads it itself (upload.py beside this module).
- `sources/`: the original files the deployed bundle was built from, under
  `sources/<sha256>/<file name>` (deploy.sh uploads them; citations link to them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from aws_cdk import Duration, RemovalPolicy, Size, Stack, Token
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from athenaeum.server.http.sources import SOURCES_ROOT
from infra import sizing
from infra.index.upload import INDEX_ROOT, bundle_prefix
from infra.nag import acknowledge, managed_policy

NONCURRENT_INDEX_DAYS = 30
LIBRARY_ROOT = "library"
IndexUpload = Literal["cdk", "cli"]


def upload_mode(requested: str, bundle_bytes: int) -> IndexUpload:
    """Who copies the bundle into the bucket: CloudFormation ("cdk") or deploy.sh ("cli")."""
    if requested == "auto":
        return "cdk" if bundle_bytes <= sizing.CDK_UPLOAD_MAX_BYTES else "cli"
    return "cli" if requested == "cli" else "cdk"


class IndexStorage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bundle_dir: Path,
        upload: IndexUpload | None,
        bundle_storage_mb: int,
    ) -> None:
        """`upload` None: the bundle is packaged with the function, and the bucket holds only
        the source files. `bundle_storage_mb` is the room in /tmp the bundle needs."""
        super().__init__(scope, construct_id)
        self.prefix = bundle_prefix(bundle_dir)
        self.upload = upload
        self.bucket = s3.Bucket(
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
            self.bucket,
            "AwsSolutions-S1",
            "the bucket holds the library's documents, the index published from them and the "
            "deployed bundle's source files; it is written by its owners' S3 tools, the ingest "
            "function and deployments, and read by the functions and the presigned links they "
            "make; CloudTrail data events are the place for object-level auditing",
        )
        self.sources_prefix = SOURCES_ROOT
        self.library_prefix = LIBRARY_ROOT
        self.index_root = INDEX_ROOT
        self.copy: s3_deployment.BucketDeployment | None = None
        if upload == "cdk":
            self.copy = s3_deployment.BucketDeployment(
                self,
                "IndexCopy",
                sources=[s3_deployment.Source.asset(str(bundle_dir))],
                destination_bucket=self.bucket,
                destination_key_prefix=self.prefix,
                memory_limit=1024,
                # The copy unzips the CDK asset in /tmp: room for the archive and the bundle.
                ephemeral_storage_size=Size.mebibytes(
                    min(sizing.MAX_EPHEMERAL_MB, 2 * bundle_storage_mb)
                ),
            )
            self._acknowledge_copy(self.copy)

    def _acknowledge_copy(self, copy: s3_deployment.BucketDeployment) -> None:
        # The copy runs in CDK's own singleton custom-resource function, whose role and
        # runtime CDK chooses; CloudFormation invokes it only when the index changes.
        stack = Stack.of(self)
        bucket_id = stack.get_logical_id(self.bucket.node.default_child)  # type: ignore[arg-type]
        # cdk-nag prints the asset bucket with the concrete account/region when they are known.
        account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
        region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        acknowledge(
            copy.handler_role,
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
            f"Resource::<{bucket_id}.Arn>/*",
        ]
        for finding in wildcard_findings:
            acknowledge(
                copy.handler_role,
                f"AwsSolutions-IAM5[{finding}]",
                "CDK's BucketDeployment handler copies the index from the CDK asset bucket "
                "into the index bucket (and prunes old files); its grants cover those two "
                "buckets only",
            )
        # The handler function itself is a singleton at the stack's root.
        for child in stack.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                acknowledge(
                    child,
                    "AwsSolutions-L1",
                    "the BucketDeployment handler's runtime is chosen and updated by CDK",
                )
