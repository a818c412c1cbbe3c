"""`athenaeum index` with nothing to do answers without the embedding stack, and anything that
is something to do still loads the model and does it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from athenaeum.build.embedding import Embedder
from athenaeum.build.indexer import BuildOptions, IndexReport, build_index
from athenaeum.bundle import load_bundle, read_manifest
from tests.build.helpers import athenaeum_fresh

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "source"


def test_a_second_run_with_nothing_changed_never_imports_torch(
    tmp_path: Path, minilm_path: Path
) -> None:
    docs = shutil.copytree(SAMPLES, tmp_path / "docs")
    out = tmp_path / "index"
    args = ["index", str(docs), "--output", str(out), "--embed-model", str(minilm_path)]
    args += ["--device", "cpu"]

    first = athenaeum_fresh(*args)
    assert "3 documents: 3 added" in first.output and "Index bundle written" in first.output
    # A BERT model on CPU is exported from its files (tests/build/test_bert_export.py shows
    # the check sees what the command imports).
    assert first.loaded == []
    manifest = (out / "manifest.json").read_bytes()

    second = athenaeum_fresh(*args)
    assert "3 documents: 0 added, 0 changed, 3 unchanged, 0 removed." in second.output
    assert "the embedding model was not loaded" in second.output
    assert f"Nothing changed; {out} is up to date." in second.output
    assert second.loaded == []
    assert (out / "manifest.json").read_bytes() == manifest

    # One document changed: the model is loaded and that document, only, is embedded again.
    changed = docs / "troubleshooting.md"
    text = changed.read_text("utf-8") + (
        "\n## The reader lost power\n\nUnplug the reader, wait ten seconds and plug it in.\n"
    )
    changed.write_text(text, encoding="utf-8")
    # In a fresh interpreter as well: the CLI's console takes its width when it is imported, and
    # a worker's temporary folder is long enough to wrap at the default width.
    third = athenaeum_fresh(*args)
    assert "3 documents: 0 added, 1 changed, 2 unchanged, 0 removed." in third.output
    assert f"Index bundle written to {out}" in third.output
    bundle = load_bundle(out)
    (info,) = [d for d in bundle.manifest.documents if d.doc_id == "troubleshooting.md"]
    assert info.sha256 == hashlib.sha256(text.encode()).hexdigest()
    ours = [c for c in bundle.chunks if c.doc_id == "troubleshooting.md"]
    assert any("wait ten seconds" in c.text for c in ours)
    embedded = re.search(r"(\d+) chunks embedded", third.output)
    assert embedded is not None and int(embedded.group(1)) == len(ours)


# --- what counts as nothing to do, in process -------------------------------------------------


class ModelLoads(Exception):
    """Raised by `_refuse_model` where build_index would start loading the model."""


def _refuse_model(stage: str, done: int, total: int) -> None:
    if stage == "model":
        raise ModelLoads


@pytest.fixture(scope="module")
def sample_bundle(tmp_path_factory: pytest.TempPathFactory, minilm_embedder: Embedder) -> Path:
    """The sample library indexed by the packaged MiniLM; read-only (copy it to change it)."""
    root = tmp_path_factory.mktemp("noop")
    shutil.copytree(SAMPLES, root / "docs")
    build_index([root / "docs"], root / "index", embedder=minilm_embedder)
    return root / "index"


def _docs(tmp_path: Path) -> Path:
    return shutil.copytree(SAMPLES, tmp_path / "docs")


def _check(docs: Path, bundle: Path, minilm_path: Path, **options: Any) -> IndexReport:
    """build_index as `athenaeum index` calls it, stopped where it would load the model."""
    options.setdefault("embed_model", str(minilm_path))
    return build_index(
        [docs], bundle, BuildOptions(device="cpu", **options), progress=_refuse_model
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"max_tokens": 254}, {"query_prefix": "", "document_prefix": ""}, {"batch_size": 8}],
    ids=["as-built", "max-tokens-as-built", "prefixes-as-built", "batch-size"],
)
def test_nothing_to_do_is_told_without_the_model(
    options: dict[str, Any], tmp_path: Path, sample_bundle: Path, minilm_path: Path
) -> None:
    report = _check(_docs(tmp_path), sample_bundle, minilm_path, **options)
    assert (report.documents_unchanged, report.chunks_embedded) == (3, 0)
    assert not report.written and report.device is None and report.backend is None
    assert report.chunks_total == read_manifest(sample_bundle).counts.chunks


def _change_a_document(docs: Path) -> None:
    path = docs / "user-guide.md"
    path.write_text(path.read_text("utf-8") + "\nOne more sentence.\n", encoding="utf-8")


def _add_a_document(docs: Path) -> None:
    (docs / "faq.md").write_text("# FAQ\n\nAsk anything.\n", encoding="utf-8")


def _remove_a_document(docs: Path) -> None:
    (docs / "deployment-notes.md").unlink()


@pytest.mark.parametrize(
    ("edit", "options"),
    [
        (_change_a_document, {}),
        (_add_a_document, {}),
        (_remove_a_document, {}),
        (None, {"max_tokens": 128}),
        (None, {"overlap": 16}),
        (None, {"context": False}),
        (None, {"document_prefix": "passage: "}),
        (None, {"query_prefix": "query: "}),
        (None, {"encoder_precision": "fp32"}),
        (None, {"rebuild": True}),
        (None, {"embed_model": "athenaeum-test/not-in-the-cache"}),
    ],
    ids=[
        "document-changed",
        "document-added",
        "document-removed",
        "max-tokens",
        "overlap",
        "context",
        "document-prefix",
        "query-prefix",
        "encoder-precision",
        "rebuild",
        "unknown-model",
    ],
)
def test_anything_else_loads_the_model(
    edit: Any, options: dict[str, Any], tmp_path: Path, sample_bundle: Path, minilm_path: Path
) -> None:
    docs = _docs(tmp_path)
    if edit is not None:
        edit(docs)
    with pytest.raises(ModelLoads):
        _check(docs, sample_bundle, minilm_path, **options)


def test_a_model_folder_whose_files_changed_is_another_model(
    tmp_path: Path, minilm_path: Path
) -> None:
    # The packaged model as links in a folder of our own, so that a file of it can change.
    model = tmp_path / "model"
    for path in minilm_path.rglob("*"):
        if path.is_file():
            link = model / path.relative_to(minilm_path)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    docs, out = _docs(tmp_path), tmp_path / "index"
    first = build_index([docs], out, BuildOptions(embed_model=str(model), device="cpu"))
    assert first.written and first.device == "cpu"
    again = _check(docs, out, minilm_path, embed_model=str(model))  # the recorded fingerprint
    assert not again.written and again.device is None

    (model / "README.md").unlink()
    (model / "README.md").write_text("A model card rewritten with the weights.\n", "utf-8")
    with pytest.raises(ModelLoads):
        _check(docs, out, minilm_path, embed_model=str(model))


def test_a_bundle_fingerprinted_by_its_weights_is_kept_and_rewritten(
    tmp_path: Path, sample_bundle: Path, minilm_embedder: Embedder, minilm_path: Path
) -> None:
    """Bundles written before the files fingerprint recorded a local model by its loaded
    weights: the same weights keep every vector and the manifest gets the new fingerprint."""
    docs, out = _docs(tmp_path), shutil.copytree(sample_bundle, tmp_path / "index")

    def record(fingerprint: str) -> None:
        raw = json.loads((out / "manifest.json").read_text("utf-8"))
        raw["chunking"]["model_fingerprint"] = fingerprint
        (out / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")

    record(minilm_embedder.weights_fingerprint())
    vectors = load_bundle(out).vectors
    with pytest.raises(ModelLoads):  # the files fingerprint is not what the bundle says
        _check(docs, out, minilm_path)
    kept = build_index([docs], out, embedder=minilm_embedder)
    assert kept.written and kept.chunks_embedded == 0 and not kept.full_rebuild
    assert read_manifest(out).chunking["model_fingerprint"] == minilm_embedder.info.fingerprint
    assert np.array_equal(load_bundle(out).vectors, vectors)
    assert not _check(docs, out, minilm_path).written

    record("sha256:" + "0" * 64)  # other weights: every vector must go
    rebuilt = build_index([docs], out, embedder=minilm_embedder)
    assert rebuilt.full_rebuild and rebuilt.rebuild_reason == "model_fingerprint changed"
    assert rebuilt.chunks_embedded == rebuilt.chunks_total
