"""A SQLite history read as one snapshot of its rows: WAL content included, a writer's commits
during the read excluded, SQL names in any case (real SQLite databases in WAL mode)."""

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from jetx.data import sqlite_reader
from jetx.data.ingest import ingest
from jetx.data.sqlite_reader import SqliteReader
from jetx.io import sha256_file


def _wal_database(path: Path, rounds: int) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE jetx_results (id INTEGER PRIMARY KEY, value REAL)")
        connection.executemany(
            "INSERT INTO jetx_results VALUES (?, ?)", [(i, 1.0 + i % 7) for i in range(rounds)]
        )
    with sqlite3.connect(path) as connection:  # everything into the main file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


#: An app that commits rounds and keeps its connection open, so that they stay in the -wal file.
WRITER = textwrap.dedent(
    """
    import sqlite3, sys
    connection = sqlite3.connect(sys.argv[1])
    connection.execute("PRAGMA wal_autocheckpoint=0")
    first, count = int(sys.argv[2]), int(sys.argv[3])
    with connection:
        connection.executemany(
            "INSERT INTO jetx_results VALUES (?, ?)",
            [(i, 2.5) for i in range(first, first + count)],
        )
    print("committed", flush=True)
    sys.stdin.read()
    """
)


def test_rows_committed_to_the_wal_are_read_although_the_main_file_is_unchanged(tmp_path):
    source = _wal_database(tmp_path / "history.db", 1200)
    before = ingest(source, tmp_path / "before")
    main_file = sha256_file(source)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), "1200", "200"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "committed"
        assert sha256_file(source) == main_file  # the 200 rows are in history.db-wal only
        assert Path(f"{source}-wal").stat().st_size > 0
        after = ingest(source, tmp_path / "after")
    finally:
        writer.communicate("", timeout=30)
    assert (before["rows_kept"], after["rows_kept"]) == (1200, 1400)
    assert before["sha256"] != after["sha256"]  # the digest is of the rows, not the file
    values = pq.read_table(tmp_path / "after" / "series.parquet").column("value").to_pylist()
    assert values[1200:] == [2.5] * 200


def test_commits_made_while_the_rows_are_fetched_are_not_in_the_snapshot(tmp_path, monkeypatch):
    source = _wal_database(tmp_path / "history.db", 1000)
    monkeypatch.setattr(sqlite_reader, "_SQLITE_CHUNK_ROWS", 100)
    reader = SqliteReader(source, "jetx_results", "value")
    batches = reader.batches()
    first = next(batches)
    with sqlite3.connect(source) as writer:  # the app commits between two fetches
        writer.executemany(
            "INSERT INTO jetx_results VALUES (?, ?)", [(i, 3.0) for i in range(1000, 1500)]
        )
        writer.execute("DELETE FROM jetx_results WHERE id < 50")
    rest = list(batches)
    ids = [int(i) for batch in [first, *rest] for i in batch.ids.to_numpy()]
    assert ids == list(range(1000)) and reader.rows == 1000
    again = SqliteReader(source, "jetx_results", "value")
    assert sum(len(b.ids) for b in again.batches()) == 1450
    assert again.sha256 != reader.sha256


def test_sql_names_match_in_any_case_and_an_ID_column_orders_the_rounds(tmp_path):
    source = tmp_path / "cased.db"
    with sqlite3.connect(source) as connection:
        connection.execute("CREATE TABLE Jetx_Results (ID INTEGER, Value REAL)")
        connection.executemany(
            "INSERT INTO Jetx_Results VALUES (?, ?)", [(3, 3.0), (1, 1.0), (2, 2.0)]
        )
    manifest = ingest(source, tmp_path / "o")
    table = pq.read_table(tmp_path / "o" / "series.parquet")
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("value").to_pylist() == [1.0, 2.0, 3.0]
    assert manifest["read"] == {"rows": 3, "table": "Jetx_Results", "column": "Value"}
    assert manifest["ordered_by"] == "id"
