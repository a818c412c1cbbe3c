"""The MCP endpoint (`/mcp`, streamable HTTP) with the `search` and `fetch` tools that ChatGPT
connectors and deep research require, on the official `mcp` SDK.

Stateless and JSON-only, so that it works behind Lambda, where Mangum runs no lifespan and
buffers every response: each request gets a fresh low-level server and a fresh stateless
session manager, run for that one request (a manager's `run()` may be entered only once, and
Mangum runs no lifespan to enter it). The SDK is imported on the first MCP request, not at
startup: it weighs on a cold start about as much as FastAPI itself, and most deployments serve
REST traffic first.

ChatGPT's tool contract: `search(query)` returns `{"results": [{"id", "title", "url"}]}` and
`fetch(id)` returns `{"id", "title", "text", "url", "metadata"}`, each as one text content item
holding the JSON, plus the same object as structured content.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from athenaeum import __version__
from athenaeum.bundle import DocumentInfo
from athenaeum.errors import AthenaeumError
from athenaeum.retrieval import citations
from athenaeum.retrieval.access import collections_of
from athenaeum.retrieval.backend import Hit, SearchBackend
from athenaeum.server.access import scoped
from athenaeum.server.http import searching
from athenaeum.server.http.deps import caller_links, public_base_url
from athenaeum.server.http.error_handlers import from_exception, status_response
from athenaeum.server.http.schemas import RequestBody, SearchFilterModel
from athenaeum.server.http.sources import SourceLinker, SourceLinks, citation_links
from athenaeum.server.index.provider import EngineProvider
from athenaeum.server.settings import Settings

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server
    from mcp.server.transport_security import TransportSecuritySettings

SEARCH_RESULTS = 10
_LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
_LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]

SEARCH_DESCRIPTION = (
    "Search the document library for passages relevant to a query. Returns a list of results, "
    "each with an id to pass to `fetch`, a title and a citation URL."
)
FETCH_DESCRIPTION = (
    "Fetch the full text of one passage by the id that `search` returned, with its source "
    "document, pages and headings, and a URL for citing it."
)


class SearchArgs(RequestBody):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, description="What to look for, in natural language.")
    filter: SearchFilterModel | None = Field(
        default=None,
        description="Search only some collections, documents, pages or metadata values.",
    )


class FetchArgs(RequestBody):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, description="A result id from the search tool.")


class SearchHit(BaseModel):
    id: str
    title: str
    url: str


class SearchOutput(BaseModel):
    results: list[SearchHit]


class FetchOutput(BaseModel):
    id: str
    title: str
    text: str
    url: str
    metadata: dict[str, Any] | None = None


def collections_note(documents: Sequence[DocumentInfo]) -> str:
    """What the search tool's description says of the collections the caller may read."""
    found = collections_of(documents)
    if not found:
        return ""
    names = ", ".join(f"{name} ({count} documents)" for name, count in found.items())
    return (
        f" The collections you may search: {names}; narrow a search to some of them with "
        'filter.collections, e.g. {"collections": ["' + next(iter(found)) + '"]}.'
    )


