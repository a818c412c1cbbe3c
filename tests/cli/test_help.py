"""`--help` shows a switch as a switch: a flag with a value placeholder (`--allow-http <bool>`)
invites a value that the command then refuses."""

from __future__ import annotations

import re

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


def test_every_command_shows_flags_without_a_value_and_values_with_one() -> None:
    group = typer.main.get_command(app)
    commands: dict[str, list[str]] = {"": []}
    commands.update({name: [name] for name in group.commands})  # type: ignore[attr-defined]
    runner = CliRunner()
    checked_flags = checked_values = 0
    for name, args in commands.items():
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (name, result.output)
        command = group if not args else group.commands[name]  # type: ignore[attr-defined]
        params = command.get_params(Context(command))
        for param in params:
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
    assert checked_flags >= len(commands) + 3 and checked_values >= 10
