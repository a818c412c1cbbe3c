"""infra/logical_ids.py computes the CDK's own ids, and the ids of a path without its
transparent construct."""

from __future__ import annotations

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Names, Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.logical_ids import flattened_id, unique_id


@pytest.mark.parametrize(
    "path",
    [
        ("Topic",),
        ("Api", "Topic"),
        ("Api", "Default", "Topic"),
        ("Api", "Api", "Topic"),
        ("Api", "Deployment.Stage:prod", "Topic"),
        ("A" * 300,),
    ],
)
def test_unique_id_is_the_cdks(path: tuple[str, ...]) -> None:
    stack = Stack(App(), "Stack")
    scope: Construct = stack
    for part in path[:-1]:
        scope = Construct(scope, part)
    topic = sns.Topic(scope, path[-1])
    element = topic.node.default_child
    assert stack.get_logical_id(element) == unique_id([*path, "Resource"])  # type: ignore[arg-type]
    assert Names.unique_id(topic) == unique_id(["Stack", *path])


def test_flattened_id_leaves_out_the_transparent_construct() -> None:
    children = {"Gateway": ["Api", "AccessLogs"]}
    assert flattened_id(["Gateway", "Api", "Resource"], stack_path=["S"], children=children) == (
        unique_id(["Api", "Resource"])
    )
    # An id built from a child's unique id names the child as if it were the stack's own.
    inner = unique_id(["S", "Gateway", "Api"])
    permission = ["Gateway", "Api", "Default", "ANY", f"ApiPermission.{inner}.ANY.."]
    assert flattened_id(permission, stack_path=["S"], children=children) == unique_id(
        ["Api", "Default", "ANY", f"ApiPermission.{unique_id(['S', 'Api'])}.ANY.."]
    )
