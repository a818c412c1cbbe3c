"""A model's identity from its files, without torch, equal to what a full build records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from athenaeum.build.embedding import Embedder, load_embedder
from athenaeum.build.model_folder import (
    FILES_FINGERPRINT_PREFIX,
    default_prefixes,
    files_fingerprint,
    locate,
)
from tests.build.helpers import linked_copy

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_local_folder_is_known_by_its_files_as_a_full_build_records_it(
    minilm_path: Path, minilm_embedder: Embedder, tmp_path: Path
) -> None:
    found = locate(str(minilm_path))
    assert found is not None and found.revision is None
    assert found.fingerprint == minilm_embedder.info.fingerprint  # load_embedder's, with torch
    assert found.fingerprint.startswith(FILES_FINGERPRINT_PREFIX)

    # The same files elsewhere are the same model; any changed file is another.
    copy = linked_copy(minilm_path, tmp_path / "copy")
    (copy / ".cache").mkdir()
    (copy / ".cache" / "download.metadata").write_text("etag, time", encoding="utf-8")
    assert files_fingerprint(copy) == found.fingerprint
    (copy / "1_Pooling" / "config.json").unlink()
    pooling = json.loads((minilm_path / "1_Pooling" / "config.json").read_text("utf-8"))
    (copy / "1_Pooling" / "config.json").write_text(
        json.dumps({**pooling, "pooling_mode_mean_tokens": False}), encoding="utf-8"
    )
    assert files_fingerprint(copy) != found.fingerprint


def test_a_hub_id_is_its_cached_commit_as_a_full_build_records_it(
    minilm_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Hugging Face cache as the Hub client leaves it, holding the packaged model as a commit.
    repo = tmp_path / "hub" / "models--athenaeum-test--minilm"
    linked_copy(minilm_path, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(tmp_path / "hub"))

    found = locate("athenaeum-test/minilm")
    assert found is not None
    assert (found.revision, found.fingerprint) == (COMMIT, f"athenaeum-test/minilm@{COMMIT}")
    assert found.path == repo / "snapshots" / COMMIT

    # Offline (HF_HUB_OFFLINE): read from the cached files, and loaded with torch, the same.
    embedder = load_embedder("athenaeum-test/minilm", device="cpu")
    traced = load_embedder("athenaeum-test/minilm", device="cpu", torch_export=True)
    try:
        assert embedder._model is None and traced._model is not None
        assert (embedder.info.revision, embedder.info.fingerprint) == (COMMIT, found.fingerprint)
        assert embedder.info == traced.info
    finally:
        embedder.close()
        traced.close()

    assert locate("athenaeum-test/not-cached") is None
    assert locate("not a repository id!") is None


def test_default_prefixes_are_the_saved_prompts(minilm_path: Path, tmp_path: Path) -> None:
    assert default_prefixes(minilm_path) == ("", "")

    def saved(prompts: object) -> Path:
        folder = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "config_sentence_transformers.json").write_text(
            json.dumps({"prompts": prompts}), encoding="utf-8"
        )
        return folder

    assert default_prefixes(saved({"query": "query: ", "document": "passage: "})) == (
        "query: ",
        "passage: ",
    )
    assert default_prefixes(saved({"query": "q: "})) == ("q: ", "")
    assert default_prefixes(saved({"query": None, "document": ""})) == ("", "")
    # Which prompt a "passage" becomes depends on the sentence-transformers version: not told.
    assert default_prefixes(saved({"query": "q: ", "passage": "p: "})) is None
    assert default_prefixes(saved(["not", "a", "mapping"])) is None
