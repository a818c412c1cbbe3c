"""The query side of a bundle: what a server needs when the chunks are searched elsewhere
(an Amazon S3 Vectors index, athenaeum.s3vectors): the manifest, for the documents, the
embedding record and the counts, and the query encoder (encoder/model.onnx and its
tokenizer.json). Vectors, chunks and BM25 stay out; the service holds them.

A query-side copy is a folder with the bundle's own manifest.json and only the files of
`query_side_files`; `load_query_side` checks those files as a bundle's are checked (present,
of their size, their sha256), so a damaged copy is refused with the same message.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from athenaeum.bundle.format import ENCODER_DIR, MANIFEST_FILE
from athenaeum.bundle.manifest import Manifest
from athenaeum.bundle.reader import check_file, corrupted, read_manifest


def query_side_files(manifest: Manifest) -> list[str]:
    """The files of the bundle a query-side copy keeps: the query encoder's."""
    return sorted(
        name for name in manifest.files if PurePosixPath(name).parts[:1] == (ENCODER_DIR,)
    )


def load_query_side(path: Path, *, check_hashes: bool = True) -> Manifest:
    """The manifest of a query-side copy (or of a whole bundle), after checking the query
    encoder's files; every failure is a BundleError that names the file and what is wrong."""
    path = Path(path)
    manifest = read_manifest(path)
    files = query_side_files(manifest)
    if not files:
        raise corrupted(path, f"{MANIFEST_FILE} lists no query encoder under {ENCODER_DIR}/")
    for rel in files:
        check_file(path, rel, manifest.files[rel], check_hashes=check_hashes)
    return manifest


def copy_query_side(source: Path, target: Path) -> Path:
    """Copy the query side of the bundle at `source` into the new folder `target` and check
    the copy in full; raises BundleError for a bundle whose query side fails."""
    source, target = Path(source), Path(target)
    manifest = read_manifest(source)
    target.mkdir(parents=True, exist_ok=False)
    shutil.copy2(source / MANIFEST_FILE, target / MANIFEST_FILE)
    for rel in query_side_files(manifest):
        if not (source / rel).is_file():
            raise corrupted(source, f"{rel} is missing")
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target / rel)
    load_query_side(target)
    return target
