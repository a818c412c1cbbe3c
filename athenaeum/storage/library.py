"""The library as kept in S3: which of its keys are documents athenaeum reads.

One answer for the two that read a library prefix, `athenaeum push` (athenaeum.library), which
writes it, and the ingest (athenaeum.ingest), which converts what it holds.
"""

from __future__ import annotations

from pathlib import PurePosixPath

# What the ingest converts to markdown first (athenaeum.build.convert reads these), and what it
# indexes as it is.
CONVERTED_SUFFIXES = frozenset(
    {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".xhtml", ".epub"}
)
TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
DOCUMENT_SUFFIXES = CONVERTED_SUFFIXES | TEXT_SUFFIXES
# What a person reads in a report of skipped files.
READ_SUFFIXES_TEXT = ".pdf, .docx, .pptx, .xlsx, .html, .htm, .xhtml, .epub, .md, .markdown, .txt"

MEDIA_TYPES = {
    ".pdf": "application/pdf",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".epub": "application/epub+zip",
}


def is_document(rel: str) -> bool:
    return PurePosixPath(rel).suffix.lower() in DOCUMENT_SUFFIXES


def is_converted(rel: str) -> bool:
    """Whether the ingest converts the file to markdown before indexing it."""
    return PurePosixPath(rel).suffix.lower() in CONVERTED_SUFFIXES
