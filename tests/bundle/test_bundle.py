from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from athenaeum.bundle import (
    FORMAT_NAME,
    FORMAT_VERSION,
    ChunkRecord,
    DocumentInfo,
    EmbeddingInfo,
    load_bundle,
    read_manifest,
    write_bundle,
)
from athenaeum.bundle.verification import manifest_sha256, stamps, write_record
from athenaeum.errors import BundleError, InvalidInputError
from athenaeum.retrieval.lexical import BM25Index


@pytest.fixture
def bundle_copy(scifact_bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(scifact_bundle, copy)
    return copy


def test_round_trip(scifact_bundle: Path) -> None:
    manifest = read_manifest(scifact_bundle)
    assert manifest.format == FORMAT_NAME and manifest.format_version == FORMAT_VERSION
    bundle = load_bundle(scifact_bundle)
    n = manifest.counts.chunks
    assert n == 300 == len(bundle.chunks) == bundle.vectors.shape[0] == bundle.bm25.n_docs
    assert bundle.vectors.shape[1] == manifest.embedding.dimension == 384
    assert bundle.dense.ntotal == n
    assert sum(d.chunk_count for d in manifest.documents) == n
    listed = set(manifest.files)
    on_disk = {
        p.relative_to(scifact_bundle).as_posix() for p in scifact_bundle.rglob("*") if p.is_file()
    } - {"manifest.json", "verification.json"}
    assert listed == on_disk
    # The writer hashed every file and recorded it: this load hashed nothing.
    assert bundle.verification.by_record
    assert {
        "chunks.z",
        "dense.faiss",
        "bm25.npz",
        "encoder/model.onnx",
        "encoder/tokenizer.json",
    } <= listed
    # The vectors are stored once, as fp16 codes: no vectors.npy.
    assert manifest.vectors.encoding == "fp16" and "vectors.npy" not in listed
    assert bundle.vectors.codes.dtype == np.float16
    # The chunks are compressed 16 to a block: under half of their JSON lines' bytes.
    lines = sum(len(c.to_json().encode()) + 1 for c in bundle.chunks)
    assert manifest.chunks.encoding == "zlib-blocks" and "chunks.jsonl" not in listed
    assert manifest.files["chunks.z"].bytes < 0.5 * lines
    # Row i of every part is chunk i: its own vector is its nearest neighbour.
    _, rows = bundle.dense.search(bundle.vectors[:5], 1)
    assert rows[:, 0].tolist() == [0, 1, 2, 3, 4]


def _tiny_inputs(encoder_dir: Path, n: int = 3) -> dict[str, object]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = [f"text number {i} about cats" for i in range(n)]
    return {
        "embedding": EmbeddingInfo(model_id="m", dimension=4, max_seq_length=16),
        "chunking": {"size": 10},
        "documents": [DocumentInfo(doc_id="d", source="d.md", sha256="0" * 64, chunk_count=n)],
        "chunks": [
            ChunkRecord(id=f"d#{i}", doc_id="d", ordinal=i, text=t, title=None, source="d.md")
            for i, t in enumerate(texts)
        ],
        "vectors": vectors,
        "bm25_index": BM25Index.build(texts),
        "encoder_dir": encoder_dir,
    }


@pytest.fixture
def fake_encoder_dir(tmp_path: Path) -> Path:
    # The writer copies the encoder as opaque files; loading it is the search tests' business.
    enc = tmp_path / "enc"
    enc.mkdir()
    (enc / "model.onnx").write_bytes(b"onnx")
    (enc / "tokenizer.json").write_text("{}")
    return enc


def test_write_replaces_existing_bundle_atomically(tmp_path: Path, fake_encoder_dir: Path) -> None:
    out = tmp_path / "idx"
    write_bundle(out, **_tiny_inputs(fake_encoder_dir, 3))  # type: ignore[arg-type]
    write_bundle(out, **_tiny_inputs(fake_encoder_dir, 5))  # type: ignore[arg-type]
    assert load_bundle(out).manifest.counts.chunks == 5
    # No .tmp-/.old- directories left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc", "idx"]


def test_interrupted_write_leaves_old_bundle(tmp_path: Path, fake_encoder_dir: Path) -> None:
    out = tmp_path / "idx"
    write_bundle(out, **_tiny_inputs(fake_encoder_dir, 3))  # type: ignore[arg-type]

    class Boom(BM25Index):
        def save(self, path: Path, **_: object) -> None:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    inputs = _tiny_inputs(fake_encoder_dir, 5)
    bm25 = inputs["bm25_index"]
    assert isinstance(bm25, BM25Index)
    boom = Boom(
        vocabulary=bm25.vocabulary,
        indptr=bm25.indptr,
        doc_ids=bm25.doc_ids,
        weights=bm25.weights,
        n_docs=bm25.n_docs,
        avgdl=bm25.avgdl,
        params=bm25.params,
    )
    inputs["bm25_index"] = boom
    with pytest.raises(KeyboardInterrupt):
        write_bundle(out, **inputs)  # type: ignore[arg-type]
    assert load_bundle(out).manifest.counts.chunks == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc", "idx"]


def test_refuses_to_overwrite_a_non_bundle_directory(
    tmp_path: Path, fake_encoder_dir: Path
) -> None:
    out = tmp_path / "papers"
    out.mkdir()
    (out / "thesis.pdf").write_bytes(b"%PDF")
    with pytest.raises(InvalidInputError, match="not an index bundle"):
        write_bundle(out, **_tiny_inputs(fake_encoder_dir))  # type: ignore[arg-type]
    assert (out / "thesis.pdf").exists()


def test_writer_rejects_inconsistent_inputs(tmp_path: Path, fake_encoder_dir: Path) -> None:
    inputs = _tiny_inputs(fake_encoder_dir)
    inputs["vectors"] = np.zeros((2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        write_bundle(tmp_path / "x", **inputs)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_writer_refuses_non_finite_vectors(
    tmp_path: Path, fake_encoder_dir: Path, bad: float
) -> None:
    inputs = _tiny_inputs(fake_encoder_dir)
    vectors = inputs["vectors"]
    assert isinstance(vectors, np.ndarray)
    vectors[1, 2] = bad
    with pytest.raises(ValueError, match=r"vectors row 1 \(chunk d#1\) has NaN or infinite"):
        write_bundle(tmp_path / "x", **inputs)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


# --- corrupted bundles are refused with a message naming the bundle and the problem ----------


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_chunks(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def chunk_lines(bundle: Path) -> list[bytes]:
    """The JSON lines of a bundle's chunks.z."""
    from athenaeum.bundle.chunk import BlockRows

    data = (bundle / "chunks.z").read_bytes()
    count = json.loads((bundle / "manifest.json").read_text())["counts"]["chunks"]
    rows = BlockRows(data, count, 4)
    return [rows.row(i) for i in range(count)]


def rewrite_chunks(bundle: Path, lines: list[bytes]) -> None:
    """Write `lines` as the bundle's chunks.z and put its size and sha256 in the manifest."""
    import hashlib

    from athenaeum.bundle.chunk import encode_blocks

    chunks = bundle / "chunks.z"
    chunks.write_bytes(encode_blocks(lines, 4))
    raw = json.loads((bundle / "manifest.json").read_text())
    raw["files"]["chunks.z"] = {
        "sha256": hashlib.sha256(chunks.read_bytes()).hexdigest(),
        "bytes": chunks.stat().st_size,
    }
    (bundle / "manifest.json").write_text(json.dumps(raw))


def _edit_manifest(edit: Callable[[dict[str, object]], None]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        raw = json.loads((bundle / "manifest.json").read_text())
        edit(raw)
        (bundle / "manifest.json").write_text(json.dumps(raw))

    return apply


def _set_dimension(raw: dict[str, object]) -> None:
    embedding = raw["embedding"]
    assert isinstance(embedding, dict)
    embedding["dimension"] = 768


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "flipped byte in dense.faiss": (
        lambda b: _flip_byte(b / "dense.faiss"),
        r"is corrupted: dense\.faiss sha256 mismatch \(expected [0-9a-f]{12}…, got [0-9a-f]{12}…\)",
    ),
    "truncated chunks.z": (
        lambda b: _truncate_chunks(b / "chunks.z"),
        r"is corrupted: chunks\.z has \d+ bytes, expected \d+",
    ),
    "missing file": (lambda b: (b / "bm25.npz").unlink(), r"is corrupted: bm25\.npz is missing"),
    "missing encoder": (
        lambda b: (b / "encoder" / "model.onnx").unlink(),
        r"is corrupted: encoder/model\.onnx is missing",
    ),
    "missing manifest": (
        lambda b: (b / "manifest.json").unlink(),
        r"has no manifest\.json: it is not an index bundle, or it was written or copied only "
        r"in part",
    ),
    "unsupported format_version": (
        _edit_manifest(lambda raw: raw.update(format_version=3)),
        r"has format_version 3, which athenaeum .* cannot read \(it reads 1, 2\)",
    ),
    "dimension mismatch": (
        _edit_manifest(_set_dimension),
        r"is corrupted: dense\.faiss holds 300 vectors of dimension 384, expected 300 of "
        r"dimension 768",
    ),
    "manifest not json": (
        lambda b: (b / "manifest.json").write_text("{not json"),
        r"is corrupted: manifest\.json is not valid JSON",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupted_bundle_is_refused(bundle_copy: Path, case: str) -> None:
    corrupt, message = CORRUPTIONS[case]
    corrupt(bundle_copy)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(bundle_copy)
    assert str(bundle_copy) in info.value.message
    assert info.value.status_code == 503


def test_truncated_chunks_with_consistent_manifest_is_refused(bundle_copy: Path) -> None:
    # Someone "fixed" the size and hash in the manifest: the count check still catches it.
    lines = chunk_lines(bundle_copy)
    rewrite_chunks(bundle_copy, lines[:-1])
    with pytest.raises(BundleError, match=r"chunks\.z has 299 chunks but the manifest counts 300"):
        load_bundle(bundle_copy)
    # A whole block short: the blocks themselves do not add up.
    rewrite_chunks(bundle_copy, lines[:280])
    with pytest.raises(
        BundleError, match=r"chunks\.z is not chunk blocks: it has 70 blocks, not the 75"
    ):
        load_bundle(bundle_copy)


def test_non_finite_vectors_with_a_rewritten_hash_are_refused(bundle_copy: Path) -> None:
    # NaN vectors scored NaN against every query and dense search answered []: the size and
    # hash checks cannot tell when whoever wrote the NaNs rewrote the manifest too.
    import hashlib

    import faiss

    vectors_file = bundle_copy / "dense.faiss"
    index = faiss.read_index(str(vectors_file))
    flat = faiss.downcast_index(index)
    codes = faiss.rev_swig_ptr(flat.codes.data(), flat.codes.size())
    np.frombuffer(codes, dtype=np.float16).reshape(300, 384)[17:] = np.nan
    faiss.write_index(index, str(vectors_file))
    raw = json.loads((bundle_copy / "manifest.json").read_text())
    raw["files"]["dense.faiss"] = {
        "sha256": hashlib.sha256(vectors_file.read_bytes()).hexdigest(),
        "bytes": vectors_file.stat().st_size,
    }
    (bundle_copy / "manifest.json").write_text(json.dumps(raw))
    chunk_17 = json.loads(chunk_lines(bundle_copy)[17])
    expected = (
        f"index bundle {bundle_copy} is corrupted: dense.faiss row 17 (chunk "
        f"{chunk_17['id']}) has NaN or infinite values; rebuild it with `athenaeum index`"
    )
    with pytest.raises(BundleError) as info:
        load_bundle(bundle_copy, verify="full")
    assert info.value.message == expected
    # A verification record vouches for the bytes, not for what they hold: still refused.
    vouch_for_files_as_they_are(bundle_copy)
    with pytest.raises(BundleError) as info:
        load_bundle(bundle_copy)
    assert info.value.message == expected


def test_a_record_replaces_the_hash_check_but_not_the_size_check(bundle_copy: Path) -> None:
    _flip_byte(bundle_copy / "encoder" / "tokenizer.json")
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(bundle_copy)
    # A record written for the damaged file (what no landing point would write): only the hash
    # would tell, and verify="full" computes it whatever the record says.
    vouch_for_files_as_they_are(bundle_copy)
    assert load_bundle(bundle_copy).verification.by_record
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(bundle_copy, verify="full")
    (bundle_copy / "encoder" / "tokenizer.json").write_text("{}")
    vouch_for_files_as_they_are(bundle_copy)
    with pytest.raises(BundleError, match="has 2 bytes"):
        load_bundle(bundle_copy)


def vouch_for_files_as_they_are(bundle: Path) -> None:
    """A verification record for the files as they are now, hashed or not."""
    manifest_bytes = (bundle / "manifest.json").read_bytes()
    files = json.loads(manifest_bytes)["files"]
    write_record(bundle, manifest_sha256(manifest_bytes), stamps(bundle, files), by="test")


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


def test_hnsw_bundle_round_trip(tmp_path: Path, fake_encoder_dir: Path) -> None:
    import faiss

    out = tmp_path / "idx"
    manifest = write_bundle(
        out,
        **_tiny_inputs(fake_encoder_dir, 50),  # type: ignore[arg-type]
        dense_kind="hnsw",
        dense_params={"ef_search": 64},
    )
    assert manifest.dense.kind == "hnsw" and "dense.faiss" in manifest.files
    assert manifest.dense.params == {"M": 32, "ef_construction": 200, "ef_search": 64}
    bundle = load_bundle(out)
    hnsw = faiss.downcast_index(bundle.dense)
    assert isinstance(hnsw, faiss.IndexHNSWSQ) and hnsw.hnsw.efSearch == 64
    # The graph's own storage is the one copy of the vectors: fp16 codes, no vectors.npy.
    assert faiss.downcast_index(hnsw.storage).code_size == 2 * 4
    assert "vectors.npy" not in manifest.files
    _, rows = bundle.dense.search(bundle.vectors[:3], 1)
    assert rows[:, 0].tolist() == [0, 1, 2]
    if sys.platform == "linux":
        # A walk reads a few codes: they stay mapped from the file, in the shared page cache.
        mapping = _mapping_of(bundle.vectors.codes.ctypes.data)
        assert mapping["path"] == str((out / "dense.faiss").resolve())


def _mapping_of(address: int) -> dict[str, str]:
    """The /proc/self/smaps entry of the mapping that holds `address`: its path ("" for
    anonymous memory) and its fields."""
    entry: dict[str, str] | None = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            if entry is not None:
                return entry
            start, end = (int(x, 16) for x in head[0].split("-"))
            if start <= address < end:
                entry = {"path": head[5] if len(head) > 5 else ""}
        elif entry is not None:
            entry[head[0].rstrip(":")] = head[1]
    assert entry is not None, f"no mapping holds {address:#x}"
    return entry


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/smaps")
def test_a_flat_bundles_codes_are_read_into_huge_pages(scifact_bundle: Path) -> None:
    # Every query scans every code: they are read into this process's anonymous memory, which
    # the kernel backs with 2 MiB pages where transparent huge pages are on (a TLB entry for
    # 512 of the page cache's 4 KiB ones; the scan after the encoder takes 0.42 ms, not 0.58).
    bundle = load_bundle(scifact_bundle)
    codes = bundle.vectors.codes
    mapping = _mapping_of(codes.ctypes.data)
    assert mapping["path"] == ""  # anonymous: not a map of dense.faiss
    assert np.array_equal(codes[:2], bundle.vectors.flat.reconstruct_n(0, 2).astype(np.float16))
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if setting.is_file() and "[never]" not in setting.read_text():
        # The codes of 300 chunks (230 KB) fit in the first huge page of the read.
        assert int(mapping["AnonHugePages"]) >= 2048, mapping


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_format_1_bundle_of_fp32_vectors_still_loads(
    tmp_path: Path, fake_encoder_dir: Path, kind: str
) -> None:
    import faiss

    inputs = _tiny_inputs(fake_encoder_dir, 40)
    out = tmp_path / "v1"
    write_bundle(
        out,
        **inputs,  # type: ignore[arg-type]
        dense_kind=kind,
        vector_encoding="fp32",
        chunk_encoding="jsonl",
    )
    # What a writer from before format 2 wrote: no `vectors` or `chunks` key, vectors.npy and
    # chunks.jsonl.
    raw = json.loads((out / "manifest.json").read_text())
    del raw["vectors"], raw["chunks"]
    (out / "manifest.json").write_text(json.dumps(raw))
    assert raw["format_version"] == 1
    assert {"vectors.npy", "chunks.jsonl"} <= set(raw["files"]) and "chunks.z" not in raw["files"]
    assert ("dense.faiss" in raw["files"]) == (kind == "hnsw")

    bundle = load_bundle(out)
    assert bundle.manifest.vectors.encoding == "fp32"
    assert bundle.manifest.chunks.encoding == "jsonl"
    assert list(bundle.chunks) == inputs["chunks"]
    assert not bundle.verification.by_record  # the manifest changed: every file was hashed
    assert np.array_equal(bundle.vectors.all(), inputs["vectors"])  # type: ignore[arg-type]
    if kind == "hnsw":
        assert isinstance(faiss.downcast_index(bundle.dense), faiss.IndexHNSWFlat)
    _, rows = bundle.dense.search(bundle.vectors[:3], 1)
    assert rows[:, 0].tolist() == [0, 1, 2]

    # Its checks still name its own file.
    vectors = np.load(out / "vectors.npy")
    vectors[5] = np.nan
    np.save(out / "vectors.npy", vectors, allow_pickle=False)
    with pytest.raises(BundleError, match=r"vectors\.npy sha256 mismatch"):
        load_bundle(out)


def test_fp16_codes_are_the_vectors_to_half_precision(
    tmp_path: Path, fake_encoder_dir: Path
) -> None:
    inputs = _tiny_inputs(fake_encoder_dir, 42)
    write_bundle(tmp_path / "b", **inputs)  # type: ignore[arg-type]
    bundle = load_bundle(tmp_path / "b")
    assert list(bundle.chunks) == inputs["chunks"]  # 42 rows: 11 blocks, the last short
    expected = np.asarray(inputs["vectors"], dtype=np.float16)
    assert np.array_equal(bundle.vectors.codes, expected)
    assert bundle.vectors.rows([3, 1]).dtype == np.float32
    assert np.array_equal(bundle.vectors.rows([3, 1]), expected[[3, 1]].astype(np.float32))
    # Read-only: a memory map of the bundle's file, never written through.
    with pytest.raises(ValueError, match="read-only"):
        bundle.vectors.codes[0, 0] = 0
