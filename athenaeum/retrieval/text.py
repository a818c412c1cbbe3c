"""The one check every text a caller sends goes through: is it text the tokenizer can take?

A Python `str` can hold what no tokenizer, JSON encoder or log line takes: a lone surrogate
(`"\\ud800"`, from a JSON escape or from `surrogateescape`-decoded bytes) makes the Rust
tokenizer raise a TypeError, and a NUL truncates text in C code and in many consoles. Both are
refused as an InvalidInputError (400) whose `param` names the field, before anything is
searched or counted. Invalid UTF-8 never gets this far: the JSON body does not decode.
"""

from __future__ import annotations

from collections.abc import Mapping

from athenaeum.errors import InvalidInputError

NUL = "\x00"


def problem(text: str) -> str | None:
    """What makes `text` unusable, or None when it is fine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone surrogate (U+{ord(text[exc.start]):04X}) at character "
            f"{exc.start}, which is not valid Unicode text"
        )
    at = text.find(NUL)
    if at >= 0:
        return f"contains a NUL character (U+0000) at character {at}"
    return None


def check_text(text: str, param: str) -> str:
    """`text` itself, or an InvalidInputError naming `param`."""
    found = problem(text)
    if found is not None:
        raise _refusal(param, found)
    return text


def check_texts(value: object, param: str = "") -> None:
    """Check every string in a decoded JSON value, object keys included; `param` is the dotted
    path of `value` ("" for a whole body), extended like pydantic's: `messages.0.content`."""
    if isinstance(value, str):
        check_text(value, param)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found = problem(key) if isinstance(key, str) else None
            if found is not None:
                raise _refusal(param, found, key=True)
            check_texts(item, f"{param}.{key}" if param else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_texts(item, f"{param}.{i}" if param else str(i))


def _refusal(param: str, found: str, *, key: bool = False) -> InvalidInputError:
    where = param or "the request body"
    return InvalidInputError(
        f"{'a key of ' if key else ''}{where} {found}", param=param or None, code="invalid_text"
    )
