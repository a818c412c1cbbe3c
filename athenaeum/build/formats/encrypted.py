"""Password-protected Office files: Word, PowerPoint and Excel encrypt a document by wrapping
the whole OOXML package in an OLE compound file (ECMA-376 agile or standard encryption).
msoffcrypto-tool opens it with the first of the passwords given that works (`--password`, the
same list as for PDFs)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from athenaeum.build.formats import FormatError

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def is_ole(data: bytes) -> bool:
    return data.startswith(OLE_SIGNATURE)


def decrypt(data: bytes, passwords: Sequence[str], hint: str) -> bytes:
    """The OOXML package inside an encrypted Office file; FormatError when no password opens
    it, or when the file is an older binary Office document rather than an encrypted one."""
    import msoffcrypto  # a build dependency; imported when an encrypted file turns up
    from msoffcrypto.exceptions import DecryptionError, FileFormatError, InvalidKeyError

    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        encrypted = office.is_encrypted()
    except (FileFormatError, OSError, ValueError) as exc:
        raise FormatError(f"damaged: not an Office file ({exc})") from exc
    if not encrypted or office.format != "ooxml":
        raise FormatError(
            "an older binary Office file (.doc, .ppt, .xls saved under a new name): open it "
            "in its application and save it as .docx, .pptx or .xlsx"
        )
    if not passwords:
        raise FormatError(f"encrypted: needs a password ({hint})")
    for password in passwords:
        try:
            office.load_key(password=password)
            out = io.BytesIO()
            office.decrypt(out)
        except (InvalidKeyError, DecryptionError):
            continue
        except Exception as exc:  # an unsupported scheme: say so rather than "wrong password"
            raise FormatError(
                f"encrypted: cannot be decrypted ({type(exc).__name__}: {exc})"
            ) from exc
        return out.getvalue()
    raise FormatError("encrypted: none of the given passwords opens it")
