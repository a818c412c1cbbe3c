"""The `athenaeum` command: the app, its one error boundary, and the commands in the order
`--help` lists them. Every command is a thin wrapper over a library function; each lives in the
module of its concern (serve, search, build, cloud)."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup, TyperOption

from athenaeum import __version__
from athenaeum.cli import build, cloud, keys, search, serve
from athenaeum.cli.console import console, fail
from athenaeum.errors import AthenaeumError

_option_type = TyperOption.display_type_rich


def _switch_shows_no_value(self: TyperOption, ctx: Any) -> str | None:
    """Typer's rich help shows a flag's type as if it took a value (`--allow-http <bool>`), and
    a user who types the value is told the option takes none. Replaced here, once, for every
    command and group (tests/cli/test_help.py reads them all): a switch shows no type."""
    if self.is_flag and not self.count:
        return None
    return _option_type(self, ctx)


TyperOption.display_type_rich = _switch_shows_no_value  # type: ignore[method-assign]


class _Commands(TyperGroup):
    """The CLI's one error boundary: a domain error from any command is a one-line message and
    exit status 2, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AthenaeumError as exc:
            fail(exc.message)


app = typer.Typer(
    name="athenaeum",
    cls=_Commands,
    help="Give an LLM a library: convert PDFs to markdown, index them, search and serve the index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

for name, command in (
    ("serve", serve.serve_command),
    ("openapi", serve.openapi_command),
    ("search", search.search_command),
    ("verify", search.verify_command),
    ("eval", search.eval_command),
    ("convert", build.convert_command),
    ("index", build.index_command),
    ("push", cloud.push_command),
    ("publish", cloud.publish_command),
    ("ingest", cloud.ingest_command),
):
    app.command(name)(command)
app.add_typer(keys.app, name="keys")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"athenaeum {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Give an LLM a library: convert PDFs to markdown, index them, search and serve the index."""


def main() -> None:
    app()
