"""Counting and cutting text in the bundle tokenizer's tokens (what chat's max_tokens counts)."""

from __future__ import annotations

import pytest

from athenaeum.retrieval.engine import SearchEngine
from athenaeum.retrieval.tokens import ELLIPSIS

TEXT = "Vitamin D deficiency is associated with impaired bone-mineralisation in adults."


def test_counts_word_pieces_without_special_tokens(scifact_engine: SearchEngine) -> None:
    tokens = scifact_engine.tokens
    assert tokens.count("") == 0
    assert tokens.count("vitamin") == 1
    # Longer than the encoder's 256-token window: nothing is truncated.
    long = " ".join(["vitamin"] * 600)
    assert tokens.count(long) == 600
    assert tokens.count(TEXT) > len(TEXT.split())


@pytest.mark.parametrize("limit", [2, 3, 5, 8, 12])
def test_cut_fits_ends_on_a_word_and_says_so(scifact_engine: SearchEngine, limit: int) -> None:
    tokens = scifact_engine.tokens
    cut = tokens.cut(TEXT, limit)
    assert cut.endswith(ELLIPSIS) and tokens.count(cut) <= limit
    kept = cut.removesuffix(ELLIPSIS)
    assert TEXT.startswith(kept)
    assert TEXT[len(kept)] == " "  # whole words only


def test_cut_keeps_what_fits_and_gives_up_when_nothing_does(scifact_engine: SearchEngine) -> None:
    tokens = scifact_engine.tokens
    assert tokens.cut(TEXT, tokens.count(TEXT)) == TEXT
    assert tokens.cut(TEXT, 1) == ""
    assert tokens.cut("", 0) == ""
