"""cfn-lint, the CloudFormation linter, over the synthesized templates: every error fails, and
so does every warning but those KEPT_WARNINGS lists with the reason it stays.

    uv run python -m infra.lint cdk.out    # what deploy.sh runs after `cdk synth`
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cfnlint.api import ManualArgs, lint


@dataclass(frozen=True)
class Kept:
    """A warning left in the templates on purpose: the messages it covers, and why."""

    message: re.Pattern[str]
    reason: str


# By rule id; a warning of one of these rules whose message does not match still fails.
KEPT_WARNINGS: dict[str, Kept] = {
    "W3005": Kept(
        re.compile(
            r"'(?:\w+ServiceRole|BucketNotificationsHandler\w+Role)\w*' dependency already "
            r"enforced by a 'GetAtt' at 'Resources/\w+/Properties/Role'"
            r"|'\w+Queue\w*' dependency already enforced by a 'GetAtt' at "
            r"'Resources/\w+Notifications\w*/Properties/NotificationConfiguration/"
            r"QueueConfigurations/\d+/QueueArn'"
        ),
        "aws-cdk-lib adds DependsOn beside a GetAtt in two places: a Lambda Function (ours, the "
        "BucketDeployment's and the bucket-notifications handler's) on its role, so that the "
        "role and its policy exist before the function; and the bucket's notification "
        "configuration on the ingest queue, so that the queue's policy, which lets S3 send to "
        "it, exists before S3 checks it. Redundant for the role and the queue themselves, "
        "harmless, and not ours to edit",
    ),
}


def problems(template: str, name: str = "template") -> list[str]:
    """What fails the lint in `template` (its JSON text), one line each, naming `name`."""
    found = []
    for match in lint(template, config=ManualArgs(regions=["us-east-1"])):
        rule, message = str(match.rule.id), str(match.message)
        kept = KEPT_WARNINGS.get(rule)
        if rule.startswith("I") or (kept is not None and kept.message.search(message)):
            continue  # informational, or a warning kept for the reason above
        found.append(f"{name}:{match.linenumber}: {rule} {message}")
    return found


def main(argv: list[str]) -> int:
    """Lint every template in the cloud assembly folder (`cdk.out`); 1 when anything fails."""
    out = Path(argv[0] if argv else "cdk.out")
    templates = sorted(out.glob("*.template.json"))
    if not templates:
        print(f"cfn-lint: no templates in {out}; run cdk synth first", file=sys.stderr)
        return 1
    failures = [p for t in templates for p in problems(t.read_text(), str(t))]
    for line in failures:
        print(line, file=sys.stderr)
    kept = ", ".join(sorted(KEPT_WARNINGS)) or "none"
    print(f"cfn-lint: {len(templates)} template(s), {len(failures)} problem(s) (kept: {kept})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
