"""The int8 query encoder: built by `encoder_precision="int8"` on real SciFact documents with the
real MiniLM, served by the ordinary loader, and switched on an existing bundle without
re-embedding a single document."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from athenaeum.build.embedding import Embedder, quantize_query_encoder
from athenaeum.build.indexer import BuildOptions, IndexReport, build_index
from athenaeum.bundle import load_bundle, read_manifest
from athenaeum.errors import BundleError, InvalidInputError
from athenaeum.retrieval.encoder import OnnxQueryEncoder
from athenaeum.retrieval.engine import SearchEngine
from tests.conftest import SCIFACT_DIR
from tests.fresh import run_fresh
from tests.retrieval.test_import_guard import FORBIDDEN

N_DOCS = 24
INT8 = BuildOptions(encoder_precision="int8")
FP32 = BuildOptions(encoder_precision="fp32")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def records() -> list[dict[str, str]]:
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(N_DOCS), f, strict=False)]


@pytest.fixture(scope="module")
def corpus(records: list[dict[str, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scifact")
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def int8_build(
    corpus: Path, minilm_embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, IndexReport]:
    """A bundle built from scratch with the int8 encoder; tests copy it before changing it."""
    out = tmp_path_factory.mktemp("int8") / "index"
    return out, build_index([corpus], out, INT8, embedder=minilm_embedder)


@pytest.fixture
def embed_calls(minilm_embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many texts each embed_documents call was given."""
    calls: list[int] = []
    real = minilm_embedder.embed_documents

    def counting(texts: list[str], progress: object = None, token_ids: object = None) -> np.ndarray:
        calls.append(len(texts))
        return real(texts, progress, token_ids)  # type: ignore[arg-type]

    monkeypatch.setattr(minilm_embedder, "embed_documents", counting)
    yield calls


def test_an_int8_bundle_is_small_records_its_precision_and_finds_documents(
    int8_build: tuple[Path, IndexReport],
    minilm_embedder: Embedder,
    records: list[dict[str, str]],
) -> None:
    out, report = int8_build
    manifest = read_manifest(out)
    assert manifest.embedding.encoder_precision == "int8"
    assert report.encoder_precision == "int8" and report.chunks_embedded == report.chunks_total
    int8_bytes = (out / "encoder" / "model.onnx").stat().st_size
    fp32_bytes = (minilm_embedder.encoder_dir("fp32") / "model.onnx").stat().st_size
    # Measured: 23.0 MB against 90.4 MB (25%).
    assert int8_bytes < 0.3 * fp32_bytes
    assert report.encoder_bytes == int8_bytes == manifest.files["encoder/model.onnx"].bytes
    # The documents were embedded in fp32: the vectors are the fp32 model's. (A BEIR document's
    # first chunk starts with its title, so it is embedded as it stands.)
    bundle = load_bundle(out)
    first = bundle.chunks[0]
    assert first.ordinal == 0 and first.text.startswith(records[0]["title"])
    expected = minilm_embedder.embed_documents([first.text])[0]
    assert float(bundle.vectors[0] @ expected) > 0.9999

    # Served by the ordinary loader: a title finds its paper (measured: every title in hybrid,
    # 23 of 24 in dense, as with the fp32 encoder).
    engine = SearchEngine.load(out)
    for mode, least in (("hybrid", N_DOCS), ("dense", N_DOCS - 2)):
        hits = sum(
            engine.search(r["title"], top_k=1, mode=mode)[0].chunk.doc_id == r["_id"]
            for r in records
        )
        assert hits >= least, mode


def test_int8_query_vectors_stay_close_to_fp32(
    int8_build: tuple[Path, IndexReport], minilm_embedder: Embedder
) -> None:
    with (SCIFACT_DIR / "queries.jsonl").open(encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for _, line in zip(range(50), f, strict=False)]
    fp32 = OnnxQueryEncoder(minilm_embedder.encoder_dir("fp32"), max_seq_length=256)
    int8 = OnnxQueryEncoder(int8_build[0] / "encoder", max_seq_length=256)
    # One query at a time, as they are served (the activations' scale is per batch).
    cosines = np.array([fp32.encode_one(q) @ int8.encode_one(q) for q in queries])
    print(f"int8 vs fp32 over {len(queries)} queries: {cosines.mean():.4f}, {cosines.min():.4f}")
    # Measured on these 50: mean 0.9919, lowest 0.9873 (all 1,109: 0.9918, 0.9840; quantized
    # per tensor instead of per channel: 0.9583, 0.9008).
    assert cosines.mean() > 0.98 and cosines.min() > 0.97
    assert cosines.mean() < 0.9999  # it really is another encoder


