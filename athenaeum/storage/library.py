"""The library as kept in S3: which of its keys are documents athenaeum reads.

One answer for the two that read a library prefix, `athenaeum push` (athenaeum.library), which
writes it, and the ingest (athenaeum.ingest), which converts what it holds.
"""

from __future__ import annotations

from pathlib import PurePosixPath

DOCUMENT_SUFFIXES = frozenset({".pdf", ".md", ".markdown", ".txt"})


def is_document(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in DOCUMENT_SUFFIXES
