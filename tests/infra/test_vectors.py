"""The S3 Vectors construct (infra/vectors), alone in a bare stack: the vector bucket and the index
`athenaeum publish` would create for a bundle (athenaeum.s3vectors.definition), and the one
grant the API function gets on it."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from athenaeum.s3vectors.definition import (
    DATA_TYPE,
    DISTANCE_METRIC,
    NON_FILTERABLE,
    IndexDefinition,
)
from infra.vectors.infrastructure import ENCRYPTION, QUERY_ACTIONS, VectorStore

SSE_S3 = {"SseType": "AES256"}


def build(definition: IndexDefinition) -> tuple[Stack, VectorStore, Template]:
    stack = Stack(App(), "Bare")
    store = VectorStore(stack, "Vectors", definition=definition)
    return stack, store, Template.from_stack(stack)


@pytest.fixture(scope="module")
def built() -> tuple[Stack, VectorStore, Template]:
    return build(IndexDefinition(dimension=384))


def test_the_vector_bucket_is_encrypted_with_s3_managed_keys(
    built: tuple[Stack, VectorStore, Template],
) -> None:
    _, _, template = built
    assert ENCRYPTION == "AES256"
    template.has_resource_properties(
        "AWS::S3Vectors::VectorBucket", {"EncryptionConfiguration": SSE_S3}
    )


def test_the_index_is_the_definition_s_in_that_bucket(
    built: tuple[Stack, VectorStore, Template],
) -> None:
    stack, store, template = built
    template.has_resource_properties(
        "AWS::S3Vectors::Index",
        {
            "VectorBucketArn": {
                "Fn::GetAtt": [stack.get_logical_id(store.bucket), "VectorBucketArn"]
            },
            "DataType": DATA_TYPE,
            "Dimension": 384,
            "DistanceMetric": DISTANCE_METRIC,
            "MetadataConfiguration": {"NonFilterableMetadataKeys": list(NON_FILTERABLE)},
            "EncryptionConfiguration": SSE_S3,
        },
    )
    assert (DATA_TYPE, DISTANCE_METRIC) == ("float32", "cosine")
    assert NON_FILTERABLE == ("text", "title", "headings", "source", "ordinal")


@pytest.mark.parametrize(
    "definition",
    [
        IndexDefinition(dimension=768),
        IndexDefinition(dimension=2, non_filterable=("text", "source")),
    ],
)
def test_the_index_agrees_with_what_publish_creates(definition: IndexDefinition) -> None:
    """Every CreateIndex parameter publish sends, but the text search configuration, which
    AWS::S3Vectors::Index has no property for and publish adds (infra/vectors' docstring)."""
    _, _, template = build(definition)
    wanted: dict[str, Any] = definition.create_index_parameters()
    text_search = wanted["metadataConfiguration"].pop("textSearchConfigurations")
    assert text_search == [definition.text_search]
    (index,) = template.find_resources("AWS::S3Vectors::Index").values()
    properties = index["Properties"]
    assert {
        "dataType": properties["DataType"],
        "dimension": properties["Dimension"],
        "distanceMetric": properties["DistanceMetric"],
        "metadataConfiguration": {
            "nonFilterableMetadataKeys": properties["MetadataConfiguration"][
                "NonFilterableMetadataKeys"
            ]
        },
    } == wanted


def test_names_are_left_to_cloudformation(built: tuple[Stack, VectorStore, Template]) -> None:
    # A change that replaces the index creates the new one beside the old one.
    _, _, template = built
    template.has_resource_properties(
        "AWS::S3Vectors::VectorBucket", {"VectorBucketName": Match.absent()}
    )
    template.has_resource_properties(
        "AWS::S3Vectors::Index", {"IndexName": Match.absent(), "VectorBucketName": Match.absent()}
    )


def test_a_deleted_stack_keeps_the_vectors(built: tuple[Stack, VectorStore, Template]) -> None:
    _, _, template = built
    for resource in ("AWS::S3Vectors::VectorBucket", "AWS::S3Vectors::Index"):
        template.has_resource(
            resource, {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
        )


def test_the_index_is_named_from_its_arn(built: tuple[Stack, VectorStore, Template]) -> None:
    stack, store, _ = built
    arn = {"Fn::GetAtt": [stack.get_logical_id(store.index), "IndexArn"]}
    assert stack.resolve(store.index_arn) == arn
    # arn:aws:s3vectors:REGION:ACCOUNT:bucket/BUCKET/index/INDEX
    parts = {"Fn::Split": ["/", arn]}
    assert stack.resolve(store.bucket_name) == {"Fn::Select": [1, parts]}
    assert stack.resolve(store.index_name) == {"Fn::Select": [3, parts]}
    assert stack.resolve(store.uri) == {
        "Fn::Join": [
            "",
            ["s3vectors://", {"Fn::Select": [1, parts]}, "/", {"Fn::Select": [3, parts]}],
        ]
    }


def test_grant_query_allows_the_query_actions_on_this_index_only() -> None:
    stack = Stack(App(), "Bare")
    store = VectorStore(stack, "Vectors", definition=IndexDefinition(dimension=384))
    role = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    store.grant_query(role)
    template = Template.from_stack(stack)
    (policy,) = template.find_resources("AWS::IAM::Policy").values()
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Action": list(QUERY_ACTIONS),
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [stack.get_logical_id(store.index), "IndexArn"]},
        }
    ]
    assert QUERY_ACTIONS == ("s3vectors:QueryVectors", "s3vectors:GetVectors")
