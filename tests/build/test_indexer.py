"""build_index end to end on small real documents with the real MiniLM model and real bundles."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
from typer.testing import CliRunner

from athenaeum.build.embedding import Embedder
from athenaeum.build.indexer import BuildOptions, build_index, discover_files
from athenaeum.build.sources import page_marker, render_markdown
from athenaeum.bundle import (
    HNSW_DEFAULTS,
    HNSW_THRESHOLD,
    choose_dense_kind,
    load_bundle,
    read_manifest,
)
from athenaeum.bundle.writer import build_fp16_index
from athenaeum.cli.main import app
from athenaeum.errors import InvalidInputError
from athenaeum.retrieval.engine import SearchEngine
from athenaeum.retrieval.lexical import BM25Index
from tests.conftest import SCIFACT_DIR


def _scifact(n: int) -> list[dict[str, str]]:
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]


def _write_docs(folder: Path) -> dict[str, Path]:
    """Three small documents: a converted PDF with pages, a plain markdown file, a text file."""
    folder.mkdir(parents=True, exist_ok=True)
    records = _scifact(6)
    pages = "\n\n".join(
        [
            page_marker(1),
            "# Vitamin D",
            records[0]["text"],
            page_marker(2),
            "## Results",
            records[1]["text"],
        ]
    )
    files = {
        "paper.md": render_markdown(
            {"source": "paper.pdf", "title": "Vitamin D", "pages": 2}, pages
        ),
        "notes/guide.md": (
            f"# Guide\n\n{records[2]['text']}\n\n## Details\n\n{records[3]['text']}\n"
        ),
        "plain.txt": f"{records[4]['text']}\n\n{records[5]['text']}\n",
    }
    paths = {}
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths[rel] = path
    return paths


def _vectors_by_chunk(bundle_dir: Path) -> dict[str, np.ndarray]:
    bundle = load_bundle(bundle_dir)
    return {c.id: bundle.vectors[i] for i, c in enumerate(bundle.chunks)}


def test_incremental_rebuilds_embed_only_what_changed(
    tmp_path: Path, minilm_embedder: Embedder
) -> None:
    docs, out = tmp_path / "docs", tmp_path / "index"
    paths = _write_docs(docs)
    stages: set[str] = set()
    first = build_index(
        [docs], out, embedder=minilm_embedder, progress=lambda s, d, t: stages.add(s)
    )
    assert (first.documents_added, first.documents_changed, first.documents_removed) == (3, 0, 0)
    assert first.chunks_embedded == first.chunks_total > 3 and first.written
    assert stages == {"chunking", "embedding"}
    bundle = load_bundle(out)
    assert bundle.manifest.dense.kind == "flat"
    assert {d.doc_id for d in bundle.manifest.documents} == {
        "paper.md",
        "notes/guide.md",
        "plain.txt",
    }
    paper = [c for c in bundle.chunks if c.doc_id == "paper.md"]
    assert {c.source for c in paper} == {"paper.pdf"} and paper[0].page_start == 1
    assert paper[-1].page_end == 2 and paper[-1].heading_path == ["Vitamin D", "Results"]
    before = _vectors_by_chunk(out)

    # Nothing changed: nothing embedded, the bundle is left alone.
    again = build_index([docs], out, embedder=minilm_embedder)
    assert (again.documents_unchanged, again.chunks_embedded, again.written) == (3, 0, False)

    # One document changed: only its chunks are embedded; the others keep their exact vectors.
    paths["plain.txt"].write_text("Entirely new text about sleep and memory.\n", encoding="utf-8")
    changed = build_index([docs], out, embedder=minilm_embedder)
    assert (changed.documents_changed, changed.documents_unchanged, changed.documents_added) == (
        1,
        2,
        0,
    )
    assert changed.chunks_embedded == 1 and not changed.full_rebuild
    after = _vectors_by_chunk(out)
    kept = [cid for cid in before if cid in after]
    assert len(kept) == len(before) - len([c for c in bundle.chunks if c.doc_id == "plain.txt"])
    for cid in kept:
        assert np.array_equal(before[cid], after[cid])
    # The new vector is the model's vector for that text (rows were not shuffled).
    new_bundle = load_bundle(out)
    row = next(i for i, c in enumerate(new_bundle.chunks) if c.doc_id == "plain.txt")
    # Embedded with its title (the file name, as a .txt has no other) in front.
    expected = minilm_embedder.embed_documents(
        ["plain\n\nEntirely new text about sleep and memory."]
    )[0]
    assert float(new_bundle.vectors[row] @ expected) > 0.9999

    # One document deleted: its chunks are gone from the bundle, from BM25 too.
    paths["notes/guide.md"].unlink()
    removed = build_index([docs], out, embedder=minilm_embedder)
    assert (removed.documents_removed, removed.chunks_embedded) == (1, 0)
    final = load_bundle(out)
    assert "notes/guide.md" not in {c.doc_id for c in final.chunks}
    assert final.bm25.n_docs == len(final.chunks) == removed.chunks_total

    # --rebuild embeds everything again.
    forced = build_index([docs], out, BuildOptions(rebuild=True), embedder=minilm_embedder)
    assert forced.full_rebuild and forced.rebuild_reason == "--rebuild"
    assert forced.chunks_embedded == forced.chunks_total


def test_the_embedding_stage_reuses_the_tokens_counted_while_chunking(
    tmp_path: Path, minilm_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every chunk's text is tokenized while chunking; the embedding stage tokenizes none of
    them again, and the vectors are those of texts tokenized afresh."""
    docs, out = tmp_path / "docs", tmp_path / "index"
    _write_docs(docs)
    feeds = minilm_embedder._feeds
    tokenized_for_embedding: list[str] = []
    token_ids = feeds.token_ids

    def spy(texts: list[str]) -> list[np.ndarray]:
        tokenized_for_embedding.extend(texts)
        return token_ids(texts)

    monkeypatch.setattr(feeds, "token_ids", spy)
    report = build_index([docs], out, embedder=minilm_embedder)
    monkeypatch.undo()
    assert report.chunks_embedded >= 5
    assert tokenized_for_embedding == []
    bundle = load_bundle(out)
    records = list(bundle.chunks)
    from athenaeum.build.chunking import embed_text
    from athenaeum.build.indexer import chunking_params

    params = chunking_params(bundle.manifest.chunking)
    texts = [
        embed_text(c.text, c.title, c.heading_path, minilm_embedder.count_tokens, params)
        for c in records
    ]
    afresh = minilm_embedder.embed_documents(texts)
    # The bundle keeps fp16 codes: the same vectors, each within one fp16 step of the other's
    # rounding (a different token count would move them by orders of magnitude more).
    stored = bundle.vectors.all()
    assert np.abs(stored - afresh.astype(np.float16).astype(np.float32)).max() < 1.5e-4


