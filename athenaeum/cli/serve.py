"""`athenaeum serve` and `athenaeum openapi`: the index over HTTP, and the schema for a ChatGPT
action."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from athenaeum.cli.console import err_console, fail

if TYPE_CHECKING:
    from athenaeum.server.settings import Settings


def serve_command(
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            "-i",
            help="The index: a bundle folder, or s3://BUCKET/PREFIX holding a bundle or a "
            "published index (which is followed: a version `athenaeum ingest` publishes is "
            "served within ATHENAEUM_INDEX_REFRESH_S seconds). Default: ATHENAEUM_INDEX_DIR, "
            "else ATHENAEUM_INDEX_S3_URI.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Without OAuth or API keys configured only a loopback "
            "address is allowed, unless --insecure-no-auth is given.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="Port.")] = 8000,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve without any authentication on a non-loopback address. Anyone who can "
            "reach the port can read the whole index: use only on a private network.",
        ),
    ] = False,
    sources: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            help="The folder with the original files the index was built from (the folder "
            "given to `athenaeum convert`). Default: where convert recorded each file. "
            "Citations link to a file only while its sha256 matches the index.",
            show_default=False,
        ),
    ] = None,
    link_ttl: Annotated[
        int | None,
        typer.Option(
            "--link-ttl",
            min=60,
            max=604_800,
            help="Seconds a link to an original file stays valid. Default: "
            "ATHENAEUM_LINK_TTL_S, else 3600.",
            show_default=False,
        ),
    ] = None,
    s3vectors: Annotated[
        str | None,
        typer.Option(
            "--s3vectors",
            help="Search this Amazon S3 Vectors index, s3vectors://VECTOR_BUCKET/INDEX (what "
            "`athenaeum publish` filled), instead of loading a bundle. --index then names the "
            "bundle published to it, or a copy of its query side (manifest.json and encoder/): "
            "only the manifest and the query encoder are read. Uses the usual AWS credentials "
            "and region. Default: ATHENAEUM_S3VECTORS_INDEX when ATHENAEUM_INDEX_BACKEND is "
            "s3vectors.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the index over HTTP: /search, OpenAI-compatible /chat/completions, and MCP at /mcp.

    Settings come from ATHENAEUM_* environment variables (docs/settings.md): OAuth or API
    keys for auth, an OpenAI-compatible upstream for the generating model, CORS origins.
    The index is loaded before the server listens, so a bad bundle fails here.

    Example: athenaeum serve --index index/ --port 8000

    With the chunks in an Amazon S3 Vectors index (see `athenaeum publish`):

    athenaeum serve --index index/ --s3vectors s3vectors://vectors/library
    """
    from athenaeum.server.local import serve

    if sources is not None and not sources.is_dir():
        fail(f"--sources {sources} is not a folder")
    if s3vectors is not None and index is not None and index.startswith("s3://"):
        fail(
            "--s3vectors searches the service's index: give --index a local folder (the bundle "
            "published to it, or its query side), not an s3:// address"
        )
    settings = _settings(index, sources=sources, link_ttl=link_ttl, s3vectors=s3vectors)
    err_console.print(f"Loading the index and serving on http://{host}:{port} …")
    serve(settings, host=host, port=port, insecure_no_auth=insecure_no_auth)


def _settings(
    index: str | None, *, sources: Path | None, link_ttl: int | None, s3vectors: str | None
) -> Settings:
    """The server's settings: ATHENAEUM_* from the environment, overridden by the options."""
    from pydantic import ValidationError

    from athenaeum.server.settings import Settings

    overrides: dict[str, object] = {}
    if s3vectors is not None:
        overrides.update(
            index_backend="s3vectors",
            s3vectors_index=s3vectors,
            index_s3_uri=None,
            index_start_s3_uri=None,
        )
    if index is not None and index.startswith("s3://"):
        overrides.update(index_s3_uri=index, index_dir=None)
    elif index is not None:
        overrides.update(index_dir=Path(index), index_s3_uri=None, index_start_s3_uri=None)
    if sources is not None:
        overrides.update(sources_dir=sources, sources_s3_uri=None)
    if link_ttl is not None:
        overrides["link_ttl_s"] = link_ttl
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        fail(
            "invalid settings: "
            + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
        )


def openapi_command(
    server_url: Annotated[
        str,
        typer.Option(
            "--server-url",
            help="The API's public URL, as ChatGPT will call it (for example the API Gateway "
            "stage URL).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the schema to this file instead of standard output.",
            show_default=False,
        ),
    ] = None,
    allow_http: Annotated[
        bool,
        typer.Option(
            "--allow-http",
            help="Accept an http:// server URL (for other OpenAPI clients; ChatGPT refuses it).",
        ),
    ] = False,
) -> None:
    """Print the OpenAPI schema for a ChatGPT custom GPT action (search and fetch a passage).

    Paste it into the GPT editor's Actions and choose OAuth, or API key (Bearer) for
    `athenaeum serve` (the AWS deployment accepts only OAuth tokens); docs/chatgpt.md walks
    through it.

    Example: athenaeum openapi --server-url https://abc123.execute-api.eu-west-1.amazonaws.com/prod
    """
    import json

    from athenaeum.server.http.gpt_action import gpt_action_schema

    text = json.dumps(gpt_action_schema(server_url, allow_http=allow_http), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"Wrote the GPT action schema to {out}.")
