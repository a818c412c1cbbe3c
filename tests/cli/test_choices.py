"""The CLI's choice options: the library's own choices, and a bad one refused before any work."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from athenaeum.build import embedding
from athenaeum.cli import build, search
from athenaeum.cli.main import app
from athenaeum.retrieval.backend import SEARCH_MODES


def test_the_choices_are_the_library_s() -> None:
    assert tuple(search.Mode) == SEARCH_MODES
    assert get_args(build.Device) == get_args(embedding.Device)
    assert get_args(build.EncoderPrecision) == embedding.ENCODER_PRECISIONS


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["search", "q", "--index", "{missing}", "--mode", "fuzzy"], "--mode"),
        (["eval", "{missing}", "--mode", "dense", "--mode", "fuzzy"], "--mode"),
        (["index", "{missing}", "--output", "{missing}", "--device", "tpu"], "--device"),
        (
            ["index", "{missing}", "--output", "{missing}", "--encoder-precision", "fp16"],
            "--encoder-precision",
        ),
    ],
)
def test_a_bad_choice_is_refused_before_any_work(
    tmp_path: Path, args: list[str], option: str
) -> None:
    missing = str(tmp_path / "missing")  # any work would fail on it with another message
    result = CliRunner().invoke(
        app, [a.format(missing=missing) for a in args], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert "missing" not in result.output
