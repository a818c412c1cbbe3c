"""Serve-side settings: one pydantic-settings class read from `ATHENAEUM_*` environment variables.

The app, the Lambda handler and the Lambda authorizer all read this one class (the authorizer
uses its OAuth fields only). Lists (audiences, scopes, API key hashes, CORS origins) are
comma-separated in the environment. Every field is documented in docs/settings.md
(tests/server/test_app_settings.py fails when one is not). Read them through `get_settings()`,
which is cached so that a process parses its environment once; tests build `Settings(...)`
directly or call `get_settings.cache_clear()`.
"""

from __future__ import annotations

import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from athenaeum.server.index.source import IndexSource, index_source

if TYPE_CHECKING:
    from athenaeum.server.access import AccessPolicy

# Values people paste from examples; a server that starts with one of them is worse than one that
# refuses to start, because it looks configured.
_PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "changethis",
        "change-this",
        "secret",
        "password",
        "xxx",
        "todo",
        "your-api-key",
        "your_api_key",
        "<your-api-key>",
        "sk-...",
        "sk-xxx",
        "api-key",
        "apikey",
        "none",
        "null",
    }
)

CommaList = Annotated[list[str], NoDecode]


def _split_commas(value: Any) -> Any:
    # NoDecode hands the raw environment string over; commas read better than JSON in a shell.
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def is_placeholder(secret: str) -> bool:
    return secret.strip().lower() in _PLACEHOLDERS


