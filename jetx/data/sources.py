"""Readers for raw multiplier histories: a CSV file or a SQLite database, streamed in batches.

A reader never judges a value: it yields the raw cells (text for CSV, native SQLite values) in
batches of bounded size, so that a 10M-row history never becomes 10M Python objects, and
`jetx.data.ingest` validates each batch vectorised. The source type is chosen by content (the
16-byte SQLite magic header), not by the file's extension.
"""

from __future__ import annotations

import codecs
import csv
import logging
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from jetx.errors import JetxInputError

logger = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
_SNIFF_BYTES = 1 << 16
_CSV_BLOCK_BYTES = 1 << 22
_SQLITE_CHUNK_ROWS = 1 << 16


@dataclass(frozen=True)
class RawBatch:
    """One batch of raw rows, in source order.

    Attributes:
        lines: int64 (n,) physical line of each row in a CSV file; None for SQLite.
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
        "sqlite" when the file starts with the SQLite magic header, else "csv".

    Raises:
        JetxInputError: missing, not a regular file, unreadable, empty, or binary.
    """
    if not path.exists():
        raise JetxInputError(f"{path}: no such file")
    mode = path.stat().st_mode
    if stat.S_ISDIR(mode):
        raise JetxInputError(f"{path}: is a directory; expected a CSV or SQLite file")
    if not stat.S_ISREG(mode):
        raise JetxInputError(f"{path}: not a regular file; expected a CSV or SQLite file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as error:
        raise JetxInputError(f"{path}: cannot read: {error.strerror or error}") from None
    if not head:
        raise JetxInputError(f"{path}: file is empty; expected a CSV header or a SQLite database")
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if b"\x00" in head:
        offset = head.index(b"\x00")
        raise JetxInputError(
            f"{path}: binary content (NUL byte at offset {offset}); expected a CSV or SQLite file"
        )
    return "csv"


def csv_header(path: Path) -> list[str]:
    """Column names of the CSV's first line (the header is required).

    Raises:
        JetxInputError: the first bytes are not UTF-8, the first line is blank, or a column
            name repeats.
    """
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError as error:
        raise JetxInputError(
            f"{path}: not UTF-8 text (invalid byte at offset {error.start}); expected a CSV file"
        ) from None
    first = text.splitlines()[0] if text.splitlines() else ""
    if not first.strip():
        raise JetxInputError(f"{path}: first line is blank; expected a CSV header line")
    header = next(csv.reader([first]))
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise JetxInputError(f"{path}: repeated column name(s) in header: {', '.join(repeated)}")
    return header


def read_csv_batches(
    path: Path, header: list[str], roles: tuple[str | None, str], invalid: list[tuple[int, str]]
) -> Iterator[RawBatch]:
    """Stream a CSV file as text cells, one block at a time, with each row's physical line.

    Every physical line after the header starts a row (blank lines too); line breaks inside
    quoted cells are counted, so line numbers stay exact. Rows with the wrong number of fields
    are not yielded; they are appended to `invalid` as (line, text) for the caller.

    Args:
        path: the CSV file.
        header: the column names of the header line (all are read as text).
        roles: (id column name or None, value column name).
        invalid: receives (line, raw text) of each row with the wrong number of fields.

    Raises:
        JetxInputError: the file is not valid UTF-8 or cannot be parsed as CSV.
    """

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((int(row.number) if row.number is not None else -1, row.text))
        return "skip"

    reader = _open_csv(path, header, on_invalid)
    id_name, value_name = roles
    offset = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as error:
            raise _csv_error(path, error) from None
        breaks = sum(_line_breaks(column) for column in batch.columns)
        keys = offset + np.arange(batch.num_rows, dtype=np.int64) + np.cumsum(breaks) - breaks
        offset += batch.num_rows + int(np.sum(breaks))
        yield RawBatch(
            lines=_line_numbers(keys, invalid),
            ids=None if id_name is None else batch.column(id_name),
            values=batch.column(value_name),
        )


def _open_csv(path: Path, header: list[str], on_invalid) -> pacsv.CSVStreamingReader:
    try:
        return pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(
                ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise _csv_error(path, error) from None


def _line_breaks(cells: pa.Array) -> np.ndarray:
    """Line breaks (LF, CR or CRLF) inside each quoted cell, int64 (n,)."""
    data = cells.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    if not (np.any(raw == 0x0A) or np.any(raw == 0x0D)):
        return np.zeros(len(cells), dtype=np.int64)
    counts = [pc.count_substring(cells, token) for token in ("\n", "\r", "\r\n")]
    total = pc.subtract(pc.add(counts[0], counts[1]), counts[2])
    return total.to_numpy(zero_copy_only=False).astype(np.int64)


def _line_numbers(keys: np.ndarray, invalid: list[tuple[int, str]]) -> np.ndarray:
    """Physical lines of yielded rows from their keys (rows and line breaks above them).

    A row's line is key + 2 (header on line 1) plus the skipped invalid rows above it. Invalid
    row i on line S[i] has S[i] - 2 - i rows-and-breaks above it; it is above a row exactly
    when that count is <= the row's key. Invalid rows listed early by read-ahead have larger
    counts than any key here, so they shift nothing.
    """
    if not invalid:
        return keys + 2
    skipped = np.sort(np.fromiter((line for line, _ in invalid), dtype=np.int64))
    above = skipped - 2 - np.arange(skipped.size, dtype=np.int64)
    return keys + 2 + np.searchsorted(above, keys, side="right")


def _csv_error(path: Path, error: pa.ArrowInvalid) -> JetxInputError:
    message = str(error).splitlines()[0]
    if "UTF8" in message:
        where = _first_invalid_utf8(path)
        return JetxInputError(f"{path}: not UTF-8 text ({where}); expected a CSV file")
    return JetxInputError(f"{path}: cannot parse as CSV: {message}")


def _first_invalid_utf8(path: Path) -> str:
    """Locate the first invalid UTF-8 byte (line and offset); only run on the error path."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                at = offset + error.start
                line += chunk[: error.start].count(b"\n")
                return f"invalid byte at offset {at}, line {line}"
            offset += len(chunk)
            line += chunk.count(b"\n")
    return "invalid byte sequence"


def read_sqlite_batches(path: Path, table: str, column: str) -> Iterator[RawBatch]:
    """Stream `table.column` ordered by `id` (or rowid when the table has no `id`) via fetchmany.

    Raises:
        JetxInputError: not a readable SQLite database, or no such table or column.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as error:
        raise JetxInputError(f"{path}: cannot open SQLite database: {error}") from None
    try:
        cursor = connection.execute(_select_sql(path, connection, table, column))
        while rows := cursor.fetchmany(_SQLITE_CHUNK_ROWS):
            yield _sqlite_batch(rows)
    except sqlite3.Error as error:
        raise JetxInputError(f"{path}: cannot read SQLite database: {error}") from None
    finally:
        connection.close()


def _select_sql(path: Path, connection: sqlite3.Connection, table: str, column: str) -> str:
    tables = [
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    ]
    if table not in tables:
        found = ", ".join(sorted(tables)) or "none"
        raise JetxInputError(f"{path}: no table `{table}` in SQLite database (tables: {found})")
    names = [row[1] for row in connection.execute(f"PRAGMA table_info({_quote(table)})")]
    if column not in names:
        raise JetxInputError(
            f"{path}: table `{table}` has no column `{column}` (columns: {', '.join(names)})"
        )
    key = "id" if "id" in names else "rowid"
    v = _quote(column)
    numeric = f"typeof({v}) IN ('real', 'integer')"
    return (
        f"SELECT CASE WHEN typeof({key}) = 'integer' THEN {key} END, "
        f"CASE WHEN typeof({key}) != 'integer' THEN quote({key}) END, "
        f"CASE WHEN {numeric} THEN {v} END, "
        f"CASE WHEN typeof({v}) = 'text' THEN {v} "
        f"WHEN typeof({v}) = 'blob' THEN quote({v}) END "
        f"FROM {_quote(table)} ORDER BY {key}"
    )


def _sqlite_batch(rows: list[tuple]) -> RawBatch:
    int_ids, raw_ids, numbers, texts = zip(*rows, strict=True)
    ids = np.fromiter((0 if i is None else i for i in int_ids), dtype=np.int64, count=len(rows))
    values = np.fromiter(
        (np.nan if n is None else n for n in numbers), dtype=np.float64, count=len(rows)
    )
    return RawBatch(
        lines=None,
        ids=pa.array(ids),
        values=pa.array(texts, type=pa.string()),
        numbers=values,
        bad_ids=pa.array(raw_ids, type=pa.string()),
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
