"""`athenaeum push`, `publish` and `ingest`: the library, the S3 Vectors index and the published
index in the cloud. The one place the CLI reaches S3 addresses and clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from athenaeum.cli.console import console, err_console, fail, stage_progress, stage_updater

if TYPE_CHECKING:
    from athenaeum.ingest.pipeline import IngestReport
    from athenaeum.library.push import PushReport
    from athenaeum.storage.location import S3Location


def push_command(
    folder: Annotated[
        Path,
        typer.Argument(
            help="The local folder of documents. Folders in it are searched recursively; "
            "hidden files and folders are left out.",
            show_default=False,
        ),
    ],
    library: Annotated[
        str,
        typer.Argument(
            help="The library: s3://BUCKET/PREFIX, for example s3://my-bucket/library. Each "
            "document goes to PREFIX/<its path in the folder>.",
            show_default=False,
        ),
    ],
    delete: Annotated[
        bool,
        typer.Option(
            "--delete",
            help="Also delete the documents under the prefix that have no file in the folder. "
            "Only document keys are deleted (and only those --include/--exclude select); "
            "anything else under the prefix, and everything outside it, is left alone.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would be uploaded and deleted; change nothing."),
    ] = False,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            help="Push only documents matching this glob, against the path relative to the "
            "folder or the file name (`*` also crosses `/`). Repeat for several.",
            show_default=False,
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="Leave out documents matching this glob (matched as --include is). Repeat for "
            "several.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Make the library in S3 match a local folder: upload new and changed documents.

    Documents are PDFs, Word, PowerPoint and Excel files (.docx, .pptx, .xlsx), web pages (.html,
    .htm, .xhtml), EPUB books and .md, .markdown and .txt files; other files are reported as
    skipped.
    A document is uploaded when no object has its key or the object's sha256 differs: every
    object carries its file's sha256 in its metadata, and S3 checks the bytes against it on the
    way in (per part for files of 8 MiB and more). Unchanged documents are not sent again. With
    --delete, documents removed from the folder are deleted from the prefix, after the uploads.
    One file that fails is reported and the others go on; the exit status is then 1.

    Credentials, region and endpoint are boto3's own settings (AWS_PROFILE, AWS_REGION, and
    AWS_ENDPOINT_URL for another S3-compatible server).

    Example: athenaeum push ~/manuals s3://my-bucket/library --delete
    """
    from athenaeum.library.push import push

    with _transfer_progress() as on_progress:
        try:
            report = push(
                folder,
                library,
                delete=delete,
                dry_run=dry_run,
                include=include or [],
                exclude=exclude or [],
                on_progress=on_progress,
            )
        except KeyboardInterrupt:
            fail("interrupted; what was uploaded stays, run push again to finish", code=130)
    _print_push(report)
    if not report.ok:
        raise typer.Exit(1)


@contextmanager
def _transfer_progress() -> Iterator[Callable[[str, int, int], None] | None]:
    """A bar of bytes per stage for push's `on_progress`, on a terminal only (None elsewhere),
    stopped however the push ends."""
    if not err_console.is_terminal:
        yield None
        return
    import threading

    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    tasks: dict[str, TaskID] = {}
    adding = threading.Lock()  # uploads report from the transfer manager's threads

    def on_progress(stage: str, done: int, total: int) -> None:
        with adding:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], advance=done)

    progress.start()
    try:
        yield on_progress
    finally:
        progress.stop()


