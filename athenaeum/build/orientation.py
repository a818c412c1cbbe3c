"""Pages printed sideways: a landscape table in a portrait report, set with its text running up
or down the page.

PyMuPDF reports such text in the page's own coordinates, so every line is a column of single
glyphs to a layout that reads left to right: tables are not found, their rows are read as one
vertical run each. A page whose text mostly runs vertically is redrawn, turned a quarter, on a
one-page document in memory; its text and rules then read as on any upright page, and the
converter reads that copy instead (with the original page number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# At least this share of the page's characters must run vertically, and at least this many:
# a rotated axis label or a margin note beside upright text leaves the page as it is.
SIDEWAYS_SHARE = 0.7
MIN_SIDEWAYS_CHARS = 40


@dataclass
class Upright:
    """The turned copy of a page. `doc` is held so that `page` stays valid."""

    doc: Any
    page: Any
    turned: int


def text_direction(page_dict: dict[str, Any]) -> tuple[int, int]:
    """Characters of the page's text running (upright, vertical): vertical is up or down."""
    upright = vertical = 0
    for block in page_dict.get("blocks", []):
        for line in block.get("lines", []):
            chars = sum(len(s.get("text", "").strip()) for s in line.get("spans", []))
            dx, dy = line.get("dir", (1.0, 0.0))
            if abs(dy) > 0.9 and abs(dx) < 0.1:
                vertical += chars
            else:
                upright += chars
    return upright, vertical


def _dominant_turn(page_dict: dict[str, Any]) -> int:
    """The rotation (degrees, for `show_pdf_page`) that makes the vertical text read left to
    right: text running up the page is turned clockwise, text running down anticlockwise."""
    up = down = 0
    for block in page_dict.get("blocks", []):
        for line in block.get("lines", []):
            chars = sum(len(s.get("text", "").strip()) for s in line.get("spans", []))
            dy = line.get("dir", (1.0, 0.0))[1]
            if dy < -0.9:
                up += chars
            elif dy > 0.9:
                down += chars
    return -90 if up >= down else 90


def is_sideways(page_dict: dict[str, Any]) -> bool:
    upright, vertical = text_direction(page_dict)
    total = upright + vertical
    return vertical >= MIN_SIDEWAYS_CHARS and vertical >= SIDEWAYS_SHARE * total


def upright_copy(pymupdf: Any, page: Any, page_dict: dict[str, Any]) -> Upright | None:
    """The page redrawn a quarter turn so its text reads left to right, or None when it already
    does (or the copy does not come out upright, which is then left alone)."""
    if not is_sideways(page_dict):
        return None
    turn = _dominant_turn(page_dict)
    rect = page.rect
    doc = pymupdf.open()
    copy = doc.new_page(width=rect.height, height=rect.width)
    copy.show_pdf_page(copy.rect, page.parent, page.number, rotate=turn)
    upright, vertical = text_direction(copy.get_text("dict"))
    if vertical > upright:
        doc.close()
        return None
    return Upright(doc, copy, turn)
