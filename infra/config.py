"""The stack's configuration, read once from CDK context and checked before anything is built.

Every key here is documented in docs/deployment.md; synth fails with a message naming the key
when a required one is missing or a value is out of range.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REQUIRED_KEYS = ("oauth_issuer", "oauth_audience", "oauth_jwks_url")
DEFAULT_ENVIRONMENT = "prod"
BASE_STACK_NAME = "AtheneumStack"
# API Gateway REST APIs end every integration at 29 s.
MAX_TIMEOUT_SECONDS = 29
# Lambda's default regional concurrency quota; more needs a quota increase anyway.
MAX_PROVISIONED_CONCURRENCY = 1000
# Values in cdk.context.json.example; a real deploy refuses them (deploy.sh), synth only warns.
PLACEHOLDER_MARKER = "example.com"

_PARTITION = r"arn:aws(?:-[a-z]+)*"
_REGION_ACCOUNT = r"[a-z]{2}(?:-[a-z]+)+-\d:\d{12}"
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_CERTIFICATE_ARN = re.compile(rf"{_PARTITION}:acm:{_REGION_ACCOUNT}:certificate/[0-9a-f-]+")
_VPC_ID = re.compile(r"vpc-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_SUBNET_ID = re.compile(r"subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_WEB_ACL_ARN = re.compile(
    rf"{_PARTITION}:wafv2:{_REGION_ACCOUNT}:regional/webacl/[A-Za-z0-9_-]+/[0-9a-f-]+"
)
_SECRET_ARN = re.compile(rf"{_PARTITION}:secretsmanager:{_REGION_ACCOUNT}:secret:[\w/+=.@-]+")
# Secrets Manager appends "-" and six random characters to a secret's name in its ARN.
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
_CERTIFICATE_EXAMPLE = "arn:aws:acm:REGION:ACCOUNT:certificate/ID"
_WEB_ACL_EXAMPLE = "arn:aws:wafv2:REGION:ACCOUNT:regional/webacl/NAME/ID (a REGIONAL web ACL)"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


INDEX_UPLOADS = ("auto", "cdk", "cli")


class ConfigError(ValueError):
    """A context key is missing or invalid; the message names the key and how to fix it."""


@dataclass(frozen=True, kw_only=True)
class CustomDomain:
    """`domain_name` + `certificate_arn`: an API Gateway custom domain in front of the stage."""

    name: str
    certificate_arn: str
    disable_execute_api_endpoint: bool = False

    @property
    def url(self) -> str:
        return f"https://{self.name}"


@dataclass(frozen=True, kw_only=True)
class VpcPlacement:
    """`vpc_id` + `private_subnet_ids`: where the API function's network interfaces go."""

    vpc_id: str
    subnet_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class LlmUpstream:
    """The generating model; its key stays in Secrets Manager, the stack only names it."""

    base_url: str
    model: str
    api_key_secret_arn: str

    @property
    def secret_arn_is_complete(self) -> bool:
        """Whether the ARN carries the six-character suffix (else IAM needs `-??????`)."""
        return bool(_SECRET_SUFFIX.search(self.api_key_secret_arn.rsplit(":", 1)[1]))


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    oauth_issuer: str
    oauth_audience: str
    oauth_jwks_url: str
    environment: str = DEFAULT_ENVIRONMENT
    index_dir: str = "index"
    layer_dir: str = "build/layer"
    memory_mb: int = 2048
    timeout_seconds: int = 29
    architecture: str = "x86_64"
    authorizer_cache_seconds: int = 300
    required_scopes: tuple[str, ...] = ()
    private_health: bool = False
    throttle_rate_limit: float = 50
    throttle_burst_limit: int = 100
    log_retention_days: int = 30
    alarm_email: str | None = None
    # Overrides the measured bundle size (bytes); for tests and for planning a large index.
    index_size_bytes: int | None = None
    # How an index kept in S3 gets there: "cdk" (CloudFormation copies it during the deploy),
    # "cli" (deploy.sh uploads it, for bundles too large for that copy) or "auto".
    index_upload: str = "auto"
    custom_domain: CustomDomain | None = None
    vpc: VpcPlacement | None = None
    provisioned_concurrency: int = 0
    snapstart: bool = False
    waf_web_acl_arn: str | None = None
    cors_origins: tuple[str, ...] = ()
    llm: LlmUpstream | None = None

    @property
    def stack_name(self) -> str:
        if self.environment == DEFAULT_ENVIRONMENT:
            return BASE_STACK_NAME
        return f"{BASE_STACK_NAME}-{self.environment}"

    @property
    def uses_placeholders(self) -> bool:
        return any(
            PLACEHOLDER_MARKER in value
            for value in (self.oauth_issuer, self.oauth_audience, self.oauth_jwks_url)
        )

    @property
    def publishes_versions(self) -> bool:
        """Whether API Gateway calls a published version (the `live` alias), not $LATEST."""
        return self.provisioned_concurrency > 0 or self.snapstart

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> StackConfig:
        """Reads every key through `get` (for example `node.try_get_context`)."""
        missing = [k for k in REQUIRED_KEYS if not _text(get(k))]
        if missing:
            raise ConfigError(
                f"missing required CDK context key(s): {', '.join(missing)}. Copy "
                "cdk.context.json.example to cdk.context.json and fill them in, or pass "
                f"--context {missing[0]}=..."
            )
        environment = _text(get("environment")) or DEFAULT_ENVIRONMENT
        if not environment.replace("-", "").isalnum() or len(environment) > 20:
            raise ConfigError(
                f"context key environment={environment!r} must be letters, digits and '-' "
                "(at most 20 characters)"
            )
        jwks_url = str(get("oauth_jwks_url"))
        if not jwks_url.startswith("https://"):
            raise ConfigError(f"context key oauth_jwks_url must be an https URL, not {jwks_url!r}")
        timeout = _int(get, "timeout_seconds", cls.timeout_seconds)
        if not 1 <= timeout <= MAX_TIMEOUT_SECONDS:
            raise ConfigError(
                f"context key timeout_seconds={timeout} must be between 1 and "
                f"{MAX_TIMEOUT_SECONDS} (API Gateway's integration limit)"
            )
        memory = _int(get, "memory_mb", cls.memory_mb)
        if not 128 <= memory <= 10240:
            raise ConfigError(f"context key memory_mb={memory} must be between 128 and 10240")
        architecture = _text(get("architecture")) or cls.architecture
        if architecture not in ("x86_64", "arm64"):
            raise ConfigError(f"context key architecture={architecture!r} must be x86_64 or arm64")
        cache = _int(get, "authorizer_cache_seconds", cls.authorizer_cache_seconds)
        if not 0 <= cache <= 3600:
            raise ConfigError(
                f"context key authorizer_cache_seconds={cache} must be between 0 and 3600"
            )
        raw_scopes = get("required_scopes") or ()
        scopes = tuple(raw_scopes.split() if isinstance(raw_scopes, str) else map(str, raw_scopes))
        size = get("index_size_bytes")
        index_upload = _text(get("index_upload")) or cls.index_upload
        if index_upload not in INDEX_UPLOADS:
            raise ConfigError(
                f"context key index_upload={index_upload!r} must be one of "
                f"{', '.join(INDEX_UPLOADS)}"
            )
        provisioned = _int(get, "provisioned_concurrency", cls.provisioned_concurrency)
        if not 0 <= provisioned <= MAX_PROVISIONED_CONCURRENCY:
            raise ConfigError(
                f"context key provisioned_concurrency={provisioned} must be between 0 and "
                f"{MAX_PROVISIONED_CONCURRENCY}"
            )
        snapstart = _flag(get, "snapstart")
        if snapstart and provisioned:
            raise ConfigError(
                "context keys snapstart and provisioned_concurrency cannot be combined: Lambda "
                "SnapStart does not support provisioned concurrency; choose one"
            )
        return cls(
            oauth_issuer=str(get("oauth_issuer")),
            oauth_audience=str(get("oauth_audience")),
            oauth_jwks_url=jwks_url,
            environment=environment,
            index_dir=_text(get("index_dir")) or cls.index_dir,
            layer_dir=_text(get("layer_dir")) or cls.layer_dir,
            memory_mb=memory,
            timeout_seconds=timeout,
            architecture=architecture,
            authorizer_cache_seconds=cache,
            required_scopes=scopes,
            private_health=_flag(get, "private_health"),
            throttle_rate_limit=float(get("throttle_rate_limit") or cls.throttle_rate_limit),
            throttle_burst_limit=_int(get, "throttle_burst_limit", cls.throttle_burst_limit),
            log_retention_days=_int(get, "log_retention_days", cls.log_retention_days),
            alarm_email=_text(get("alarm_email")) or None,
            index_size_bytes=int(size) if size not in (None, "") else None,
            index_upload=index_upload,
            custom_domain=_custom_domain(get),
            vpc=_vpc(get),
            provisioned_concurrency=provisioned,
            snapstart=snapstart,
            waf_web_acl_arn=_optional_arn(get, "waf_web_acl_arn", _WEB_ACL_ARN, _WEB_ACL_EXAMPLE),
            cors_origins=_cors_origins(get),
            llm=_llm(get),
        )


