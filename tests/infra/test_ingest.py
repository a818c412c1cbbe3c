"""The living library's infrastructure: the ingest construct (infra/ingest) alone in a bare stack,
and in the whole stack its grants, alarms, the API function's side of it, outputs and cdk-nag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from infra import sizing
from infra.config import ConfigError, PasswordsSecret, StackConfig
from infra.ingest.infrastructure import BucketLayout, Ingest
from infra.sizing import MIB, SizingError
from infra.stack import AthenaeumStack
from tests.infra.helpers import (
    API_FUNCTION_NAME,
    CONTEXT,
    acknowledged,
    function_named,
    logical_id,
    make_code,
    make_layer,
    synth,
)

INGEST_FUNCTION_NAME = "AtheneumStack-IngestFunction"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:athenaeum/pdf-passwords-AbC123"
PARTIAL_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:athenaeum/pdf-passwords"


def build_alone(
    tmp: Path, *, passwords: PasswordsSecret | None = None, storage_mb: int = 2048
) -> tuple[Ingest, Template]:
    stack = Stack(App(), "Bare")
    bucket = s3.Bucket(stack, "Bucket")
    ingest = Ingest(
        stack,
        "Ingest",
        layout=BucketLayout(bucket=bucket, library="library", index="index"),
        function_name=INGEST_FUNCTION_NAME,
        code=make_code(tmp),
        layer_dir=make_layer(tmp, "ingest-layer"),
        runtime=lambda_.Runtime.PYTHON_3_12,
        architecture=lambda_.Architecture.ARM_64,
        memory_mb=3008,
        storage_mb=storage_mb,
        log_retention=logs.RetentionDays.ONE_MONTH,
        passwords=passwords,
    )
    return ingest, Template.from_stack(stack)


def synth_with_template(tmp: Path, **context: Any) -> tuple[AthenaeumStack, Template]:
    stack = synth(tmp, **context)
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ingest, Template]:
    return build_alone(tmp_path_factory.mktemp("alone"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[AthenaeumStack, Template]:
    # Every ingest option, the alarms mailed, and cdk-nag: synthesis raises on any finding that
    # is not acknowledged.
    return synth_with_template(
        tmp_path_factory.mktemp("stack"),
        alarm_email="ops@example.org",
        ingest_passwords_secret=SECRET_ARN,
        ingest_memory_mb="4096",
        index_refresh_seconds="30",
        served_version_alarm_seconds="600",
    )


def statements(template: Template, role: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in template.find_resources(
            "AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role}]}}
        ).values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def object_arn(bucket: str, suffix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, suffix]]}


# --- events and queues -------------------------------------------------------------------------


def test_library_changes_are_queued(alone: tuple[Ingest, Template]) -> None:
    ingest, template = alone
    bucket = logical_id(ingest.layout.bucket)
    queue = {"Fn::GetAtt": [logical_id(ingest.queue), "Arn"]}
    library = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "library/"}]}}
    (notifications,) = template.find_resources("Custom::S3BucketNotifications").values()
    assert notifications["Properties"]["BucketName"] == {"Ref": bucket}
    # Added, replaced (a new object) and deleted documents, under library/ only: never the
    # index the function writes itself.
    assert notifications["Properties"]["NotificationConfiguration"] == {
        "QueueConfigurations": [
            {"Events": ["s3:ObjectCreated:*"], "Filter": library, "QueueArn": queue},
            {"Events": ["s3:ObjectRemoved:*"], "Filter": library, "QueueArn": queue},
        ]
    }
    # S3 may send to the queue only on behalf of this bucket.
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": logical_id(ingest.queue)}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.array_with(["sqs:SendMessage"]),
                                "Effect": "Allow",
                                "Principal": {"Service": "s3.amazonaws.com"},
                                "Condition": {
                                    "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": [bucket, "Arn"]}}
                                },
                            }
                        )
                    ]
                )
            },
        },
    )


def test_queue_and_dead_letter_queue(alone: tuple[Ingest, Template]) -> None:
    ingest, template = alone
    queues = template.find_resources("AWS::SQS::Queue")
    queue = queues[logical_id(ingest.queue)]["Properties"]
    dead = queues[logical_id(ingest.dead_letters)]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and dead["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [logical_id(ingest.dead_letters), "Arn"]},
        "maxReceiveCount": 5,
    }
    assert dead["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dead["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    # Lambda's guidance for SQS event sources: six times the function's timeout, and the
    # batching window on top.
    function = function_named(template, INGEST_FUNCTION_NAME)
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"] + 60
    # Both refuse requests without TLS.
    for queue_id in (logical_id(ingest.queue), logical_id(ingest.dead_letters)):
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue_id}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "sqs:*",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_batches_of_events_one_run_at_a_time(alone: tuple[Ingest, Template]) -> None:
    ingest, template = alone
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [logical_id(ingest.queue), "Arn"]},
            "FunctionName": {"Ref": logical_id(ingest.function)},
            "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 60,
        },
    )
    assert len(template.find_resources("AWS::Lambda::EventSourceMapping")) == 1


# --- the function ------------------------------------------------------------------------------


def test_function_limits_layer_and_environment(alone: tuple[Ingest, Template]) -> None:
    ingest, template = alone
    bucket = logical_id(ingest.layout.bucket)
    props = function_named(template, INGEST_FUNCTION_NAME)
    assert props["Handler"] == "athenaeum.ingest.lambda_handler.handler"
    assert props["Runtime"] == "python3.12" and props["Architectures"] == ["arm64"]
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] == 900
    assert props["MemorySize"] == 3008
    assert props["EphemeralStorage"] == {"Size": 2048}
    assert props["Layers"] == [{"Ref": logical_id(ingest.layer)}]
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["arm64"]},
    )
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": logical_id(ingest.log_group)}
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"LogGroupName": f"/aws/lambda/{INGEST_FUNCTION_NAME}", "RetentionInDays": 30},
    )
    assert props["Environment"]["Variables"] == {
        "ATHENAEUM_LIBRARY_S3_URI": {"Fn::Join": ["", ["s3://", {"Ref": bucket}, "/library"]]},
        "ATHENAEUM_INDEX_S3_URI": {"Fn::Join": ["", ["s3://", {"Ref": bucket}, "/index"]]},
        "ATHENAEUM_INGEST_WORK_DIR": "/tmp/athenaeum-ingest",
        "ATHENAEUM_INGEST_QUEUE_URL": {"Ref": logical_id(ingest.queue)},
        "PYMUPDF_SUGGEST_LAYOUT_ANALYZER": "0",
    }


def test_reads_the_library_and_writes_the_index_only(alone: tuple[Ingest, Template]) -> None:
    ingest, template = alone
    bucket = logical_id(ingest.layout.bucket)
    granted = statements(template, logical_id(ingest.function.role))  # type: ignore[arg-type]
    on_bucket = [st for st in granted if bucket in json.dumps(st["Resource"])]
    assert on_bucket == [
        {
            "Action": "s3:ListBucket",
            "Condition": {"StringLike": {"s3:prefix": ["library/*", "index/*"]}},
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [bucket, "Arn"]},
        },
        {"Action": "s3:GetObject", "Effect": "Allow", "Resource": object_arn(bucket, "/library/*")},
        {
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Effect": "Allow",
            "Resource": object_arn(bucket, "/index/*"),
        },
    ]
    # The rest: consuming its own queue and asking it for another run, nothing else (no secret
    # without the context key).
    queue = {"Fn::GetAtt": [logical_id(ingest.queue), "Arn"]}
    others = [st for st in granted if st not in on_bucket]
    assert others == [
        {
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueUrl",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
            ],
            "Effect": "Allow",
            "Resource": queue,
        },
        {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": queue},
    ]
    assert "ATHENAEUM_INGEST_PASSWORDS_SECRET" not in json.dumps(template.to_json())


@pytest.mark.parametrize(
    ("given", "resource"),
    [
        (SECRET_ARN, SECRET_ARN),
        (PARTIAL_SECRET_ARN, f"{PARTIAL_SECRET_ARN}-??????"),
        (
            "athenaeum/pdf-passwords",
            {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":secretsmanager:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        ":secret:athenaeum/pdf-passwords-??????",
                    ],
                ]
            },
        ),
    ],
)
def test_passwords_secret_is_named_and_readable_when_configured(
    tmp_path: Path, given: str, resource: Any
) -> None:
    ingest, template = build_alone(tmp_path, passwords=PasswordsSecret(given))
    variables = function_named(template, INGEST_FUNCTION_NAME)["Environment"]["Variables"]
    assert variables["ATHENAEUM_INGEST_PASSWORDS_SECRET"] == given
    granted = statements(template, logical_id(ingest.function.role))  # type: ignore[arg-type]
    secrets = [st for st in granted if "secretsmanager" in json.dumps(st["Action"])]
    assert secrets == [
        {"Action": "secretsmanager:GetSecretValue", "Effect": "Allow", "Resource": resource}
    ]


# --- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bundle_mib", "storage_mb"),
    [(1, 2048), (300, 2048), (400, 3 * 401 + 1024), (2048, 3 * 2049 + 1024)],
)
def test_storage_is_three_bundles_and_a_batch(bundle_mib: int, storage_mb: int) -> None:
    # The manifest counts too: a bundle of N MiB plus its manifest rounds up to N + 1.
    assert sizing.ingest_storage_mb(bundle_mib * MIB + 100) == storage_mb


def test_storage_from_the_bundle_and_from_context(tmp_path: Path) -> None:
    _, template = synth_with_template(tmp_path / "s3", nag=False, declared_bytes=400 * MIB)
    assert function_named(template, INGEST_FUNCTION_NAME)["EphemeralStorage"] == {
        "Size": 3 * 401 + 1024
    }
    _, template = synth_with_template(tmp_path / "set", nag=False, ingest_storage_mb="4096")
    assert function_named(template, INGEST_FUNCTION_NAME)["EphemeralStorage"] == {"Size": 4096}


def test_storage_is_capped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, template = synth_with_template(tmp_path, nag=False, index_size_bytes=4 * 1024 * MIB)
    assert function_named(template, INGEST_FUNCTION_NAME)["EphemeralStorage"] == {"Size": 10240}
    assert "the ingest function would need 13312 MB of /tmp" in capsys.readouterr().err


def test_synth_refuses_without_the_ingest_layer(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=r"layer/build\.sh --profile ingest --out .*nowhere"):
        synth_with_template(tmp_path, nag=False, ingest_layer_dir=str(missing))


def test_synth_refuses_an_ingest_layer_too_large_for_lambda(tmp_path: Path) -> None:
    layer = make_layer(tmp_path, "big-layer")
    with (layer / "python" / "big.bin").open("wb") as f:
        f.truncate(250 * MIB)  # sparse: the size Lambda would count, without the disk
    with pytest.raises(SizingError, match=r"ingest layer .* exceed Lambda's 250 MiB"):
        synth_with_template(tmp_path, nag=False, ingest_layer_dir=str(layer))


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"ingest_memory_mb": 64}, "ingest_memory_mb=64 must be between 128 and 10240"),
        ({"ingest_storage_mb": 20000}, "ingest_storage_mb=20000 must be between 512 and 10240"),
        ({"index_refresh_seconds": 0}, "index_refresh_seconds=0 must be between 1 and 3600"),
        (
            {"index_refresh_seconds": 900, "served_version_alarm_seconds": 900},
            "served_version_alarm_seconds=900 must be longer than index_refresh_seconds=900",
        ),
        ({"ingest_passwords_secret": "no spaces please"}, "a secret's name .* or its ARN"),
        ({"ingest_passwords_secret": "arn:aws:s3:::bucket"}, "must be an ARN like"),
    ],
)
def test_invalid_ingest_context_refused(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StackConfig.from_context({**CONTEXT, **context}.get)


# --- in the whole stack ------------------------------------------------------------------------


def test_the_stack_wires_ingest_to_its_bucket_and_options(
    stack: tuple[AthenaeumStack, Template],
) -> None:
    app_stack, template = stack
    assert app_stack.ingest.layout.bucket is app_stack.index.bucket
    props = function_named(template, INGEST_FUNCTION_NAME)
    assert props["MemorySize"] == 4096
    assert props["Environment"]["Variables"]["ATHENAEUM_INGEST_PASSWORDS_SECRET"] == SECRET_ARN
    # Its own layer, not the API's.
    assert props["Layers"] == [{"Ref": logical_id(app_stack.ingest.layer)}]
    assert logical_id(app_stack.ingest.layer) != logical_id(app_stack.function.layer)
    # Its code is the package without the CLI.
    staged = app_stack.assets.ingest.code_dir / "athenaeum"
    assert (staged / "build" / "convert.py").is_file() and not (staged / "cli").exists()


def test_the_api_function_follows_the_published_index(
    stack: tuple[AthenaeumStack, Template],
) -> None:
    app_stack, template = stack
    bucket = logical_id(app_stack.index.bucket)
    variables = function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"]
    assert variables["ATHENAEUM_INDEX_S3_URI"] == {
        "Fn::Join": ["", ["s3://", {"Ref": bucket}, "/index"]]
    }
    assert variables["ATHENAEUM_INDEX_REFRESH_S"] == "30"
    assert variables["ATHENAEUM_INDEX_CACHE_DIR"] == "/tmp/athenaeum-index"
    # Its ServedVersionBehindSeconds goes where the alarm looks.
    assert variables["ATHENAEUM_METRIC_NAMESPACE"] == "Athenaeum/AtheneumStack"
    # Packaged: the bundle in the code is the version it starts from.
    assert variables["ATHENAEUM_INDEX_DIR"] == "/var/task/index"
    granted = statements(template, logical_id(app_stack.function.function.role))  # type: ignore[arg-type]
    on_bucket = [st for st in granted if bucket in json.dumps(st["Resource"])]
    assert sorted(on_bucket, key=json.dumps) == sorted(
        [
            {"Action": "s3:GetObject", "Effect": "Allow", "Resource": object_arn(bucket, suffix)}
            for suffix in ("/index/*", "/sources/*", "/library/*")
        ]
        + [
            {
                "Action": "s3:ListBucket",
                "Condition": {"StringLike": {"s3:prefix": ["index/*"]}},
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [bucket, "Arn"]},
            }
        ],
        key=json.dumps,
    )


def test_a_bundle_in_s3_starts_from_the_published_index(tmp_path: Path) -> None:
    app_stack, template = synth_with_template(tmp_path, nag=False, declared_bytes=300 * MIB)
    variables = function_named(template, API_FUNCTION_NAME)["Environment"]["Variables"]
    bucket = logical_id(app_stack.index.bucket)
    assert variables["ATHENAEUM_INDEX_S3_URI"] == {
        "Fn::Join": ["", ["s3://", {"Ref": bucket}, "/index"]]
    }
    assert variables["ATHENAEUM_INDEX_REFRESH_S"] == "60"
    assert "ATHENAEUM_INDEX_DIR" not in variables
    # Until the first version is published, the bundle deploy uploaded is served.
    assert variables["ATHENAEUM_INDEX_START_S3_URI"] == {
        "Fn::Join": ["", ["s3://", {"Ref": bucket}, f"/{app_stack.index.prefix}"]]
    }


def test_ingest_alarms(stack: tuple[AthenaeumStack, Template]) -> None:
    app_stack, template = stack
    assert app_stack.alarms.topic is not None
    topic = [{"Ref": logical_id(app_stack.alarms.topic)}]
    at_least_one = {
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "EvaluationPeriods": 1,
        "Period": 300,
        "TreatMissingData": "notBreaching",
        "AlarmActions": topic,
    }
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            **at_least_one,
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Statistic": "Maximum",
            "Dimensions": [
                {
                    "Name": "QueueName",
                    "Value": {
                        "Fn::GetAtt": [logical_id(app_stack.ingest.dead_letters), "QueueName"]
                    },
                }
            ],
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            **at_least_one,
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Statistic": "Sum",
            "Dimensions": [
                {"Name": "FunctionName", "Value": {"Ref": logical_id(app_stack.ingest.function)}}
            ],
        },
    )
    # The API function's own metric (embedded metric format, no dimensions).
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "Athenaeum/AtheneumStack",
            "MetricName": "ServedVersionBehindSeconds",
            "Dimensions": Match.absent(),
            "Statistic": "Maximum",
            "Threshold": 600,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": topic,
        },
    )


def test_outputs_name_the_library_and_the_index(stack: tuple[AthenaeumStack, Template]) -> None:
    app_stack, template = stack
    bucket = logical_id(app_stack.index.bucket)
    for output, prefix in (("LibraryS3Uri", "/library"), ("IndexS3Uri", "/index")):
        template.has_output(
            output, {"Value": {"Fn::Join": ["", ["s3://", {"Ref": bucket}, prefix]]}}
        )


def test_cdk_nag_findings_are_acknowledged_narrowly(stack: tuple[AthenaeumStack, Template]) -> None:
    # The fixture synthesized with the AwsSolutions checks, so nothing is left unacknowledged.
    app_stack, _ = stack
    bucket = logical_id(app_stack.index.bucket)
    ingest_rules = acknowledged(app_stack.ingest)
    expected = {
        f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/library/*]",
        f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/index/*]",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        "AwsSolutions-L1",
    }
    assert {rule.split("::", 1)[1] for rule in ingest_rules} == expected
    # CDK's notifications handler: only its managed execution role.
    (handler,) = [
        child
        for child in app_stack.node.children
        if child.node.id.startswith("BucketNotificationsHandler")
    ]
    assert [rule.split("::", 1)[1] for rule in acknowledged(handler)] == [
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]"
    ]
