"""The verification record: a copy whose files were hashed where it landed loads without hashing
them again, and any change to those files since (or a missing or stale record) sends the
loader back to the full sha256 pass, which refuses a damaged bundle as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from athenaeum.bundle import VERIFICATION_FILE, load_bundle, reader, verify_bundle
from athenaeum.bundle.verification import check_record, manifest_sha256
from athenaeum.errors import BundleError
from athenaeum.retrieval.engine import SearchEngine
from tests.bundle.test_bundle import (
    CORRUPTIONS,
    _flip_byte,
    chunk_lines,
    rewrite_chunks,
    vouch_for_files_as_they_are,
)

QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."


@pytest.fixture
def verified(scifact_bundle: Path, tmp_path: Path) -> Path:
    """A copy of the SciFact slice (new inodes: the writer's record no longer holds), verified
    in full where it landed."""
    copy = tmp_path / "bundle"
    shutil.copytree(scifact_bundle, copy)
    verify_bundle(copy, by="test")
    return copy


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the files the loader hashes."""
    names: list[str] = []
    real = reader.sha256_file

    def counting(path: Path) -> str:
        names.append(path.name)
        return real(path)

    monkeypatch.setattr(reader, "sha256_file", counting)
    yield names


def why_not(bundle: Path) -> str | None:
    data = (bundle / "manifest.json").read_bytes()
    return check_record(bundle, manifest_sha256(data), json.loads(data)["files"])


def test_a_verified_copy_loads_without_hashing(verified: Path, hashed: list[str]) -> None:
    fast = SearchEngine.load(verified)
    assert hashed == [] and fast.bundle.verification.by_record
    # Only the chunks the answer needs are parsed; the vectors are a read-only map of the file.
    hits = fast.search(QUERY, top_k=5)
    assert fast.bundle.chunks.parsed == 5
    assert not fast.bundle.vectors.codes.flags.writeable

    full = SearchEngine.load(verified, verify="full")
    assert sorted(hashed) == sorted(Path(rel).name for rel in full.bundle.manifest.files)
    assert not full.bundle.verification.by_record
    assert full.bundle.chunks.parsed == len(full.bundle.chunks)
    assert [(h.chunk, h.score) for h in hits] == [
        (h.chunk, h.score) for h in full.search(QUERY, top_k=5)
    ]


def _rewrite_keeping_mtime(path: Path) -> None:
    before = path.stat()
    _flip_byte(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert path.stat().st_size == before.st_size


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    **CORRUPTIONS,
    "dense.faiss rewritten, same size, mtime put back": (
        lambda b: _rewrite_keeping_mtime(b / "dense.faiss"),
        r"is corrupted: dense\.faiss sha256 mismatch",
    ),
    "encoder rewritten, same size, mtime put back": (
        lambda b: _rewrite_keeping_mtime(b / "encoder" / "model.onnx"),
        r"is corrupted: encoder/model\.onnx sha256 mismatch",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damage_after_verification_is_refused(verified: Path, case: str) -> None:
    assert why_not(verified) is None
    damage, message = DAMAGE[case]
    damage(verified)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(verified)
    assert str(verified) in info.value.message and info.value.status_code == 503


def test_putting_the_mtime_back_still_changes_the_ctime(verified: Path) -> None:
    # The trade-off (docs/index-format.md): the record compares stat fields, not bytes. A
    # same-size rewrite whose mtime is put back is still seen, because only the kernel sets
    # the ctime; one that could also set the ctime (a clock change) would not be.
    _rewrite_keeping_mtime(verified / "dense.faiss")
    assert why_not(verified) == "dense.faiss changed since it was verified (ctime_ns)"


STALE: dict[str, Callable[[Path], None]] = {
    "no record": lambda b: (b / VERIFICATION_FILE).unlink(),
    "record unreadable": lambda b: (b / VERIFICATION_FILE).write_text("{half"),
    "record of another manifest": lambda b: (b / "manifest.json").write_text(
        (b / "manifest.json").read_text() + " "
    ),
    "record lists other files": lambda b: (b / VERIFICATION_FILE).write_text(
        json.dumps(
            {
                **(record := json.loads((b / VERIFICATION_FILE).read_text())),
                "files": {k: v for k, v in record["files"].items() if k != "bm25.npz"},
            }
        )
    ),
    "copied (new inodes, same times)": lambda b: _recopy(b),
    "touched": lambda b: os.utime(b / "bm25.npz"),
}


def _recopy(bundle: Path) -> None:
    moved = bundle.with_name("moved")
    bundle.rename(moved)
    shutil.copytree(moved, bundle)  # copy2: sizes and mtimes kept, new inodes and ctimes


@pytest.mark.parametrize("case", list(STALE))
def test_an_intact_bundle_without_a_current_record_is_hashed(
    verified: Path, hashed: list[str], case: str
) -> None:
    STALE[case](verified)
    assert why_not(verified) is not None
    bundle = load_bundle(verified)
    assert not bundle.verification.by_record and "dense.faiss" in hashed


def test_a_missing_record_does_not_save_a_damaged_bundle(verified: Path) -> None:
    (verified / VERIFICATION_FILE).unlink()
    _flip_byte(verified / "chunks.z")
    with pytest.raises(BundleError, match=r"chunks\.z sha256 mismatch"):
        load_bundle(verified)


def test_a_bad_chunk_under_a_record_is_refused_when_read(verified: Path) -> None:
    # What the record vouches for is the bytes; a line that does not parse (which only a
    # forged manifest and record could hold) is refused when read, in the same words.
    lines = chunk_lines(verified)
    lines[7] = lines[7].replace(b'"id"', b'"ix"', 1)
    rewrite_chunks(verified, lines)
    raw = json.loads((verified / "manifest.json").read_text())
    raw["files"]["chunks.z"]["sha256"] = "0" * 64
    (verified / "manifest.json").write_text(json.dumps(raw))
    vouch_for_files_as_they_are(verified)
    bundle = load_bundle(verified)
    with pytest.raises(BundleError, match=r"is corrupted: chunks\.z row 8 is not a valid"):
        bundle.chunks[7]
    with pytest.raises(BundleError, match=r"chunks\.z sha256 mismatch"):
        load_bundle(verified, verify="full")


def test_the_writer_and_verify_record_what_they_hashed(verified: Path) -> None:
    record = json.loads((verified / VERIFICATION_FILE).read_text())
    manifest = (verified / "manifest.json").read_bytes()
    assert record["scope"] == "local" and record["verified_by"] == "test"
    assert record["manifest_sha256"] == manifest_sha256(manifest)
    assert set(record["files"]) == set(json.loads(manifest)["files"])
    assert set(record["files"]["dense.faiss"]) == {
        "bytes",
        "mtime_ns",
        "ctime_ns",
        "inode",
        "device",
    }


def test_a_damaged_bundle_gets_no_record(verified: Path) -> None:
    (verified / VERIFICATION_FILE).unlink()
    poison_codes(verified / "dense.faiss", 3, np.inf)
    with pytest.raises(BundleError):
        verify_bundle(verified, by="test")
    assert not (verified / VERIFICATION_FILE).exists()


# --- the read-only package (Lambda) ------------------------------------------------------------

RO_SCRIPT = """
import json, sys
from athenaeum.bundle import load_bundle
try:
    b = load_bundle(sys.argv[1])
    print(json.dumps({"by_record": b.verification.by_record}))
except Exception as exc:
    print(json.dumps({"error": str(exc)}))
"""


def _load_read_only(bundle: Path) -> dict[str, object]:
    """Load `bundle` in a child process that sees it through a read-only bind mount, as Lambda
    sees its code folder (needs root and unshare; skipped elsewhere)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a read-only bind mount needs root and unshare")
    mount = f"mount --bind {bundle} {bundle} && mount -o remount,bind,ro {bundle} {bundle}"
    command = ["sh", "-c", f'{mount} && exec "$@"', "sh", sys.executable, "-c", RO_SCRIPT]
    proc = subprocess.run(
        ["unshare", "-m", *command, str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0 and "mount" in proc.stderr:
        pytest.skip(f"no read-only bind mount here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_a_package_record_holds_only_on_a_read_only_mount(verified: Path) -> None:
    verify_bundle(verified, by="test", scope="read-only package")
    record = json.loads((verified / VERIFICATION_FILE).read_text())
    assert record["files"]["dense.faiss"] == {"bytes": (verified / "dense.faiss").stat().st_size}
    assert "verified_at" not in record  # staging the same bundle twice gives the same bytes
    assert "writable" in (why_not(verified) or "")
    assert not load_bundle(verified).verification.by_record
    assert _load_read_only(verified) == {"by_record": True}


def test_a_package_record_misses_a_same_size_rewrite_that_full_verification_catches(
    verified: Path,
) -> None:
    # The documented limit of the package scope: sizes only. Lambda's code folder cannot be
    # rewritten after the package is built and verified, so on Lambda this cannot happen.
    verify_bundle(verified, by="test", scope="read-only package")
    _flip_byte(verified / "encoder" / "tokenizer.json")
    assert _load_read_only(verified) == {"by_record": True}
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(verified, verify="full")


def poison_codes(path: Path, row: int, value: float) -> None:
    """Write `value` into every component of fp16 row `row` of the flat index at `path`."""
    import faiss

    index = faiss.read_index(str(path))
    flat = faiss.downcast_index(index)
    codes = np.frombuffer(faiss.rev_swig_ptr(flat.codes.data(), flat.codes.size()), np.float16)
    codes.reshape(int(flat.ntotal), int(flat.d))[row] = value
    faiss.write_index(index, str(path))
