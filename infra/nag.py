"""cdk-nag acknowledgements: every suppression goes through here with its reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge `rule` for `scope` and all its children; `reason` is the justification."""
    if len(reason) < 20:
        raise ValueError(f"the suppression of {rule} needs a real justification")
    # cdk-nag 3 names its findings `Pack::Rule[Finding]`.
    pack = rule.split("-", 1)[0]
    full = rule if "::" in rule else f"{pack}::{rule}"
    Validations.of(scope).acknowledge(Acknowledgment(id=full, reason=reason))


def managed_policy(name: str) -> str:
    """The finding suffix cdk-nag gives AwsSolutions-IAM4 for an AWS-managed policy."""
    return f"[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{name}]"


def acknowledge_lambda_defaults(function: IConstruct) -> None:
    """What every function of this stack shares: the basic execution role and a pinned runtime."""
    acknowledge(
        function,
        "AwsSolutions-IAM4" + managed_policy("AWSLambdaBasicExecutionRole"),
        "AWSLambdaBasicExecutionRole grants only logs:CreateLogGroup, CreateLogStream and "
        "PutLogEvents (on any log group): no read access and nothing outside CloudWatch "
        "Logs; it is the AWS-managed policy Lambda is designed around",
    )
    acknowledge(
        function,
        "AwsSolutions-L1",
        "pinned to python3.12: the dependency layer is built and its bytecode compiled "
        "for exactly this runtime",
    )
