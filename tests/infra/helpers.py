"""Inputs and template readers shared by the construct and stack tests.

No AWS, no CDK CLI and no real layer build: the layer is a stub folder and the bundles are tiny
(a large one declares large byte counts in its manifest, or its size comes from context). A
small bundle is a real one with a stand-in encoder: staging verifies a packaged bundle's files
and chunks, not its model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Stack, Validations
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from infra.config import OAuthIssuer, StackConfig
from infra.stack import AthenaeumStack

CONTEXT = {
    "oauth_issuer": "https://issuer.test/",
    "oauth_audience": "https://athenaeum.test",
    "oauth_jwks_url": "https://issuer.test/.well-known/jwks.json",
}
OAUTH = OAuthIssuer(
    issuer=CONTEXT["oauth_issuer"],
    audience=CONTEXT["oauth_audience"],
    jwks_url=CONTEXT["oauth_jwks_url"],
)
PUBLIC_PATHS = {
    "/health",
    "/.well-known/{proxy+}",
    "/sources/{key}",
    "/docs",
    "/openapi.json",
    "/oauth/authorize",
}
# The root resource has both: GET (the front door) is public, ANY (the rest) is not; the OAuth
# relay's token endpoint is a POST.
PUBLIC_METHODS = {"GET /", "POST /oauth/token", *(f"GET {path}" for path in PUBLIC_PATHS)}
API_FUNCTION_NAME = "AtheneumStack-MCPServerFunction"
CERTIFICATE_ARN = (
    "arn:aws:acm:eu-west-1:123456789012:certificate/0b6c1f9e-1234-4d2a-9c3e-0123456789ab"
)
WEB_ACL_ARN = (
    "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/athenaeum/"
    "0b6c1f9e-1234-4d2a-9c3e-0123456789ab"
)
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:athenaeum/llm-AbC123"
PARTIAL_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:athenaeum/llm"
SUBNETS = ("subnet-0123456789abcdef0", "subnet-0fedcba9876543210")
# A key that might sit in a developer's shell while they synth: it must never reach the template.
PLAIN_LLM_KEY = "sk-proj-plain-key-that-must-not-leak-0123456789"
# An access policy as cdk.json may hold it (an object), and what the stack passes the function.
ACCESS_POLICY = {"hr": ["hr-staff", "Executive Team"], "engineering": ["eng"], "handbook": "*"}
CANONICAL_POLICY = '{"engineering":["eng"],"handbook":"*","hr":["hr-staff","Executive Team"]}'
# Every optional key that can go together (SnapStart excludes provisioned concurrency).
ADVANCED = {
    "domain_name": "api.athenaeum.test",
    "certificate_arn": CERTIFICATE_ARN,
    "vpc_id": "vpc-0123456789abcdef0",
    # As `--context private_subnet_ids=...` gives it: one string.
    "private_subnet_ids": ", ".join(SUBNETS),
    "provisioned_concurrency": 2,
    "waf_web_acl_arn": WEB_ACL_ARN,
    "cors_origins": ["https://app.athenaeum.test", "http://localhost:5173"],
    "llm_base_url": "https://api.openai.com/v1/",
    "llm_model": "gpt-4o-mini",
    "llm_api_key_secret_arn": SECRET_ARN,
    "alarm_email": "ops@example.org",
    "access_claim": "cognito:groups",
    "access_policy": ACCESS_POLICY,
}
SNAPSTART = {
    "snapstart": "true",
    "domain_name": "API.Athenaeum.test",
    "certificate_arn": CERTIFICATE_ARN,
    "disable_execute_api_endpoint": True,
    "cors_origins": "*",
    "llm_base_url": "https://llm.internal.test/v1",
    "llm_model": "local-model",
    "llm_api_key_secret_arn": PARTIAL_SECRET_ARN,
    # As `--context access_policy='...'` gives it: text, spaced as a person writes it.
    "access_claim": "realm_access.roles",
    "access_policy": (
        '{\n  "handbook": "*",\n  "hr": ["hr-staff", "Executive Team"],\n'
        '  "engineering": ["eng"]\n}'
    ),
}


def make_layer(root: Path, name: str = "layer") -> Path:
    layer = root / name
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "stub.py").write_text("VALUE = 1\n")
    return layer


def make_bundle(root: Path, *, declared_bytes: int | None = None) -> Path:
    if declared_bytes is None:
        return _small_bundle(root)
    bundle = root / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "chunks.jsonl").write_text('{"id": "c1", "text": "hello"}\n')
    size = declared_bytes if declared_bytes is not None else 31
    manifest = {
        "format": "athenaeum-index",
        "files": {"chunks.jsonl": {"sha256": "0", "bytes": size}},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def _small_bundle(root: Path) -> Path:
    import numpy as np

    from athenaeum.bundle import ChunkRecord, DocumentInfo, EmbeddingInfo, write_bundle
    from athenaeum.retrieval.lexical import BM25Index

    encoder = root / "encoder"
    encoder.mkdir(parents=True)
    (encoder / "model.onnx").write_bytes(b"stand-in")
    (encoder / "tokenizer.json").write_text("{}")
    texts = ["hello world", "goodbye world"]
    write_bundle(
        root / "bundle",
        embedding=EmbeddingInfo(model_id="m", dimension=2, max_seq_length=16),
        chunking={},
        documents=[DocumentInfo(doc_id="d", source="d.md", sha256="0" * 64, chunk_count=2)],
        chunks=[
            ChunkRecord(id=f"d#{i}", doc_id="d", ordinal=i, text=t, title=None, source="d.md")
            for i, t in enumerate(texts)
        ],
        vectors=np.eye(2, dtype=np.float32),
        bm25_index=BM25Index.build(texts),
        encoder_dir=encoder,
    )
    return root / "bundle"


def make_code(root: Path) -> Path:
    """A function's code asset: one module (the constructs never look inside)."""
    code = root / "code"
    code.mkdir(parents=True)
    (code / "handler.py").write_text("def handler(event, context):\n    return {}\n")
    return code


