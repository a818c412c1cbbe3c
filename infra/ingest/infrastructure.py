"""`Ingest`: what turns the bucket's `library/` prefix into published index versions. S3 event
notifications for objects created and removed under `library/` go to an SQS queue (a dead-letter
queue behind it); the ingest function (its own layer, layer/build.sh --profile ingest) takes them
in batches, one invocation at a time, reconciles the library and publishes a new version under
`index/`. Its role reads the library, writes the index and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import PasswordsSecret
from infra.nag import acknowledge, acknowledge_lambda_defaults, managed_policy

HANDLER = "athenaeum.ingest.lambda_handler.handler"
# The function's name is "<stack name>-IngestFunction".
FUNCTION_ID = "IngestFunction"
# Lambda's longest: a batch of new documents is converted, chunked and embedded in one run.
TIMEOUT = Duration.minutes(15)
# Many uploads at once become one invocation: up to this many events, gathered for this long.
BATCH_SIZE = 100
BATCH_WINDOW = Duration.seconds(60)
# Lambda's guidance for an SQS event source: the queue's visibility timeout at least six times
# the function's (here with the batching window on top), so that a batch held by a throttled or
# retried run is not handed out again mid-run; and a message retried five times before it goes
# to the dead-letter queue, as reserved concurrency 1 makes throttled receives common.
MAX_RECEIVE_COUNT = 5
VISIBILITY_TIMEOUT = Duration.seconds(
    6 * int(TIMEOUT.to_seconds()) + int(BATCH_WINDOW.to_seconds())
)
QUEUE_RETENTION = Duration.days(4)
# Longer than the queue's: a message keeps its first enqueue time when it moves there.
DEAD_LETTER_RETENTION = Duration.days(14)
WORK_DIR = "/tmp/athenaeum-ingest"  # noqa: S108


@dataclass(frozen=True, kw_only=True)
class BucketLayout:
    """The stack's bucket and the prefixes the ingest reads (`library`) and writes (`index`)."""

    bucket: s3.Bucket
    library: str
    index: str

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket.bucket_name}/{prefix}"


class Ingest(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layout: BucketLayout,
        function_name: str,
        code: Path,
        layer_dir: Path,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        memory_mb: int,
        storage_mb: int,
        log_retention: logs.RetentionDays,
        passwords: PasswordsSecret | None = None,
    ) -> None:
        """`code` is the staged package (infra/staging.py); `layer_dir` the built ingest layer."""
        super().__init__(scope, construct_id)
        self.layout = layout
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DEAD_LETTER_RETENTION,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=VISIBILITY_TIMEOUT,
            retention_period=QUEUE_RETENTION,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT
            ),
        )
        library_only = s3.NotificationKeyFilter(prefix=f"{layout.library}/")
        for event in (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED):
            layout.bucket.add_event_notification(
                event, s3n.SqsDestination(self.queue), library_only
            )
        self._acknowledge_notifications_handler()

        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[runtime],
            compatible_architectures=[architecture],
            description="Athenaeum ingest dependencies (built by layer/build.sh --profile ingest)",
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        environment = {
            "ATHENAEUM_LIBRARY_S3_URI": layout.uri(layout.library),
            "ATHENAEUM_INDEX_S3_URI": layout.uri(layout.index),
            "ATHENAEUM_INGEST_WORK_DIR": WORK_DIR,
            # A run that had to stop before its time ran out publishes what it converted and
            # asks its own queue for another run.
            "ATHENAEUM_INGEST_QUEUE_URL": self.queue.queue_url,
            # The layer leaves out PyMuPDF's layout model (the converter does not use it);
            # without this, PyMuPDF prints a suggestion to install it on its first table search.
            "PYMUPDF_SUGGEST_LAYOUT_ANALYZER": "0",
        }
        if passwords is not None:
            environment["ATHENAEUM_INGEST_PASSWORDS_SECRET"] = passwords.name_or_arn
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            runtime=runtime,
            architecture=architecture,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(code)),
            layers=[self.layer],
            memory_size=memory_mb,
            timeout=TIMEOUT,
            ephemeral_storage_size=Size.mebibytes(storage_mb),
            # Exactly one writer: batches run one after another, never beside each other.
            reserved_concurrent_executions=1,
            environment=environment,
            log_group=self.log_group,
            description="Athenaeum ingest: reconciles the library into a new index version",
        )
        acknowledge_lambda_defaults(self.function)
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue, batch_size=BATCH_SIZE, max_batching_window=BATCH_WINDOW
            )
        )
        self._grant_bucket()
        # Only to ask for its own next run (the message carries no document).
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])
        )
        if passwords is not None:
            self._grant_passwords(passwords)

    def _grant_bucket(self) -> None:
        bucket, library, index = self.layout.bucket, self.layout.library, self.layout.index
        # Listing only under the two prefixes: what the library holds, what the index holds.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{library}/*", f"{index}/*"]}},
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{library}/*")]
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{index}/*")],
            )
        )
        bucket_id = Stack.of(self).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            self.function,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{library}/*]",
            "s3:GetObject on the library prefix only: the documents are whatever people put "
            "there, so their keys are known only from the events and the listing",
        )
        acknowledge(
            self.function,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{index}/*]",
            "read, write and delete on the index prefix only, which the ingest function owns: "
            "it publishes content-addressed versions there, moves the pointer and removes "
            "versions it has replaced",
        )

    def _grant_passwords(self, passwords: PasswordsSecret) -> None:
        if passwords.arn_is_complete:
            resource = passwords.name_or_arn
        elif passwords.is_arn:
            # IAM matches the full ARN; a partial one needs the six-character suffix slot.
            resource = f"{passwords.name_or_arn}-??????"
        else:
            resource = Stack.of(self).format_arn(
                service="secretsmanager",
                resource="secret",
                resource_name=f"{passwords.name_or_arn}-??????",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[resource])
        )

    def _acknowledge_notifications_handler(self) -> None:
        # The notifications are set by CDK's own custom resource: a singleton function at the
        # stack's root, whose role CDK makes (s3:PutBucketNotification on this bucket only), run
        # only when the notifications change.
        stack = Stack.of(self)
        for child in stack.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4" + managed_policy("AWSLambdaBasicExecutionRole"),
                    "CDK's bucket-notifications handler logs with the basic Lambda execution "
                    "role; its own grant is s3:PutBucketNotification on this bucket alone",
                )
