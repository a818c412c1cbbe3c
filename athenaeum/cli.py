"""The `athenaeum` command line. Every command is a thin wrapper over a library function."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from athenaeum import __version__
from athenaeum.errors import AthenaeumError

app = typer.Typer(
    name="athenaeum",
    help="Give an LLM a library: convert PDFs to markdown, index them, search and serve the index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """A user mistake: a one-line error, never a traceback."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


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


# --- commands -------------------------------------------------------------------------------


def main() -> None:
    try:
        app()
    except AthenaeumError as exc:
        fail(exc.message)