def test_switching_precision_re_exports_the_encoder_and_embeds_nothing(
    int8_build: tuple[Path, IndexReport],
    corpus: Path,
    minilm_embedder: Embedder,
    embed_calls: list[int],
    tmp_path: Path,
) -> None:
    out = tmp_path / "index"
    shutil.copytree(int8_build[0], out)
    vectors_sha = _sha256(out / "dense.faiss")
    chunks_sha = _sha256(out / "chunks.z")
    int8_sha = _sha256(out / "encoder" / "model.onnx")
    stages: set[str] = set()

    to_fp32 = build_index(
        [corpus],
        out,
        FP32,
        embedder=minilm_embedder,
        progress=lambda stage, done, total: stages.add(stage),
    )
    assert sum(embed_calls) == 0 and "embedding" not in stages
    assert to_fp32.written and not to_fp32.full_rebuild and to_fp32.rebuild_reason is None
    assert (to_fp32.documents_unchanged, to_fp32.chunks_embedded) == (N_DOCS, 0)
    assert read_manifest(out).embedding.encoder_precision == "fp32"
    assert _sha256(out / "dense.faiss") == vectors_sha
    assert _sha256(out / "chunks.z") == chunks_sha
    fp32_model = minilm_embedder.encoder_dir("fp32") / "model.onnx"
    assert _sha256(out / "encoder" / "model.onnx") == _sha256(fp32_model)
    assert to_fp32.encoder_bytes == fp32_model.stat().st_size

    # The same precision again: nothing to do, the bundle is left alone.
    again = build_index([corpus], out, FP32, embedder=minilm_embedder)
    assert not again.written and again.encoder_bytes == to_fp32.encoder_bytes

    # And back: the quantization is deterministic, so the very same int8 file.
    back = build_index([corpus], out, INT8, embedder=minilm_embedder)
    assert back.written and back.chunks_embedded == 0 and sum(embed_calls) == 0
    assert _sha256(out / "encoder" / "model.onnx") == int8_sha
    assert _sha256(out / "dense.faiss") == vectors_sha
    assert read_manifest(out).embedding.encoder_precision == "int8"


def test_a_bundle_from_before_the_field_reads_as_fp32_and_is_not_rewritten(
    int8_build: tuple[Path, IndexReport],
    corpus: Path,
    minilm_embedder: Embedder,
    tmp_path: Path,
) -> None:
    out = tmp_path / "index"
    shutil.copytree(int8_build[0], out)
    build_index([corpus], out, FP32, embedder=minilm_embedder)
    raw = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    del raw["embedding"]["encoder_precision"]
    (out / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    old = (out / "manifest.json").read_bytes()

    assert read_manifest(out).embedding.encoder_precision == "fp32"
    report = build_index([corpus], out, FP32, embedder=minilm_embedder)
    assert not report.written and report.encoder_precision == "fp32"
    assert (out / "manifest.json").read_bytes() == old
    # The default is int8: a run without the option switches the encoder, embedding nothing.
    report = build_index([corpus], out, embedder=minilm_embedder)
    assert report.written and report.encoder_precision == "int8"
    assert report.chunks_embedded == 0
    assert read_manifest(out).embedding.encoder_precision == "int8"


def test_quantizing_is_quiet_and_leaves_logging_as_it_was(
    minilm_embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    with caplog.at_level(logging.INFO):
        quantize_query_encoder(minilm_embedder.encoder_dir("fp32"), tmp_path / "int8")
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    assert (root.handlers, root.filters) == (handlers, filters)
    assert (tmp_path / "int8" / "tokenizer.json").read_bytes() == (
        minilm_embedder.encoder_dir("fp32") / "tokenizer.json"
    ).read_bytes()


def test_an_unknown_precision_is_a_user_error(corpus: Path, minilm_embedder: Embedder) -> None:
    with pytest.raises(InvalidInputError, match="unknown encoder precision 'fp16'") as info:
        build_index(
            [corpus],
            corpus.parent / "never",
            BuildOptions(encoder_precision="fp16"),  # type: ignore[arg-type]
            embedder=minilm_embedder,
        )
    assert info.value.param == "encoder_precision"


SERVE_SCRIPT = """
import importlib.abc, json, sys

FORBIDDEN = json.loads(sys.argv[1])

class Forbid(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            raise ModuleNotFoundError(f"{name} is forbidden on the serve path", name=name)
        return None

sys.meta_path.insert(0, Forbid())

from athenaeum.retrieval.engine import SearchEngine

engine = SearchEngine.load(sys.argv[2])
hits = [r.chunk.doc_id for r in engine.search(sys.argv[3], top_k=1, mode="dense")]
print(json.dumps({"hits": hits, "precision": engine.bundle.manifest.embedding.encoder_precision}))
"""


def test_an_int8_bundle_serves_without_the_quantizer(
    int8_build: tuple[Path, IndexReport], records: list[dict[str, str]]
) -> None:
    # The Lambda layer ships onnxruntime without its quantization package, and no onnx at all.
    forbidden = [*FORBIDDEN, "onnx", "onnxruntime.quantization", "onnxruntime.tools"]
    target = records[5]
    out, _ = run_fresh(SERVE_SCRIPT, json.dumps(forbidden), str(int8_build[0]), target["title"])
    assert out == {"hits": [target["_id"]], "precision": "int8"}


def test_an_int8_bundle_keeps_its_fp32_document_encoder_outside_the_served_files(
    int8_build: tuple[Path, IndexReport], minilm_embedder: Embedder, tmp_path: Path
) -> None:
    """The graph that embedded the documents travels with the bundle (so documents can be added
    without the model), but not among the files serving loads, verifies or copies."""
    out = int8_build[0]
    manifest = read_manifest(out)
    assert manifest.document_encoder is not None
    assert manifest.document_encoder.path == "encoder/document.onnx"
    assert "encoder/document.onnx" not in manifest.files
    fp32_model = minilm_embedder.encoder_dir("fp32") / "model.onnx"
    path = load_bundle(out).document_encoder()
    assert path == out / "encoder" / "document.onnx"
    assert _sha256(path) == _sha256(fp32_model) == manifest.document_encoder.sha256

    # A serving copy without it still loads; asking it for the encoder says what is missing.
    copy = tmp_path / "served"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("document.onnx", "verification.json"))
    bundle = load_bundle(copy, verify="full")
    with pytest.raises(BundleError, match=r"lacks its document encoder encoder/document\.onnx"):
        bundle.document_encoder()
    # A tampered one is refused.
    shutil.copyfile(fp32_model, copy / "encoder" / "document.onnx")
    with (copy / "encoder" / "document.onnx").open("r+b") as f:
        f.seek(4096)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="does not match"):
        load_bundle(copy).document_encoder()