def _custom_domain(get: Callable[[str], Any]) -> CustomDomain | None:
    pair = _pair(get, "domain_name", "certificate_arn")
    disable = _flag(get, "disable_execute_api_endpoint")
    if pair is None:
        if disable:
            raise ConfigError(
                "context key disable_execute_api_endpoint needs domain_name and "
                "certificate_arn: without a custom domain the API would be unreachable"
            )
        return None
    name = _text(pair[0]).lower().rstrip(".")
    if not _DOMAIN.fullmatch(name):
        raise ConfigError(
            f"context key domain_name={name!r} must be a host name such as api.example.org "
            "(no scheme, path or wildcard)"
        )
    certificate = _arn("certificate_arn", pair[1], _CERTIFICATE_ARN, _CERTIFICATE_EXAMPLE)
    return CustomDomain(
        name=name, certificate_arn=certificate, disable_execute_api_endpoint=disable
    )


def _vpc(get: Callable[[str], Any]) -> VpcPlacement | None:
    pair = _pair(get, "vpc_id", "private_subnet_ids")
    if pair is None:
        return None
    vpc_id = _text(pair[0])
    if not _VPC_ID.fullmatch(vpc_id):
        raise ConfigError(f"context key vpc_id={vpc_id!r} must look like vpc-0123456789abcdef0")
    subnets = _list(pair[1])
    bad = [s for s in subnets if not _SUBNET_ID.fullmatch(s)]
    if bad:
        raise ConfigError(
            f"context key private_subnet_ids has {', '.join(map(repr, bad))}: each must look "
            "like subnet-0123456789abcdef0"
        )
    return VpcPlacement(vpc_id=vpc_id, subnet_ids=tuple(dict.fromkeys(subnets)))


