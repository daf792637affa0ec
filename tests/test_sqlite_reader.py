"""A SQLite history read as one snapshot of its rows: WAL content included, a writer's commits
during the read excluded, SQL names in any case (real SQLite databases in WAL mode)."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jetx.cli import main
from jetx.data import sqlite_reader
from jetx.data.ingest import ingest
from jetx.data.sqlite_reader import SqliteReader
from jetx.errors import EXIT_BUSY
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


def test_ids_of_more_than_18_digits_are_quarantined_as_in_a_csv(tmp_path):
    # One rule for both sources (`jetx.data.cells.ids_out_of_range`), the smallest int64 too.
    ids = [1, 2, 10**18, -(10**18), -(2**63), 2**63 - 1, 3]
    db = tmp_path / "h.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE jetx_results (id INTEGER PRIMARY KEY, value REAL)")
        connection.executemany("INSERT INTO jetx_results VALUES (?, 1.5)", [(i,) for i in ids])
    csv = tmp_path / "h.csv"
    csv.write_text("id,value\n" + "".join(f"{i},1.5\n" for i in ids))
    for source in (db, csv):
        manifest = ingest(source, tmp_path / source.suffix)
        assert (manifest["rows_kept"], manifest["quarantine_reasons"]) == (3, {"bad_id": 4})
        series = pq.read_table(tmp_path / source.suffix / "series.parquet")
        assert series["id"].to_pylist() == [1, 2, 3]


def test_a_database_locked_by_a_writer_is_busy_exit_69_not_bad_input(tmp_path, monkeypatch, capsys):
    # A real second connection holds an exclusive lock (rollback journal: readers are locked
    # out); jetx waits BUSY_SECONDS with SQLite's backing-off busy handler, then says busy.
    db = tmp_path / "h.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE jetx_results (id INTEGER PRIMARY KEY, value REAL)")
        connection.execute("INSERT INTO jetx_results VALUES (1, 1.5)")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(sqlite_reader, "BUSY_SECONDS", 0.3)
    try:
        code = main(["ingest", str(db), "--out", str(tmp_path / "out")])
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_BUSY == 69
    assert err == [
        f"jetx ingest: error: busy: {db}: database is locked by another connection for over "
        "0.3 s (a writer in a long transaction); not bad input: ingest again later"
    ]
    assert main(["ingest", str(db), "--out", str(tmp_path / "out")]) == 0  # idle again: works


def _read_only_ingest(folder: Path, db: Path, out: Path) -> subprocess.CompletedProcess:
    """`jetx ingest DB` with `folder` really read-only: chmod 0555 for a user, and for root
    (whom chmod does not stop) a read-only bind mount in a mount namespace of its own."""
    command = [sys.executable, "-m", "jetx", "ingest", str(db), "--out", str(out)]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=120)
        finally:
            folder.chmod(0o755)
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("root, and no mount namespace for a read-only bind mount")
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && '
        f'! touch "{folder}/probe" 2>/dev/null && exec "$@"'
    )
    wrapped = ["unshare", "-m", "sh", "-c", script, "sh", *command]
    return subprocess.run(wrapped, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("wal_content", [True, False])
def test_a_wal_database_in_a_read_only_directory_is_read_and_says_how(tmp_path, wal_content):
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "h.db"
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE jetx_results (id INTEGER PRIMARY KEY, value REAL)")
    with connection:
        connection.executemany(
            "INSERT INTO jetx_results VALUES (?, ?)", [(i, 1.0 + i % 7) for i in range(1200)]
        )
    if wal_content:  # the rows only in the -wal, as an app killed before its checkpoint left them
        saved = [shutil.copyfile(p, tmp_path / p.name) for p in (db, Path(f"{db}-wal"))]
    connection.close()  # the last connection: checkpoints, removes the -wal and the -shm
    if wal_content:
        for copy in saved:
            shutil.copyfile(copy, folder / copy.name)
    assert not Path(f"{db}-shm").exists()
    reference = ingest(shutil.copytree(folder, tmp_path / "writable") / "h.db", tmp_path / "ref")
    result = _read_only_ingest(folder, db, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    how = "reading a copy of the database and its -wal" if wal_content else "as immutable"
    assert len(warnings) == 1 and "read-only directory with no -shm" in warnings[0]
    assert how in warnings[0]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows_kept"] == reference["rows_kept"] == 1200
    assert manifest["sha256"] == reference["sha256"]  # the same rows, hashed the same
    assert not Path(f"{db}-shm").exists()
