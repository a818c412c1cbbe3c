"""The stack's configuration, read once from CDK context and checked before anything is built.

One field per context key. Every key is documented in docs/deployment.md; synth fails with a
message naming the key when a required one is missing or a value is out of range.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# OAuth is optional (API keys made with `athenaeum keys` always work), but all three or none.
OAUTH_KEYS = ("oauth_issuer", "oauth_audience", "oauth_jwks_url")
DEFAULT_ENVIRONMENT = "prod"
BASE_STACK_NAME = "AtheneumStack"
# API Gateway REST APIs end every integration at 29 s.
MAX_TIMEOUT_SECONDS = 29
# Lambda's memory and /tmp ranges (MB).
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240
MIN_STORAGE_MB, MAX_STORAGE_MB = 512, 10240
# The longest interval the API function may wait before it checks for a newer published index.
MAX_INDEX_REFRESH_SECONDS = 3600
# Lambda's default regional concurrency quota; more needs a quota increase anyway.
MAX_PROVISIONED_CONCURRENCY = 1000
# The retention periods CloudWatch Logs offers up to a year.
LOG_RETENTION_DAYS = (1, 3, 7, 14, 30, 90, 180, 365)
# Values in cdk.context.json.example; a real deploy refuses them (deploy.sh), synth only warns.
PLACEHOLDER_MARKER = "example.com"
INDEX_UPLOADS = ("auto", "cdk", "cli")
# Where the chunks are searched: the bundle loaded by the function, or an Amazon S3 Vectors index.
INDEX_BACKENDS = ("bundle", "s3vectors")
ARCHITECTURES = ("x86_64", "arm64")

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
# The characters Secrets Manager allows in a secret's name.
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
# Secrets Manager appends "-" and six random characters to a secret's name in its ARN.
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
_CERTIFICATE_EXAMPLE = "arn:aws:acm:REGION:ACCOUNT:certificate/ID"
_WEB_ACL_EXAMPLE = "arn:aws:wafv2:REGION:ACCOUNT:regional/webacl/NAME/ID (a REGIONAL web ACL)"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?")
_LLM_KEYS = ("llm_base_url", "llm_model", "llm_api_key_secret_arn")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


class ConfigError(ValueError):
    """A context key is missing or invalid; the message names the key and how to fix it."""


@dataclass(frozen=True)
class _Range:
    """A numeric context key's allowed values: `low` to `high` inclusive, or above `low` when
    there is no `high`; `why` says where the limit comes from."""

    low: int
    high: int | None = None
    why: str = ""

    def check(self, key: str, value: float) -> None:
        if self.high is None:
            allowed, bounds = value > self.low, f"above {self.low}"
        else:
            allowed, bounds = self.low <= value <= self.high, f"between {self.low} and {self.high}"
        if not allowed:
            why = f" ({self.why})" if self.why else ""
            raise ConfigError(f"context key {key}={value} must be {bounds}{why}")


_RANGES = {
    "timeout_seconds": _Range(1, MAX_TIMEOUT_SECONDS, "API Gateway's integration limit"),
    "memory_mb": _Range(MIN_MEMORY_MB, MAX_MEMORY_MB),
    "ingest_memory_mb": _Range(MIN_MEMORY_MB, MAX_MEMORY_MB),
    "ingest_storage_mb": _Range(MIN_STORAGE_MB, MAX_STORAGE_MB, "Lambda's ephemeral storage range"),
    "index_refresh_seconds": _Range(1, MAX_INDEX_REFRESH_SECONDS),
    "authorizer_cache_seconds": _Range(0, 3600),
    "api_keys_refresh_seconds": _Range(1, 3600),
    "provisioned_concurrency": _Range(0, MAX_PROVISIONED_CONCURRENCY),
    # Zero would make the stage refuse every request.
    "throttle_rate_limit": _Range(0, why="requests per second"),
}


@dataclass(frozen=True, kw_only=True)
class OAuthIssuer:
    """Who issues the access tokens the authorizer and the app accept."""

    issuer: str
    audience: str
    jwks_url: str
    required_scopes: tuple[str, ...] = ()
    # The OAuth relay's settings (athenaeum.server.auth.relay); set only when given, so a
    # stack without them keeps its template.
    authorize_audience: str | None = None
    relay_hosts: tuple[str, ...] = ()
    # The claim of its tokens that holds the caller's groups (athenaeum.server.auth.groups).
    access_claim: str | None = None

    def environment(self) -> dict[str, str]:
        """The app's settings for it (athenaeum.server.settings), the same for both functions:
        the authorizer reads the groups from the claim, and the API function refuses an access
        policy beside an issuer without it."""
        return {
            "ATHENAEUM_OAUTH_ISSUER": self.issuer,
            "ATHENAEUM_OAUTH_AUDIENCE": self.audience,
            "ATHENAEUM_OAUTH_JWKS_URL": self.jwks_url,
            "ATHENAEUM_OAUTH_REQUIRED_SCOPES": ",".join(self.required_scopes),
            **({"ATHENAEUM_ACCESS_CLAIM": self.access_claim} if self.access_claim else {}),
            **self.relay_environment(),
        }

    def relay_environment(self) -> dict[str, str]:
        relay: dict[str, str] = {}
        if self.authorize_audience:
            relay["ATHENAEUM_OAUTH_AUTHORIZE_AUDIENCE"] = self.authorize_audience
        if self.relay_hosts:
            relay["ATHENAEUM_OAUTH_RELAY_HOSTS"] = ",".join(self.relay_hosts)
        return relay


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


@dataclass(frozen=True)
class PasswordsSecret:
    """`ingest_passwords_secret`: an existing secret the ingest function reads passwords for
    encrypted PDFs from, by name or ARN."""

    name_or_arn: str

    @property
    def is_arn(self) -> bool:
        return self.name_or_arn.startswith("arn:")

    @property
    def arn_is_complete(self) -> bool:
        """Whether an ARN carries the six-character suffix (else IAM needs `-??????`)."""
        return self.is_arn and bool(_SECRET_SUFFIX.search(self.name_or_arn.rsplit(":", 1)[1]))


# How the function's timeout is split when it calls the generating model. What API Gateway waits
# for is one function run (at most 29 s): it holds the follow-up's rewrite call, the searches
# (two when the rewrite fails), the generation and the response. The searches and the response
# keep LLM_MARGIN_S; the rewrite gets a fifth of the rest, 1 to 5 s; the generation the others.
LLM_MARGIN_S = 4
MAX_REWRITE_S = 5
MIN_GENERATION_S = 5


@dataclass(frozen=True, kw_only=True)
class LlmTimeouts:
    """Seconds each model call may wait (the two ATHENAEUM_LLM_*TIMEOUT_S settings)."""

    generation_s: int
    rewrite_s: int

    @classmethod
    def within(cls, timeout_seconds: int) -> LlmTimeouts:
        budget = timeout_seconds - LLM_MARGIN_S
        rewrite = max(1, min(MAX_REWRITE_S, budget // 5))
        return cls(generation_s=budget - rewrite, rewrite_s=rewrite)


# The shortest function timeout that leaves the generation MIN_GENERATION_S.
MIN_TIMEOUT_WITH_LLM = LLM_MARGIN_S + 1 + MIN_GENERATION_S


class StackConfig(BaseModel):
    """Every context key the stack reads. `from_context` is the way in from the CDK."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    oauth_issuer: str | None = None
    oauth_audience: str | None = None
    oauth_jwks_url: str | None = None
    environment: str = DEFAULT_ENVIRONMENT
    index_dir: str = "index"
    # "s3vectors": the stack creates an S3 Vectors index and the function queries it, carrying
    # only the bundle's manifest and query encoder (infra/vectors); "bundle" loads the bundle.
    index_backend: str = "bundle"
    # Read by deploy.sh, not the stack: where the original files are when not where
    # `athenaeum convert` recorded them.
    sources_dir: str | None = None
    layer_dir: str = "build/layer"
    # The ingest function's layer (layer/build.sh --profile ingest).
    ingest_layer_dir: str = "build/ingest-layer"
    memory_mb: int = 2048
    # vCPUs grow with memory and embedding is CPU-bound: 3008 MB is about two vCPUs.
    ingest_memory_mb: int = 3008
    # The ingest function's /tmp; by default sized from the bundle (infra/sizing.py).
    ingest_storage_mb: int | None = None
    # An existing Secrets Manager secret (name or ARN) with passwords for encrypted PDFs and
    # Office files.
    ingest_passwords_secret: str | None = None
    # How often the API function checks the index pointer for a newer published version.
    index_refresh_seconds: int = 60
    # The alarm on ServedVersionBehindSeconds: how long a newer version may wait to be served.
    served_version_alarm_seconds: int = 900
    timeout_seconds: int = MAX_TIMEOUT_SECONDS
    architecture: str = "x86_64"
    authorizer_cache_seconds: int = 300
    # How often the authorizer reads the API key set again: with authorizer_cache_seconds, how
    # long a revoked key keeps working.
    api_keys_refresh_seconds: int = 60
    required_scopes: tuple[str, ...] = ()
    # The OAuth relay: the `audience` its authorization redirect adds (Auth0), and hosts other
    # than the issuer's where its discovery document may place its endpoints (Cognito).
    oauth_authorize_audience: str | None = None
    oauth_relay_hosts: tuple[str, ...] = ()
    # Who may read which collection (athenaeum.server.access): the token claim holding the
    # caller's groups, and the policy granting collections to groups, kept as canonical JSON
    # whether the context gave it as text or as an object.
    access_claim: str | None = None
    access_policy: str | None = None
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
    domain_name: str | None = None
    certificate_arn: str | None = None
    disable_execute_api_endpoint: bool = False
    vpc_id: str | None = None
    private_subnet_ids: tuple[str, ...] = ()
    provisioned_concurrency: int = 0
    snapstart: bool = False
    waf_web_acl_arn: str | None = None
    cors_origins: tuple[str, ...] = ()
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key_secret_arn: str | None = None
    # Read only to be refused: a plain key would end up in the template.
    llm_api_key: None = None

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> StackConfig:
        """Reads every key through `get` (for example `node.try_get_context`)."""
        try:
            return cls.model_validate({key: get(key) for key in cls.model_fields})
        except ValidationError as exc:
            raise _config_error(exc) from None

    # --- what the stack reads ----------------------------------------------------------------

    @property
    def stack_name(self) -> str:
        if self.environment == DEFAULT_ENVIRONMENT:
            return BASE_STACK_NAME
        return f"{BASE_STACK_NAME}-{self.environment}"

    @property
    def uses_placeholders(self) -> bool:
        return any(
            PLACEHOLDER_MARKER in (value or "")
            for value in (self.oauth_issuer, self.oauth_audience, self.oauth_jwks_url)
        )

    @property
    def publishes_versions(self) -> bool:
        """Whether API Gateway calls a published version (the `live` alias), not $LATEST."""
        return self.provisioned_concurrency > 0 or self.snapstart

    @property
    def uses_s3vectors(self) -> bool:
        return self.index_backend == "s3vectors"

    @property
    def oauth(self) -> OAuthIssuer | None:
        """Who issues the JWTs accepted beside API keys; None: API keys only."""
        if self.oauth_issuer is None or self.oauth_audience is None or self.oauth_jwks_url is None:
            return None
        return OAuthIssuer(
            issuer=self.oauth_issuer,
            audience=self.oauth_audience,
            jwks_url=self.oauth_jwks_url,
            required_scopes=self.required_scopes,
            authorize_audience=self.oauth_authorize_audience,
            relay_hosts=self.oauth_relay_hosts,
            access_claim=self.access_claim,
        )

    @property
    def custom_domain(self) -> CustomDomain | None:
        if self.domain_name is None or self.certificate_arn is None:
            return None
        return CustomDomain(
            name=self.domain_name,
            certificate_arn=self.certificate_arn,
            disable_execute_api_endpoint=self.disable_execute_api_endpoint,
        )

    @property
    def vpc(self) -> VpcPlacement | None:
        if self.vpc_id is None:
            return None
        return VpcPlacement(vpc_id=self.vpc_id, subnet_ids=self.private_subnet_ids)

    @property
    def ingest_passwords(self) -> PasswordsSecret | None:
        if self.ingest_passwords_secret is None:
            return None
        return PasswordsSecret(self.ingest_passwords_secret)

    @property
    def llm(self) -> LlmUpstream | None:
        base_url, model, secret = self.llm_base_url, self.llm_model, self.llm_api_key_secret_arn
        if base_url is None or model is None or secret is None:
            return None
        return LlmUpstream(base_url=base_url, model=model, api_key_secret_arn=secret)

    # --- validation: one message per key, naming it ------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _required_and_unset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        given = [key for key in OAUTH_KEYS if _text(data.get(key))]
        if given and len(given) < len(OAUTH_KEYS):
            missing = [key for key in OAUTH_KEYS if key not in given]
            raise ConfigError(
                f"OAuth needs all three of {', '.join(OAUTH_KEYS)}; missing CDK context "
                f"key(s): {', '.join(missing)}. Set them in cdk.context.json (or pass "
                f"--context {missing[0]}=...), or leave all three empty to accept API keys only"
            )
        # An empty value (null, "", [] in the file, `key=` on the command line) is no value.
        return {key: value for key, value in data.items() if not _is_unset(value)}

    @field_validator("oauth_issuer", "oauth_audience", "oauth_jwks_url", mode="before")
    @classmethod
    def _as_given(cls, value: Any) -> str | None:
        return None if value is None else str(value)

    @field_validator(
        "environment",
        "index_dir",
        "index_backend",
        "layer_dir",
        "ingest_layer_dir",
        "ingest_passwords_secret",
        "architecture",
        "alarm_email",
        "index_upload",
        "domain_name",
        "certificate_arn",
        "vpc_id",
        "waf_web_acl_arn",
        "llm_base_url",
        "llm_model",
        "llm_api_key_secret_arn",
        "access_claim",
        mode="before",
    )
    @classmethod
    def _stripped(cls, value: Any) -> str:
        return _text(value)

    @field_validator(
        "memory_mb",
        "ingest_memory_mb",
        "ingest_storage_mb",
        "index_refresh_seconds",
        "served_version_alarm_seconds",
        "timeout_seconds",
        "authorizer_cache_seconds",
        "api_keys_refresh_seconds",
        "throttle_burst_limit",
        "log_retention_days",
        "index_size_bytes",
        "provisioned_concurrency",
        mode="before",
    )
    @classmethod
    def _integer(cls, value: Any, info: ValidationInfo) -> int:
        if isinstance(value, bool):
            raise ConfigError(f"context key {info.field_name}={value!r} must be an integer")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"context key {info.field_name}={value!r} must be an integer"
            ) from None

    @field_validator("private_health", "disable_execute_api_endpoint", "snapstart", mode="before")
    @classmethod
    def _flag(cls, value: Any, info: ValidationInfo) -> bool:
        # `--context key=true` arrives as a string; cdk.context.json gives a real bool.
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"context key {info.field_name}={value!r} must be true or false")

    @field_validator("private_subnet_ids", "cors_origins", mode="before")
    @classmethod
    def _unique_list(cls, value: Any) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_list(value)))

    @field_validator("oauth_relay_hosts", mode="before")
    @classmethod
    def _relay_hosts(cls, value: Any) -> tuple[str, ...]:
        return _list(value)

    @field_validator("required_scopes", mode="before")
    @classmethod
    def _scopes(cls, value: Any) -> tuple[str, ...]:
        return tuple(value.split() if isinstance(value, str) else map(str, value))

    @field_validator("access_policy", mode="before")
    @classmethod
    def _access_policy(cls, value: Any) -> str:
        # Imported here, as the app's settings do: it brings the retrieval layer along.
        from athenaeum.server.access import SETTING, AccessPolicy

        # `--context access_policy='{...}'` gives text; cdk.json may give the object itself.
        text = value.strip() if isinstance(value, str) else json.dumps(value)
        try:
            AccessPolicy.parse(text)
        except ValueError as exc:
            # The app's words, with the context key where they name its setting.
            message = str(exc).removeprefix(SETTING)
            raise ConfigError(f"context key access_policy{message}") from None
        # One form for one policy, the smallest: the template (and so the function) changes
        # only when the policy does, and it takes little of Lambda's 4 KB of environment.
        return json.dumps(
            json.loads(text), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if not value.replace("-", "").isalnum() or len(value) > 20:
            raise ConfigError(
                f"context key environment={value!r} must be letters, digits and '-' "
                "(at most 20 characters)"
            )
        return value

    @field_validator("oauth_jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ConfigError(f"context key oauth_jwks_url must be an https URL, not {value!r}")
        return value

    @field_validator(*_RANGES)
    @classmethod
    def _in_range(cls, value: float, info: ValidationInfo) -> float:
        _RANGES[str(info.field_name)].check(str(info.field_name), value)
        return value

    @field_validator("ingest_passwords_secret")
    @classmethod
    def _passwords_secret(cls, value: str) -> str:
        if value.startswith("arn:"):
            return _arn(
                "ingest_passwords_secret",
                value,
                _SECRET_ARN,
                "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf",
            )
        if not _SECRET_NAME.fullmatch(value):
            raise ConfigError(
                f"context key ingest_passwords_secret={value!r} must be a secret's name "
                "(letters, digits and /_+=.@-) or its ARN"
            )
        return value

    @field_validator("architecture")
    @classmethod
    def _architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ConfigError(f"context key architecture={value!r} must be x86_64 or arm64")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _log_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ConfigError(
                f"context key log_retention_days={value} must be one of {list(LOG_RETENTION_DAYS)}"
            )
        return value

    @field_validator("index_upload", "index_backend")
    @classmethod
    def _one_of(cls, value: str, info: ValidationInfo) -> str:
        allowed = {"index_upload": INDEX_UPLOADS, "index_backend": INDEX_BACKENDS}[
            str(info.field_name)
        ]
        if value not in allowed:
            raise ConfigError(
                f"context key {info.field_name}={value!r} must be one of {', '.join(allowed)}"
            )
        return value

    @field_validator("domain_name")
    @classmethod
    def _domain_name(cls, value: str) -> str:
        name = value.lower().rstrip(".")
        if not _DOMAIN.fullmatch(name):
            raise ConfigError(
                f"context key domain_name={name!r} must be a host name such as api.example.org "
                "(no scheme, path or wildcard)"
            )
        return name

    @field_validator("certificate_arn")
    @classmethod
    def _certificate_arn(cls, value: str) -> str:
        return _arn("certificate_arn", value, _CERTIFICATE_ARN, _CERTIFICATE_EXAMPLE)

    @field_validator("vpc_id")
    @classmethod
    def _vpc_id(cls, value: str) -> str:
        if not _VPC_ID.fullmatch(value):
            raise ConfigError(f"context key vpc_id={value!r} must look like vpc-0123456789abcdef0")
        return value

    @field_validator("private_subnet_ids")
    @classmethod
    def _subnet_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if not _SUBNET_ID.fullmatch(s)]
        if bad:
            raise ConfigError(
                f"context key private_subnet_ids has {', '.join(map(repr, bad))}: each must "
                "look like subnet-0123456789abcdef0"
            )
        return value

    @field_validator("waf_web_acl_arn")
    @classmethod
    def _web_acl_arn(cls, value: str) -> str:
        return _arn("waf_web_acl_arn", value, _WEB_ACL_ARN, _WEB_ACL_EXAMPLE)

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ConfigError(
                    f"context key cors_origins has {origin!r}: each origin must be "
                    "http(s)://host[:port] with no path or trailing slash, or '*'"
                )
        if "*" in value and len(value) > 1:
            raise ConfigError(
                "context key cors_origins mixes '*' with specific origins: give '*' alone or "
                "only specific origins"
            )
        return value

    @field_validator("llm_base_url")
    @classmethod
    def _llm_base_url(cls, value: str) -> str:
        base_url = value.rstrip("/")
        if not re.fullmatch(r"https://[^/\s]+(/\S*)?", base_url):
            raise ConfigError(
                f"context key llm_base_url={base_url!r} must be an https URL, e.g. "
                "https://api.openai.com/v1"
            )
        return base_url

    @field_validator("llm_api_key_secret_arn")
    @classmethod
    def _llm_secret_arn(cls, value: str) -> str:
        return _arn(
            "llm_api_key_secret_arn",
            value,
            _SECRET_ARN,
            "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf",
        )

    @field_validator("llm_api_key", mode="before")
    @classmethod
    def _no_plain_llm_key(cls, value: Any) -> None:
        raise ConfigError(
            "context key llm_api_key is refused: the key would end up in the template. Store it "
            "in Secrets Manager and set llm_api_key_secret_arn to the secret's ARN"
        )

    @model_validator(mode="after")
    def _keys_that_go_together(self) -> StackConfig:
        _pair("domain_name", self.domain_name, "certificate_arn", self.certificate_arn)
        if self.disable_execute_api_endpoint and self.domain_name is None:
            raise ConfigError(
                "context key disable_execute_api_endpoint needs domain_name and "
                "certificate_arn: without a custom domain the API would be unreachable"
            )
        _pair("vpc_id", self.vpc_id, "private_subnet_ids", self.private_subnet_ids)
        if self.snapstart and self.provisioned_concurrency:
            raise ConfigError(
                "context keys snapstart and provisioned_concurrency cannot be combined: Lambda "
                "SnapStart does not support provisioned concurrency; choose one"
            )
        llm = {key: getattr(self, key) for key in _LLM_KEYS}
        absent = [key for key, value in llm.items() if value is None]
        if 0 < len(absent) < len(_LLM_KEYS):
            raise ConfigError(
                f"context keys {', '.join(_LLM_KEYS)} go together: set all three or none "
                f"({', '.join(absent)} missing)"
            )
        if self.uses_s3vectors and self.ingest_passwords_secret is not None:
            raise ConfigError(
                "context key ingest_passwords_secret configures the ingest function, which a "
                "stack with index_backend=s3vectors does not have (the ingest publishes bundle "
                "versions, not vectors): unset it, or publish with `athenaeum publish` "
                "(docs/deployment.md, 'Amazon S3 Vectors')"
            )
        if self.served_version_alarm_seconds <= self.index_refresh_seconds:
            raise ConfigError(
                f"context key served_version_alarm_seconds={self.served_version_alarm_seconds} "
                f"must be longer than index_refresh_seconds={self.index_refresh_seconds}: the "
                "API function may wait that long before it sees a new version, so the alarm "
                "would fire on every publish"
            )
        if self.access_policy is not None and self.oauth is not None and not self.access_claim:
            raise ConfigError(
                "context key access_policy grants collections to groups, but access_claim "
                "does not say which claim of an OAuth token holds the caller's groups: set "
                "access_claim (groups, cognito:groups, roles, realm_access.roles...; "
                "docs/access.md)"
            )
        if not absent and self.timeout_seconds < MIN_TIMEOUT_WITH_LLM:
            raise ConfigError(
                f"context key timeout_seconds={self.timeout_seconds} is too short for a "
                f"generating model: at least {MIN_TIMEOUT_WITH_LLM} s leaves it "
                f"{MIN_GENERATION_S} s after the query rewrite and {LLM_MARGIN_S} s for the "
                "search and the response"
            )
        return self


def _config_error(exc: ValidationError) -> ConfigError:
    """The first problem, as the validator worded it (or pydantic's words, with the key)."""
    error = exc.errors()[0]
    original = error.get("ctx", {}).get("error")
    if isinstance(original, ConfigError):
        return original
    key = ".".join(map(str, error["loc"]))
    return ConfigError(f"context key {key}={error.get('input')!r}: {error['msg']}")


def _pair(first: str, a: object, second: str, b: object) -> None:
    """One key of a pair without the other is an error."""
    if bool(a) != bool(b):
        given, absent = (first, second) if a else (second, first)
        raise ConfigError(
            f"context keys {first} and {second} go together: {given} is set but {absent} is not"
        )


def _arn(key: str, value: str, pattern: re.Pattern[str], example: str) -> str:
    if not pattern.fullmatch(value):
        raise ConfigError(f"context key {key}={value!r} must be an ARN like {example}")
    return value


def _is_unset(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | tuple) and not _list(value)


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
