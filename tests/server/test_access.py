"""The access policy and the caller's groups: parsing (a malformed policy stops the server with a
message naming the problem), groups from each identity provider's claim shape, from an API key
and from the authorizer's context, and what a caller with them may read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from athenaeum.bundle.format import ROOT_COLLECTION
from athenaeum.cli.main import app as cli_app
from athenaeum.server.access import AccessPolicy, readable_for
from athenaeum.server.auth.groups import (
    context_groups,
    groups_from_claims,
    groups_from_context,
)
from athenaeum.server.auth.keyring import KeyRing, parse_keyset
from athenaeum.server.auth.middleware import principal_from_authorizer
from athenaeum.server.settings import Settings
from infra.authorizer.handler import principal_context

POLICY = {"hr": ["hr-staff", "executives"], "engineering": "engineering", "handbook": "*"}
OAUTH = {
    "oauth_issuer": "https://issuer.example.com/",
    "oauth_audience": "https://athenaeum.example.com",
    "oauth_jwks_url": "https://issuer.example.com/.well-known/jwks.json",
}


def test_a_policy_grants_collections_to_groups_and_the_root_to_everyone() -> None:
    policy = AccessPolicy.parse(json.dumps(POLICY))
    assert policy.readable(["hr-staff"]) == {ROOT_COLLECTION, "hr", "handbook"}
    assert policy.readable(["engineering", "executives"]) == {
        ROOT_COLLECTION,
        "hr",
        "engineering",
        "handbook",
    }
    # No group, or groups the policy never names: the root and what "*" grants, nothing else.
    assert (
        policy.readable([]) == policy.readable(["HR-STAFF", "hr"]) == {ROOT_COLLECTION, "handbook"}
    )
    # A collection the policy does not name is nobody's, whatever the caller's groups are
    # called (a group named "*" is no wildcard); no policy is everything.
    assert policy.readable(["legal", "*"]) == {ROOT_COLLECTION, "handbook"}
    assert readable_for(None, ["anything"]) is None


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ('{"hr": ["hr-staff"]', "is not JSON"),
        ('["hr"]', "must be a JSON object"),
        ('{"hr": {"group": "x"}}', "the collection 'hr' must map to a list of groups"),
        ('{"hr": ["hr-staff", 7]}', "the collection 'hr' names the group 7"),
        ('{"hr": [""]}', "names the group ''"),
        ('{"hr/payroll": ["hr-staff"]}', "'hr/payroll' is not a collection"),
        ('{"": ["hr-staff"]}', "'' is not a collection"),
        ('{".hidden": ["x"]}', "'.hidden' is not a collection"),
    ],
)
def test_a_malformed_policy_stops_the_server_naming_the_problem(policy: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(access_policy=policy, api_key_hashes=[])
    assert message in str(caught.value)
    assert "ATHENAEUM_ACCESS_POLICY" in str(caught.value)


def test_a_policy_with_oauth_needs_the_claim_that_holds_the_groups() -> None:
    with pytest.raises(ValidationError, match="ATHENAEUM_ACCESS_CLAIM does not say"):
        Settings(access_policy=json.dumps(POLICY), **OAUTH)
    settings = Settings(access_policy=json.dumps(POLICY), access_claim="groups", **OAUTH)
    assert settings.access is not None and settings.access.grants["engineering"] == {"engineering"}
    # API keys alone carry their own groups: no claim is needed.
    assert Settings(access_policy=json.dumps(POLICY), api_key_hashes=[]).access is not None
    assert Settings().access is None


@pytest.mark.parametrize(
    ("claims", "claim", "groups"),
    [
        # Okta, Entra ID (groups), Auth0 (a namespaced claim an Action adds)
        ({"groups": ["hr-staff", "all"]}, "groups", ("hr-staff", "all")),
        ({"https://example.com/groups": ["hr-staff"]}, "https://example.com/groups", ("hr-staff",)),
        # Amazon Cognito
        ({"cognito:groups": ["engineering"]}, "cognito:groups", ("engineering",)),
        # Entra ID app roles
        ({"roles": ["Library.HR"]}, "roles", ("Library.HR",)),
        # Keycloak: realm roles nested under realm_access
        (
            {"realm_access": {"roles": ["hr-staff", "offline_access"]}},
            "realm_access.roles",
            ("hr-staff", "offline_access"),
        ),
        # OAuth scopes, one space-separated string
        ({"scope": "library.read hr.read"}, "scope", ("library.read", "hr.read")),
        # Missing, or of another shape: no groups, never more.
        ({"sub": "x"}, "groups", ()),
        ({"groups": {"hr": True}}, "groups", ()),
        ({"groups": ["hr-staff", 5, None, ""]}, "groups", ("hr-staff",)),
        ({"groups": ["hr-staff"]}, None, ()),
    ],
)
def test_groups_from_each_providers_claim(
    claims: dict[str, Any], claim: str | None, groups: tuple[str, ...]
) -> None:
    assert groups_from_claims(claims, claim) == groups


def test_the_authorizer_context_carries_the_groups_to_the_function() -> None:
    from athenaeum.server.auth.principal import Principal

    principal = Principal(
        subject="api-key:alice",
        scopes=frozenset(),
        client_id=None,
        issuer="api-key",
        audience=(),
        expires_at=None,
        groups=("hr-staff", "Engineering Team"),
    )
    context = principal_context(principal)
    assert json.loads(context["groups"]) == ["hr-staff", "Engineering Team"]
    assert all(isinstance(v, str) for v in context.values())  # API Gateway's rule
    # The function reads them back from the REST API's authorizer context.
    back = principal_from_authorizer({"principalId": "api-key:alice", **context})
    assert back.groups == ("hr-staff", "Engineering Team") and back.subject == "api-key:alice"
    # Without groups, no key; malformed context (only our authorizer writes it) holds none.
    assert "groups" not in principal_context(Principal("s", frozenset(), None, "i", (), None))
    assert groups_from_context('{"not": "a list"}') == ()
    assert groups_from_context("[") == ()
    assert groups_from_context(context_groups(("a",))) == ("a",)


def test_an_api_key_carries_the_groups_it_was_made_with(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    runner = CliRunner()
    made = runner.invoke(
        cli_app,
        [
            "keys",
            "create",
            "payroll-bot",
            "--group",
            "hr-staff",
            "--group",
            "finance",
            "--file",
            str(keys),
        ],
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    records = parse_keyset(keys.read_text(), "keys.json")
    assert records[0].groups == ("hr-staff", "finance")
    principal = KeyRing(records).authenticate(key, now=datetime.now(UTC))
    assert principal.groups == ("hr-staff", "finance")
    listed = runner.invoke(cli_app, ["keys", "list", "--file", str(keys)])
    assert "hr-staff, finance" in listed.stdout
    refused = runner.invoke(cli_app, ["keys", "create", "x", "--group", " ", "--file", str(keys)])
    assert refused.exit_code != 0 and "a group is 1 to 256 printable characters" in refused.output
    # A key set written before groups existed reads as keys without groups.
    old = json.loads(keys.read_text())
    del old["keys"][0]["groups"]
    assert parse_keyset(json.dumps(old), "old.json")[0].groups == ()


def test_with_a_policy_the_index_loads_with_its_collection_table(scifact_bundle: Path) -> None:
    from athenaeum.retrieval.engine import SearchEngine
    from athenaeum.server.index.provider import EngineProvider

    for policy, built in ((None, False), (json.dumps(POLICY), True)):
        settings = Settings(index_dir=scifact_bundle, access_policy=policy, api_key_hashes=[])
        engine = EngineProvider(settings).current().backend
        assert isinstance(engine, SearchEngine)
        # Built with the index (a cached property holds it), so no request waits for it.
        assert ("filter_table" in vars(engine)) is built


def test_a_callers_view_keeps_no_replaced_index_alive(scifact_bundle: Path) -> None:
    import gc
    import weakref

    from athenaeum.retrieval.access import ScopedBackend
    from athenaeum.retrieval.engine import SearchEngine
    from athenaeum.server.access import scoped

    engine = SearchEngine.load(scifact_bundle)
    # SciFact's documents are all at the root: a caller who reads the root reads it all.
    assert scoped(engine, frozenset({ROOT_COLLECTION})) is engine
    view = scoped(engine, frozenset({"hr"}))
    assert isinstance(view, ScopedBackend) and list(view.documents) == []
    assert scoped(engine, frozenset({"hr"})).documents == view.documents
    # Once no request holds it (a newer version swapped in), the old index is freed, with
    # what its callers' reaches listed.
    gone = weakref.ref(engine)
    del engine, view
    gc.collect()
    assert gone() is None
