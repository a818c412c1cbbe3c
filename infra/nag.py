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
