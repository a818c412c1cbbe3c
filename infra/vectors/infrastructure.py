"""`VectorStore`: an Amazon S3 Vectors vector bucket and, in it, the index the API function
searches, both encrypted (SSE-S3) and kept when the stack is deleted, like the library's bucket.

The index is declared from athenaeum.s3vectors.definition, the definition `athenaeum publish`
creates and checks indexes against: the bundle's dimension, cosine, float32, and the metadata a
result only shows as non-filterable keys. One property has no counterpart in the tools this
project deploys with: full-text search on the `text` key. aws-cdk-lib 2.275's
CfnIndex.MetadataConfigurationProperty has only non_filterable_metadata_keys, and the
AWS::S3Vectors::Index schema cfn-lint 1.58 validates against has no text search property
(additionalProperties: false), so an add_property_override would fail the cfn-lint gate, and
would have to guess where the property goes (the CloudFormation reference has begun to document a
TextSearchConfiguration type for the resource). No custom resource either: `athenaeum publish`,
which deploy.sh runs right after the deploy and before the index holds any vector, adds the
configuration with UpdateMetadataConfiguration, through the botocore this project locks and tests
against, where a custom resource would depend on whatever SDK the Lambda runtime carries and add
a function and a role (docs/deployment.md, 'Amazon S3 Vectors').

Both names are left to CloudFormation, so that a change it can only make by replacement (a
bundle of another dimension, other non-filterable keys) creates the new index beside the old
one instead of failing on a name in use; the function and deploy.sh read them from the index's
ARN.
"""

from __future__ import annotations

from aws_cdk import Fn, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3vectors as s3vectors
from constructs import Construct

from athenaeum.s3vectors.definition import IndexDefinition
from athenaeum.s3vectors.publish import SCHEME

# What the API function calls, and all it may: QueryVectors, and GetVectors, which QueryVectors
# also needs when it is given queryTexts or a filter or asked for metadata (every search here),
# and which fetch by chunk id uses on its own.
QUERY_ACTIONS = ("s3vectors:QueryVectors", "s3vectors:GetVectors")
# SSE-S3: encrypted at rest with keys S3 manages; no KMS key to grant or pay for.
ENCRYPTION = "AES256"
# Where deploy.sh keeps publish's record of what the index holds, in the stack's bucket.
STATE_PREFIX = "s3vectors"


class VectorStore(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, definition: IndexDefinition) -> None:
        super().__init__(scope, construct_id)
        self.definition = definition
        self.bucket = s3vectors.CfnVectorBucket(
            self,
            "VectorBucket",
            encryption_configuration=s3vectors.CfnVectorBucket.EncryptionConfigurationProperty(
                sse_type=ENCRYPTION
            ),
        )
        self.index = s3vectors.CfnIndex(
            self,
            "VectorIndex",
            vector_bucket_arn=self.bucket.attr_vector_bucket_arn,
            data_type=definition.data_type,
            dimension=definition.dimension,
            distance_metric=definition.distance_metric,
            metadata_configuration=s3vectors.CfnIndex.MetadataConfigurationProperty(
                non_filterable_metadata_keys=list(definition.non_filterable)
            ),
            encryption_configuration=s3vectors.CfnIndex.EncryptionConfigurationProperty(
                sse_type=ENCRYPTION
            ),
        )
        # The vectors are what a deployment publishes, possibly for hours: a deleted stack
        # keeps them, as it keeps the library's bucket.
        for resource in (self.bucket, self.index):
            resource.apply_removal_policy(RemovalPolicy.RETAIN)

    @property
    def index_arn(self) -> str:
        return self.index.attr_index_arn

    @property
    def bucket_name(self) -> str:
        # arn:aws:s3vectors:REGION:ACCOUNT:bucket/BUCKET/index/INDEX
        return Fn.select(1, Fn.split("/", self.index_arn))

    @property
    def index_name(self) -> str:
        return Fn.select(3, Fn.split("/", self.index_arn))

    @property
    def uri(self) -> str:
        """The index as athenaeum names it: s3vectors://BUCKET/INDEX."""
        return f"{SCHEME}{self.bucket_name}/{self.index_name}"

    def grant_query(self, grantee: iam.IGrantable) -> iam.Grant:
        """QUERY_ACTIONS on this index and nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(QUERY_ACTIONS), resource_arns=[self.index_arn]
        )
