"""The index storage construct (infra/index/infrastructure.py), alone in a bare stack; the
upload deploy.sh runs is tests/infra/test_upload.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk", reason="needs the deploy extra: uv sync --extra deploy")

from aws_cdk import App, Stack
from aws_cdk.assertions import Match, Template

from infra.index.infrastructure import IndexStorage, IndexUpload, upload_mode
from infra.sizing import CDK_UPLOAD_MAX_BYTES, MIB
from tests.infra.helpers import logical_id, make_bundle


def build(bundle: Path, upload: IndexUpload = "cdk") -> tuple[IndexStorage, Template]:
    stack = Stack(App(), "Bare")
    index = IndexStorage(stack, "Index", bundle_dir=bundle, upload=upload, bundle_storage_mb=557)
    return index, Template.from_stack(stack)


@pytest.fixture(scope="module")
def copied(tmp_path_factory: pytest.TempPathFactory) -> tuple[IndexStorage, Template, Path]:
    bundle = make_bundle(tmp_path_factory.mktemp("copied"), declared_bytes=300 * MIB)
    index, template = build(bundle)
    return index, template, bundle


def test_bucket_is_locked_down_and_keeps_old_bundles_a_while(
    copied: tuple[IndexStorage, Template, Path],
) -> None:
    _, template, _ = copied
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            # Older bundles deleted by deploy.sh stay recoverable for a while, then expire.
            "LifecycleConfiguration": {
                "Rules": [
                    Match.object_like(
                        {"NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "Status": "Enabled"}
                    )
                ]
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )
    # Kept when the stack is deleted.
    (bucket,) = template.find_resources("AWS::S3::Bucket").values()
    assert bucket["DeletionPolicy"] == "Retain"


def test_bundle_lives_under_its_content_address(
    copied: tuple[IndexStorage, Template, Path],
) -> None:
    index, template, bundle = copied
    manifest = (bundle / "manifest.json").read_bytes()
    assert index.prefix == "index/" + hashlib.sha256(manifest).hexdigest()[:16]
    # CloudFormation copies the bundle there, with room in /tmp for the archive and the bundle.
    assert index.upload == "cdk" and index.copy is not None
    template.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {
            "DestinationBucketName": {"Ref": logical_id(index.bucket)},
            "DestinationBucketKeyPrefix": index.prefix,
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function", {"MemorySize": 1024, "EphemeralStorage": {"Size": 2 * 557}}
    )


def test_a_new_bundle_is_a_new_prefix(tmp_path: Path) -> None:
    first = make_bundle(tmp_path / "a", declared_bytes=300 * MIB)
    second = make_bundle(tmp_path / "b", declared_bytes=301 * MIB)
    assert build(first, "cli")[0].prefix != build(second, "cli")[0].prefix


def test_deploy_sh_uploads_instead_of_cloudformation(tmp_path: Path) -> None:
    index, template = build(make_bundle(tmp_path), "cli")
    assert index.copy is None
    assert template.find_resources("Custom::CDKBucketDeployment") == {}
    template.has_resource_properties(
        "AWS::S3::Bucket", {"VersioningConfiguration": Match.any_value()}
    )


@pytest.mark.parametrize(
    ("requested", "size", "chosen"),
    [
        ("auto", CDK_UPLOAD_MAX_BYTES, "cdk"),
        ("auto", CDK_UPLOAD_MAX_BYTES + 1, "cli"),
        ("cli", 300 * MIB, "cli"),
        ("cdk", 3 * 1024 * MIB, "cdk"),
    ],
)
def test_who_uploads_the_bundle(requested: str, size: int, chosen: str) -> None:
    assert upload_mode(requested, size) == chosen
