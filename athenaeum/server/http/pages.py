"""The two HTML pages a person may open: the front door (`GET /` in a browser) and the API
reference (`GET /docs`), rendered here from the app's own OpenAPI schema.

Plain HTML with a little inline CSS: no script, no font, no image and nothing fetched from
another host, so both pages work offline, under a strict network policy, and behind API
Gateway alike; `PAGE_HEADERS` forbid the browser from loading anything else.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Nothing may be loaded, framed or submitted: the pages are self-contained.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Vary": "Accept",
}

_STYLE = """
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:52rem;margin:2rem auto;
padding:0 1rem;color:#1d2330;background:#fff}
h1{font-size:1.8rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #dde2ea}
h3{margin-bottom:.3rem}code,pre{font:14px/1.4 ui-monospace,Menlo,Consolas,monospace;
background:#f2f4f8;border-radius:4px}code{padding:0 .25rem}pre{padding:.6rem .8rem;
overflow-x:auto}a{color:#1f5fbf}.lead{color:#4a5466;margin-top:0}.status{padding:.6rem .8rem;
border-radius:6px;border:1px solid}.ok{background:#eefaf1;border-color:#9bd3aa}
.down{background:#fff4e5;border-color:#f0c27a}table{border-collapse:collapse;width:100%;
margin:.4rem 0 1rem}th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;
border-bottom:1px solid #e6e9ef}th{font-weight:600;background:#f7f8fa}.method{font-weight:700;
color:#fff;background:#4a5466;border-radius:4px;padding:0 .4rem;font-size:.85rem}
.GET{background:#1f7a4d}.POST{background:#1f5fbf}.tag{color:#4a5466;font-size:.9rem}
footer{margin-top:3rem;color:#6b7385;font-size:.9rem}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _text(value: str) -> str:
    """Escaped text, with the `code` spans the schema's descriptions use."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(value))


def _link(href: str, label: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>'


# --- the front door ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSummary:
    """What the front door says of the index: no more than /health says."""

    loaded: bool
    documents: int | None = None
    chunks: int | None = None
    model: str | None = None
    index_version: str | None = None
    created_at: str | None = None


@dataclass(frozen=True)
class FrontDoor:
    name: str
    version: str
    description: str
    index: IndexSummary
    # Credentials accepted, by kind ("api_key", "oauth", ...); empty when none is needed.
    credentials: Sequence[str]
    links: Mapping[str, str]


_CREDENTIALS = {
    "api_key": "an API key (its owner makes one with <code>athenaeum keys create NAME</code>)",
    "oauth": "an OAuth access token from the configured identity provider",
}


def front_page(door: FrontDoor) -> str:
    links = door.links
    index = door.index
    if index.loaded:
        counts = (
            f": <strong>{index.documents:,} documents</strong> in {index.chunks:,} passages,"
            if index.documents is not None and index.chunks is not None
            else ","
        )
        status = (
            f'<p class="status ok">The index is loaded{counts} embedded with '
            f"<code>{html.escape(index.model or '')}</code> (version "
            f"<code>{html.escape((index.index_version or '')[:12])}</code>, built "
            f"{html.escape((index.created_at or '')[:10])}).</p>"
        )
    else:
        status = (
            '<p class="status down">The index is not loaded right now; '
            f"{_link(links['health'], '/health')} says why.</p>"
        )
    if door.credentials:
        accepted = " or ".join(_CREDENTIALS.get(c, c) for c in door.credentials)
        auth = (
            f"<p>Every call but this page, {_link(links['health'], '/health')} and the docs "
            f"needs <code>Authorization: Bearer &lt;token&gt;</code>, with {accepted}.</p>"
        )
    else:
        auth = "<p>This server needs no credentials: it listens on this machine only.</p>"
    base = links["self"].rstrip("/")
    server = base if base.startswith("https://") else "https://YOUR-PUBLIC-URL"
    https_note = (
        ""
        if base.startswith("https://")
        else " ChatGPT calls only public https URLs: deploy it (<code>docs/deployment.md</code>) "
        "or put this server behind one."
    )
    curl = (
        f"curl -sS {links['search']} -H 'Content-Type: application/json' \\\n"
        + ('  -H "Authorization: Bearer $ATHENAEUM_TOKEN" \\\n' if door.credentials else "")
        + '  -d \'{"query": "your question", "top_k": 5}\''
    )
    body = f"""
<h1>{html.escape(door.name)}</h1>
<p class="lead">{_text(door.description)}</p>
{status}
<h2>Connect</h2>
<h3>ChatGPT (a custom GPT action)</h3>
<p>Write the action's schema with <code>athenaeum openapi --server-url {html.escape(server)}</code>
and paste it into the GPT editor's Actions; the project's <code>docs/chatgpt.md</code> walks
through each screen.{https_note}</p>
<h3>MCP clients (ChatGPT connectors, Claude, others)</h3>
<p>The MCP endpoint (streamable HTTP, tools <code>search</code> and <code>fetch</code>):
<code>{html.escape(links["mcp"])}</code></p>
<h3>OpenAI SDK and anything OpenAI-compatible</h3>
<p>Base URL <code>{html.escape(links["openai"])}</code>: <code>/models</code>,
<code>/chat/completions</code>, <code>/search</code>.</p>
<h3>curl</h3>
<pre>{html.escape(curl)}</pre>
<h2>Authentication</h2>
{auth}
<h2>Documentation</h2>
<ul>
<li>{_link(links["docs"], "API reference")}: every endpoint, its parameters and answers.</li>
<li>{_link(links["openapi"], "OpenAPI schema")} (JSON), for generated clients.</li>
<li>{_link(links["health"], "Health")}: whether the index is loaded, with its facts.</li>
</ul>
<footer>{html.escape(door.name)} {html.escape(door.version)}. An API client that asks this URL
for JSON gets this page's content as JSON.</footer>
"""
    return _page(door.name, body)


# --- the API reference --------------------------------------------------------------------------

_METHODS = ("get", "post", "put", "patch", "delete")


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: Mapping[str, Any]) -> str:
    """A schema's type in one line of HTML, linking to named schemas."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{html.escape(name)}">{html.escape(name)}</a>'
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " | ".join(_type(s) for s in schema[combinator])
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _type(schema["allOf"][0])
    if "const" in schema:
        return f"<code>{html.escape(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{html.escape(json.dumps(v))}</code>" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return "object of " + (_type(extra) if isinstance(extra, dict) else "anything")
    return html.escape(str(kind or "any"))


def _limits(schema: Mapping[str, Any]) -> str:
    words = {
        "minimum": "at least",
        "maximum": "at most",
        "minLength": "length at least",
        "maxLength": "length at most",
        "minItems": "at least {} items",
        "maxItems": "at most {} items",
    }
    parts = []
    for key, word in words.items():
        if key in schema:
            parts.append(word.format(schema[key]) if "{}" in word else f"{word} {schema[key]}")
    if "default" in schema:
        parts.append(f"default <code>{html.escape(json.dumps(schema['default']))}</code>")
    return "; ".join(parts)


def _rows(rows: Iterable[Sequence[str]], head: Sequence[str]) -> str:
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _properties(schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", ()))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        note = _text(prop.get("description", ""))
        limits = _limits(prop)
        rows.append(
            (
                f"<code>{html.escape(name)}</code>",
                _type(prop),
                "yes" if name in required else "",
                note + (f" <span class=tag>({limits})</span>" if limits else ""),
            )
        )
    if not rows:
        return f"<p>{_type(schema)}</p>"
    return _rows(rows, ("field", "type", "required", "description"))


def _operation(path: str, method: str, op: Mapping[str, Any]) -> str:
    anchor = html.escape(op.get("operationId") or f"{method}-{path}", quote=True)
    access = "needs a bearer token" if op.get("security") else "public"
    parts = [
        f'<section id="{anchor}"><h3><span class="method {method.upper()}">{method.upper()}'
        f"</span> <code>{html.escape(path)}</code></h3>",
        f"<p><strong>{_text(op.get('summary', ''))}</strong> <span class=tag>({access})</span></p>",
    ]
    if op.get("description"):
        parts.append(f"<p>{_text(op['description'])}</p>")
    params = op.get("parameters", [])
    if params:
        parts.append("<h4>Parameters</h4>")
        parts.append(
            _rows(
                (
                    (
                        f"<code>{html.escape(p['name'])}</code>",
                        html.escape(p.get("in", "")),
                        _type(p.get("schema", {})),
                        "yes" if p.get("required") else "",
                        _text(p.get("description", "")),
                    )
                    for p in params
                ),
                ("name", "in", "type", "required", "description"),
            )
        )
    content = op.get("requestBody", {}).get("content", {})
    for media, body in content.items():
        parts.append(f"<h4>Request body</h4><p><code>{html.escape(media)}</code>: ")
        parts.append(f"{_type(body.get('schema', {}))}</p>")
    responses = op.get("responses", {})
    if responses:
        rows = []
        for status, response in responses.items():
            media = response.get("content", {})
            shapes = ", ".join(
                f"{_type(m.get('schema', {}))} (<code>{html.escape(name)}</code>)"
                for name, m in media.items()
            )
            rows.append((html.escape(str(status)), _text(response.get("description", "")), shapes))
        parts.append("<h4>Responses</h4>" + _rows(rows, ("status", "meaning", "body")))
    parts.append("</section>")
    return "".join(parts)


def reference_page(schema: Mapping[str, Any], links: Mapping[str, str]) -> str:
    """The API reference: every operation of the OpenAPI schema, then every named schema."""
    info = schema.get("info", {})
    title = f"{info.get('title', 'API')} API reference"
    toc, operations = [], []
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            anchor = html.escape(op.get("operationId") or f"{method}-{path}", quote=True)
            toc.append(
                f'<li><a href="#{anchor}"><code>{method.upper()} {html.escape(path)}</code></a> '
                f"{_text(op.get('summary', ''))}</li>"
            )
            operations.append(_operation(path, method, op))
    security = schema.get("components", {}).get("securitySchemes", {})
    auth = "".join(
        f"<p><code>{html.escape(name)}</code>: {html.escape(s.get('scheme', s.get('type', '')))}"
        f" &mdash; {_text(s.get('description', ''))}</p>"
        for name, s in security.items()
    )
    named = schema.get("components", {}).get("schemas", {})
    schemas = "".join(
        f'<section id="schema-{html.escape(name, quote=True)}"><h3>{html.escape(name)}</h3>'
        + (f"<p>{_text(s['description'])}</p>" if s.get("description") else "")
        + _properties(s)
        + "</section>"
        for name, s in named.items()
    )
    body = f"""
<h1>{html.escape(title)}</h1>
<p class="lead">{_text(info.get("description", ""))}</p>
<p>Version {html.escape(str(info.get("version", "")))}.
{_link(links["home"], "Front page")} &middot; {_link(links["openapi"], "OpenAPI schema (JSON)")}
&middot; MCP endpoint <code>{html.escape(links["mcp"])}</code> (streamable HTTP; not in this
schema).</p>
<h2>Authentication</h2>
{auth or "<p>None.</p>"}
<h2>Endpoints</h2>
<ul>{"".join(toc)}</ul>
{"".join(operations)}
<h2>Schemas</h2>
{schemas}
"""
    return _page(title, body)
