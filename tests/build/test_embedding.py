"""The build-side embedder on the real packaged MiniLM: model facts, ONNX export and parity."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from tokenizers import Tokenizer

from athenaeum.build.embedding import (
    ONNX_OUTPUT,
    Embedder,
    load_embedder,
    resolve_device,
)
from athenaeum.errors import InvalidInputError, MissingDependencyError
from athenaeum.retrieval.encoder import OnnxQueryEncoder
from tests.conftest import SCIFACT_DIR


def test_model_facts_come_from_the_model(minilm_embedder: Embedder) -> None:
    info = minilm_embedder.info
    assert (info.dimension, info.max_seq_length) == (384, 256)
    assert (info.pooling, info.normalize) == ("mean", True)
    assert info.special_tokens == 2  # [CLS] and [SEP]
    assert (info.query_prefix, info.document_prefix) == ("", "")
    assert info.revision is None  # a local folder outside the Hugging Face cache
    assert info.fingerprint.startswith("files-sha256:") and len(info.fingerprint) == 77
    assert minilm_embedder.token_cap() == 254
    assert minilm_embedder.device == "cpu" and minilm_embedder.backend == "onnx"
    # The counter neither truncates at the shipped tokenizer.json's 128 nor adds specials.
    assert minilm_embedder.count_tokens("word " * 500) == 500
    assert minilm_embedder.count_tokens("") == 0


def test_token_counts_are_the_tokenizers_own(
    minilm_embedder: Embedder, minilm_count_tokens: Callable[[str], int]
) -> None:
    texts = [
        *_long_scifact_documents(3),
        "细胞线粒体",
        "  leading and trailing  ",
        "a literal [PAD] and [CLS]",
        "ünïcode, punctuation; and\nnew lines",
    ]
    for text in texts:
        assert minilm_embedder.count_tokens(text) == minilm_count_tokens(text), text


def test_exported_encoder_graph_and_tokenizer(minilm_embedder: Embedder, tmp_path: Path) -> None:
    out = minilm_embedder.export_query_encoder(tmp_path / "encoder")
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    (output,) = graph.output
    assert output.name == ONNX_OUTPUT
    dims = output.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 384
    assert graph.input[0].type.tensor_type.shape.dim[1].dim_param == "sequence"

    # Plain attention, without SDPA's per-layer NaN guard; the model keeps its own.
    assert "IsNaN" not in {node.op_type for node in graph.node}
    transformer = minilm_embedder.model[0].auto_model
    assert transformer.config._attn_implementation == "sdpa"

    tokenizer = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    assert tokenizer["truncation"]["max_length"] == 256
    assert tokenizer["padding"]["strategy"] == "BatchLongest"


def _scifact_queries(n: int) -> list[str]:
    with (SCIFACT_DIR / "queries.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f][:n]


def _long_scifact_documents(n: int) -> list[str]:
    docs = []
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if len(record["text"]) > 2000:  # well past 256 word pieces: truncation must agree
                docs.append(f"{record['title']} {record['text']}")
            if len(docs) == n:
                return docs
    return docs


@pytest.mark.slow
def test_onnx_matches_sentence_transformers_on_scifact_queries(minilm_embedder: Embedder) -> None:
    queries = _scifact_queries(56)
    long_docs = _long_scifact_documents(8)
    assert len(queries) == 56 and len(long_docs) == 8
    texts = queries + long_docs
    reference = minilm_embedder.model.encode(
        texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False
    )

    # The serve side's encoder, reading the exported files exactly as a bundle ships them (the
    # embedder's own export, test_exported_encoder_graph_and_tokenizer's graph), in batches as a
    # server sees them (one batch of all would pad every query to 256 tokens); the second batch
    # mixes queries and long documents.
    encoder = OnnxQueryEncoder(minilm_embedder.encoder_dir("fp32"), max_seq_length=256)
    served = np.concatenate([encoder.encode(texts[i : i + 32]) for i in range(0, len(texts), 32)])
    # The build side's CPU document path runs the same graph; the long documents check that
    # it truncates where sentence-transformers does.
    sample = queries[:32] + long_docs
    built = minilm_embedder.embed_documents(sample)

    for vectors, expected in (
        (served, reference),
        (built, reference[[*range(32), *range(len(queries), len(texts))]]),
    ):
        assert vectors.shape == expected.shape
        cosine = (vectors * expected).sum(axis=1)
        assert cosine.min() >= 0.999, f"lowest cosine {cosine.min():.6f}"
    assert np.allclose(np.linalg.norm(built, axis=1), 1.0, atol=1e-5)


def test_embedding_reports_progress_and_keeps_input_order(minilm_embedder: Embedder) -> None:
    texts = [
        "a short one",
        "a much longer text about mitochondria and their DNA " * 5,
        "mid size text",
    ]
    texts = texts * 5
    calls: list[tuple[int, int]] = []
    vectors = minilm_embedder.embed_documents(texts, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(8, 15), (15, 15)]  # batches of 8
    single = np.stack([minilm_embedder.embed_documents([t])[0] for t in texts[:3]])
    assert np.allclose(vectors[:3], single, atol=1e-5)  # padding to the batch changes nothing
    assert np.allclose(vectors[:3], vectors[3:6])

    small_batches = Embedder(
        minilm_embedder.model, minilm_embedder.info, device="cpu", batch_size=4, backend="torch"
    )
    calls.clear()
    torch_vectors = small_batches.embed_documents(texts, progress=lambda d, t: calls.append((d, t)))
    assert [d for d, _ in calls] == [15]  # torch takes 32 batches per call
    assert (torch_vectors * vectors).sum(axis=1).min() >= 0.999
    assert minilm_embedder.embed_documents([]).shape == (0, 384)

    # Given the ids kept while counting (as `athenaeum index` gives them), the same vectors;
    # a text without ids is tokenized.
    with small_batches.recording_tokens() as model_ids:
        for text in texts:
            small_batches.count_tokens(text)
        given = [model_ids(t) for t in [*texts, "a text never counted"]]
    assert given[-1] is None and all(ids is not None for ids in given[:-1])
    again = small_batches.embed_documents([*texts, "a text never counted"], token_ids=given)
    assert np.allclose(again[:-1], torch_vectors, atol=1e-6)
    assert np.allclose(
        again[-1], small_batches.embed_documents(["a text never counted"])[0], atol=1e-5
    )
    with pytest.raises(ValueError, match="2 token id arrays given for 15 texts"):
        small_batches.embed_documents(texts, token_ids=given[:2])


def test_document_prefix_is_embedded_and_counted(minilm_embedder: Embedder) -> None:
    info = replace(minilm_embedder.info, document_prefix="passage: ", query_prefix="query: ")
    prefixed = Embedder(minilm_embedder.model, info, device="cpu", batch_size=8, backend="torch")
    assert prefixed.token_cap() == 254 - minilm_embedder.count_tokens("passage: ")
    got = prefixed.embed_documents(["mitochondria"])
    want = minilm_embedder.model.encode(["passage: mitochondria"], convert_to_numpy=True)
    assert float((got * want).sum()) >= 0.9999
    query = prefixed.embed_queries(["mitochondria"])
    want_query = minilm_embedder.model.encode(["query: mitochondria"], convert_to_numpy=True)
    assert float((query * want_query).sum()) >= 0.9999


def test_devices_and_bad_models_are_user_errors(minilm_path: Path) -> None:
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(InvalidInputError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="no CUDA"):
            resolve_device("cuda")
    with pytest.raises(InvalidInputError, match="cannot load embedding model"):
        load_embedder(str(minilm_path / "no-such-folder"), device="cpu")
    with pytest.raises(InvalidInputError, match="batch size"):
        load_embedder(str(minilm_path), batch_size=0)


def test_a_model_path_that_is_no_model_folder_says_so_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without asking the Hub (unreachable here, and HF_HUB_OFFLINE is unset as for a user) and
    without importing torch, in a fresh interpreter."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"")
    script = (
        "import sys, time\n"
        "from athenaeum.build.embedding import load_embedder\n"
        "from athenaeum.errors import InvalidInputError\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    load_embedder(sys.argv[1], device='cpu')\n"
        "except InvalidInputError as exc:\n"
        "    print(exc.message)\n"
        "print(time.monotonic() - start, 'torch' in sys.modules)\n"
    )
    for model, message in (
        ("./missing", f"there is no folder {tmp_path / 'missing'}."),
        ("../nowhere/model", "there is no folder"),
        ("models/minilm/v2", "there is no folder"),
        ("empty", "is not a model folder (it has none of modules.json"),
        (str(tmp_path / "empty"), "is not a model folder"),
        ("weights.bin", "is a file; give the model's folder"),
    ):
        run = subprocess.run(
            [sys.executable, "-c", script, model], capture_output=True, text=True, timeout=60
        )
        said, timing = run.stdout.strip().splitlines()
        assert message in said and "Hugging Face Hub" not in said.split(".")[0], said
        seconds, torch_loaded = timing.split()
        assert float(seconds) < 1.0 and torch_loaded == "False", timing


def test_missing_sentence_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match="--extra build"):
        load_embedder("anything")


def test_an_unreachable_hub_fails_in_seconds_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from athenaeum.build.embedding import load_embedder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(InvalidInputError) as caught:
        load_embedder("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    assert time.monotonic() - started < 5
    message = caught.value.message
    assert "cannot be reached" in message
    assert "--embed-model PATH" in message and "HF_HUB_OFFLINE=1" in message


def test_batches_are_the_tokenizers_own_inputs(minilm_embedder: Embedder) -> None:
    """Texts are tokenized without padding and padded in numpy, the mask derived from lengths:
    the same ids, mask and token types as the padded tokenizer gives, whatever the text holds.
    The ids kept while counting (what `athenaeum index` embeds from) are the same ids."""
    texts = [
        "a much longer text about mitochondria and their DNA " * 40,  # truncated
        "short",
        "a literal [PAD] and [CLS] in the text",
        "",
        "mid size text, with punctuation; and ünïcode",
        "x" * 3000,  # one "word" longer than the model reads
    ]
    feeds = minilm_embedder._feeds
    encodings = minilm_embedder.tokenizer.encode_batch(texts)
    with minilm_embedder.recording_tokens() as model_ids:
        counts = [minilm_embedder.count_tokens(t) for t in texts]
        recorded = [model_ids(t) for t in texts]
        assert model_ids("a text never counted") is None
    assert model_ids(texts[1]) is None  # closed: the tokens are freed
    assert counts[0] > 256 and counts[1] == 1
    inputs = feeds.padded(feeds.token_ids(texts), texts)
    from_recorded = feeds.padded([r for r in recorded if r is not None], texts)
    assert list(inputs) == ["input_ids", "attention_mask", "token_type_ids"]
    for name, attr in [
        ("input_ids", "ids"),
        ("attention_mask", "attention_mask"),
        ("token_type_ids", "type_ids"),
    ]:
        want = np.array([getattr(e, attr) for e in encodings], dtype=np.int64)
        assert np.array_equal(inputs[name], want), name
        assert np.array_equal(from_recorded[name], want), name
    assert inputs["input_ids"].shape == (6, 256)


def test_a_template_that_cannot_be_rebuilt_records_nothing(minilm_embedder: Embedder) -> None:
    """A tokenizer that truncates from the left is not rebuilt from bare tokens: texts are then
    tokenized again for embedding, never given ids that differ from the tokenizer's."""
    from athenaeum.build.onnx_encoder import TokenFeeds

    tokenizer = Tokenizer.from_str(minilm_embedder.tokenizer.to_str())
    tokenizer.enable_truncation(max_length=256, direction="left")
    feeds = TokenFeeds(tokenizer, ["input_ids", "attention_mask", "token_type_ids"])
    with feeds.recording() as model_ids:
        feeds.count_tokens("short")
        assert model_ids("short") is None
    assert feeds.fill_ids(["short"], [None])[0].tolist() == tokenizer.encode("short").ids


