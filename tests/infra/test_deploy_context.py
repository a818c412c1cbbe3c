"""What deploy.sh reads through infra/deploy_context.py: the context file as --context flags,
the synthesized stack's index outputs and the deployed stack's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import deploy_context
from infra.config import StackConfig
from infra.deploy_context import (
    DeployContextError,
    SynthesizedStack,
    context_lines,
    deployed_output,
    synthesized_stack,
)
from tests.infra.helpers import ACCESS_POLICY


def write_cdk_out(root: Path, outputs: dict[str, str], stack_name: str | None) -> Path:
    """A cdk.out as `cdk synth` leaves it: a manifest naming the stack and its template."""
    cdk_out = root / "cdk.out"
    cdk_out.mkdir()
    properties = {"templateFile": "Stack.template.json"}
    if stack_name is not None:
        properties["stackName"] = stack_name
    manifest = {
        "artifacts": {
            "Tree": {"type": "cdk:tree"},
            "Stack": {
                "type": "aws:cloudformation:stack",
                "displayName": "AtheneumStack",
                "properties": properties,
            },
        }
    }
    (cdk_out / "manifest.json").write_text(json.dumps(manifest))
    template = {"Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    (cdk_out / "Stack.template.json").write_text(json.dumps(template))
    return cdk_out


def test_context_lines_leave_out_unset_keys() -> None:
    lines = context_lines(
        {
            "oauth_issuer": "https://issuer.test/",
            "required_scopes": ["search:read", "chat"],
            "private_subnet_ids": [],
            "domain_name": "",
            "alarm_email": None,
            "snapstart": False,
            "memory_mb": 2048,
        }
    )
    assert lines == [
        "oauth_issuer=https://issuer.test/",
        "required_scopes=search:read chat",
        "snapstart=false",
        "memory_mb=2048",
    ]


def test_an_object_is_passed_as_its_json_on_one_line() -> None:
    """An access policy kept in cdk.context.json as an object reaches the stack as the same
    policy as the object itself (deploy.sh reads one line per key)."""
    [line] = context_lines({"access_policy": ACCESS_POLICY})
    key, text = line.split("=", 1)
    assert key == "access_policy" and "\n" not in text
    assert json.loads(text) == ACCESS_POLICY
    from_file = StackConfig.from_context({"access_policy": ACCESS_POLICY}.get)
    assert StackConfig.from_context({key: text}.get).access_policy == from_file.access_policy


def test_synthesized_stack_with_its_index_in_s3(tmp_path: Path) -> None:
    outputs = {"IndexStrategy": "s3", "IndexUpload": "cli", "IndexS3Prefix": "index/0123"}
    cdk_out = write_cdk_out(tmp_path, outputs, "AtheneumStack-dev")
    stack = synthesized_stack(cdk_out)
    assert stack == SynthesizedStack("AtheneumStack-dev", "s3", "cli", "index/0123")
    assert stack.line() == "AtheneumStack-dev s3 cli index/0123"


def test_synthesized_stack_with_a_packaged_index(tmp_path: Path) -> None:
    cdk_out = write_cdk_out(tmp_path, {"IndexStrategy": "packaged"}, None)
    # Without a stackName the display name is the stack's name.
    assert synthesized_stack(cdk_out).line() == "AtheneumStack packaged - -"


def test_deployed_output(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"AtheneumStack": {"APIEndpoint": "https://a.test/prod/"}}))
    assert deployed_output(outputs, "APIEndpoint") == "https://a.test/prod/"
    assert deployed_output(outputs, "IndexBucketName") == ""


def test_missing_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DeployContextError, match=r"manifest\.json"):
        synthesized_stack(tmp_path)
    (tmp_path / "outputs.json").write_text("{}")
    with pytest.raises(DeployContextError, match="no stack"):
        deployed_output(tmp_path / "outputs.json", "APIEndpoint")


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    context = tmp_path / "cdk.context.json"
    context.write_text(json.dumps({"environment": "dev", "cors_origins": ["*"]}))
    assert deploy_context.main(["context", str(context)]) == 0
    assert capsys.readouterr().out == "environment=dev\ncors_origins=*\n"
    cdk_out = write_cdk_out(tmp_path, {"IndexStrategy": "packaged"}, "AtheneumStack")
    assert deploy_context.main(["stack", str(cdk_out)]) == 0
    assert capsys.readouterr().out == "AtheneumStack packaged - -\n"
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"AtheneumStack": {"APIEndpoint": "https://a.test/"}}))
    assert deploy_context.main(["output", "APIEndpoint", str(outputs)]) == 0
    assert capsys.readouterr().out == "https://a.test/\n"
    assert deploy_context.main(["context", str(tmp_path / "none.json")]) == 1
    assert "cannot read" in capsys.readouterr().err