def _cors_origins(get: Callable[[str], Any]) -> tuple[str, ...]:
    origins = tuple(dict.fromkeys(_list(get("cors_origins"))))
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"context key cors_origins has {origin!r}: each origin must be "
                "http(s)://host[:port] with no path or trailing slash, or '*'"
            )
    if "*" in origins and len(origins) > 1:
        raise ConfigError(
            "context key cors_origins mixes '*' with specific origins: give '*' alone or "
            "only specific origins"
        )
    return origins


def _llm(get: Callable[[str], Any]) -> LlmUpstream | None:
    if _text(get("llm_api_key")):
        raise ConfigError(
            "context key llm_api_key is refused: the key would end up in the template. Store it "
            "in Secrets Manager and set llm_api_key_secret_arn to the secret's ARN"
        )
    keys = ("llm_base_url", "llm_model", "llm_api_key_secret_arn")
    values = {k: _text(get(k)) for k in keys}
    absent = [k for k, v in values.items() if not v]
    if len(absent) == len(keys):
        return None
    if absent:
        raise ConfigError(
            f"context keys {', '.join(keys)} go together: set all three or none "
            f"({', '.join(absent)} missing)"
        )
    base_url = values["llm_base_url"].rstrip("/")
    if not re.fullmatch(r"https://[^/\s]+(/\S*)?", base_url):
        raise ConfigError(
            f"context key llm_base_url={base_url!r} must be an https URL, e.g. "
            "https://api.openai.com/v1"
        )
    secret = _arn(
        "llm_api_key_secret_arn",
        values["llm_api_key_secret_arn"],
        _SECRET_ARN,
        "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf",
    )
    return LlmUpstream(base_url=base_url, model=values["llm_model"], api_key_secret_arn=secret)


def _pair(get: Callable[[str], Any], first: str, second: str) -> tuple[Any, Any] | None:
    """Both keys' values, or None when neither is set; one without the other is an error."""
    a, b = get(first), get(second)
    if bool(_list(a)) != bool(_list(b)):
        given, absent = (first, second) if _list(a) else (second, first)
        raise ConfigError(
            f"context keys {first} and {second} go together: {given} is set but {absent} is not"
        )
    return (a, b) if _list(a) else None


def _arn(key: str, value: Any, pattern: re.Pattern[str], example: str) -> str:
    text = _text(value)
    if not pattern.fullmatch(text):
        raise ConfigError(f"context key {key}={text!r} must be an ARN like {example}")
    return text


def _optional_arn(
    get: Callable[[str], Any], key: str, pattern: re.Pattern[str], example: str
) -> str | None:
    value = get(key)
    return _arn(key, value, pattern, example) if _text(value) else None


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _list(value: Any) -> tuple[str, ...]:
    # A JSON list from cdk.context.json, or one string from --context (commas or spaces).
    if value is None:
        return ()
    items = (
        map(_text, value) if isinstance(value, list | tuple) else re.split(r"[,\s]+", str(value))
    )
    return tuple(item for item in items if item)


def _flag(get: Callable[[str], Any], key: str) -> bool:
    # `--context key=true` arrives as a string; cdk.context.json gives a real bool.
    value = get(key)
    if value is None or value == "" or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"context key {key}={value!r} must be true or false")


def _int(get: Callable[[str], Any], key: str, default: int) -> int:
    value = get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ConfigError(f"context key {key}={value!r} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context key {key}={value!r} must be an integer") from None
