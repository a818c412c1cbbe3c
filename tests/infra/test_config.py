"""The stack's configuration (infra/config.py): every context key, read as `cdk.context.json`
and `--context` give it, and refused with a message naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import (
    LLM_MARGIN_S,
    MAX_REWRITE_S,
    MAX_TIMEOUT_SECONDS,
    MIN_GENERATION_S,
    MIN_TIMEOUT_WITH_LLM,
    ConfigError,
    LlmTimeouts,
    StackConfig,
)
from infra.deploy_context import context_lines
from tests.infra.helpers import (
    ACCESS_POLICY,
    ADVANCED,
    CANONICAL_POLICY,
    CERTIFICATE_ARN,
    CONTEXT,
    PLAIN_LLM_KEY,
    SNAPSTART,
    SUBNETS,
)

ROOT = Path(__file__).resolve().parents[2]


def config(**context: Any) -> StackConfig:
    return StackConfig.from_context({**CONTEXT, **context}.get)


def test_defaults() -> None:
    defaults = config()
    assert defaults.stack_name == "AtheneumStack"
    assert (defaults.environment, defaults.index_dir, defaults.layer_dir) == (
        "prod",
        "index",
        "build/layer",
    )
    assert (defaults.memory_mb, defaults.timeout_seconds, defaults.architecture) == (
        2048,
        29,
        "x86_64",
    )
    assert defaults.authorizer_cache_seconds == 300 and defaults.log_retention_days == 30
    assert (defaults.throttle_rate_limit, defaults.throttle_burst_limit) == (50, 100)
    assert defaults.index_upload == "auto" and defaults.index_size_bytes is None
    assert defaults.required_scopes == () and not defaults.private_health
    assert defaults.alarm_email is None and not defaults.uses_placeholders
    # The living library: the ingest function and how the API function follows the index.
    assert defaults.ingest_layer_dir == "build/ingest-layer"
    assert (defaults.ingest_memory_mb, defaults.ingest_storage_mb) == (3008, None)
    assert defaults.ingest_passwords is None
    assert (defaults.index_refresh_seconds, defaults.served_version_alarm_seconds) == (60, 900)


def test_advanced_keys_default_to_off() -> None:
    defaults = config()
    assert defaults.custom_domain is None and defaults.vpc is None and defaults.llm is None
    assert defaults.provisioned_concurrency == 0 and not defaults.snapstart
    assert defaults.waf_web_acl_arn is None and defaults.cors_origins == ()
    assert not defaults.publishes_versions
    # No access policy: every caller reads everything, and no function is told of groups.
    assert defaults.access_claim is None and defaults.access_policy is None
    assert "ATHENAEUM_ACCESS_CLAIM" not in defaults.oauth.environment()


def test_values_from_the_command_line_are_strings() -> None:
    parsed = config(
        environment="dev",
        memory_mb="3008",
        private_health="yes",
        required_scopes="search:read chat",
        index_size_bytes="1024",
    )
    assert parsed.stack_name == "AtheneumStack-dev"
    assert parsed.memory_mb == 3008 and parsed.private_health
    assert parsed.required_scopes == ("search:read", "chat")
    assert parsed.index_size_bytes == 1024
    # The issuer's settings, as both functions get them.
    assert parsed.oauth.environment()["ATHENAEUM_OAUTH_REQUIRED_SCOPES"] == "search:read,chat"


def test_advanced_keys_parse_lists_flags_and_urls() -> None:
    parsed = config(**ADVANCED)
    assert parsed.vpc is not None and parsed.vpc.subnet_ids == SUBNETS
    assert parsed.cors_origins == ("https://app.athenaeum.test", "http://localhost:5173")
    assert parsed.llm is not None and parsed.llm.base_url == "https://api.openai.com/v1"
    assert parsed.llm.secret_arn_is_complete
    assert parsed.publishes_versions
    spaced = config(cors_origins="https://a.test https://b.test:8443")
    assert spaced.cors_origins == ("https://a.test", "https://b.test:8443")
    snap = config(**SNAPSTART)
    assert snap.snapstart and snap.publishes_versions
    assert snap.custom_domain is not None and snap.custom_domain.disable_execute_api_endpoint
    # The domain is normalized: lower case, as API Gateway stores it.
    assert snap.custom_domain.name == "api.athenaeum.test"
    assert snap.custom_domain.url == "https://api.athenaeum.test"
    assert snap.llm is not None and not snap.llm.secret_arn_is_complete


def test_default_stack_name() -> None:
    assert config().stack_name == "AtheneumStack"


@pytest.mark.parametrize("missing", ["oauth_issuer", "oauth_audience", "oauth_jwks_url"])
def test_missing_required_context_names_the_key(missing: str) -> None:
    context = {k: v for k, v in CONTEXT.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        StackConfig.from_context(context.get)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("timeout_seconds", 30),
        ("memory_mb", 64),
        ("memory_mb", "lots"),
        ("architecture", "sparc"),
        ("environment", "a b"),
        ("oauth_jwks_url", "http://issuer.test/jwks"),
        ("authorizer_cache_seconds", 3601),
        ("log_retention_days", 2),
        ("index_upload", "ftp"),
        ("private_health", "maybe"),
        ("throttle_rate_limit", "fast"),
        ("throttle_rate_limit", 0),
    ],
)
def test_invalid_context_refused(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        config(**{key: value})


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"domain_name": "api.athenaeum.test"}, "certificate_arn"),
        ({"certificate_arn": CERTIFICATE_ARN}, "domain_name"),
        (
            {"domain_name": "https://api.athenaeum.test", "certificate_arn": CERTIFICATE_ARN},
            "domain_name",
        ),
        (
            {
                "domain_name": "api.athenaeum.test",
                "certificate_arn": "arn:aws:iam::123456789012:cert/x",
            },
            "certificate_arn",
        ),
        ({"disable_execute_api_endpoint": True}, "disable_execute_api_endpoint"),
        ({"disable_execute_api_endpoint": "maybe"}, "disable_execute_api_endpoint"),
        ({"vpc_id": "vpc-0123456789abcdef0"}, "private_subnet_ids"),
        ({"private_subnet_ids": list(SUBNETS)}, "vpc_id"),
        ({"vpc_id": "my-vpc", "private_subnet_ids": list(SUBNETS)}, "vpc_id"),
        (
            {"vpc_id": "vpc-0123456789abcdef0", "private_subnet_ids": "subnet-1"},
            "private_subnet_ids",
        ),
        ({"provisioned_concurrency": -1}, "provisioned_concurrency"),
        ({"provisioned_concurrency": 1001}, "provisioned_concurrency"),
        ({"provisioned_concurrency": "two"}, "provisioned_concurrency"),
        ({"snapstart": "on"}, "snapstart"),
        (
            {"snapstart": True, "provisioned_concurrency": 1},
            "snapstart and provisioned_concurrency",
        ),
        (
            {"waf_web_acl_arn": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/a/0b6c"},
            "waf_web_acl_arn",
        ),
        ({"waf_web_acl_arn": "my-acl"}, "waf_web_acl_arn"),
        ({"cors_origins": ["https://app.test/"]}, "cors_origins"),
        ({"cors_origins": "app.test"}, "cors_origins"),
        ({"cors_origins": ["*", "https://app.test"]}, "cors_origins"),
        ({"llm_model": "gpt-4o-mini"}, "llm_base_url, llm_api_key_secret_arn missing"),
        (
            {
                **{k: v for k, v in ADVANCED.items() if k.startswith("llm_")},
                "llm_base_url": "http://llm.test",
            },
            "llm_base_url",
        ),
        (
            {
                **{k: v for k, v in ADVANCED.items() if k.startswith("llm_")},
                "llm_api_key_secret_arn": "sk-123",
            },
            "llm_api_key_secret_arn",
        ),
        ({"llm_api_key": "sk-123"}, "llm_api_key"),
        (
            {
                **{k: v for k, v in ADVANCED.items() if k.startswith("llm_")},
                "timeout_seconds": MIN_TIMEOUT_WITH_LLM - 1,
            },
            "timeout_seconds=9 is too short for a generating model",
        ),
    ],
)
def test_invalid_advanced_context_refused(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(**context)


def test_a_short_timeout_without_a_generating_model_is_accepted() -> None:
    assert config(timeout_seconds=1).timeout_seconds == 1


@pytest.mark.parametrize("timeout", range(MIN_TIMEOUT_WITH_LLM, MAX_TIMEOUT_SECONDS + 1))
def test_the_model_calls_and_the_margin_fit_in_every_accepted_timeout(timeout: int) -> None:
    split = LlmTimeouts.within(timeout)
    assert split.rewrite_s + split.generation_s + LLM_MARGIN_S == timeout
    assert 1 <= split.rewrite_s <= MAX_REWRITE_S
    assert split.generation_s >= MIN_GENERATION_S


def test_a_plain_llm_key_is_refused_and_points_to_the_secret() -> None:
    with pytest.raises(ConfigError, match="llm_api_key_secret_arn"):
        config(**ADVANCED, llm_api_key=PLAIN_LLM_KEY)


def test_context_example_parses_as_deploy_sh_passes_it() -> None:
    example = json.loads((ROOT / "cdk.context.json.example").read_text())
    # deploy.sh turns the file into `--context key=text` flags with infra.deploy_context.
    as_flags = dict(line.split("=", 1) for line in context_lines(example))
    for context in (example, as_flags):
        parsed = StackConfig.from_context(context.get)
        assert parsed.custom_domain is None and parsed.vpc is None and parsed.llm is None
        # The first deploy needs no identity provider: API keys only.
        assert parsed.oauth is None and not parsed.uses_placeholders


def test_oauth_is_all_three_keys_or_none() -> None:
    keys_only = StackConfig.from_context(
        {k: v for k, v in CONTEXT.items() if not k.startswith("oauth_")}.get
    )
    assert keys_only.oauth is None
    assert StackConfig.from_context(CONTEXT.get).oauth is not None


def test_every_context_key_read_is_documented() -> None:
    # Records the keys from_context really asks for.
    asked: list[str] = []

    def get(key: str) -> Any:
        asked.append(key)
        return CONTEXT.get(key)

    StackConfig.from_context(get)
    assert set(asked) == set(StackConfig.model_fields)
    guide = (ROOT / "docs" / "deployment.md").read_text()
    # `nag` is read by app.py, not by the stack's configuration.
    undocumented = sorted({key for key in [*asked, "nag"] if f"`{key}`" not in guide})
    assert not undocumented, f"context keys missing from docs/deployment.md: {undocumented}"


def test_oauth_relay_keys_become_the_functions_settings() -> None:
    assert "ATHENAEUM_OAUTH_AUTHORIZE_AUDIENCE" not in config().oauth.environment()
    assert "ATHENAEUM_OAUTH_RELAY_HOSTS" not in config().oauth.environment()
    relay = config(
        oauth_authorize_audience="https://api.example.com",
        oauth_relay_hosts="mypool.auth.eu-west-1.amazoncognito.com, login.example.com",
    ).oauth.environment()
    assert relay["ATHENAEUM_OAUTH_AUTHORIZE_AUDIENCE"] == "https://api.example.com"
    assert relay["ATHENAEUM_OAUTH_RELAY_HOSTS"] == (
        "mypool.auth.eu-west-1.amazoncognito.com,login.example.com"
    )


# --- who may read which collection -----------------------------------------------------------


def test_access_policy_is_canonical_json_from_an_object_or_text() -> None:
    """cdk.json may hold the object, `--context` gives text: one policy, one value, so the
    template changes only when the policy does."""
    from_object = config(**ADVANCED)
    from_text = config(**SNAPSTART)
    assert from_object.access_policy == from_text.access_policy == CANONICAL_POLICY
    assert json.loads(CANONICAL_POLICY) == ACCESS_POLICY
    # The claim reaches both functions with the issuer's other settings.
    assert from_object.oauth.environment()["ATHENAEUM_ACCESS_CLAIM"] == "cognito:groups"
    assert from_text.oauth.environment()["ATHENAEUM_ACCESS_CLAIM"] == "realm_access.roles"


def test_access_keys_without_oauth_or_without_a_policy() -> None:
    keys_only = {k: None for k in CONTEXT}
    # API keys carry their own groups: no claim needed.
    assert config(**keys_only, access_policy='{"hr": ["hr"]}').access_policy == '{"hr":["hr"]}'
    # A claim alone changes nothing the functions do; it is accepted.
    claim_only = config(access_claim=" groups ")
    assert claim_only.access_claim == "groups" and claim_only.access_policy is None
    # Unset, as cdk.context.json and `key=` leave it.
    assert config(access_policy="", access_claim="").access_policy is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ('{"hr": ["hr-staff"]', r"context key access_policy is not JSON \(.*line 1, column 20"),
        ('{"hr": {"group": "hr-staff"}}', "access_policy: the collection 'hr' must map to a list"),
        ({"hr": 3}, "access_policy: the collection 'hr' must map to a list of groups"),
        ('["hr-staff"]', "access_policy must be a JSON object"),
        ({"hr": ["hr-staff", ""]}, "access_policy: the collection 'hr' names the group ''"),
        ({"../hr": "*"}, "access_policy: '../hr' is not a collection"),
    ],
)
def test_a_malformed_access_policy_is_refused_saying_what_is_wrong(
    policy: Any, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        config(access_claim="groups", access_policy=policy)


def test_an_access_policy_with_oauth_needs_the_claim_that_holds_the_groups() -> None:
    with pytest.raises(ConfigError, match=r"access_policy grants .* but access_claim does not"):
        config(access_policy=ACCESS_POLICY)
