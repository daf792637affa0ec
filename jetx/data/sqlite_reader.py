"""A SQLite history read as one logical snapshot: every row of one read transaction, hashed.

The database's main file is not its content: in WAL mode, committed rows stay in the `-wal`
file until a checkpoint copies them over. So the snapshot is the rows themselves, read inside one
read transaction (every statement of it sees the same committed state, WAL included, however
the app writes meanwhile), and its digest is a sha256 over the table, column and ordering read
and each batch's cells as they were fetched. SQL names are case-insensitive, so the table, the
value column and the `id` column are matched regardless of case (a column `ID` orders the rows).

A WAL database in a directory that cannot be written (a read-only volume, another user's
folder) with no `-shm` file cannot be opened even read-only: SQLite must create the `-shm` (the
WAL index) first. No WAL writer can be running there, for the same reason (the first connection
of any writer creates the `-shm`, and it stays while one is open; a writer in `locking_mode=
EXCLUSIVE` keeps its index in memory and is the one exception, not detected). So the files
cannot change while they are read, and the fallback (`_read_only_copy`, with one warning) is
consistent: with no `-wal` (or an empty one), `immutable=1` reads the main file as it is; with
one, the database and its `-wal` are copied to TMPDIR and the copy is read, WAL included
(`immutable=1` would skip the WAL's committed rows). A change of either file during the copy is
`SourceChanged`, and the caller reads again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from jetx.data.snapshot import SourceChanged
from jetx.data.sources import RawBatch
from jetx.errors import JetxInputError, SourceBusyError

logger = logging.getLogger(__name__)

_SQLITE_CHUNK_ROWS = 1 << 16
#: How long a read waits for a writer's lock (SQLite's busy handler retries, backing off from
#: 1 ms to 100 ms between tries); longer is `SourceBusyError`, exit 69.
BUSY_SECONDS = 5.0
_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


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
        with contextlib.ExitStack() as stack:
            yield from self._batches(self._connect(stack))

    def _connect(self, stack: contextlib.ExitStack) -> sqlite3.Connection:
        """A read-only connection (the read-only fallback of the module doc when needed)."""
        try:
            connection = _open(self.path, "")
            try:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                connection.close()
                if not _unwritable_wal(self.path):
                    raise
                connection = _read_only_copy(self.path, stack)
        except sqlite3.Error as error:
            if (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _BUSY:
                raise self._busy(error) from None
            raise JetxInputError(f"{self.path}: cannot open SQLite database: {error}") from None
        return connection

    def _busy(self, error: sqlite3.Error) -> SourceBusyError:
        return SourceBusyError(
            f"{self.path}: {error} by another connection for over {BUSY_SECONDS:g} s "
            "(a writer in a long transaction); not bad input: ingest again later"
        )

    def _batches(self, connection: sqlite3.Connection) -> Iterator[RawBatch]:
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
            if (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _BUSY:  # extended codes too
                raise self._busy(error) from None
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


def _open(path: Path, options: str) -> sqlite3.Connection:
    uri = f"{Path(path).resolve().as_uri()}?mode=ro{options}"
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_SECONDS)


def _unwritable_wal(path: Path) -> bool:
    """No `-shm` beside the database, in a directory this process cannot write (module doc)."""
    shm = Path(f"{path}-shm")
    return not shm.exists() and not os.access(Path(path).resolve().parent, os.W_OK)


def _read_only_copy(path: Path, stack: contextlib.ExitStack) -> sqlite3.Connection:
    """The fallback of the module doc: `immutable=1` with no WAL content, else a copy."""
    wal = Path(f"{path}-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        logger.warning(
            "%s: read-only directory with no -shm and no WAL content: no writer can be running; "
            "reading the file as immutable",
            path,
        )
        return _open(path, "&immutable=1")
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jetx-sqlite-")))
    before = [_stamp(p) for p in (path, wal)]
    copy = folder / "copy.db"
    shutil.copyfile(path, copy)
    shutil.copyfile(wal, f"{copy}-wal")
    if [_stamp(p) for p in (path, wal)] != before:
        raise SourceChanged("it changed while it was copied out of its read-only directory")
    logger.warning(
        "%s: read-only directory with no -shm: no WAL writer can be running; reading a copy of "
        "the database and its -wal (%d bytes) in %s",
        path,
        wal.stat().st_size,
        folder,
    )
    connection = _open(copy, "")
    stack.callback(connection.close)
    return connection


def _stamp(path: Path) -> tuple[int, int, int]:
    status = os.stat(path)
    return status.st_ino, status.st_size, status.st_mtime_ns


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