def logical_id(construct: IConstruct) -> str:
    return Stack.of(construct).get_logical_id(construct.node.default_child)  # type: ignore[arg-type]


def function_named(template: Template, name: str) -> dict[str, Any]:
    functions = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"FunctionName": name}}
    )
    assert len(functions) == 1
    return dict(next(iter(functions.values()))["Properties"])


def gateway_responses(template: Template) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in template.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }


def acknowledged(scope: IConstruct) -> set[str]:
    """Every cdk-nag rule acknowledged anywhere under `scope`."""
    return {
        rule
        for construct in scope.node.find_all()
        for entry in construct.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule in entry.data
    }


def method_paths(template: Template) -> dict[str, dict[str, Any]]:
    """Every API method's properties, keyed by 'VERB /path'."""
    resources = template.find_resources("AWS::ApiGateway::Resource")

    def path_of(ref: Any) -> str:
        if "Fn::GetAtt" in ref:  # the API's root resource
            return ""
        props = resources[ref["Ref"]]["Properties"]
        return path_of(props["ParentId"]) + "/" + props["PathPart"]

    return {
        f"{m['Properties']['HttpMethod']} {path_of(m['Properties']['ResourceId']) or '/'}": m[
            "Properties"
        ]
        for m in template.find_resources("AWS::ApiGateway::Method").values()
    }


def invoked(method: dict[str, Any]) -> list[Any]:
    """The parts of a proxy method's integration URI (the function or alias ARN among them)."""
    parts: list[Any] = method["Integration"]["Uri"]["Fn::Join"][1]
    return parts


def synth(
    tmp: Path,
    *,
    nag: bool = True,
    declared_bytes: int | None = None,
    env: Environment | None = None,
    **context: Any,
) -> AthenaeumStack:
    config = StackConfig.from_context(
        {
            **CONTEXT,
            "layer_dir": str(make_layer(tmp)),
            "ingest_layer_dir": str(make_layer(tmp, "ingest-layer")),
            "index_dir": str(make_bundle(tmp, declared_bytes=declared_bytes)),
            **context,
        }.get
    )
    app = App()
    stack = AthenaeumStack(
        app, config.stack_name, config=config, staging_dir=tmp / "staging", env=env
    )
    if nag:
        # Template.from_stack synthesizes the app: any unacknowledged finding raises.
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack
