"""The converted-markdown format shared by `convert` (writer) and `index` (reader).

A converted file is YAML front matter followed by markdown in which every page starts with a
marker line `<!-- page: N -->` (1-based). Plain markdown without front matter or markers is
also accepted by the reader: it is then one "page" with no page numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

PAGE_MARKER_RE = re.compile(r"^<!-- page: (\d+) -->[ \t]*$", re.MULTILINE)
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*(?:\n|\Z)", re.DOTALL)


def page_marker(page_number: int) -> str:
    return f"<!-- page: {page_number} -->"


@dataclass
class MarkdownDocument:
    metadata: dict[str, Any] = field(default_factory=dict)
    body: str = ""

    @property
    def title(self) -> str | None:
        title = self.metadata.get("title")
        return str(title) if title else None


def parse_markdown(text: str) -> MarkdownDocument:
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        return MarkdownDocument({}, text)
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return MarkdownDocument({}, text)
    if not isinstance(meta, dict):
        return MarkdownDocument({}, text)
    return MarkdownDocument(meta, text[match.end() :])


def render_markdown(metadata: dict[str, Any], body: str) -> str:
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{body.rstrip()}\n"
