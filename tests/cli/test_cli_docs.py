"""docs/cli.md is the CLI's own help, regenerated; it may not drift."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from athenaeum.cli.main import app
from athenaeum.cli.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is out of date: run `uv run python -m athenaeum.cli.reference > docs/cli.md`"
    )


def test_every_command_and_option_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    runner = CliRunner()
    for command in ("convert", "index", "search", "eval", "serve", "openapi", "push"):
        assert f"## `athenaeum {command}`" in text
        help_text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        for word in help_text.split():
            if re.fullmatch(r"--[a-z][a-z-]*,?", word) and word != "--help":
                assert f"`{word.rstrip(',')}`" in text, (command, word)
