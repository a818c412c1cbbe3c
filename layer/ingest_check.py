"""Runs the ingest stack from the ingest layer alone, as the ingest function will.

    python3.12 -I -S -B layer/ingest_check.py LAYER_DIR REPO_ROOT [INDEX_DIR]

Run by `layer/build.sh --profile ingest` with nothing on sys.path but the layer and the source
tree (-I -S) and without writing bytecode (-B), so a trim that removed something the ingest
needs fails the build. It writes a PDF with PyMuPDF and converts it with the project's converter
(text and a ruled table), tokenizes with `tokenizers`, starts onnxruntime, writes a bundle with
an HNSW index (FAISS) and BM25 statistics (PyStemmer), reads it back, and imports the ingest
handler when the package has one. With INDEX_DIR (a bundle) it also embeds the converted text
with that bundle's exported encoder.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path


def main() -> None:
    layer = Path(sys.argv[1]).resolve()
    root = Path(sys.argv[2]).resolve()
    index = Path(sys.argv[3]).resolve() if len(sys.argv) > 3 and sys.argv[3] else None
    sys.path[:0] = [str(layer), str(root)]
    quiet = contextlib.ExitStack()
    quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
    quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
    with tempfile.TemporaryDirectory() as tmp, quiet:
        text = _convert(Path(tmp))
        _write_bundle(Path(tmp), text)
        if index is not None:
            _embed(index, text)
    handler = root / "athenaeum" / "ingest" / "lambda_handler.py"
    if handler.is_file():
        import athenaeum.ingest.lambda_handler  # noqa: F401
    print(
        "layer: the ingest stack runs from the layer"
        + (" (with the ingest handler)" if handler.is_file() else "")
    )


def _convert(tmp: Path) -> str:
    import pymupdf

    from athenaeum.build.convert import ConvertOptions, Job, Status, convert_pdf

    pdf = tmp / "check.pdf"
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "Athenaeum ingest check", fontsize=18)
    page.insert_text((72, 110), "Lambda layers are unpacked under /opt before the handler runs.")
    for row in range(3):  # a ruled 3 x 2 table, for the table finder
        for col in range(2):
            rect = pymupdf.Rect(72 + 150 * col, 150 + 24 * row, 222 + 150 * col, 174 + 24 * row)
            page.draw_rect(rect, color=(0, 0, 0), width=0.8)
            page.insert_text((rect.x0 + 6, rect.y1 - 8), f"cell {row}{col}")
    doc.save(pdf)
    result = convert_pdf(Job(pdf, tmp / "check.md", "check.pdf"), ConvertOptions())
    assert result.status is Status.CONVERTED, result.reason
    markdown = result.output.read_text("utf-8")
    assert "unpacked under /opt" in markdown and "cell 21" in markdown, markdown
    return markdown


def _write_bundle(tmp: Path, text: str) -> None:
    import numpy as np

    from athenaeum.bundle import ChunkRecord, DocumentInfo, EmbeddingInfo, write_bundle
    from athenaeum.bundle.reader import read_manifest
    from athenaeum.retrieval.lexical import BM25Index

    encoder = tmp / "encoder"
    encoder.mkdir()
    (encoder / "model.onnx").write_bytes(b"stand-in")
    (encoder / "tokenizer.json").write_text("{}")
    texts = [line for line in text.splitlines() if line.strip() and not line.startswith("---")]
    # Not np.random: the layer leaves numpy's random module out (build.sh).
    vectors = np.cos(np.arange(len(texts) * 8, dtype=np.float32).reshape(len(texts), 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    write_bundle(
        tmp / "bundle",
        embedding=EmbeddingInfo(model_id="check", dimension=8, max_seq_length=16),
        chunking={},
        documents=[
            DocumentInfo(doc_id="d", source="check.pdf", sha256="0" * 64, chunk_count=len(texts))
        ],
        chunks=[
            ChunkRecord(id=f"d#{i}", doc_id="d", ordinal=i, text=t, title=None, source="check.pdf")
            for i, t in enumerate(texts)
        ],
        vectors=vectors,
        bm25_index=BM25Index.build(texts),
        encoder_dir=encoder,
        dense_kind="hnsw",
    )
    assert read_manifest(tmp / "bundle").counts.chunks == len(texts)


def _embed(index: Path, text: str) -> None:
    import numpy as np

    from athenaeum.bundle.reader import read_manifest
    from athenaeum.retrieval.encoder import OnnxQueryEncoder

    manifest = read_manifest(index)
    encoder = OnnxQueryEncoder(index / "encoder", max_seq_length=manifest.embedding.max_seq_length)
    vectors = encoder.encode([text[:2000], "a second passage"])
    assert vectors.shape == (2, manifest.embedding.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


if __name__ == "__main__":
    main()
