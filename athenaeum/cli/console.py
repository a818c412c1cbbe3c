"""What every command shares on the terminal: the two consoles, `fail` for a user mistake, and
the progress display of named stages."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """A user mistake: a one-line error, never a traceback."""
    from rich.markup import escape

    # One line whatever the width, for logs; a path like "notes/[old]" is text, not markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def stage_progress(*, transient: bool = False) -> Progress:
    """A progress display of named stages (one bar each: done of total, time taken), on
    stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=transient,
    )


def stage_updater(progress: Progress) -> Callable[[str, int, int], None]:
    """`progress(stage, done, total)` callbacks drawn as one bar per stage on `progress`."""
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return update
