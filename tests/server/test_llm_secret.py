"""The generating model's API key from AWS Secrets Manager (a moto server on 127.0.0.1): read at
the Lambda cold start, sent upstream as the bearer token, never logged, and a secret that
cannot be read fails the generating model alone with a 503 that the next request retries."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.server import lambda_handler
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.secrets import (
    KEY_FIELDS,
    LLMKeyUnavailableError,
    SecretsManagerKey,
    read_llm_key,
    with_secret_llm_key,
)
from athenaeum.server.settings import Settings, get_settings
from tests.fresh import FORBIDDEN, run_fresh
from tests.server.conftest import FAKE_LLM_KEY, FAKE_LLM_MODEL, FakeLLM
from tests.server.helpers import Context, body_of, parse_sse, v1_event
from tests.server.test_lambda import QUERY

RAG = "athenaeum-index-rag"
RETRIEVAL = "athenaeum-index-retrieval"

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": QUERY}], **extra}


def unique(prefix: str) -> str:
    # The moto server is shared by the session; each test gets its own secret names.
    return f"athenaeum/{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def secretsmanager(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 Secrets Manager client on the moto server, which the app reaches through
    botocore's own AWS_ENDPOINT_URL_SECRETS_MANAGER."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    return boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def lambda_env(
    secretsmanager: Any, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The environment the CDK stack gives the function, less the secret's name."""
    monkeypatch.setenv("ATHENAEUM_TRUST_GATEWAY_AUTHORIZER", "true")
    monkeypatch.setenv("ATHENAEUM_LLM_BASE_URL", fake_llm.url)
    monkeypatch.setenv("ATHENAEUM_LLM_MODEL", FAKE_LLM_MODEL)
    monkeypatch.setenv("ATHENAEUM_LLM_TIMEOUT_S", "10")
    monkeypatch.delenv("ATHENAEUM_LLM_API_KEY", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def cold_start(
    lambda_env: None, scifact_engine: SearchEngine, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Invoke]:
    """A fresh Lambda container whose ATHENAEUM_LLM_API_KEY_SECRET is the given secret id:
    settings from the environment, the handler built as the first invocation builds it."""

    def start(secret_id: str) -> Invoke:
        monkeypatch.setenv("ATHENAEUM_LLM_API_KEY_SECRET", secret_id)
        get_settings.cache_clear()
        handler = build_handler(get_settings(), FixedEngineProvider(scifact_engine))
        return lambda event: handler(event, Context())

    return start


def assert_no_key_in_logs(caplog: pytest.LogCaptureFixture, key: str) -> None:
    assert caplog.records, "nothing was logged; the check below would pass vacuously"
    assert key not in caplog.text
    for record in caplog.records:
        assert key not in record.getMessage()
        assert record.exc_text is None or key not in record.exc_text


# --- the key reaches the upstream ----------------------------------------------------------------


def test_module_handler_reads_the_secret_at_cold_start(
    lambda_env: None,
    secretsmanager: Any,
    scifact_bundle: Path,
    fake_llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As deployed: a secret ARN in the environment, the module handler building itself.
    arn = secretsmanager.create_secret(Name=unique("plain"), SecretString=FAKE_LLM_KEY)["ARN"]
    monkeypatch.setenv("ATHENAEUM_LLM_API_KEY_SECRET", arn)
    monkeypatch.setenv("ATHENAEUM_INDEX_DIR", str(scifact_bundle))
    monkeypatch.setattr(lambda_handler, "_handler", None)
    caplog.set_level(logging.DEBUG)  # botocore's wire logging included

    r = lambda_handler.handler(v1_event("GET", "/health"), Context())
    assert r["statusCode"] == 200
    assert '"llm_key_read"' in caplog.text  # at cold start, before any chat request

    # Read once: with the secret gone, the warm container still has the key.
    secretsmanager.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    seen = len(fake_llm.requests)
    r = lambda_handler.handler(v1_event("POST", "/v1/chat/completions", chat(RAG)), Context())
    # The fake upstream answers only `Authorization: Bearer <FAKE_LLM_KEY>` (401 otherwise).
    assert r["statusCode"] == 200, r["body"]
    assert body_of(r)["choices"][0]["message"]["content"].startswith("Vitamin D matters [1].")
    assert len(fake_llm.requests) == seen + 1
    assert fake_llm.requests[-1]["model"] == FAKE_LLM_MODEL
    assert_no_key_in_logs(caplog, FAKE_LLM_KEY)


@pytest.mark.parametrize(
    "secret_string",
    [
        pytest.param(f"  {FAKE_LLM_KEY}\n", id="plain-with-whitespace"),
        pytest.param(json.dumps({"api_key": FAKE_LLM_KEY}), id="json-api_key"),
        pytest.param(json.dumps({"apiKey": FAKE_LLM_KEY, "org": "o-1"}), id="json-apiKey"),
        pytest.param(json.dumps({"key": FAKE_LLM_KEY}), id="json-key"),
        pytest.param(
            json.dumps({"api_key": FAKE_LLM_KEY, "key": "other-key-0123456"}), id="json-order"
        ),
    ],
)
def test_secret_formats_reach_the_upstream_as_the_bearer_token(
    cold_start: Callable[[str], Invoke],
    secretsmanager: Any,
    secret_string: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = unique("key")  # by name, not ARN: the region comes from the environment
    secretsmanager.create_secret(Name=name, SecretString=secret_string)
    caplog.set_level(logging.DEBUG)
    invoke = cold_start(name)
    r = invoke(v1_event("POST", "/chat/completions", chat(RAG)))
    assert r["statusCode"] == 200, r["body"]
    r = invoke(v1_event("POST", "/chat/completions", chat(RAG, stream=True)))
    assert r["statusCode"] == 200, r["body"]
    assert parse_sse(r["body"])[1]["choices"][0]["delta"]["content"] == "Vitamin"
    assert_no_key_in_logs(caplog, FAKE_LLM_KEY)


def test_the_secret_value_is_what_the_upstream_gets(
    cold_start: Callable[[str], Invoke], secretsmanager: Any
) -> None:
    # The control for the test above: a different key in the secret, and the upstream refuses.
    name = unique("wrong")
    secretsmanager.create_secret(Name=name, SecretString="not-the-upstream-key-0123")
    r = cold_start(name)(v1_event("POST", "/chat/completions", chat(RAG)))
    assert r["statusCode"] == 502
    assert "credentials" in body_of(r)["error"]["message"]
    assert "not-the-upstream-key-0123" not in r["body"]


# --- a secret that cannot be read ----------------------------------------------------------------


def assert_key_unavailable(response: dict[str, Any], secret_id: str, aws_code: str) -> None:
    assert response["statusCode"] == 503, response["body"]
    error = body_of(response)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "llm_key_unavailable" and error["type"] == "server_error"
    assert secret_id in error["message"] and aws_code in error["message"]
    assert "Traceback" not in response["body"]


def test_missing_secret_fails_the_rag_model_alone_and_is_retried(
    cold_start: Callable[[str], Invoke],
    secretsmanager: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = unique("missing")
    caplog.set_level(logging.DEBUG)
    invoke = cold_start(name)
    assert "llm_key_unavailable" in caplog.text  # the cold start says so in the logs

    for request in (chat(RAG), chat(RAG, stream=True)):
        r = invoke(v1_event("POST", "/v1/chat/completions", request))
        assert_key_unavailable(r, name, "ResourceNotFoundException")

    # Everything that does not need the key works.
    assert invoke(v1_event("GET", "/health"))["statusCode"] == 200
    r = invoke(v1_event("GET", "/v1/models"))
    assert RAG in [m["id"] for m in body_of(r)["data"]]
    r = invoke(v1_event("POST", "/search", {"query": QUERY, "top_k": 3}))
    assert r["statusCode"] == 200 and len(body_of(r)["results"]) == 3
    r = invoke(v1_event("POST", "/v1/chat/completions", chat(RETRIEVAL)))
    assert r["statusCode"] == 200

    # Once the secret exists, the next request to the generating model reads it. (Quietly:
    # botocore's DEBUG lines for this test-side call quote the value being stored.)
    with caplog.at_level(logging.INFO):
        secretsmanager.create_secret(Name=name, SecretString=json.dumps({"api_key": FAKE_LLM_KEY}))
    r = invoke(v1_event("POST", "/v1/chat/completions", chat(RAG)))
    assert r["statusCode"] == 200, r["body"]
    assert_no_key_in_logs(caplog, FAKE_LLM_KEY)
    assert "Traceback" not in caplog.text


def test_unreachable_secrets_manager_is_a_503(
    cold_start: Callable[[str], Invoke], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{port}")
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:athenaeum/llm-AbCdEf"
    r = cold_start(arn)(v1_event("POST", "/chat/completions", chat(RAG)))
    assert_key_unavailable(r, arn, "EndpointConnectionError")


# --- what the secret may hold ------------------------------------------------------------------

HIDDEN = "sk-real-but-misfiled-4242"


@pytest.mark.parametrize(
    ("secret_string", "reason"),
    [
        (json.dumps({"token": HIDDEN}), "no string field named api_key, apiKey or key"),
        (json.dumps({"api_key": 42, "note": HIDDEN}), "no string field"),
        ("{" + HIDDEN, "not JSON"),
        (json.dumps({"api_key": "changeme"}), "placeholder"),
        ("   ", "placeholder"),
    ],
)
def test_unusable_secret_contents_are_refused_without_quoting_them(
    secretsmanager: Any, secret_string: str, reason: str
) -> None:
    name = unique("bad")
    secretsmanager.create_secret(Name=name, SecretString=secret_string)
    with pytest.raises(LLMKeyUnavailableError, match=reason) as info:
        read_llm_key(name)
    assert name in info.value.message
    chain: BaseException | None = info.value
    while chain is not None:  # nothing in the chain holds the value either
        assert HIDDEN not in str(chain) and HIDDEN not in repr(vars(chain))
        chain = chain.__cause__ or chain.__context__


def test_binary_secret_is_refused(secretsmanager: Any) -> None:
    name = unique("binary")
    secretsmanager.create_secret(Name=name, SecretBinary=FAKE_LLM_KEY.encode())
    with pytest.raises(LLMKeyUnavailableError, match="no SecretString"):
        read_llm_key(name)


def test_key_fields_are_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    assert all(f"`{field}`" in doc for field in KEY_FIELDS)


def test_the_key_stays_hidden_and_is_read_once(secretsmanager: Any) -> None:
    name = unique("hidden")
    secretsmanager.create_secret(Name=name, SecretString=FAKE_LLM_KEY)
    settings = with_secret_llm_key(
        Settings(llm_base_url="http://x", llm_model="m", llm_api_key_secret=name)
    )
    key = settings.llm_api_key
    assert isinstance(key, SecretsManagerKey) and key
    assert with_secret_llm_key(settings) is settings
    # Hashing or printing the settings reads nothing; the value shows nowhere.
    assert hash(key) == hash(SecretsManagerKey(name)) and key == SecretsManagerKey(name)
    assert key.get_secret_value() == FAKE_LLM_KEY
    secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert key.get_secret_value() == FAKE_LLM_KEY  # kept, not read again
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(key), str(key)):
        assert FAKE_LLM_KEY not in text


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {
                "llm_base_url": "http://x",
                "llm_model": "m",
                "llm_api_key": "real-upstream-key-123",
                "llm_api_key_secret": "athenaeum/llm",
            },
            "not both",
        ),
        ({"llm_api_key": "real-upstream-key-123", "llm_api_key_secret": "s"}, "not both"),
        ({"llm_base_url": "http://x", "llm_api_key_secret": "athenaeum/llm"}, "all three"),
        ({"llm_base_url": "http://x", "llm_model": "m", "llm_api_key_secret": " "}, "empty"),
    ],
)
def test_secret_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        Settings(**kwargs)
    # pydantic quotes (the start of) the input in its errors unless told not to, key included.
    assert "input_value" not in str(info.value) and "real-ups" not in str(info.value)


def test_the_secret_stands_in_for_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # No secret configured: the settings pass through untouched.
    plain = Settings(llm_base_url="http://x", llm_model="m", llm_api_key="real-key-1234")  # type: ignore[arg-type]
    assert with_secret_llm_key(plain) is plain

    monkeypatch.setenv("ATHENAEUM_LLM_BASE_URL", "https://api.example.com/v1")
    monkeypatch.setenv("ATHENAEUM_LLM_MODEL", "gpt-x")
    monkeypatch.setenv("ATHENAEUM_LLM_API_KEY_SECRET", "athenaeum/llm-api-key")
    monkeypatch.delenv("ATHENAEUM_LLM_API_KEY", raising=False)
    s = Settings()
    assert s.llm_api_key_secret == "athenaeum/llm-api-key" and s.llm_api_key is None
    assert s.llm_enabled


# --- the serve path without boto3 --------------------------------------------------------------

SCRIPT = """
import importlib.abc, json, sys

class Forbid(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"boto3", "botocore"} | set(json.loads(sys.argv[1])):
            raise ModuleNotFoundError(f"{name} is forbidden", name=name)
        return None

sys.meta_path.insert(0, Forbid())

from athenaeum.server.http.app import create_app
from athenaeum.errors import AthenaeumError
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.secrets import read_llm_key
from athenaeum.server.settings import Settings

build_handler(Settings(insecure_no_auth=True))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore"})
try:
    read_llm_key("athenaeum/llm")
    status = None
except AthenaeumError as exc:
    status = exc.status_code
print(json.dumps({"loaded": loaded, "status": status}))
"""


def test_serve_path_imports_boto3_only_for_a_secret() -> None:
    out, _ = run_fresh(SCRIPT, json.dumps(FORBIDDEN))
    # Without boto3 a configured secret is a 503 naming the missing package, not a crash.
    assert out == {"loaded": [], "status": 503}
