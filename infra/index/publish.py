"""deploy.sh's start of the living library: the bundle's source files into `library/`, then the
bundle published as the index's first version.

    python -m infra.index.publish --bucket BUCKET --index DIR [--sources-dir DIR]

Once the index has a version, the library is the truth and this does nothing: a later deploy
never replaces what the ingest function has published (docs/deployment.md, "Updating").

The first version holds exactly the documents whose files are in the library, so a document
whose original file cannot be found (indexed from markdown or a BEIR corpus, or a file that
moved or changed) would be dropped from it. When the bundle has any such document, the library
is not started: the bundle keeps being served as it is, and the message says what to do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from athenaeum.bundle import read_manifest
from athenaeum.errors import AthenaeumError
from athenaeum.storage.location import S3Location
from athenaeum.storage.published import PublishConflictError, PublishedIndex
from infra.index.upload import UploadError, upload_sources

LIBRARY_PREFIX = "library"
INDEX_PREFIX = "index"
# The ingest function may hold the writer's lease for the few seconds it takes to see that
# the documents uploaded here need nothing (they are the bundle's): wait it out.
CONFLICT_RETRIES = 6
CONFLICT_WAIT_S = 10.0


def start_library(
    client: Any,
    bucket: str,
    index_dir: Path,
    *,
    sources_dir: Path | None = None,
    work_dir: Path | None = None,
) -> str:
    """Put the bundle's files in the library and publish the bundle as the first version, when
    the index has none; returns what was done, for deploy.sh to print."""
    from athenaeum.ingest.pipeline import ingest

    library, index = S3Location(bucket, LIBRARY_PREFIX), S3Location(bucket, INDEX_PREFIX)
    store = PublishedIndex(index, client)
    pointer = store.read_pointer()
    if pointer is not None:
        return (
            f"the library's index already has a version ({pointer.version[:12]}, published "
            f"{pointer.published_at}, {pointer.documents} documents): the library is the "
            f"truth from now on, and {index_dir} is not published again"
        )
    manifest = read_manifest(index_dir)
    unfiled = [d.source for d in manifest.documents if d.source_file is None]
    if unfiled:
        return (
            f"warning: the library is not started: {len(unfiled)} of the bundle's documents "
            f"have no original file (indexed from markdown or a BEIR corpus, e.g. "
            f"{unfiled[0]}), and the library's first version would drop them. Put their files "
            f"in {library.uri}/ and run `athenaeum ingest {library.uri} --index {index.uri} "
            f"--from {index_dir}`. Until then the deployed bundle is served as it is"
        )
    report = upload_sources(
        client, index_dir, bucket, prefix=LIBRARY_PREFIX, sources_dir=sources_dir, library=True
    )
    if report.not_uploaded:
        problems = "; ".join(report.not_uploaded)
        return (
            f"warning: the library is not started: some of the bundle's original files cannot "
            f"be put in it ({problems}), and the first version would drop their documents. "
            "Set the context key sources_dir to the folder given to `athenaeum convert`, or "
            "convert and index again, then deploy again"
        )
    work = work_dir or Path(tempfile.gettempdir()) / "athenaeum-publish"
    for attempt in range(CONFLICT_RETRIES):
        try:
            published = ingest(
                library,
                index,
                client=client,
                work_dir=work,
                from_bundle=index_dir,
                owner="deploy.sh",
            )
            break
        except PublishConflictError:
            if attempt == CONFLICT_RETRIES - 1:
                raise
            time.sleep(CONFLICT_WAIT_S)
    return (
        f"library started: {report.uploaded} files put in {library.uri}/ "
        f"({report.skipped} already there); version {(published.version or '')[:12]} of "
        f"{index.uri} published with {published.documents_total} documents "
        f"({published.chunks_embedded} chunks embedded)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.index.publish", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--index", type=Path, required=True, help="the bundle folder")
    parser.add_argument(
        "--sources-dir",
        type=Path,
        help="where the original files are, if not where `athenaeum convert` recorded them",
    )
    args = parser.parse_args(argv)

    from athenaeum.storage.client import s3_client

    try:
        print(start_library(s3_client(None), args.bucket, args.index, sources_dir=args.sources_dir))
    except (AthenaeumError, UploadError) as exc:
        message = exc.message if isinstance(exc, AthenaeumError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
