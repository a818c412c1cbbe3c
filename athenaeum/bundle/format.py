"""The bundle's format: every file name, version and threshold the two halves agree on.

A bundle is one directory (docs/index-format.md):

    manifest.json          written last; lists every other file with its size and sha256
    chunks.z               the chunks (format version 2, `chunks.encoding` "zlib-blocks"): one
                           ChunkRecord a JSON line, 4 lines to a zlib stream compressed
                           against a dictionary of the bundle's own rows (athenaeum.bundle.chunk
                           .BlockRows); row i of every index below
    chunks.jsonl           the same lines uncompressed, in format version 1
    dense.faiss            the vectors, stored once (format version 2, `vectors.encoding`
                           "fp16"): a FAISS IndexScalarQuantizer of fp16 codes, [chunks,
                           dimension], for the "flat" dense kind; an IndexHNSWSQ whose storage is
                           those codes for "hnsw"
    vectors.npy            only in format version 1 (encoding "fp32"): float32 [chunks,
                           dimension]; its dense.faiss, when "hnsw", keeps a second fp32 copy
    bm25.npz               BM25 postings (athenaeum.bundle.bm25)
    encoder/model.onnx     the query encoder, pooling and normalisation included
    encoder/tokenizer.json its tokenizer
    encoder/document.onnx  the fp32 encoder the documents were embedded with, only when
                           model.onnx is not that graph (an int8 query encoder); the manifest
                           names it under `document_encoder`, not `files`: serving neither
                           needs nor copies it, and the ingest function embeds new documents
                           with it (athenaeum.ingest)

and, beside them, verification.json: not part of the bundle (the manifest does not list it), a
record that this copy's files were hashed against the manifest where they landed
(athenaeum.bundle.verification).
"""

from __future__ import annotations

from typing import Literal

FORMAT_NAME = "athenaeum-index"
# 2: the vectors are fp16 codes inside dense.faiss, stored once (VECTOR_ENCODING); 1: fp32 in
# vectors.npy, which this version still reads (docs/index-format.md, "Versioning").
FORMAT_VERSION = 2
SUPPORTED_FORMAT_VERSIONS = frozenset({1, 2})
# The version of the tokenizer (athenaeum.retrieval.lexical.tokenize) that made bm25.npz's terms,
# recorded in the manifest. A format fact: a bundle whose terms another tokenizer made would
# match no query terms, so the reader refuses it. Bump it when `tokenize` changes its terms.
TOKENIZER_VERSION = 1

# Front-matter fields that `convert` writes about the conversion itself; every other field is the
# document's own metadata, which search filters match.
SOURCE_PATH_FIELD = "source_path"
# How citations locate a converted document's text where it has no page or slide markers:
# `section` (Word, HTML, EPUB) cites a chunk by its heading path.
CITE_BY_FIELD = "cite_by"
# The front-matter field that puts a document in a collection other than its folder's
# (athenaeum.bundle.manifest.DocumentInfo.collection).
COLLECTION_FIELD = "collection"
# The collection of the documents at the library's root, in no folder: readable by everyone
# who may search at all (docs/access.md).
ROOT_COLLECTION = ""
MAX_COLLECTION_CHARS = 128
CONVERSION_FIELDS = frozenset(
    {
        "source",
        SOURCE_PATH_FIELD,
        "title",
        "pages",
        "slides",
        "sheets",
        "chapters",
        "sections",
        CITE_BY_FIELD,
        "sha256",
        "converter",
        "converter_version",
    }
)

MANIFEST_FILE = "manifest.json"
CHUNKS_FILE = "chunks.jsonl"
CHUNK_BLOCKS_FILE = "chunks.z"
VECTORS_FILE = "vectors.npy"
DENSE_FILE = "dense.faiss"
BM25_FILE = "bm25.npz"
ENCODER_DIR = "encoder"
ENCODER_MODEL_FILE = "model.onnx"
ENCODER_TOKENIZER_FILE = "tokenizer.json"
ENCODER_MODEL = f"{ENCODER_DIR}/{ENCODER_MODEL_FILE}"
ENCODER_TOKENIZER = f"{ENCODER_DIR}/{ENCODER_TOKENIZER_FILE}"
DOCUMENT_ENCODER = f"{ENCODER_DIR}/document.onnx"
VERIFICATION_FILE = "verification.json"
# Files every bundle has; its chunks' and vectors' files are added by `required_files`.
REQUIRED_FILES = (BM25_FILE, ENCODER_MODEL, ENCODER_TOKENIZER)