def test_an_int8_bundle_without_a_document_encoder_gets_one_without_embedding(
    int8_build: tuple[Path, IndexReport],
    corpus: Path,
    minilm_embedder: Embedder,
    embed_calls: list[int],
    tmp_path: Path,
) -> None:
    """A bundle written before bundles kept their document encoder: `index` adds it."""
    out = tmp_path / "index"
    shutil.copytree(int8_build[0], out)
    (out / "encoder" / "document.onnx").unlink()
    raw = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    del raw["document_encoder"]
    (out / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(BundleError, match="written before bundles kept one"):
        load_bundle(out).document_encoder()
    report = build_index([corpus], out, INT8, embedder=minilm_embedder)
    assert report.written and report.chunks_embedded == 0 and sum(embed_calls) == 0
    assert load_bundle(out).document_encoder().is_file()


def test_an_fp32_bundle_documents_are_embedded_by_its_query_encoder(
    int8_build: tuple[Path, IndexReport],
    corpus: Path,
    minilm_embedder: Embedder,
    tmp_path: Path,
) -> None:
    out = tmp_path / "index"
    shutil.copytree(int8_build[0], out)
    build_index([corpus], out, FP32, embedder=minilm_embedder)
    assert read_manifest(out).document_encoder is None
    assert not (out / "encoder" / "document.onnx").exists()
    assert load_bundle(out).document_encoder() == out / "encoder" / "model.onnx"


def test_a_format_1_bundle_is_rewritten_compactly_without_embedding(
    int8_build: tuple[Path, IndexReport],
    corpus: Path,
    minilm_embedder: Embedder,
    embed_calls: list[int],
    tmp_path: Path,
) -> None:
    """A bundle written before format 2 (fp32 vectors.npy, chunks.jsonl) loads as it is, and
    the next `athenaeum index` stores it compactly, reusing every vector."""
    from athenaeum.bundle import DOCUMENT_ENCODER, write_bundle

    current = load_bundle(int8_build[0])
    m = current.manifest
    old = tmp_path / "index"
    shutil.copytree(current.encoder_dir, tmp_path / "encoder")
    (tmp_path / "encoder" / "document.onnx").unlink()
    write_bundle(
        old,
        embedding=m.embedding,
        chunking=m.chunking,
        documents=m.documents,
        chunks=list(current.chunks),
        vectors=current.vectors.all(),
        bm25_index=current.bm25,  # type: ignore[arg-type]
        encoder_dir=tmp_path / "encoder",
        document_encoder=int8_build[0] / DOCUMENT_ENCODER,
        vector_encoding="fp32",
        chunk_encoding="jsonl",
    )
    assert read_manifest(old).format_version == 1
    assert {"vectors.npy", "chunks.jsonl"} <= set(read_manifest(old).files)
    served = SearchEngine.load(old)
    assert served.search("cell", top_k=3, mode="hybrid")

    report = build_index([corpus], old, INT8, embedder=minilm_embedder)
    assert report.written and report.chunks_embedded == 0 and sum(embed_calls) == 0
    rewritten = read_manifest(old)
    assert rewritten.format_version == 2
    assert (rewritten.vectors.encoding, rewritten.chunks.encoding) == ("fp16", "zlib-blocks")
    assert not (old / "vectors.npy").exists() and not (old / "chunks.jsonl").exists()
    # fp16 from fp16-exact values: the very vectors of the compact bundle it came from.
    assert np.array_equal(load_bundle(old).vectors.codes, current.vectors.codes)
    assert _sha256(old / "chunks.z") == _sha256(int8_build[0] / "chunks.z")
