"""The alarms construct (infra/monitoring), alone in a bare stack with a stand-in API, function
and authorizer log group."""

from __future__ import annotations

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Match, Template

from infra.monitoring.infrastructure import Alarms

NAMESPACE = "Athenaeum/AtheneumStack"


def build(alarm_email: str | None = None) -> tuple[Alarms, Template]:
    stack = Stack(App(), "Bare")
    api = apigw.RestApi(stack, "Api")
    api.root.add_method("GET", apigw.MockIntegration())
    function = lambda_.Function(
        stack,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
    )
    alarms = Alarms(
        stack,
        "Alarms",
        api=api,
        api_function=function,
        authorizer_logs=logs.LogGroup(stack, "AuthorizerLogs"),
        metric_namespace=NAMESPACE,
        timeout_seconds=29,
        alarm_email=alarm_email,
    )
    return alarms, Template.from_stack(stack)


@pytest.fixture(scope="module")
def mailed() -> tuple[Alarms, Template]:
    return build(alarm_email="ops@example.org")


def test_alarms(mailed: tuple[Alarms, Template]) -> None:
    _, template = mailed
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "Latency", "ExtendedStatistic": "p99", "Threshold": 29 * 1000 * 0.8},
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "Throttles", "Namespace": "AWS/Lambda"}
    )
    # Authorizer failures come from its log markers, not its Errors metric (every refused
    # token is an error there).
    template.has_resource_properties(
        "AWS::Logs::MetricFilter",
        {
            "FilterPattern": '?"AUTHORIZER_KEYS_UNAVAILABLE" ?"AUTHORIZER_FAILURE"',
            "MetricTransformations": [
                Match.object_like(
                    {
                        "MetricName": "AuthorizerFailures",
                        "MetricNamespace": NAMESPACE,
                        "MetricValue": "1",
                    }
                )
            ],
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "AuthorizerFailures", "Namespace": NAMESPACE}
    )
    assert not template.find_resources(
        "AWS::CloudWatch::Alarm",
        {"Properties": {"MetricName": "Errors", "Namespace": "AWS/Lambda"}},
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Metrics": Match.array_with(
                [Match.object_like({"Expression": Match.string_like_regexp("errors / requests")})]
            )
        },
    )


def test_alarm_email_gets_every_alarm(mailed: tuple[Alarms, Template]) -> None:
    alarms, template = mailed
    assert alarms.topic is not None
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.org"}
    )
    topic = Stack.of(alarms).get_logical_id(alarms.topic.node.default_child)  # type: ignore[arg-type]
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic}]


def test_no_topic_without_an_address() -> None:
    alarms, template = build()
    assert alarms.topic is None
    assert template.find_resources("AWS::SNS::Topic") == {}
