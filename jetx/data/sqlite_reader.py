"""A SQLite history read as one logical snapshot: every row of one read transaction, hashed.

The database's main file is not its content: in WAL mode, committed rows stay in the `-wal`
file until a checkpoint copies them over. So the snapshot is the rows themselves, read inside one
read transaction (every statement of it sees the same committed state, WAL included, however
the app writes meanwhile), and its digest is a sha256 over the table, column and ordering read
and each batch's cells as they were fetched. SQL names are case-insensitive, so the table, the
value column and the `id` column are matched regardless of case (a column `ID` orders the rows).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from jetx.data.sources import RawBatch
from jetx.errors import JetxInputError

_SQLITE_CHUNK_ROWS = 1 << 16


class SqliteReader:
    """One read transaction over `table.column` of a SQLite database, ordered by its id.

    Args:
        path: the database file.
        table, column: the table and its value column (any case).

    Attributes (after `batches` is exhausted): sha256 (of the rows read), rows, and the names
    as the database spells them: table, column, ordered_by (`id` column or rowid).
    """

    def __init__(self, path: Path, table: str, column: str) -> None:
        self.path, self.table, self.column = Path(path), table, column
        self.ordered_by = "rowid"
        self.sha256, self.rows = "", 0

    def batches(self) -> Iterator[RawBatch]:
        """The rows, `fetchmany` at a time, from one snapshot of the database.

        Raises:
            JetxInputError: not a readable SQLite database, or no such table or column.
        """
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as error:
            raise JetxInputError(f"{self.path}: cannot open SQLite database: {error}") from None
        try:
            connection.execute("BEGIN")  # the statements below share one snapshot
            cursor = connection.execute(self._select(connection))
            digest = hashlib.sha256(f"{self.table}\n{self.column}\n{self.ordered_by}\n".encode())
            while rows := cursor.fetchmany(_SQLITE_CHUNK_ROWS):
                batch = _sqlite_batch(rows)
                _update(digest, batch)
                self.rows += len(rows)
                yield batch
            connection.execute("COMMIT")
            self.sha256 = digest.hexdigest()
        except sqlite3.Error as error:
            raise JetxInputError(f"{self.path}: cannot read SQLite database: {error}") from None
        finally:
            connection.close()

    def _select(self, connection: sqlite3.Connection) -> str:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
            )
        ]
        found = {name.lower(): name for name in tables}
        if self.table.lower() not in found:
            listed = ", ".join(sorted(tables)) or "none"
            raise JetxInputError(
                f"{self.path}: no table `{self.table}` in SQLite database (tables: {listed})"
            )
        self.table = found[self.table.lower()]
        info = connection.execute(f"PRAGMA table_info({_quote(self.table)})")
        names = {row[1].lower(): row[1] for row in info}
        if self.column.lower() not in names:
            raise JetxInputError(
                f"{self.path}: table `{self.table}` has no column `{self.column}` "
                f"(columns: {', '.join(names.values())})"
            )
        self.column = names[self.column.lower()]
        key = _quote(names["id"]) if "id" in names else "rowid"
        self.ordered_by = names.get("id", "rowid")
        v = _quote(self.column)
        numeric = f"typeof({v}) IN ('real', 'integer')"
        return (
            f"SELECT CASE WHEN typeof({key}) = 'integer' THEN {key} END, "
            f"CASE WHEN typeof({key}) != 'integer' THEN quote({key}) END, "
            f"CASE WHEN {numeric} THEN {v} END, "
            f"CASE WHEN typeof({v}) = 'text' THEN {v} "
            f"WHEN typeof({v}) = 'blob' THEN quote({v}) END "
            f"FROM {_quote(self.table)} ORDER BY {key}"
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


def _update(digest, batch: RawBatch) -> None:
    """Hash one batch's cells: the ids and numbers as bytes, the texts with their nulls."""
    digest.update(batch.ids.to_numpy().tobytes())
    digest.update(batch.numbers.tobytes())
    for texts in (batch.bad_ids, batch.values):
        digest.update(texts.is_null().to_numpy(zero_copy_only=False).tobytes())
        _, offsets, data = texts.buffers()
        if offsets is None or data is None:
            continue
        start = texts.offset
        offsets = np.frombuffer(offsets, dtype=np.int32)[start : start + len(texts) + 1]
        digest.update((offsets - offsets[0]).tobytes())
        digest.update(memoryview(data)[offsets[0] : offsets[-1]])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
