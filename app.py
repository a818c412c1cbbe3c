#!/usr/bin/env python3
"""The CDK app: `uv run cdk synth` / `uv run cdk deploy` (see docs/deployment.md)."""

from __future__ import annotations

import os
import sys

from aws_cdk import App, Environment

from infra.config import ConfigError, StackConfig
from infra.sizing import SizingError
from infra.stack import AthenaeumStack


def main() -> None:
    app = App()
    try:
        config = StackConfig.from_context(app.node.try_get_context)
        if config.uses_placeholders:
            print(
                "warning: cdk.context.json still has the example's placeholder OAuth values; "
                "fine for a dry run, refused by ./deploy.sh",
                file=sys.stderr,
            )
        AthenaeumStack(
            app,
            config.stack_name,
            config=config,
            env=Environment(
                account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
                region=os.environ.get("CDK_DEFAULT_REGION"),
            ),
        )
    except (ConfigError, SizingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    if app.node.try_get_context("nag") not in (False, "false"):
        from aws_cdk import Validations
        from cdk_nag import AwsSolutionsChecks

        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