DenseKind = Literal["flat", "hnsw"]
# How the vectors are stored: "fp16", half-precision codes in dense.faiss (what the writer
# writes); "fp32", vectors.npy, what every bundle of format version 1 holds. fp16 was chosen
# over int8 scalar codes by benchmarks/bench_vectors.py (docs/benchmarks.md, "Compact vectors"):
# int8 alone finds 98.0% of exact fp32's top 10 at 400,000 chunks, below the 99% bar, and
# int8 plus an fp16 copy to rescore from takes more disk than fp16 alone.
VectorEncoding = Literal["fp32", "fp16"]
VECTOR_ENCODING: VectorEncoding = "fp16"
# How the chunks are stored: "zlib-blocks", chunks.z (what the writer writes: under a third of
# the bytes, docs/index-format.md); "jsonl", chunks.jsonl, what every bundle of format version 1
# holds.
ChunkEncoding = Literal["jsonl", "zlib-blocks"]
CHUNK_ENCODING: ChunkEncoding = "zlib-blocks"
CHUNK_BLOCK = 4
# Exact search reads every vector on every query, so its latency grows linearly with the chunk
# count; from this many chunks on, "auto" builds an HNSW graph instead (the measurements behind
# the number are in docs/index-format.md).
HNSW_THRESHOLD = 100_000
# efSearch 256: on 400,000 chunks synthesized from SciFact (benchmarks/bench_vectors.py --hnsw,
# docs/benchmarks.md "Compact vectors") the fp16 graph finds 99.00% of exact fp32's top 10 at
# 256 and 96.80% at 128, for 0.48 ms a query against 0.26. Bundles record it in their manifest,
# so one built with 128 keeps 128.
HNSW_DEFAULTS: dict[str, int] = {"M": 32, "ef_construction": 200, "ef_search": 256}


def collection_error(value: object) -> str | None:
    """What is wrong with `value` as a collection name (a folder's name: one path segment,
    neither empty nor hidden), or None when it is a valid one."""
    if not isinstance(value, str):
        return f"a collection is named by text, not {type(value).__name__}"
    if not value.strip() or value != value.strip():
        return "a collection's name is not empty and has no spaces around it"
    if "/" in value or "\\" in value or value.startswith("."):
        return f"{value!r} is not a folder's name (no '/' or '\\', no leading '.')"
    if len(value) > MAX_COLLECTION_CHARS or not value.isprintable():
        return f"a collection's name is at most {MAX_COLLECTION_CHARS} printable characters"
    return None


def required_files(
    vectors: VectorEncoding, dense_kind: DenseKind, chunks: ChunkEncoding
) -> tuple[str, ...]:
    """The files a bundle of these encodings and dense kind cannot be read without."""
    chunk_file = CHUNK_BLOCKS_FILE if chunks == "zlib-blocks" else CHUNKS_FILE
    if vectors == "fp16":
        return (*REQUIRED_FILES, chunk_file, DENSE_FILE)
    dense = (DENSE_FILE,) if dense_kind != "flat" else ()
    return (*REQUIRED_FILES, chunk_file, VECTORS_FILE, *dense)


def format_version_of(vectors: VectorEncoding, chunks: ChunkEncoding) -> int:
    """The format version a bundle of these encodings is written as: version 1 when it is what
    readers from before version 2 read (fp32 vectors.npy, chunks.jsonl)."""
    return 1 if (vectors, chunks) == ("fp32", "jsonl") else 2


def choose_dense_kind(n_chunks: int) -> DenseKind:
    return "hnsw" if n_chunks >= HNSW_THRESHOLD else "flat"
