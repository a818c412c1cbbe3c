"""manifest.json: what a bundle holds, how it was built, and the size and sha256 of every file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from athenaeum.bundle.format import (
    COLLECTION_FIELD,
    ROOT_COLLECTION,
    ChunkEncoding,
    DenseKind,
    VectorEncoding,
    collection_error,
)


class _Model(BaseModel):
    # Unknown keys are ignored so a later writer may add informative fields within a version.
    model_config = ConfigDict(frozen=True, extra="ignore")


class EmbeddingInfo(_Model):
    model_id: str
    revision: str | None = None
    dimension: int = Field(gt=0)
    pooling: str = "mean"
    normalize: bool = True
    max_seq_length: int = Field(gt=0)
    query_prefix: str = ""
    document_prefix: str = ""
    similarity: Literal["cosine"] = "cosine"
    # encoder/model.onnx's weights: "fp32", or "int8" (dynamically quantized). The vectors are
    # fp32 either way. Informational: the graph is self-describing, so a reader loads any.
    # Absent in bundles written before it existed, which were all fp32.
    encoder_precision: str = "fp32"


class DenseInfo(_Model):
    kind: DenseKind
    params: dict[str, Any] = Field(default_factory=dict)


class VectorsInfo(_Model):
    """How the vectors are stored (athenaeum.bundle.format.VectorEncoding)."""

    encoding: VectorEncoding


class ChunksInfo(_Model):
    """How the chunks are stored (athenaeum.bundle.format.ChunkEncoding); `block` is the rows
    to a zlib stream."""

    encoding: ChunkEncoding
    block: int = Field(default=4, gt=0)


class BM25Info(_Model):
    k1: float
    b: float
    stemmer_language: str
    tokenizer_version: int


class Counts(_Model):
    documents: int = Field(ge=0)
    chunks: int = Field(ge=0)


class SourceFileInfo(_Model):
    """The original file a document was converted from, as `convert` recorded it: where it was
    (absolute, on the machine that converted it; None when unknown) and its sha256, which a
    server checks before it links to a file found there or under `--sources`."""

    location: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class DocumentInfo(_Model):
    doc_id: str
    source: str
    title: str | None = None
    sha256: str
    chunk_count: int = Field(ge=0)
    # The document's own front matter (less the fields convert writes for itself): what search
    # filters' `metadata` matches. Absent in bundles written before it existed.
    metadata: dict[str, Any] = Field(default_factory=dict)
    source_file: SourceFileInfo | None = None

    @property
    def collection(self) -> str:
        """The collection the document belongs to: its front matter's `collection`, else the
        first folder of its path under the library's root (its id), else ROOT_COLLECTION (a
        document at the root, or one of a BEIR corpus, whose ids are no paths).

        Derived, not stored, so that a bundle written before collections existed reads the
        same. A `collection` field that is not a valid name (the indexer refuses such a
        document) names a collection of its own that no policy grants: never the root."""
        if COLLECTION_FIELD in self.metadata:
            value = self.metadata[COLLECTION_FIELD]
            return value if collection_error(value) is None else f"\0invalid:{value!r}"
        folder, slash, _ = self.doc_id.partition("/")
        return folder if slash and folder else ROOT_COLLECTION


class FileInfo(_Model):
    sha256: str
    bytes: int = Field(ge=0)


class DocumentEncoderInfo(_Model):
    """The fp32 graph the documents were embedded with, kept beside an int8 query encoder so
    that documents can be added without the model's original weights (or torch). Build-side
    only: a serving copy of the bundle may leave it out, so it is not among `files`."""

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(_Model):
    format: str
    format_version: int
    created_at: str
    athenaeum_version: str
    embedding: EmbeddingInfo
    chunking: dict[str, Any] = Field(default_factory=dict)
    dense: DenseInfo
    # Absent in format version 1, whose vectors are all fp32 in vectors.npy.
    vectors: VectorsInfo = VectorsInfo(encoding="fp32")
    chunks: ChunksInfo = ChunksInfo(encoding="jsonl")
    bm25: BM25Info
    counts: Counts
    documents: list[DocumentInfo]
    files: dict[str, FileInfo]
    # None: the query encoder (encoder/model.onnx, fp32) is the document encoder, or the bundle
    # was written before bundles kept one.
    document_encoder: DocumentEncoderInfo | None = None
