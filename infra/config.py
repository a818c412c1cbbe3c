"""The stack's configuration, read once from CDK context and checked before anything is built.

Every key here is documented in docs/deployment.md; synth fails with a message naming the key
when a required one is missing or a value is out of range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REQUIRED_KEYS = ("oauth_issuer", "oauth_audience", "oauth_jwks_url")
DEFAULT_ENVIRONMENT = "prod"
BASE_STACK_NAME = "AtheneumStack"
# API Gateway REST APIs end every integration at 29 s.
MAX_TIMEOUT_SECONDS = 29
# Values in cdk.context.json.example; a real deploy refuses them (deploy.sh), synth only warns.
PLACEHOLDER_MARKER = "example.com"


class ConfigError(ValueError):
    """A context key is missing or invalid; the message names the key and how to fix it."""


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
            private_health=_bool(get("private_health")),
            throttle_rate_limit=float(get("throttle_rate_limit") or cls.throttle_rate_limit),
            throttle_burst_limit=_int(get, "throttle_burst_limit", cls.throttle_burst_limit),
            log_retention_days=_int(get, "log_retention_days", cls.log_retention_days),
            alarm_email=_text(get("alarm_email")) or None,
            index_size_bytes=int(size) if size not in (None, "") else None,
        )


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _bool(value: Any) -> bool:
    # `--context key=true` arrives as a string; cdk.context.json gives a real bool.
    return value is True or str(value).lower() in ("true", "1", "yes")


def _int(get: Callable[[str], Any], key: str, default: int) -> int:
    value = get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context key {key}={value!r} must be an integer") from None
