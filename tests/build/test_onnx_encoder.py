"""The torch-free document encoder: an exported encoder folder embeds documents exactly as the
loaded model's own ONNX path does, and counts tokens the same way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from athenaeum.build.embedding import Embedder
from athenaeum.build.onnx_encoder import OnnxDocumentEncoder
from tests.conftest import SCIFACT_DIR


def _scifact_texts(n: int) -> list[str]:
    texts = []
    with (SCIFACT_DIR / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            texts.append(f"{doc['title']} {doc['text']}")
            if len(texts) == n:
                break
    return texts


def _encoder(embedder: Embedder, **kwargs: object) -> OnnxDocumentEncoder:
    folder = embedder.encoder_dir("fp32")
    return OnnxDocumentEncoder(
        folder / "model.onnx",
        folder / "tokenizer.json",
        max_seq_length=embedder.info.max_seq_length,
        document_prefix=embedder.info.document_prefix,
        **kwargs,  # type: ignore[arg-type]
    )


def test_same_vectors_and_token_counts_as_the_embedder(minilm_embedder: Embedder) -> None:
    # 27 texts: four batches of the default 8, the last one short.
    texts = [*_scifact_texts(24), "", "short", "线粒体" * 200]
    encoder = _encoder(minilm_embedder)
    assert encoder.dimension == minilm_embedder.info.dimension
    assert encoder.token_cap() == minilm_embedder.token_cap()
    for text in texts[:10]:
        assert encoder.count_tokens(text) == minilm_embedder.count_tokens(text)
    done: list[int] = []
    ours = encoder.embed_documents(texts, progress=lambda d, t: done.append(d))
    theirs = minilm_embedder.embed_documents(texts)
    assert done[-1] == len(texts)
    assert np.array_equal(ours, theirs)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_batch_size_does_not_change_vectors_beyond_float_noise(minilm_embedder: Embedder) -> None:
    texts = _scifact_texts(12)
    one = _encoder(minilm_embedder, batch_size=1).embed_documents(texts)
    many = _encoder(minilm_embedder, batch_size=16).embed_documents(texts)
    assert float(np.min(np.sum(one * many, axis=1))) >= 0.9999


def test_a_bad_batch_size_is_refused(minilm_embedder: Embedder) -> None:
    from athenaeum.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="batch size"):
        _encoder(minilm_embedder, batch_size=0)


def test_imports_no_torch(minilm_embedder: Embedder, tmp_path: Path) -> None:
    """What the ingest function runs, where torch is not installed."""
    folder = minilm_embedder.encoder_dir("fp32")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from athenaeum.build.onnx_encoder import OnnxDocumentEncoder\n"
        f"e = OnnxDocumentEncoder(Path({str(folder)!r}) / 'model.onnx', "
        f"Path({str(folder)!r}) / 'tokenizer.json', max_seq_length=256)\n"
        "v = e.embed_documents(['mitochondria make ATP'])\n"
        "assert v.shape == (1, 384)\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
