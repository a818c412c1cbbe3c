"""The index bundle: the contract between the build side, which writes it, and the serve side,
which loads it. Its format (`format`), manifest (`manifest`), chunk model (`chunk`), reader
and writer live here and nowhere else.

Lean stack only (numpy, faiss, pydantic): the serve side imports this package.
"""

from athenaeum.bundle.chunk import ChunkRecord
from athenaeum.bundle.format import (
    BM25_FILE,
    CHUNKS_FILE,
    DENSE_FILE,
    ENCODER_DIR,
    ENCODER_MODEL,
    ENCODER_MODEL_FILE,
    ENCODER_TOKENIZER_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    HNSW_DEFAULTS,
    HNSW_THRESHOLD,
    MANIFEST_FILE,
    SUPPORTED_FORMAT_VERSIONS,
    VECTORS_FILE,
    DenseKind,
    choose_dense_kind,
)
from athenaeum.bundle.manifest import (
    BM25Info,
    Counts,
    DenseInfo,
    DocumentInfo,
    EmbeddingInfo,
    FileInfo,
    Manifest,
    SourceFileInfo,
)
from athenaeum.bundle.reader import Bundle, corrupted, load_bundle, read_manifest, verify_files
from athenaeum.bundle.writer import write_bundle

__all__ = [
    "BM25_FILE",
    "CHUNKS_FILE",
    "DENSE_FILE",
    "ENCODER_DIR",
    "ENCODER_MODEL",
    "ENCODER_MODEL_FILE",
    "ENCODER_TOKENIZER_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HNSW_DEFAULTS",
    "HNSW_THRESHOLD",
    "MANIFEST_FILE",
    "SUPPORTED_FORMAT_VERSIONS",
    "VECTORS_FILE",
    "BM25Info",
    "Bundle",
    "ChunkRecord",
    "Counts",
    "DenseInfo",
    "DenseKind",
    "DocumentInfo",
    "EmbeddingInfo",
    "FileInfo",
    "Manifest",
    "SourceFileInfo",
    "choose_dense_kind",
    "corrupted",
    "load_bundle",
    "read_manifest",
    "verify_files",
    "write_bundle",
]