def test_onnx_batches_group_texts_by_token_count(
    minilm_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Texts are batched by their number of tokens, longest first, not by characters: each
    batch is padded only to its own longest text."""
    texts = [
        "information " * 12,  # 144 characters, 12 tokens
        "细胞" * 30,  # 60 characters, one token each
        "the " * 30,  # 120 characters, 30 tokens
        "线粒体" * 15,  # 45 characters, 45 tokens
        "short",
    ]
    tokens = [len(ids) for ids in minilm_embedder._feeds.token_ids(texts)]
    assert tokens == [14, 62, 32, 47, 3]  # with [CLS] and [SEP]
    session = minilm_embedder._onnx_session()
    widths: list[list[int]] = []

    class Recording:
        def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            lengths = feed["attention_mask"].sum(axis=1)
            assert feed["input_ids"].shape[1] == lengths.max()  # padded to its longest only
            widths.append(sorted(lengths.tolist(), reverse=True))
            result: list[np.ndarray] = session.run(names, feed)
            return result

    batched = Embedder(
        minilm_embedder.model, minilm_embedder.info, device="cpu", batch_size=2, backend="onnx"
    )
    monkeypatch.setattr(batched, "_onnx_session", Recording)
    calls: list[tuple[int, int]] = []
    vectors = batched.embed_documents(texts, progress=lambda d, t: calls.append((d, t)))
    assert widths == [[62, 47], [32, 14], [3]]
    assert calls == [(2, 5), (4, 5), (5, 5)]
    # Row i is still text i's vector, as embedding each text alone gives it.
    alone = np.concatenate([minilm_embedder.embed_documents([t]) for t in texts])
    assert np.allclose(vectors, alone, atol=1e-5)