def build_server(
    provider: EngineProvider,
    base: str,
    max_query_chars: int,
    linker: SourceLinker,
    readable: frozenset[str] | None = None,
) -> Server[Any]:
    """The MCP server for one request, whose caller may read `readable` (None: everything)."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    async def caller() -> tuple[SearchBackend, SourceLinks]:
        whole = (await searching.served(provider)).backend
        backend = scoped(whole, readable)
        return backend, caller_links(linker.of(whole, whole.documents), backend)

    def tools(documents: Sequence[DocumentInfo]) -> list[types.Tool]:
        return [
            types.Tool(
                name="search",
                title="Search the library",
                description=SEARCH_DESCRIPTION + collections_note(documents),
                input_schema=SearchArgs.model_json_schema(),
                output_schema=SearchOutput.model_json_schema(),
                annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
            ),
            types.Tool(
                name="fetch",
                title="Fetch a passage",
                description=FETCH_DESCRIPTION,
                input_schema=FetchArgs.model_json_schema(),
                output_schema=FetchOutput.model_json_schema(),
                annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
            ),
        ]

    def result(payload: BaseModel) -> types.CallToolResult:
        data = payload.model_dump(mode="json")
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(data, ensure_ascii=False))],
            structured_content=data,
        )

    def failure(message: str) -> types.CallToolResult:
        # Tool failures are results with is_error, so the model sees why and can recover.
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=message)], is_error=True
        )

    async def search(arguments: dict[str, Any]) -> types.CallToolResult:
        args = SearchArgs.model_validate(arguments)
        backend, sources = await caller()
        searcher = searching.Searcher.of(backend, max_query_chars, args.filter)
        hits = await run_in_threadpool(searcher, args.query, SEARCH_RESULTS)
        # The original file at the page where there is one (it opens in ChatGPT without a
        # token), else the passage; in the thread pool, as a first link hashes the file.
        links = await run_in_threadpool(citation_links, hits, sources, base)
        return result(
            SearchOutput(
                results=[
                    SearchHit(id=h.chunk.id, title=citations.title(h.chunk), url=url)
                    for h, url in zip(hits, links, strict=True)
                ]
            )
        )

    async def fetch(arguments: dict[str, Any]) -> types.CallToolResult:
        args = FetchArgs.model_validate(arguments)
        backend, sources = await caller()
        # In the thread pool: on S3 Vectors a fetch is a call to the service.
        chunk = await run_in_threadpool(backend.get_chunk, args.id)
        [url] = await run_in_threadpool(citation_links, [Hit(chunk, 0.0)], sources, base)
        return result(
            FetchOutput(
                id=chunk.id,
                title=chunk.label,
                text=chunk.text,
                url=url,
                metadata={
                    "source": chunk.source,
                    "doc_id": chunk.doc_id,
                    "page_start": chunk.page_start,
                    "page_end": chunk.page_end,
                    "location": citations.pages(chunk),
                    "heading_path": list(chunk.heading_path),
                },
            )
        )

    handlers = {"search": search, "fetch": fetch}

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        try:
            documents = (await caller())[0].documents
        except AthenaeumError:  # the index is not loaded: the tools, without its collections
            documents = []
        return types.ListToolsResult(tools=tools(documents))

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        handler = handlers.get(params.name)
        if handler is None:
            return failure(f"unknown tool {params.name!r}; the tools are search and fetch")
        try:
            return await handler(dict(params.arguments or {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "arguments"
            return failure(f"invalid arguments: {where}: {first['msg']}")
        except AthenaeumError as exc:
            return failure(exc.message)

    return Server(
        "athenaeum",
        version=__version__,
        title="Athenaeum document library",
        instructions="Search a private document library with `search`, then read passages "
        "with `fetch`. Cite passages by their title and URL.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def transport_security(settings: Settings, scope: Scope) -> TransportSecuritySettings:
    """DNS-rebinding protection that admits this deployment's own host names.

    Loopback names always; the public base URL's host; and on API Gateway the domain from the
    event's requestContext, which API Gateway sets (a client cannot forge it)."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = list(_LOOPBACK_HOSTS)
    for host in settings.trusted_hosts:
        name = f"[{host}]" if ":" in host and not host.startswith("[") else host
        hosts += [name, f"{name}:*"]
    origins = list(_LOOPBACK_ORIGINS) + list(settings.cors_origins)
    if settings.public_base_url:
        parts = urlsplit(settings.public_base_url)
        if parts.netloc:
            hosts.append(parts.netloc)
            origins.append(f"{parts.scheme}://{parts.netloc}")
    event = scope.get("aws.event")
    if isinstance(event, dict):
        domain = (event.get("requestContext") or {}).get("domainName")
        if isinstance(domain, str) and domain:
            hosts.append(domain)
            origins.append(f"https://{domain}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class MCPEndpoint:
    """A plain ASGI app mounted at /mcp; see the module docstring for why it is per-request."""

    def __init__(self, settings: Settings, provider: EngineProvider, linker: SourceLinker) -> None:
        self._settings = settings
        self._provider = provider
        self._linker = linker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            # Stateless: no server-initiated SSE stream to GET (it would stay open until a
            # Lambda timeout) and no session to DELETE. The transport spec allows a 405 here.
            error = status_response(
                405,
                "the MCP endpoint is stateless: POST JSON-RPC messages to it, not "
                f"{scope.get('method')}",
                headers={"Allow": "POST"},
            )
            await error(scope, receive, send)
            return
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        settings = self._settings
        try:
            base = public_base_url(settings, scope)
        except AthenaeumError as exc:  # an untrusted Host: the one error shape, not a link
            await from_exception(exc)(scope, receive, send)
            return
        server = build_server(
            self._provider,
            base,
            settings.max_query_chars,
            self._linker,
            searching.readable(settings, scope),
        )
        manager = StreamableHTTPSessionManager(
            app=server,
            json_response=True,
            stateless=True,
            security_settings=transport_security(settings, scope),
            max_request_body_size=settings.max_body_bytes,
        )
        async with manager.run():
            await manager.handle_request(scope, receive, _json_refusals(scope, receive, send))


def _json_refusals(scope: Scope, receive: Receive, send: Send) -> Send:
    """`send` with the transport's own plain-text refusals (a wrong Accept or Content-Type, a
    foreign Host or Origin) turned into the API's error shape; JSON-RPC errors, which are JSON
    already, pass through as they are."""
    held: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
            if message["status"] >= 400 and not content_type.startswith("application/json"):
                held["start"], held["body"] = message, b""
                return
        elif message["type"] == "http.response.body" and "start" in held:
            held["body"] += message.get("body", b"")
            if message.get("more_body", False):
                return
            text = " ".join(held["body"].decode("utf-8", "replace").split())[:300]
            status = int(held["start"]["status"])
            response = status_response(status, f"the MCP transport refused the request: {text}")
            await response(scope, receive, send)
            return
        await send(message)

    return wrapped