def test_changed_chunking_parameters_force_a_full_rebuild(
    tmp_path: Path, minilm_embedder: Embedder
) -> None:
    docs, out = tmp_path / "docs", tmp_path / "index"
    _write_docs(docs)
    build_index([docs], out, embedder=minilm_embedder)
    report = build_index(
        [docs], out, BuildOptions(max_tokens=128, overlap=16), embedder=minilm_embedder
    )
    assert report.full_rebuild and report.rebuild_reason == "max_tokens changed"
    assert report.chunks_embedded == report.chunks_total
    assert read_manifest(out).chunking["max_tokens"] == 128
    assert all(minilm_embedder.count_tokens(c.text) <= 128 for c in load_bundle(out).chunks)


def test_a_crash_while_writing_leaves_the_previous_bundle(
    tmp_path: Path, minilm_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs, out = tmp_path / "docs", tmp_path / "index"
    paths = _write_docs(docs)
    build_index([docs], out, embedder=minilm_embedder)
    manifest_before = (out / "manifest.json").read_bytes()
    files_before = sorted(p.name for p in out.rglob("*"))

    def crash(self: BM25Index, path: Path, **_: object) -> None:
        path.write_bytes(b"half a file")  # chunks.z and dense.faiss are already written
        raise KeyboardInterrupt

    paths["plain.txt"].write_text("Changed so that a new bundle is written.\n", encoding="utf-8")
    monkeypatch.setattr(BM25Index, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        build_index([docs], out, embedder=minilm_embedder)
    monkeypatch.undo()

    assert (out / "manifest.json").read_bytes() == manifest_before
    assert sorted(p.name for p in out.rglob("*")) == files_before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs
    assert len(load_bundle(out).chunks) > 0  # verified by hash: intact

    # An interruption while embedding leaves it alone too, and the next run picks up the change.
    def interrupt(stage: str, done: int, total: int) -> None:
        if stage == "embedding":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index([docs], out, embedder=minilm_embedder, progress=interrupt)
    assert (out / "manifest.json").read_bytes() == manifest_before
    assert build_index([docs], out, embedder=minilm_embedder).documents_changed == 1


def test_a_beir_corpus_is_indexed_and_searchable(tmp_path: Path, minilm_embedder: Embedder) -> None:
    records = _scifact(24)
    corpus = tmp_path / "scifact" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (corpus.parent / "queries.jsonl").write_text('{"_id": "1", "text": "ignored"}\n', "utf-8")
    out = tmp_path / "index"
    report = build_index([corpus.parent], out, embedder=minilm_embedder)
    assert report.documents_added == 24 and report.chunks_total >= 24
    bundle = load_bundle(out)
    assert [d.doc_id for d in bundle.manifest.documents] == [r["_id"] for r in records]
    first = [c for c in bundle.chunks if c.doc_id == records[0]["_id"]]
    assert first[0].text.startswith(records[0]["title"]) and first[0].source == "corpus.jsonl"

    engine = SearchEngine.load(out)
    target = records[17]
    for mode in ("dense", "bm25", "hybrid"):
        (hit,) = engine.search(target["title"], top_k=1, mode=mode)
        assert hit.chunk.doc_id == target["_id"], mode


def test_inputs_are_found_filtered_and_checked(tmp_path: Path, minilm_embedder: Embedder) -> None:
    docs = tmp_path / "docs"
    _write_docs(docs)
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "secret.md").write_text("# no", encoding="utf-8")
    (docs / "image.png").write_bytes(b"\x89PNG")
    (docs / "drafts").mkdir()
    (docs / "drafts" / "wip.md").write_text("# wip", encoding="utf-8")
    rels = lambda **kw: [rel for _, rel in discover_files([docs], **kw)]  # noqa: E731
    assert rels() == ["drafts/wip.md", "notes/guide.md", "paper.md", "plain.txt"]
    assert rels(exclude=["drafts/*"]) == ["notes/guide.md", "paper.md", "plain.txt"]
    assert rels(include=["*.md"], exclude=["wip.md"]) == ["notes/guide.md", "paper.md"]
    assert rels(include=["notes/*"]) == ["notes/guide.md"]
    # An output folder inside the inputs is never read back as input.
    assert rels(skip=docs / "drafts") == ["notes/guide.md", "paper.md", "plain.txt"]

    with pytest.raises(InvalidInputError, match="does not exist"):
        build_index([tmp_path / "missing"], tmp_path / "out", embedder=minilm_embedder)
    with pytest.raises(InvalidInputError, match="no documents"):
        build_index(
            [docs], tmp_path / "out", BuildOptions(include=["*.pdf"]), embedder=minilm_embedder
        )
    with pytest.raises(InvalidInputError, match="is not an index bundle"):
        build_index([docs], docs / "notes", embedder=minilm_embedder)
    with pytest.raises(InvalidInputError, match="more than the model reads"):
        build_index(
            [docs], tmp_path / "out", BuildOptions(max_tokens=300), embedder=minilm_embedder
        )
    with pytest.raises(InvalidInputError, match="two documents have the id"):
        build_index(
            [docs / "paper.md", docs / "drafts" / ".." / "paper.md"],
            tmp_path / "out",
            embedder=minilm_embedder,
        )


def test_hnsw_bundles_load_and_match_exact_search(
    tmp_path: Path, minilm_embedder: Embedder
) -> None:
    docs, out = tmp_path / "docs", tmp_path / "index"
    _write_docs(docs)
    report = build_index([docs], out, BuildOptions(dense="hnsw"), embedder=minilm_embedder)
    assert report.dense_kind == "hnsw" and (out / "dense.faiss").is_file()
    assert isinstance(faiss.downcast_index(load_bundle(out).dense), faiss.IndexHNSW)
    assert choose_dense_kind(HNSW_THRESHOLD - 1) == "flat"
    assert choose_dense_kind(HNSW_THRESHOLD) == "hnsw"


@pytest.mark.slow
def test_hnsw_recall_at_10_against_exact_search() -> None:
    """HNSW as the writer builds it (fp16 codes in an IndexHNSWSQ, the bundle's parameters)
    keeps >= 95% of exact fp32 search's top 10.

    Synthetic stand-in for sentence embeddings: 10,000 unit vectors from 100 topic clusters in a
    128-dimensional subspace of the 384 dimensions, plus a little noise in all of them
    (sentence embeddings have a low intrinsic dimension). Measured here with IndexHNSWFlat:
    recall@10 1.000 at efSearch 128 (and 0.946 on a harder set: 20,000 vectors, isotropic noise
    in all 384); benchmarks/bench_vectors.py measures the 400,000-chunk bundle.
    """
    rng = np.random.default_rng(7)
    n, d, latent = 10_000, 384, 128
    basis = np.linalg.qr(rng.standard_normal((d, latent)))[0].T.astype(np.float32)
    centres = rng.standard_normal((100, latent)).astype(np.float32)
    z = centres[rng.integers(0, 100, n)] + 0.7 * rng.standard_normal((n, latent)).astype(np.float32)
    data = z @ basis + 0.1 * rng.standard_normal((n, d)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    zq = z[rng.integers(0, n, 200)] + 0.5 * rng.standard_normal((200, latent)).astype(np.float32)
    queries = zq @ basis + 0.1 * rng.standard_normal((200, d)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    flat = faiss.IndexFlatIP(d)
    flat.add(data)
    _, exact = flat.search(queries, 10)
    params = HNSW_DEFAULTS
    hnsw = build_fp16_index(data, "hnsw", params)
    assert isinstance(hnsw, faiss.IndexHNSWSQ)

    def recall(ef_search: int) -> float:
        hnsw.hnsw.efSearch = ef_search
        _, approx = hnsw.search(queries, 10)
        hits = [len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)]
        return float(np.mean(hits))

    started = time.perf_counter()
    at_default = recall(params["ef_search"])
    per_query_ms = (time.perf_counter() - started) * 1000 / len(queries)
    print(f"HNSW recall@10 vs flat: {at_default:.3f}, {per_query_ms:.2f} ms/query")
    assert at_default >= 0.95
    assert recall(1) < at_default  # the measurement can tell a worse search apart


def test_cli_index_command(tmp_path: Path, minilm_path: Path) -> None:
    docs, out = tmp_path / "docs", tmp_path / "index"
    _write_docs(docs)
    runner = CliRunner()
    env = {"HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    args = ["index", str(docs), "--output", str(out), "--embed-model", str(minilm_path)]
    result = runner.invoke(app, [*args, "--exclude", "*.txt", "--device", "cpu"], env=env)
    assert result.exit_code == 0, result.output
    assert "2 added" in result.output and "chunks embedded" in result.output
    assert re.search(r"Query encoder: int8, \d+\.\d MB\.", result.output)
    assert {d.doc_id for d in read_manifest(out).documents} == {"paper.md", "notes/guide.md"}

    # The fp32 encoder: re-exported into the same bundle, no document embedded again.
    precision = ["--exclude", "*.txt", "--device", "cpu", "--encoder-precision"]
    result = runner.invoke(app, [*args, *precision, "fp32"], env=env)
    assert result.exit_code == 0, result.output
    assert "0 chunks embedded" in result.output
    assert re.search(r"Query encoder: fp32, \d+\.\d MB\.", result.output)
    assert read_manifest(out).embedding.encoder_precision == "fp32"
    result = runner.invoke(app, [*args, *precision, "fp16"], env=env)
    assert result.exit_code == 2
    assert "Invalid value for '--encoder-precision'" in result.output
    assert "is not one of 'fp32', 'int8'" in result.output

    result = runner.invoke(app, [*args, "--max-tokens", "999"], env=env)
    assert result.exit_code == 2
    assert "more than the model reads" in result.output and "Traceback" not in result.output

    help_text = runner.invoke(app, ["index", "--help"], env=env).output
    for option in (
        "--output",
        "--include",
        "--exclude",
        "--embed-model",
        "--device",
        "--batch-size",
        "--rebuild",
        "--max-tokens",
        "--overlap",
        "--encoder-precision",
    ):
        assert option in help_text
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by the minilm_path fixture
