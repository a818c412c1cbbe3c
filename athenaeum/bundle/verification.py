"""The verification record: a bundle's files were hashed once, where they landed, and have not
changed since, so a load may skip hashing them again.

`verification.json` sits in the bundle directory, outside the manifest's list of files (it
describes this copy, never travels to S3 and is rewritten wherever the bundle lands). It is
keyed by the sha256 of the manifest's own bytes and, per file, by what the filesystem says about
it. Two scopes:

- "local" (the writer, an S3 download, `athenaeum verify`): each file's size, mtime_ns,
  ctime_ns, inode and device. Rewriting a file changes its mtime and ctime; putting the mtime
  back with os.utime still changes the ctime, which nothing but the kernel sets; a copy has new
  inodes. Any difference sends the loader back to the full sha256 pass.
- "read-only package" (the Lambda staging step): sizes only, because unzipping the function
  gives every file a new inode and times. It is honoured only while the bundle directory is on
  a read-only mount (Lambda's /var/task), where nothing can have rewritten a file since the
  package was built and verified; anywhere writable it counts as no record.

What it cannot see: a file rewritten in place with the same size by something that also resets
the kernel's ctime (changing the system clock), or bits that rot on disk without a write.
`verify="full"` (ATHENAEUM_INDEX_VERIFY=full, `athenaeum verify`) hashes every file whatever
the record says. docs/index-format.md has the trade-off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from athenaeum import __version__
from athenaeum.bundle.format import VERIFICATION_FILE

RECORD_FORMAT = "athenaeum-verification"
RECORD_VERSION = 1

Scope = Literal["local", "read-only package"]
# What a "local" record keeps of each file's stat, in this order.
_STAMP = ("bytes", "mtime_ns", "ctime_ns", "inode", "device")


def manifest_sha256(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()


def is_read_only(path: Path) -> bool:
    """Whether `path` is on a filesystem mounted read-only (statvfs ST_RDONLY)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return False


def stamp(file: Path) -> dict[str, int]:
    """What a "local" record keeps of a file: take it before hashing the file, so that a write
    during or after the hashing leaves the record stale rather than vouching for new bytes."""
    st = file.stat()
    values = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
    return dict(zip(_STAMP, values, strict=True))


def stamps(path: Path, files: Iterable[str]) -> dict[str, dict[str, int]]:
    return {rel: stamp(Path(path) / rel) for rel in files}


def write_record(
    path: Path,
    manifest_digest: str,
    file_stamps: Mapping[str, Mapping[str, int]],
    *,
    by: str,
    scope: Scope = "local",
) -> Path:
    """Record that the manifest's files (`file_stamps`, taken before they were hashed against
    the manifest whose sha256 is `manifest_digest`) were verified.

    A "read-only package" record keeps sizes only and no time, so that the same bundle staged
    twice gives the same bytes (and the function's asset the same hash).
    """
    path = Path(path)
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "scope": scope,
        "manifest_sha256": manifest_digest,
        "verified_by": by,
    }
    if scope == "local":
        record["verified_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        record["athenaeum_version"] = __version__
        record["files"] = {rel: dict(file_stamps[rel]) for rel in sorted(file_stamps)}
    else:
        record["files"] = {rel: {"bytes": file_stamps[rel]["bytes"]} for rel in sorted(file_stamps)}
    target = path / VERIFICATION_FILE
    tmp = path / f".{VERIFICATION_FILE}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", "utf-8")
        tmp.replace(target)  # a reader sees the old record or the new one, never half
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def check_record(path: Path, manifest_digest: str, files: Iterable[str]) -> str | None:
    """None when `path` holds a record that vouches for exactly this manifest (its sha256) and
    these files as they are now; otherwise why not, for the log line of the full verification."""
    path = Path(path)
    try:
        record = json.loads((path / VERIFICATION_FILE).read_bytes())
    except FileNotFoundError:
        return f"no {VERIFICATION_FILE}"
    except (OSError, ValueError) as exc:
        return f"{VERIFICATION_FILE} cannot be read ({exc})"
    if (
        not isinstance(record, dict)
        or record.get("format") != RECORD_FORMAT
        or record.get("version") != RECORD_VERSION
        or not isinstance(record.get("files"), dict)
    ):
        return f"{VERIFICATION_FILE} is not a verification record this version reads"
    if record.get("manifest_sha256") != manifest_digest:
        return f"{VERIFICATION_FILE} was written for another manifest"
    recorded: dict[str, Any] = record["files"]
    wanted = set(files)
    if set(recorded) != wanted:
        missing = sorted(wanted - set(recorded)) or sorted(set(recorded) - wanted)
        return f"{VERIFICATION_FILE} does not list the same files as the manifest ({missing[0]})"
    scope = record.get("scope")
    if scope == "read-only package":
        if not is_read_only(path):
            return f"{VERIFICATION_FILE} vouches for a read-only package and {path} is writable"
        keys: tuple[str, ...] = ("bytes",)
    elif scope == "local":
        keys = _STAMP
    else:
        return f"{VERIFICATION_FILE} has an unknown scope {scope!r}"
    for rel in sorted(wanted):
        try:
            now = stamp(path / rel)
        except OSError:
            return f"{rel} cannot be read"
        then = recorded[rel]
        if not isinstance(then, dict):
            return f"{VERIFICATION_FILE} entry for {rel} is malformed"
        changed = [key for key in keys if then.get(key) != now[key]]
        if changed:
            return f"{rel} changed since it was verified ({', '.join(changed)})"
    return None
