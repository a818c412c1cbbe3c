"""`Alarms`: CloudWatch alarms on the 5xx rate, authorizer failures, p99 latency and throttles,
on the ingest (failed batches in its dead-letter queue, function errors, a published version
left unserved), and an SNS topic that mails them when an address is given."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk.aws_apigateway import RestApi
from constructs import Construct

from infra.authorizer.handler import FAILURE, KEYS_UNAVAILABLE
from infra.nag import acknowledge

_PERIOD = Duration.minutes(5)
# Emitted by the API function (CloudWatch embedded metric format, no dimensions): how long a
# newer published version has been waiting to be served, 0 when it serves the current one.
SERVED_VERSION_METRIC = "ServedVersionBehindSeconds"


@dataclass(frozen=True, kw_only=True)
class IngestWatch:
    """What the ingest alarms watch (infra/ingest)."""

    function: lambda_.IFunction
    dead_letters: sqs.IQueue
    # The ServedVersionBehindSeconds alarm's threshold.
    served_version_alarm_seconds: int


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api: RestApi,
        api_function: lambda_.IFunction,
        authorizer_logs: logs.ILogGroup,
        metric_namespace: str,
        timeout_seconds: int,
        alarm_email: str | None = None,
        ingest: IngestWatch | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stage = api.deployment_stage.stage_name
        requests = api.metric_count(period=_PERIOD, statistic="Sum")
        errors = api.metric_server_error(period=_PERIOD, statistic="Sum")
        error_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"requests": requests, "errors": errors},
            period=_PERIOD,
            label="5xx rate (%)",
        )
        self.server_errors = error_rate.create_alarm(
            self,
            "ServerErrorRate",
            alarm_description=f"More than 5% of requests to stage {stage} answered 5xx",
            threshold=5,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # Not the function's Errors metric: a refused token is an exception too (API Gateway's
        # 401), so that metric counts every bad token. The handler logs these markers only
        # when it cannot verify tokens at all (JWKS unreachable) or fails unexpectedly.
        failures = logs.MetricFilter(
            self,
            "AuthorizerFailureFilter",
            log_group=authorizer_logs,
            filter_pattern=logs.FilterPattern.any_term(KEYS_UNAVAILABLE, FAILURE),
            metric_namespace=metric_namespace,
            metric_name="AuthorizerFailures",
            metric_value="1",
        )
        self.authorizer_errors = failures.metric(period=_PERIOD, statistic="Sum").create_alarm(
            self,
            "AuthorizerErrors",
            alarm_description="The JWT authorizer could not verify tokens (JWKS unreachable) "
            "or failed unexpectedly: protected requests get 503 while it does",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.latency = api.metric_latency(period=_PERIOD, statistic="p99").create_alarm(
            self,
            "LatencyP99",
            alarm_description="p99 latency is above 80% of the integration timeout",
            threshold=timeout_seconds * 1000 * 0.8,
            evaluation_periods=3,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.throttles = api_function.metric_throttles(
            period=_PERIOD, statistic="Sum"
        ).create_alarm(
            self,
            "Throttles",
            alarm_description="The API function was throttled (account concurrency reached)",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.ingest_alarms: list[cloudwatch.Alarm] = []
        if ingest is not None:
            self.ingest_alarms = self._ingest_alarms(ingest, metric_namespace)
        self.topic: sns.Topic | None = None
        if alarm_email:
            self.topic = sns.Topic(self, "AlarmTopic", enforce_ssl=True)
            acknowledge(
                self.topic,
                "AwsSolutions-SNS2",
                "CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS "
                "key, and alarm notifications carry no data beyond metric names",
            )
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
            action = cw_actions.SnsAction(self.topic)
            for alarm in (
                self.server_errors,
                self.authorizer_errors,
                self.latency,
                self.throttles,
                *self.ingest_alarms,
            ):
                alarm.add_alarm_action(action)

    def _ingest_alarms(self, ingest: IngestWatch, namespace: str) -> list[cloudwatch.Alarm]:
        at_least_once = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        dead_letters = ingest.dead_letters.metric_approximate_number_of_messages_visible(
            period=_PERIOD, statistic="Maximum"
        ).create_alarm(
            self,
            "IngestDeadLetters",
            alarm_description="A batch of library changes failed five times and is in the "
            "ingest dead-letter queue: those documents are not in the published index",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=at_least_once,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        errors = ingest.function.metric_errors(period=_PERIOD, statistic="Sum").create_alarm(
            self,
            "IngestErrors",
            alarm_description="The ingest function failed (its batch goes back to the queue "
            "and is retried); documents that cannot be converted are not errors but lines "
            "of its report",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=at_least_once,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        behind = cloudwatch.Metric(
            namespace=namespace,
            metric_name=SERVED_VERSION_METRIC,
            period=_PERIOD,
            statistic="Maximum",
        ).create_alarm(
            self,
            "ServedVersionBehind",
            alarm_description="A newer published index version has waited more than "
            f"{ingest.served_version_alarm_seconds} s to be served: the API function cannot "
            "load it (see its log for why)",
            threshold=ingest.served_version_alarm_seconds,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return [dead_letters, errors, behind]
