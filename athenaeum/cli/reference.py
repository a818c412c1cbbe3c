"""Render the CLI reference (docs/cli.md) from the commands themselves.

    uv run python -m athenaeum.cli.reference > docs/cli.md

tests/cli/test_cli_docs.py fails when docs/cli.md differs from what this prints, so the reference
cannot drift from `--help`.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from athenaeum.cli.main import app

HEADER = """# Command line reference

Generated from the commands' own `--help` by
`uv run python -m athenaeum.cli.reference > docs/cli.md`; a test fails when this file and the
code disagree.
"""


# Typer ships its own copy of click, so parameters are told apart by their declared kind.
def _is_option(param: Any) -> bool:
    return bool(param.param_type_name == "option")


def _option_row(param: Any, ctx: Any) -> str:
    if _is_option(param):
        names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
        if param.is_flag:
            kind = "flag"
        else:
            kind = str(param.display_type(ctx)).strip("<>").replace("list[str]", "text")
            if kind.startswith("list["):  # a repeatable choice: its choices
                kind = kind.removeprefix("list[").removesuffix("]")
            kind = kind.replace("|", "\\|")  # a choice's bar is not a column of the table
            if param.multiple:
                kind += ", repeatable"
        default = param.default
        shown = "" if default in (None, False, ()) or param.required else f"`{default}`"
        if param.required:
            shown = "required"
        help_text = " ".join((param.help or "").split())
        return f"| {names} | {kind} | {shown} | {help_text} |"
    raise TypeError(param)


def _section(name: str, command: Any, ctx: Any) -> list[str]:
    """The reference of `athenaeum NAME`; a group (`athenaeum keys`) gives one per subcommand."""
    sub = command.context_class(command, info_name=name.rsplit(" ", 1)[-1], parent=ctx)
    if hasattr(command, "list_commands"):
        parts: list[str] = []
        for child in command.list_commands(sub):
            parts.extend(_section(f"{name} {child}", command.get_command(sub, child), sub))
        return parts
    arguments = [p for p in command.params if not _is_option(p)]
    usage = " ".join(
        [f"athenaeum {name}"]
        + [f"{a.name.upper()}{'...' if a.nargs == -1 else ''}" for a in arguments if a.name]
        + ["[OPTIONS]"]
    )
    parts = [f"## `athenaeum {name}`\n\n```\n{usage}\n```\n"]
    parts.append(inspect.cleandoc(command.help or "") + "\n")
    for argument in arguments:
        help_text = " ".join((getattr(argument, "help", None) or "").split())
        parts.append(f"- `{(argument.name or '').upper()}`: {help_text}\n")
    options = [p for p in command.params if _is_option(p)]
    if options:
        rows = "\n".join(_option_row(o, sub) for o in options)
        parts.append(f"| option | value | default | meaning |\n|---|---|---|---|\n{rows}\n")
    return parts


def render() -> str:
    root: Any = typer.main.get_command(app)
    parts = [HEADER]
    ctx = root.context_class(root, info_name="athenaeum")
    for name in sorted(root.list_commands(ctx)):
        command = root.get_command(ctx, name)
        assert command is not None
        parts.extend(_section(name, command, ctx))
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