def _print_push(report: PushReport) -> None:
    from rich.filesize import decimal
    from rich.text import Text

    dry = report.dry_run
    for upload in report.uploaded:
        size = decimal(upload.document.size)
        verb = "would upload" if dry else "uploaded"
        console.print(
            Text.assemble((verb, "green"), f" {upload.key} ({upload.change}, {size})"),
            soft_wrap=True,
        )
    for gone in report.deleted:
        verb = "would delete" if dry else "deleted"
        console.print(Text.assemble((verb, "yellow"), f" {gone.key}"), soft_wrap=True)
    for failure in report.failed:
        err_console.print(
            Text.assemble(("failed", "bold red"), f" {failure.key}: {failure.reason}"),
            soft_wrap=True,
        )

    def amount(count: int, what: str, size: int) -> str:
        return f"{count} {what} ({decimal(size)})"

    counts = ", ".join(
        (
            amount(
                len(report.uploaded),
                "to upload" if dry else "uploaded",
                sum(u.document.size for u in report.uploaded),
            ),
            amount(len(report.unchanged), "unchanged", sum(d.size for d in report.unchanged)),
            amount(
                len(report.deleted),
                "to delete" if dry else "deleted",
                sum(o.size for o in report.deleted),
            ),
            amount(len(report.skipped), "skipped", sum(s.size for s in report.skipped)),
            f"{len(report.failed)} failed",
        )
    )
    where = f"{report.location.uri}/"
    console.print(
        f"Dry run, nothing changed in {where}: {counts}." if dry else f"{where}: {counts}.",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    reasons: dict[str, list[str]] = {}
    for item in report.skipped:
        reasons.setdefault(item.reason, []).append(item.rel)
    for reason, names in sorted(reasons.items()):
        kinds: dict[str, int] = {}
        for name in names:
            suffix = Path(name).suffix.lower() or "(no extension)"
            kinds[suffix] = kinds.get(suffix, 0) + 1
        listed = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        console.print(
            f"Skipped, {reason}: {listed}.", soft_wrap=True, highlight=False, markup=False
        )
    if report.kept:
        console.print(
            f"{len(report.kept)} document(s) under the prefix have no file in the folder and "
            "were kept (--delete removes them).",
            highlight=False,
        )
    if report.others:
        console.print(
            f"{report.others} other object(s) under the prefix (not documents, or filtered "
            "out) were left as they are.",
            highlight=False,
        )


def publish_command(
    bundle: Annotated[
        Path,
        typer.Argument(
            help="The index bundle folder (what `athenaeum index` wrote).", show_default=False
        ),
    ],
    target: Annotated[
        str,
        typer.Argument(
            help="The Amazon S3 Vectors index, s3vectors://VECTOR_BUCKET/INDEX (created when "
            "it does not exist).",
            show_default=False,
        ),
    ],
    state: Annotated[
        str,
        typer.Option(
            "--state",
            help="Where the record of what the index holds is kept, s3://BUCKET/KEY: with it "
            "only new and changed chunks are put and removed ones deleted.",
            show_default=False,
        ),
    ],
) -> None:
    """Publish a bundle's chunks into an Amazon S3 Vectors index, for libraries past one
    function's bundle.

    One vector per chunk, with its text (searched in full text by the service), title,
    headings and source, and its document, pages and front matter as filterable metadata.
    Only what changed since the last publish is sent. Uses the usual AWS credentials and
    region.

    Example: athenaeum publish index/ s3vectors://vectors/library --state s3://b/state.json
    """
    import boto3  # type: ignore[import-untyped]

    from athenaeum.bundle import load_bundle
    from athenaeum.s3vectors.publish import S3State, VectorIndex, publish
    from athenaeum.storage.client import s3_client
    from athenaeum.storage.location import S3Location

    index = VectorIndex.parse(target)
    if not state.startswith("s3://") or not S3Location.parse(state, what="--state").prefix:
        fail(f"--state must be an s3://BUCKET/KEY address, not {state!r}")
    where = S3Location.parse(state, what="--state")
    loaded = load_bundle(bundle, verify="full")
    progress = stage_progress(transient=True)
    on_progress = stage_updater(progress)

    with progress:
        report = publish(
            loaded,
            index,
            client=boto3.client("s3vectors"),
            state=S3State(s3_client(None), where.bucket, where.prefix, index),
            progress=on_progress,
        )
    created = " (index created)" if report.created_index else ""
    for change in report.index_changes:
        console.print(f"{report.index}: {change}.", highlight=False)
    console.print(
        f"Published {bundle} to {report.index}{created}: {report.put} vectors put, "
        f"{report.deleted} deleted, {report.unchanged} unchanged, in {report.seconds:.1f} s."
    )


def ingest_command(
    library: Annotated[
        str,
        typer.Argument(
            help="The library: an S3 prefix of documents (.pdf, .docx, .pptx, .xlsx, .html, "
            ".htm, .xhtml, .epub) and .md, .markdown and .txt files, s3://BUCKET/PREFIX.",
            show_default=False,
        ),
    ],
    index: Annotated[
        str,
        typer.Option(
            "--index",
            "-i",
            help="The published index to update, s3://BUCKET/PREFIX (athenaeum serve --index "
            "and the API function follow it).",
            show_default=False,
        ),
    ],
    from_bundle: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A bundle built by `athenaeum index` to start from when the index holds no "
            "version yet: its encoders, settings and documents (files in the library that it "
            "already holds are not embedded again). Ignored once the index has a version.",
            show_default=False,
        ),
    ] = None,
    password: Annotated[
        list[str] | None,
        typer.Option(
            "--password",
            help="Password for encrypted PDFs and Office files; repeat for several. Without "
            "one, encrypted files are reported, not published.",
            show_default=False,
        ),
    ] = None,
    max_pages: Annotated[
        int | None,
        typer.Option(
            "--max-pages",
            min=1,
            help="Refuse PDFs with more pages (they are named in the report).",
            show_default=False,
        ),
    ] = None,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir",
            help="Where downloads, conversions and the local copy of the index go. Default: a "
            "folder in the system's temporary directory, kept between runs.",
            show_default=False,
        ),
    ] = None,
    keep_versions: Annotated[
        int,
        typer.Option(
            "--keep-versions",
            min=1,
            help="Published versions to keep after publishing; older ones, and the files only "
            "they use, are deleted (none written in the last hour).",
        ),
    ] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the ingest report as JSON.")
    ] = False,
) -> None:
    """Bring a published index up to date with a library in S3, without torch.

    New and changed files are converted, chunked and embedded with the index's own document
    encoder; files removed from the library are dropped; then a new version is published and
    the pointer moved. Unchanged files are not downloaded again. This is what the ingest
    function does in the cloud; it works against any S3 endpoint boto3 accepts
    (AWS_ENDPOINT_URL). A file that cannot be converted is reported and the others are
    published; the exit status is 1 when any failed.

    Example: athenaeum ingest s3://my-bucket/library --index s3://my-bucket/index --from index/
    """
    import tempfile

    from athenaeum.ingest.pipeline import ingest
    from athenaeum.storage.client import s3_client

    source, target = _s3_prefix("library", library), _s3_prefix("--index", index)
    if from_bundle is not None and not from_bundle.is_dir():
        fail(f"--from {from_bundle} is not a folder")
    progress = stage_progress(transient=True)
    with progress:
        report = ingest(
            source,
            target,
            client=s3_client(None),
            work_dir=work_dir or Path(tempfile.gettempdir()) / "athenaeum-ingest",
            from_bundle=from_bundle,
            passwords=password or [],
            max_pages=max_pages,
            progress=stage_updater(progress),
            keep_versions=keep_versions,
        )
    _print_ingest(report, as_json=as_json)
    if report.failed:
        raise typer.Exit(1)


def _s3_prefix(name: str, uri: str) -> S3Location:
    from athenaeum.storage.location import S3Location

    if not uri.startswith("s3://"):
        fail(f"{name} must be an s3://BUCKET/PREFIX address, not {uri!r}")
    return S3Location.parse(uri, what=name)


def _print_ingest(report: IngestReport, *, as_json: bool) -> None:
    if as_json:
        console.print_json(report.to_json())
        return
    verb = "Published" if report.published else "Nothing to publish:"
    console.print(
        f"{verb} version {(report.version or '')[:12]} of {report.index}: "
        f"{report.documents_total} documents, {report.chunks_total} chunks "
        f"({report.documents_added} added, {report.documents_changed} changed, "
        f"{report.documents_removed} removed, {report.documents_unchanged} unchanged; "
        f"{report.chunks_embedded} chunks embedded)."
    )
    for item in report.failed:
        err_console.print(f"[yellow]not published[/] {item['key']}: {item['reason']}")
    for item in report.skipped:
        err_console.print(f"[dim]skipped[/] {item['key']}: {item['reason']}")
