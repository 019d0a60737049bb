"""Every text file the core reads, read by one rule: UTF-8, with or without a byte-order mark.

Config files, task cards, card data (tsv, csv, jsonl) and run-directory JSON all go through
here. A UTF-8 byte-order mark, which some editors and spreadsheet exports write, is dropped;
bytes that are not UTF-8 raise the caller's ``HarnessError`` naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from harness.errors import HarnessError

#: The codec of every text input: UTF-8, an optional leading byte-order mark dropped.
ENCODING = "utf-8-sig"


def decode(data: bytes, where: str, error: type[HarnessError]) -> str:
    """``data`` as text; ``error`` naming ``where`` and the line of the first byte that is not UTF-8."""
    try:
        return data.decode(ENCODING)
    except UnicodeDecodeError as exc:
        bad: bytes = exc.object  # the bytes after a byte-order mark, which exc.start counts in
        line = bad[: exc.start].count(b"\n") + 1
        raise error(
            f"{where}: line {line}: not UTF-8 text (byte 0x{bad[exc.start]:02x}); save the file as UTF-8"
        ) from None


def read_text(path: Path, error: type[HarnessError], where: str | None = None) -> str:
    """The text of ``path`` (default ``where``: the path); unreadable or not UTF-8 raises ``error``."""
    where = str(path) if where is None else where
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"{where}: cannot read the file: {exc.strerror or exc}") from None
    return decode(data, where, error)


def open_text(path: Path) -> IO[str]:
    """``path`` opened for reading by the same rule, newlines untranslated (for ``csv``); check it first."""
    return open(path, encoding=ENCODING, newline="")