def _refuse_placeholder(name: str, secret: str) -> None:
    if is_placeholder(secret):
        raise ValueError(f"{name} is empty or a placeholder; set a real value or leave it unset")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_S3VECTORS_URI = re.compile(r"s3vectors://[^/\s]+/[^/\s]+")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ATHENAEUM_",
        env_file=None,
        extra="ignore",
        frozen=True,
        # Errors would otherwise quote the input, ATHENAEUM_LLM_API_KEY included.
        hide_input_in_errors=True,
    )

    # --- the index (read together as `index_source`) ---------------------------------------
    # "bundle": search a bundle loaded into the process; "s3vectors": search the Amazon S3
    # Vectors index `s3vectors_index`, with the query side of its bundle (manifest and query
    # encoder) read from index_dir (athenaeum.s3vectors.backend).
    index_backend: Literal["bundle", "s3vectors"] = "bundle"
    s3vectors_index: str | None = None
    index_dir: Path | None = None
    index_s3_uri: str | None = None
    index_cache_dir: Path = Path(tempfile.gettempdir()) / "athenaeum-index"
    s3_endpoint_url: str | None = None
    # "auto": a bundle whose verification record vouches for its files is loaded without
    # hashing them; "full": every file is hashed at every load (athenaeum.bundle.verification).
    index_verify: Literal["auto", "full"] = "auto"
    # Lambda: build the app and load the index while the container initialises, not on its
    # first request (read by athenaeum.server.lambda_handler at import).
    preload_index: bool = False
    # A published index (index_s3_uri holding current.json): read its pointer at most this
    # often, and serve a newer version once it is loaded (athenaeum.server.index.provider).
    index_refresh_s: float = Field(default=60.0, gt=0, le=86_400)
    # A bundle in S3 (a prefix holding manifest.json) to serve while the published index at
    # index_s3_uri has no version yet: what INDEX_DIR is for a packaged bundle.
    index_start_s3_uri: str | None = None
    # CloudWatch namespace for the embedded-format metrics the server writes to stdout (the
    # stack sets it); unset, none are written.
    metric_namespace: str | None = None

    # --- auth ----------------------------------------------------------------------------------
    oauth_issuer: str | None = None
    oauth_audience: CommaList = Field(default_factory=list)
    oauth_jwks_url: str | None = None
    oauth_required_scopes: CommaList = Field(default_factory=list)
    jwks_timeout_s: float = Field(default=3.0, gt=0, le=30)
    api_key_hashes: CommaList = Field(default_factory=list)
    # The key set `athenaeum keys` manages: a local file (`athenaeum serve` uses the default
    # one, athenaeum.server.auth.keystores.default_keys_file, when it exists) or, on AWS, the
    # Secrets Manager secret the stack creates. Re-read at most every api_keys_refresh_s.
    api_keys_file: Path | None = None
    api_keys_secret: str | None = None
    api_keys_refresh_s: float = Field(default=60.0, gt=0, le=3600)
    trust_gateway_authorizer: bool = False
    insecure_no_auth: bool = False
    # --- who may read what (athenaeum.server.access) --------------------------------------------
    # The claim of an OAuth token that holds the caller's groups ("groups", "cognito:groups",
    # "roles", "scope", or a dotted path such as "realm_access.roles").
    access_claim: str | None = None
    # A JSON object mapping each collection to the groups that may read it ("*": every caller).
    access_policy: str | None = None
    # --- the OAuth relay (athenaeum.server.auth.relay): /oauth/authorize and /oauth/token on
    # this API's own domain, relayed to the issuer's endpoints, for ChatGPT's same-domain rule.
    oauth_relay: bool = True
    # Added to the authorization redirect as `audience` (Auth0 issues JWTs for an API only then).
    oauth_authorize_audience: str | None = None
    # Hosts besides the issuer's own that its discovery document may name for its endpoints.
    oauth_relay_hosts: CommaList = Field(default_factory=list)
    # Patterns (`*` matches anything) a client's redirect_uri must match; empty: the provider's
    # own list of registered callbacks decides.
    oauth_redirect_uris: CommaList = Field(default_factory=list)
    oauth_relay_timeout_s: float = Field(default=10.0, gt=0, le=30)

    # --- the generating model ------------------------------------------------------------------
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    # On Lambda the key lives in Secrets Manager: this names the secret (ARN or name) and
    # athenaeum.server.secrets reads the key from there (the Lambda handler at cold start).
    llm_api_key_secret: str | None = None
    llm_model: str | None = None
    llm_timeout_s: float = Field(default=60.0, gt=0)
    # A follow-up's query rewrite waits at most this (or llm_timeout_s, when shorter).
    llm_rewrite_timeout_s: float = Field(default=10.0, gt=0)

    # --- links to the original files (athenaeum.server.http.sources) --------------------------
    # Where the original files are when not where `convert` recorded them (`serve --sources`).
    sources_dir: Path | None = None
    # On AWS: the bucket prefix deploy.sh uploads them to; links are then presigned S3 URLs.
    sources_s3_uri: str | None = None
    # Signs local links; unset, a random secret per process (links end when the server does).
    link_secret: SecretStr | None = None
    # On AWS: the Secrets Manager secret (ARN or name) that holds it, generated by the stack.
    link_secret_arn: str | None = None
    link_ttl_s: int = Field(default=3600, ge=60, le=604_800)  # presigned URLs: 7 days at most

    # --- HTTP ----------------------------------------------------------------------------------
    public_base_url: str | None = None
    # Without a public URL, the Host headers whose value may appear in links and in the OAuth
    # metadata (any port); any other host gets a 421 where a link would be made.
    trusted_hosts: CommaList = Field(default_factory=lambda: list(LOOPBACK_HOSTS))
    cors_origins: CommaList = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Seconds within which each part of a request body must arrive, else 408.
    body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # Seconds within which the whole body must arrive, else 408: a client trickling a byte
    # within each part's timeout would otherwise hold its connection for as long as it likes.
    body_deadline_s: float = Field(default=30.0, gt=0, le=600)
    # `athenaeum serve` (uvicorn): the time for a request head to arrive (else 408), idle
    # keep-alive, open connections, the request head's size (else 431).
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    keep_alive_s: float = Field(default=30.0, gt=0, le=300)
    max_connections: int = Field(default=200, ge=1)
    # Requests' blocking work (searches, file reads) run at once; None: twice the CPUs.
    worker_threads: int | None = Field(default=None, ge=1, le=256)
    # Threads the query encoder (onnxruntime) uses for one query; None: the CPUs, at most 4.
    encoder_threads: int | None = Field(default=None, ge=1, le=64)
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    # At most the retrieval layer's own ceiling (athenaeum.retrieval.backend.MAX_QUERY_CHARS),
    # so that a query the server lets through is never refused below it with another limit. A
    # literal, checked against it by a test: the authorizer imports these settings, and
    # retrieval is not staged beside it.
    max_query_chars: int = Field(default=2_000, ge=1, le=10_000)

    _split = field_validator(
        "oauth_audience",
        "oauth_required_scopes",
        "api_key_hashes",
        "cors_origins",
        "trusted_hosts",
        mode="before",
    )(_split_commas)

    _split_relay = field_validator("oauth_relay_hosts", "oauth_redirect_uris", mode="before")(
        _split_commas
    )

    @field_validator("index_s3_uri", "index_start_s3_uri", "sources_s3_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("s3://") or len(value) <= len("s3://")):
            raise ValueError(f"must look like s3://bucket/prefix, got {value!r}")
        return value

    @field_validator("s3vectors_index")
    @classmethod
    def _s3vectors_uri(cls, value: str | None) -> str | None:
        if value is not None and not _S3VECTORS_URI.fullmatch(value):
            raise ValueError(f"must look like s3vectors://VECTOR_BUCKET/INDEX, got {value!r}")
        return value

    @field_validator("public_base_url", "llm_base_url", "oauth_issuer", "oauth_jwks_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        # The issuer is compared verbatim with the token's `iss` (some end in "/"); base URLs
        # have paths appended, so their trailing slash goes.
        return (
            value.rstrip("/") if info.field_name in ("public_base_url", "llm_base_url") else value
        )

    @field_validator("access_policy")
    @classmethod
    def _access_policy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Imported here: the authorizer reads these settings without the serve stack, and
        # is never given a policy.
        from athenaeum.server.access import parse_policy

        parse_policy(value)  # a ValueError that names what is wrong stops the server
        return value

    @field_validator("access_claim")
    @classmethod
    def _access_claim(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value != value.strip()):
            raise ValueError("must name a claim of the token, such as groups or cognito:groups")
        return value

    @field_validator("llm_api_key")
    @classmethod
    def _llm_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _refuse_placeholder("ATHENAEUM_LLM_API_KEY", value.get_secret_value())
        return value

    @field_validator("link_secret")
    @classmethod
    def _link_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _refuse_placeholder("ATHENAEUM_LINK_SECRET", value.get_secret_value())
            if len(value.get_secret_value()) < 32:
                raise ValueError(
                    "must be at least 32 characters (for example: openssl rand -hex 32)"
                )
        return value

    @field_validator("llm_api_key_secret", "api_keys_secret")
    @classmethod
    def _llm_key_secret(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "is empty; name a Secrets Manager secret (ARN or name) or leave it unset"
            )
        return value.strip() if value is not None else None

    @field_validator("api_key_hashes")
    @classmethod
    def _key_hashes(cls, value: list[str]) -> list[str]:
        for item in value:
            digest = item.removeprefix("sha256:")
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError(
                    "each API key hash must be sha256:<64 hex digits>, not the key itself "
                    "(docs/settings.md shows how to make one)"
                )
        return [f"sha256:{item.removeprefix('sha256:').lower()}" for item in value]

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        oauth = [self.oauth_issuer, self.oauth_audience, self.oauth_jwks_url]
        if any(oauth) and not all(oauth):
            raise ValueError(
                "OAuth needs all three of ATHENAEUM_OAUTH_ISSUER, ATHENAEUM_OAUTH_AUDIENCE and "
                "ATHENAEUM_OAUTH_JWKS_URL"
            )
        if self.llm_api_key is not None and self.llm_api_key_secret is not None:
            raise ValueError(
                "set ATHENAEUM_LLM_API_KEY or ATHENAEUM_LLM_API_KEY_SECRET, not both (the "
                "secret names where the key is kept in AWS Secrets Manager)"
            )
        key = self.llm_api_key if self.llm_api_key is not None else self.llm_api_key_secret
        llm = [self.llm_base_url, key, self.llm_model]
        if any(v is not None for v in llm) and not all(v is not None for v in llm):
            raise ValueError(
                "the generating model needs all three of ATHENAEUM_LLM_BASE_URL, "
                "ATHENAEUM_LLM_API_KEY (or ATHENAEUM_LLM_API_KEY_SECRET) and ATHENAEUM_LLM_MODEL"
            )
        if self.link_secret is not None and self.link_secret_arn is not None:
            raise ValueError("set ATHENAEUM_LINK_SECRET or ATHENAEUM_LINK_SECRET_ARN, not both")
        if self.api_keys_file is not None and self.api_keys_secret is not None:
            raise ValueError(
                "set ATHENAEUM_API_KEYS_FILE or ATHENAEUM_API_KEYS_SECRET, not both (one key set)"
            )
        if self.sources_dir is not None and self.sources_s3_uri is not None:
            raise ValueError("set ATHENAEUM_SOURCES_DIR or ATHENAEUM_SOURCES_S3_URI, not both")
        if self.access_policy is not None and self.oauth_enabled and not self.access_claim:
            raise ValueError(
                "ATHENAEUM_ACCESS_POLICY grants collections to groups, but ATHENAEUM_ACCESS_CLAIM "
                "does not say which claim of an OAuth token holds the caller's groups (groups, "
                "cognito:groups, roles...)"
            )
        self.index_source  # noqa: B018 (refuses a combination that names no one source)
        return self

    @property
    def index_source(self) -> IndexSource | None:
        """Where the index comes from (athenaeum.server.index.source); None when no setting
        names one. Checked when the settings are made, so a misconfiguration fails at startup."""
        return index_source(
            backend=self.index_backend,
            index_dir=self.index_dir,
            s3_uri=self.index_s3_uri,
            start_s3_uri=self.index_start_s3_uri,
            s3vectors_index=self.s3vectors_index,
        )

    @property
    def access(self) -> AccessPolicy | None:
        """The access policy (athenaeum.server.access), or None: every caller reads
        everything."""
        if self.access_policy is None:
            return None
        from athenaeum.server.access import parse_policy

        return parse_policy(self.access_policy)

    @property
    def oauth_enabled(self) -> bool:
        return self.oauth_issuer is not None

    @property
    def oauth_relay_enabled(self) -> bool:
        return self.oauth_enabled and self.oauth_relay

    @property
    def llm_enabled(self) -> bool:
        return self.llm_model is not None

    @property
    def auth_configured(self) -> bool:
        """Whether any credential check is configured (the app refuses to run open otherwise,
        unless `insecure_no_auth` says so explicitly)."""
        return self.oauth_enabled or self.api_keys_enabled or self.trust_gateway_authorizer

    @property
    def api_keys_enabled(self) -> bool:
        """Whether API keys are checked: hashes in the environment, or a key set (which may be
        empty: then every key is refused, not every request let in)."""
        return (
            bool(self.api_key_hashes)
            or self.api_keys_file is not None
            or self.api_keys_secret is not None
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
