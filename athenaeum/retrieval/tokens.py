"""Counting and cutting text in tokens of the bundle's own tokenizer.

The chat endpoint's `max_tokens` and `usage` count these: the library has no generating model
of its own, and the query encoder's tokenizer is the one that ships with every bundle. Special
tokens are not counted and nothing is truncated or padded.
"""

from __future__ import annotations

from tokenizers import Tokenizer

ELLIPSIS = " …"


class TokenCounter:
    def __init__(self, tokenizer: Tokenizer) -> None:
        # A copy: the query encoder's own tokenizer truncates and pads for the model.
        self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._ellipsis = self.count(ELLIPSIS)

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def cut(self, text: str, limit: int) -> str:
        """`text` if it has at most `limit` tokens; else its longest start of whole words that
        fits in `limit` tokens together with an ellipsis (empty when nothing fits)."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) <= limit:
            return text
        keep = limit - self._ellipsis
        if keep <= 0:
            return ""
        end = encoding.offsets[keep][0]
        head = text[:end]
        if end > 0 and not text[end - 1].isspace() and not text[end].isspace():
            # The cut falls inside a word: a word cut mid-way reads as a typo, so drop it.
            words = head.rsplit(None, 1)
            head = words[0] if len(words) == 2 else ""
        head = head.rstrip()
        return head + ELLIPSIS if head else ""
