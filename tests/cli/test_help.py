"""`--help` shows a switch as a switch: a flag with a value placeholder (`--allow-http <bool>`)
invites a value that the command then refuses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer.main
from typer._click import Context
from typer.core import TyperOption
from typer.testing import CliRunner

from athenaeum.cli.main import app

PLACEHOLDER = re.compile(r"<[^<>]+>")


def _option_lines(help_text: str, option: str) -> list[str]:
    """The lines of the options panel that start with `option` (its first line)."""
    pattern = re.compile(rf"^[│|]?\s*(\*\s+)?{re.escape(option)}(\s|,|$)")
    return [line for line in help_text.splitlines() if pattern.match(line)]


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group of the CLI, with the arguments that reach it, groups inside
    groups included."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_command_shows_flags_without_a_value_and_values_with_one() -> None:
    runner = CliRunner()
    checked_flags = checked_values = commands = 0
    for args, command in _commands(typer.main.get_command(app)):
        name = " ".join(args)
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (name, result.output)
        commands += 1
        for param in command.get_params(Context(command)):
            if not isinstance(param, TyperOption) or param.hidden:
                continue
            long_name = next(o for o in param.opts if o.startswith("--"))
            lines = _option_lines(result.output, long_name)
            assert len(lines) == 1, (name, long_name, result.output)
            shown = PLACEHOLDER.findall(lines[0].split(long_name, 1)[1])
            if param.is_flag and not param.count:
                assert not shown, f"athenaeum {name} --help shows the switch {long_name} as {shown}"
                checked_flags += 1
            else:
                assert shown, f"athenaeum {name} --help shows no value for {long_name}"
                checked_values += 1
    # Every command has --help, and the flags named in the issue are among those checked.
    assert commands >= 11 and checked_flags >= commands + 3 and checked_values >= 10
