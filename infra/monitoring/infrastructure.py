"""`Alarms`: CloudWatch alarms on the 5xx rate, authorizer failures, p99 latency and throttles,
and an SNS topic that mails them when an address is given."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk.aws_apigateway import RestApi
from constructs import Construct

from infra.authorizer.handler import FAILURE, KEYS_UNAVAILABLE
from infra.nag import acknowledge

_PERIOD = Duration.minutes(5)


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
            for alarm in (self.server_errors, self.authorizer_errors, self.latency, self.throttles):
                alarm.add_alarm_action(action)
