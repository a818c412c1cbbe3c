"""What the stack is built from, checked, sized and staged before any construct exists: the two
layers, the bundle and where it goes (packaged, in S3 or in S3 Vectors), and the code assets of
the API function, the authorizer and the ingest function (infra/staging.py copies them).

A layer or bundle that cannot be deployed is a `ConfigError` or `SizingError` here, with what to
do about it. What synth decides is printed on stderr: `cdk synth` prints the template on stdout,
which must stay valid YAML.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from athenaeum.bundle import read_manifest
from athenaeum.bundle.format import MANIFEST_FILE
from athenaeum.errors import BundleError
from athenaeum.s3vectors.definition import IndexDefinition
from infra import sizing, staging
from infra.config import ConfigError, StackConfig
from infra.index.infrastructure import IndexUpload, upload_mode
from infra.index.upload import bundle_prefix


@dataclass(frozen=True, kw_only=True)
class IngestAssets:
    code_dir: Path
    layer_dir: Path
    storage_mb: int


@dataclass(frozen=True, kw_only=True)
class StackAssets:
    function_dir: Path
    authorizer_dir: Path
    layer_dir: Path
    index_dir: Path
    plan: sizing.SizePlan
    # Who copies a bundle kept in S3 into the bucket; None when the function carries it, or
    # carries the query side of an S3 Vectors index.
    upload: IndexUpload | None
    # With index_backend=s3vectors: the index to create, and no ingest function.
    vector_index: IndexDefinition | None
    ingest: IngestAssets | None

    @property
    def packaged(self) -> bool:
        return self.plan.strategy is sizing.IndexStrategy.PACKAGED


def prepare(config: StackConfig, *, project_root: Path, staging_dir: Path) -> StackAssets:
    layer_dir, ingest_layer_dir = check_layers(config, project_root)
    index_dir = (project_root / config.index_dir).resolve()
    bundle_bytes = (
        config.index_size_bytes
        if config.index_size_bytes is not None
        else sizing.bundle_bytes(index_dir)
    )
    check_bundle(index_dir)
    function_dir = staging.stage_function(staging_dir)
    ingest_dir: Path | None = None
    if config.uses_s3vectors:
        plan = _plan_query_side(function_dir, index_dir, layer_dir)
    else:
        ingest_dir = staging.stage_ingest(staging_dir)
        sizing.check_ingest_fits(
            layer_bytes=sizing.tree_bytes(ingest_layer_dir),
            code_bytes=sizing.tree_bytes(ingest_dir),
        )
        plan = sizing.plan(
            layer_bytes=sizing.tree_bytes(layer_dir),
            code_bytes=sizing.tree_bytes(function_dir),
            bundle_bytes=bundle_bytes,
        )
    # Which strategy was chosen and why.
    _say(config, plan.report())
    check_snapstart(config, plan)
    vector_index = (
        IndexDefinition.for_manifest(read_manifest(index_dir)) if config.uses_s3vectors else None
    )
    packaged = plan.strategy is sizing.IndexStrategy.PACKAGED
    if packaged:
        try:
            staging.add_index(function_dir, index_dir)
        except BundleError as exc:
            raise ConfigError(f"the index cannot be packaged: {exc.message}") from exc
    upload = (
        None
        if packaged or vector_index is not None
        else upload_mode(config.index_upload, bundle_bytes)
    )
    if upload == "cli":
        _say(
            config,
            f"index upload: by deploy.sh (python -m infra.index.upload) to "
            f"{bundle_prefix(index_dir)}/, not by CloudFormation",
        )
    ingest = None
    if ingest_dir is not None:
        ingest = IngestAssets(
            code_dir=ingest_dir,
            layer_dir=ingest_layer_dir,
            storage_mb=_ingest_storage_mb(config, bundle_bytes),
        )
    else:
        # The ingest writes whole bundle versions (three copies in its /tmp), which a library
        # past one function's bundle outgrows as well; it does not publish vectors.
        _say(
            config,
            "index_backend=s3vectors: no ingest function (its context keys ingest_*, "
            "index_refresh_seconds and served_version_alarm_seconds are ignored); update the "
            "index with `athenaeum publish` (./deploy.sh runs it after each deploy; "
            "docs/deployment.md, 'Amazon S3 Vectors')",
        )
    return StackAssets(
        function_dir=function_dir,
        authorizer_dir=staging.stage_authorizer(staging_dir),
        layer_dir=layer_dir,
        index_dir=index_dir,
        plan=plan,
        upload=upload,
        vector_index=vector_index,
        ingest=ingest,
    )


def check_layers(config: StackConfig, project_root: Path) -> tuple[Path, Path]:
    """The API layer and the ingest layer, built; a stack with S3 Vectors has no ingest, so its
    layer need not be."""
    layer_dir = (project_root / config.layer_dir).resolve()
    if not layer_dir.is_dir():
        raise ConfigError(
            f"no dependency layer at {layer_dir}; build it with `layer/build.sh` "
            "(or set the context key layer_dir)"
        )
    ingest_layer_dir = (project_root / config.ingest_layer_dir).resolve()
    if not config.uses_s3vectors and not ingest_layer_dir.is_dir():
        raise ConfigError(
            f"no ingest layer at {ingest_layer_dir}; build it with "
            f"`layer/build.sh --profile ingest --out {config.ingest_layer_dir}` (./deploy.sh "
            "builds both layers), or set the context key ingest_layer_dir"
        )
    return layer_dir, ingest_layer_dir


def check_bundle(index_dir: Path) -> None:
    if not (index_dir / MANIFEST_FILE).is_file():
        raise ConfigError(
            f"no index bundle at {index_dir} (no manifest.json); build one with "
            "`uv run athenaeum index ...` or set the context key index_dir"
        )


def check_snapstart(config: StackConfig, plan: sizing.SizePlan) -> None:
    if config.snapstart and plan.strategy is sizing.IndexStrategy.S3:
        raise ConfigError(
            "context key snapstart needs the index packaged with the function, but this "
            "bundle is too large and goes to S3: SnapStart does not combine with ephemeral "
            "storage above 512 MB (the S3 strategy downloads the index to /tmp). Turn "
            "snapstart off, or shrink the bundle (docs/deployment.md, 'Index size strategies')"
        )


def _plan_query_side(function_dir: Path, index_dir: Path, layer_dir: Path) -> sizing.SizePlan:
    """Stage the bundle's query side with the function (the chunks are in S3 Vectors) and
    check that it fits."""
    code_bytes = sizing.tree_bytes(function_dir)
    try:
        query_side = staging.add_query_side(function_dir, index_dir)
    except BundleError as exc:
        raise ConfigError(f"the index's query side cannot be packaged: {exc.message}") from exc
    return sizing.plan_s3vectors(
        layer_bytes=sizing.tree_bytes(layer_dir),
        code_bytes=code_bytes,
        query_side_bytes=sizing.tree_bytes(query_side),
    )


def _ingest_storage_mb(config: StackConfig, bundle_bytes: int) -> int:
    if config.ingest_storage_mb is not None:
        return config.ingest_storage_mb
    needed = sizing.ingest_storage_mb(bundle_bytes)
    if needed > sizing.MAX_EPHEMERAL_MB:
        _say(
            config,
            f"warning: the ingest function would need {needed} MB of /tmp for this bundle "
            f"(three copies and a batch of documents); it gets Lambda's most, "
            f"{sizing.MAX_EPHEMERAL_MB} MB, and may run out",
        )
    return min(needed, sizing.MAX_EPHEMERAL_MB)


def _say(config: StackConfig, message: str) -> None:
    print(f"[{config.stack_name}] {message}", file=sys.stderr)
