"""Raw multiplier histories: what kind a source is (by content), and one batch of its raw rows.

A reader never judges a value: it yields the raw cells (text for CSV, native SQLite values) in
batches of bounded size, so that a 10M-row history never becomes 10M Python objects, and
`jetx.data.ingest` validates each batch vectorised. The kind is chosen by content (the SQLite
magic header, a compression's magic bytes), never by the file's extension: a plain CSV named
`.csv.gz` is read as text and a gzip-compressed one named `.csv` is decompressed. The readers
are `jetx.data.csv_reader` and `jetx.data.sqlite_reader`.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from jetx.errors import USER_ERRNOS, JetxInputError

SQLITE_MAGIC = b"SQLite format 3\x00"
#: Compressions read by content: magic bytes -> name (`jetx.data.csv_reader` opens them).
COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
_SNIFF_BYTES = 1 << 16
_NO_SUCH = {
    errno.ENOENT: "no such file",
    errno.ENOTDIR: "no such file (a part of the path is not a directory)",
    errno.ELOOP: "symbolic link loop",
    errno.ENAMETOOLONG: "file name too long",
}


@dataclass(frozen=True)
class RawBatch:
    """One batch of raw rows, in source order.

    Attributes:
        lines: int64 (n,) physical line where each row starts in a CSV file; None for SQLite.
        ids: (n,) raw id cells: a string array (CSV) or an int64 array (SQLite); None when the
            source has no id column.
        values: (n,) raw value cells as a string array; for SQLite only the cells that are not
            numbers (text, NULL, or a BLOB rendered by `quote()`) are set, the others are null.
        numbers: float64 (n,) SQLite REAL/INTEGER values (NaN elsewhere); None for CSV.
        bad_ids: (n,) SQLite ids that are not integers, as `quote()` text (null for integer
            ids); None for CSV, whose ids are parsed later.
    """

    lines: np.ndarray | None
    ids: pa.Array | None
    values: pa.Array
    numbers: np.ndarray | None = None
    bad_ids: pa.Array | None = None


def detect_source(path: Path) -> str:
    """Check that `path` is a readable, non-empty regular file and tell CSV from SQLite.

    Returns:
        "sqlite" when the file starts with the SQLite magic header, "csv" otherwise (plain
        or compressed: `compression` tells which).

    Raises:
        JetxInputError: missing, a symbolic link loop, not a regular file, unreadable, empty,
            or binary.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        reason = _NO_SUCH.get(error.errno, f"cannot read: {error.strerror or error}")
        raise JetxInputError(f"{path}: {reason}") from None
    if stat.S_ISDIR(mode):
        raise JetxInputError(f"{path}: is a directory; expected a CSV or SQLite file")
    if not stat.S_ISREG(mode):
        raise JetxInputError(f"{path}: not a regular file; expected a CSV or SQLite file")
    head = read_head(path)
    if not head:
        raise JetxInputError(f"{path}: file is empty; expected a CSV header or a SQLite database")
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if compression(head) is None:
        check_text(path, head)
    return "csv"


def read_head(path: Path) -> bytes:
    """The first 64 KiB of a file.

    Raises:
        JetxInputError: the user's path cannot be read (permissions).
        OSError: the machine cannot read it (an I/O error), naming the path.
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(_SNIFF_BYTES)
    except OSError as error:
        if error.errno not in USER_ERRNOS:
            raise OSError(error.errno, f"cannot read: {error.strerror}", str(path)) from None
        raise JetxInputError(f"{path}: cannot read: {error.strerror or error}") from None


def compression(head: bytes) -> str | None:
    """The compression whose magic bytes `head` starts with, or None for plain bytes."""
    return next((name for magic, name in COMPRESSIONS.items() if head.startswith(magic)), None)


def check_text(path: Path, head: bytes, what: str = "") -> None:
    """Refuse content that is not text: a NUL byte in the first 64 KiB.

    Raises:
        JetxInputError: naming the offset of the first NUL byte.
    """
    if b"\x00" in head:
        offset = head.index(b"\x00")
        raise JetxInputError(
            f"{path}: binary content{what} (NUL byte at offset {offset}); expected a CSV or "
            "SQLite file"
        )
