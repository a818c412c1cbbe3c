"""What deploy.sh reads from JSON files: the CDK context, and the stack's outputs.

    python -m infra.deploy_context context FILE       the file's keys as KEY=VALUE lines
    python -m infra.deploy_context stack [CDK_OUT]    NAME STRATEGY UPLOAD PREFIX of the stack
    python -m infra.deploy_context output KEY [FILE]  one output of `cdk deploy --outputs-file`

Each prints lines deploy.sh reads with `mapfile` or `read`; a missing file is an error (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NOT_SET = "-"


class DeployContextError(RuntimeError):
    """A file deploy.sh needs is missing or not what it expects."""


def context_lines(context: Mapping[str, Any]) -> list[str]:
    """`KEY=VALUE` for each key with a value, as `cdk --context` takes it: a list becomes one
    space-separated string, a bool `true`/`false` and an object (access_policy) its JSON on one
    line; null, "" and [] mean unset and are left out, so the stack's defaults apply."""
    lines = []
    for key, value in context.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list):
            text = " ".join(map(str, value))
        elif isinstance(value, bool | dict):
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            text = str(value)
        lines.append(f"{key}={text}")
    return lines


@dataclass(frozen=True, slots=True)
class SynthesizedStack:
    """The stack in cdk.out and how its index is deployed (its outputs IndexStrategy,
    IndexUpload and IndexS3Prefix; an index packaged with the function has no upload)."""

    name: str
    index_strategy: str = "packaged"
    index_upload: str = NOT_SET
    index_prefix: str = NOT_SET

    def line(self) -> str:
        return f"{self.name} {self.index_strategy} {self.index_upload} {self.index_prefix}"


def synthesized_stack(cdk_out: Path) -> SynthesizedStack:
    manifest = _read_json(cdk_out / "manifest.json")
    for artifact in manifest.get("artifacts", {}).values():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        properties = artifact.get("properties", {})
        template = _read_json(cdk_out / properties["templateFile"])
        outputs = {key: out.get("Value") for key, out in template.get("Outputs", {}).items()}
        return SynthesizedStack(
            name=properties.get("stackName") or artifact["displayName"],
            index_strategy=str(outputs.get("IndexStrategy", "packaged")),
            index_upload=str(outputs.get("IndexUpload", NOT_SET)),
            index_prefix=str(outputs.get("IndexS3Prefix", NOT_SET)),
        )
    raise DeployContextError(f"no CloudFormation stack in {cdk_out / 'manifest.json'}")


def deployed_output(outputs_file: Path, key: str) -> str:
    """One output of the (only) stack in a `cdk deploy --outputs-file` file; "" when absent."""
    stacks = _read_json(outputs_file)
    if not stacks:
        raise DeployContextError(f"no stack in {outputs_file}")
    return str(next(iter(stacks.values())).get(key, ""))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployContextError(f"cannot read {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise DeployContextError(f"{path} is not a JSON object")
    return loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.deploy_context",
        description=__doc__.split("\n\n")[0],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    context = commands.add_parser("context", help="a context file's keys as KEY=VALUE lines")
    context.add_argument("file", type=Path)
    stack = commands.add_parser("stack", help="the synthesized stack's name and index outputs")
    stack.add_argument("cdk_out", type=Path, nargs="?", default=Path("cdk.out"))
    output = commands.add_parser("output", help="one output of the deployed stack")
    output.add_argument("key")
    output.add_argument("file", type=Path, nargs="?", default=Path("cdk.out/outputs.json"))
    args = parser.parse_args(argv)
    try:
        if args.command == "context":
            lines = context_lines(_read_json(args.file))
        elif args.command == "stack":
            lines = [synthesized_stack(args.cdk_out).line()]
        else:
            lines = [deployed_output(args.file, args.key)]
    except DeployContextError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
