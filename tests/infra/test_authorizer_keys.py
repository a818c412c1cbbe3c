"""API keys on AWS, end to end without AWS: the built authorizer artifact, under python3.12 with
its layer (and the runtime's boto3), reads the stack's key set from Secrets Manager (moto's
server on 127.0.0.1), where `athenaeum keys` writes it. A key made by `keys create` is allowed;
after `keys revoke` it is refused within the documented bound; a wrong key is refused, and the
comparison takes the same time whichever key is presented."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from athenaeum.cli.main import app as cli_app
from athenaeum.server.auth.keyring import generate_key
from infra import staging
from infra.authorizer.infrastructure import _GENERATED_FIELD, EMPTY_KEY_SET
from tests.infra.test_artifact import LAYER, python312, runtime_modules

pytestmark = pytest.mark.slow
REFRESH_S = 1.0
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/search"

# A small loop on stdin: one JSON request a line, one JSON answer a line, in one process (so
# the key ring's cache lives across calls, as in a warm Lambda container).
LOOP = """
import json, sys, time, statistics
sys.path[:0] = sys.argv[1].split(":")
sys.path.append(sys.argv[2])
import handler
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "authorize":
        event = {"type": "TOKEN", "methodArn": request["arn"],
                 "authorizationToken": "Bearer " + request["token"]}
        try:
            out = handler.handler(event, None)
            answer = {"effect": out["policyDocument"]["Statement"][0]["Effect"],
                      "principal": out["principalId"], "context": out.get("context")}
        except Exception as exc:
            answer = {"error": [type(exc).__name__, str(exc)]}
    else:
        ring = handler.get_credentials().keys.current()
        tokens = request["tokens"]
        samples = [[] for _ in tokens]
        # Round by round, every token in each round: a burst of load from other processes
        # falls on all of them alike rather than on whichever was being timed.
        for _ in range(request["rounds"]):
            for i, token in enumerate(tokens):
                start = time.perf_counter_ns()
                for _ in range(request["batch"]):
                    ring.match(token)
                samples[i].append(time.perf_counter_ns() - start)
        medians = [statistics.median(s) / request["batch"] for s in samples]
        answer = {"ns": medians, "keys": len(ring)}
    print(json.dumps(answer), flush=True)
"""


@pytest.fixture
def key_set(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack's key set as CloudFormation creates it: its generated initial value."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    initial = json.loads(EMPTY_KEY_SET) | {_GENERATED_FIELD: "generatedbystack0"}
    name = f"AthenaeumApiKeys-{time.monotonic_ns()}"
    created = boto3.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps(initial)
    )
    arn: str = created["ARN"]
    return arn


class Authorizer:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read() if self.process.stderr else ""
        answer: dict[str, Any] = json.loads(line)
        return answer

    def authorize(self, token: str) -> dict[str, Any]:
        return self.ask({"op": "authorize", "token": token, "arn": METHOD_ARN})


@pytest.fixture
def authorizer(key_set: str, moto_endpoint: str, tmp_path: Path) -> Iterator[Authorizer]:
    if not LAYER.is_dir():
        pytest.skip("no built layer; run layer/build.sh")
    code = staging.stage_authorizer(tmp_path / "staging")
    process = subprocess.Popen(
        [
            python312(),
            "-I",
            "-S",
            "-c",
            LOOP,
            os.pathsep.join([str(LAYER), str(code)]),
            str(runtime_modules(tmp_path)),
        ],
        # As the stack configures the function: API keys only (no OAuth), its key set's ARN.
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ATHENAEUM_API_KEYS_SECRET": key_set,
            "ATHENAEUM_API_KEYS_REFRESH_S": str(REFRESH_S),
            "ATHENAEUM_OAUTH_REQUIRED_SCOPES": "",
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield Authorizer(process)
    finally:
        process.kill()
        process.communicate(timeout=10)


def keys(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, ["keys", *args])
    assert result.exit_code == 0, result.output
    return result


def test_a_key_from_keys_create_is_allowed_then_refused_after_revoke(
    authorizer: Authorizer, key_set: str
) -> None:
    # Before any key: the stack's initial value is an empty key set, and nothing is allowed.
    assert authorizer.authorize(generate_key())["error"] == ["Exception", "Unauthorized"]
    key = keys("create", "chatgpt", "--secret", key_set).stdout.strip()
    keys("create", "ci", "--secret", key_set, "--scopes", "search")
    time.sleep(REFRESH_S)  # the empty set read above is cached this long
    allowed = authorizer.authorize(key)
    assert allowed["effect"] == "Allow" and allowed["principal"] == "api-key:chatgpt"
    assert allowed["context"]["iss"] == "api-key"
    assert authorizer.authorize(generate_key())["error"] == ["Exception", "Unauthorized"]

    keys("revoke", "chatgpt", "--secret", key_set)
    revoked_at = time.monotonic()
    while "effect" in (answer := authorizer.authorize(key)):
        assert time.monotonic() - revoked_at < REFRESH_S + 1.0, "the revoked key still works"
        time.sleep(0.05)
    assert answer["error"] == ["Exception", "Unauthorized"]
    # The other key is untouched.
    listed = keys("list", "--secret", key_set).output
    assert "ci" in listed and "chatgpt" not in listed


def test_the_comparison_takes_the_same_time_for_any_key(
    authorizer: Authorizer, key_set: str
) -> None:
    made = [keys("create", f"k{n}", "--secret", key_set).stdout.strip() for n in range(8)]
    first, last, wrong = made[0], made[-1], generate_key()
    timing = authorizer.ask(
        {"op": "time", "tokens": [first, last, wrong], "rounds": 41, "batch": 200}
    )
    assert timing["keys"] == 8
    fastest, slowest = min(timing["ns"]), max(timing["ns"])
    # Every record is compared for every key (tests/server/test_api_keys.py counts them); here
    # the clock agrees, well within the noise of a shared machine.
    print(f"median ns per comparison of 8 keys (first, last, wrong): {timing['ns']}")
    assert slowest / fastest < 1.5, timing


def test_an_unreadable_key_set_fails_closed(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key set that cannot be read (deleted, no permission) is a 503, never an Allow, and is
    marked for the alarm; the next call tries again."""
    from infra.authorizer import handler

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("ATHENAEUM_API_KEYS_SECRET", "no-such-key-set")
    for name in ("ATHENAEUM_OAUTH_ISSUER", "ATHENAEUM_OAUTH_AUDIENCE", "ATHENAEUM_OAUTH_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    handler.reset()
    event = {"type": "TOKEN", "methodArn": METHOD_ARN, "authorizationToken": "Bearer x"}
    try:
        for _ in range(2):
            event["authorizationToken"] = "Bearer " + generate_key()
            with pytest.raises(handler.AuthorizerUnavailable, match="ResourceNotFoundException"):
                handler.handler(event, None)
    finally:
        handler.reset()
