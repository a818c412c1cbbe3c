"""A BERT model's encoder written from its files, without torch, gives sentence-transformers'
vectors; `athenaeum index` on CPU then never imports the torch stack; any model it does not
rebuild exactly is loaded and traced with torch as before."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import pytest

from athenaeum.build.bert_export import read_bert_folder
from athenaeum.build.embedding import Embedder, load_embedder
from athenaeum.bundle import load_bundle
from athenaeum.retrieval.encoder import OnnxQueryEncoder
from tests.build.helpers import STACK, athenaeum_fresh, linked_copy
from tests.conftest import SCIFACT_DIR

Vectors = npt.NDArray[np.float32]


def _scifact_texts(n: int) -> list[str]:
    """The first `n` SciFact documents as title and abstract: most run past the 256 word pieces
    the model reads, so truncation must agree too."""
    texts = []
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as f:
        for line, _ in zip(f, range(n), strict=False):
            record = json.loads(line)
            texts.append(f"{record['title']} {record['text']}")
    return texts


def _cosine(a: Vectors, b: Vectors) -> Vectors:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    result: Vectors = (a * b).sum(axis=1) / norms
    return result


def _rewrite(folder: Path, name: str, edit: Callable[[Any], Any]) -> None:
    path = folder / name
    value = json.loads(path.read_text("utf-8"))
    path.unlink()
    path.write_text(json.dumps(edit(value)), encoding="utf-8")


def test_the_files_say_what_sentence_transformers_says(
    minilm_files_embedder: Embedder, minilm_embedder: Embedder
) -> None:
    files, loaded = minilm_files_embedder, minilm_embedder
    assert files._model is None and files.backend == "onnx" and files.device == "cpu"
    assert files.info == loaded.info  # dimension, pooling, prefixes, fingerprint, ...
    assert files.tokenizer.to_str() == loaded.tokenizer.to_str()
    assert files._input_names == loaded._input_names


@pytest.mark.slow
def test_vectors_match_sentence_transformers_on_scifact_documents(
    minilm_files_embedder: Embedder, minilm_embedder: Embedder, tmp_path: Path
) -> None:
    texts = _scifact_texts(24)
    # Many past the model's 256 tokens: truncation is where exports most often differ.
    assert sum(minilm_embedder.count_tokens(t) > 254 for t in texts) > len(texts) // 3
    reference = minilm_embedder.model.encode(
        texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False
    )
    built = minilm_files_embedder.embed_documents(texts)
    cosine = _cosine(built, reference)
    assert cosine.min() >= 0.9999, f"lowest cosine {cosine.min():.7f}"

    # The query encoder as a bundle ships it, and its int8 copy, quantized from this graph.
    out = minilm_files_embedder.export_query_encoder(tmp_path / "fp32")
    assert onnx.load(str(out / "model.onnx")).opset_import[0].version == 17
    served = OnnxQueryEncoder(out, max_seq_length=256).encode(texts)
    assert _cosine(served, reference).min() >= 0.9999
    int8 = minilm_files_embedder.encoder_dir("int8")
    assert (int8 / "model.onnx").stat().st_size < (out / "model.onnx").stat().st_size / 3
    quantized = OnnxQueryEncoder(int8, max_seq_length=256).encode(texts)
    assert _cosine(quantized, reference).min() >= 0.95  # the export's own int8 bar


def _variant(minilm_path: Path, target: Path, pooling: dict[str, Any], normalize: bool) -> Path:
    folder = linked_copy(minilm_path, target)
    _rewrite(folder, "1_Pooling/config.json", lambda _: pooling)
    if not normalize:
        _rewrite(folder, "modules.json", lambda modules: modules[:2])
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pooling", "mode", "normalize"),
    [
        ({"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}, "mean", False),
        ({"word_embedding_dimension": 384, "pooling_mode_cls_token": True}, "cls", True),
        ({"embedding_dimension": 384, "pooling_mode": "max"}, "max", False),
        (
            {"embedding_dimension": 384, "pooling_mode": ["mean_sqrt_len_tokens"]},
            "mean_sqrt_len_tokens",
            False,
        ),
    ],
    ids=["mean-unnormalized", "cls", "max", "mean-sqrt-len"],
)
def test_every_pooling_mode_matches_sentence_transformers(
    pooling: dict[str, Any], mode: str, normalize: bool, minilm_path: Path, tmp_path: Path
) -> None:
    from sentence_transformers import SentenceTransformer

    folder = _variant(minilm_path, tmp_path / "model", pooling, normalize)
    texts = [*_scifact_texts(8), "short", "a literal [PAD] and [CLS]", ""]
    reference = SentenceTransformer(str(folder), device="cpu").encode(
        texts, convert_to_numpy=True, show_progress_bar=False
    )
    embedder = load_embedder(str(folder), device="cpu")
    try:
        assert embedder._model is None
        assert (embedder.info.pooling, embedder.info.normalize) == (mode, normalize)
        built = embedder.embed_documents(texts)
    finally:
        embedder.close()
    assert _cosine(built, reference).min() >= 0.9999
    norms = np.linalg.norm(built, axis=1) / np.linalg.norm(reference, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)


def _sharded(folder: Path) -> None:
    """The weights as a one-shard checkpoint with its index, as transformers saves large models:
    the same weights, which this export does not read."""
    weights = folder / "model.safetensors"
    with weights.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        names = [n for n in json.loads(f.read(length)) if n != "__metadata__"]
    shard = "model-00001-of-00001.safetensors"
    (folder / shard).symlink_to(weights.resolve())
    weights.unlink()
    index = {"metadata": {}, "weight_map": dict.fromkeys(names, shard)}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")


def _edit(name: str, change: dict[str, Any]) -> Callable[[Path], None]:
    return lambda folder: _rewrite(folder, name, lambda value: {**value, **change})


@pytest.mark.parametrize(
    "edit",
    [
        _edit("config.json", {"model_type": "roberta"}),
        _edit("config.json", {"hidden_act": "relu"}),
        _edit("config.json", {"position_embedding_type": "relative_key"}),
        _edit("config.json", {"torch_dtype": "float16"}),
        _edit(
            "1_Pooling/config.json",
            {"pooling_mode_mean_tokens": False, "pooling_mode_lasttoken": True},
        ),
        _edit("1_Pooling/config.json", {"include_prompt": False}),
        _edit("sentence_bert_config.json", {"do_lower_case": True}),
        _edit("sentence_bert_config.json", {"model_kwargs": {"torch_dtype": "float16"}}),
        _edit("tokenizer_config.json", {"do_lower_case": False}),
        _edit("tokenizer_config.json", {"tokenizer_class": "RobertaTokenizer"}),
        _edit("config_sentence_transformers.json", {"default_prompt_name": "query"}),
        lambda folder: _rewrite(
            folder, "modules.json", lambda m: [*m[:2], {**m[2], "type": "x.models.Dense"}]
        ),
        _sharded,
        lambda folder: (folder / "sentence_bert_config.json").unlink(),
    ],
    ids=[
        "roberta",
        "relu",
        "relative-positions",
        "fp16",
        "last-token-pooling",
        "prompt-excluded",
        "lowercased-by-sentence-transformers",
        "model-kwargs",
        "tokenizer-not-lowercasing",
        "other-tokenizer",
        "default-prompt",
        "dense-module",
        "sharded-weights",
        "no-max-seq-length",
    ],
)
def test_what_it_does_not_rebuild_exactly_is_left_to_torch(
    edit: Callable[[Path], None], minilm_path: Path, tmp_path: Path
) -> None:
    folder = linked_copy(minilm_path, tmp_path / "model")
    assert read_bert_folder(folder) is not None
    edit(folder)
    assert read_bert_folder(folder) is None


def _scifact_slice(target: Path, n: int) -> Path:
    target.mkdir(parents=True)
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as f:
        lines = [line for line, _ in zip(f, range(n), strict=False)]
    (target / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    return target


@pytest.mark.slow
def test_index_on_cpu_never_imports_torch_and_builds_what_the_torch_export_builds(
    minilm_path: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from athenaeum.cli.main import app

    docs = _scifact_slice(tmp_path / "docs", 8)
    ours, traced = tmp_path / "index", tmp_path / "traced"
    # Watching the ONNX runtime as well: the check sees what the command imports (the runtime
    # it embeds with), and none of the stack.
    run = athenaeum_fresh(
        "index", str(docs), "--output", str(ours), "--embed-model", str(minilm_path),
        "--device", "cpu", watch=(*STACK, "onnxruntime"),
    )  # fmt: skip
    assert "8 documents: 8 added" in run.output and "Index bundle written" in run.output
    assert run.loaded == ["onnxruntime"]

    # The same weights as a sharded checkpoint: loaded and traced with torch, in the same way
    # (the command in this process, where the stack is imported already).
    sharded = linked_copy(minilm_path, tmp_path / "sharded")
    _sharded(sharded)
    result = CliRunner().invoke(
        app,
        ["index", str(docs), "--output", str(traced), "--embed-model", str(sharded),
         "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "8 documents: 8 added" in result.output

    a, b = load_bundle(ours), load_bundle(traced)
    assert list(a.chunks) == list(b.chunks)
    assert _cosine(a.vectors.all(), b.vectors.all()).min() >= 0.9999
    embedding = b.manifest.embedding.model_copy(update={"model_id": str(minilm_path)})
    assert a.manifest.embedding == embedding
    recipe = {**b.manifest.chunking, "model_fingerprint": a.manifest.chunking["model_fingerprint"]}
    assert a.manifest.chunking == recipe
    # Both ship an int8 query encoder quantized from their fp32 graph: the same queries.
    queries = ["mitochondrial DNA inheritance", "what lowers blood pressure?"]
    encoders = [OnnxQueryEncoder(x.encoder_dir, max_seq_length=256) for x in (a, b)]
    assert _cosine(encoders[0].encode(queries), encoders[1].encode(queries)).min() >= 0.9999
