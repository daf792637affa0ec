"""Ingestion: real history in both forms, quarantine reasons, line numbers, ordering, bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetx.data.cells import classify_values
from jetx.data.ingest import QuarantineError, ingest
from jetx.data.series import read_series
from jetx.errors import JetxInputError
from jetx.io import sha256_file

#: The real history of 10,458 rounds (two cells damaged by a U+2028), kept in the repository.
REAL = Path(__file__).resolve().parents[1] / "data" / "real"
REAL_CSV, REAL_DB = REAL / "jetx_history.csv", REAL / "jetx_data.db"
JETX = [sys.executable, "-m", "jetx"]


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def _sqlite(path: Path, schema: str, rows: list[tuple], insert: str) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute(schema)
        connection.executemany(insert, rows)
    return path


def _quarantine(out: Path) -> list[dict]:
    return pq.read_table(out / "quarantine.parquet").to_pylist()


def _run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*JETX, *args], capture_output=True, text=True, timeout=120, **kwargs)


# --- the real history ------------------------------------------------------------------------


def test_real_history_csv_and_sqlite_give_identical_series(tmp_path):
    from_csv = ingest(REAL_CSV, tmp_path / "csv")
    from_db = ingest(REAL_DB, tmp_path / "db")
    for manifest in (from_csv, from_db):
        assert (manifest["rows_read"], manifest["rows_kept"], manifest["rows_quarantined"]) == (
            10458,
            10456,
            2,
        )
        assert manifest["quarantine_reasons"] == {"not_a_number": 2}
    series_csv = pq.read_table(tmp_path / "csv" / "series.parquet")
    assert series_csv.schema.names == ["id", "value"]
    assert str(series_csv.schema.field("id").type) == "int64"
    assert series_csv.equals(pq.read_table(tmp_path / "db" / "series.parquet"))
    assert [(r["source_line"], r["id"], r["raw"]) for r in _quarantine(tmp_path / "csv")] == [
        (6282, "6281", "2.29\u20281.29"),
        (7267, "7266", "1.57\u20281.36"),
    ]
    assert [r["id"] for r in _quarantine(tmp_path / "db")] == ["6281", "7266"]
    values = read_series(tmp_path / "csv")
    assert values.dtype == np.float64 and values.size == 10456
    assert 1.8 < np.median(values) < 2.05


def test_cli_ingest_real_sqlite_json_and_strict(tmp_path):
    result = _run_cli("ingest", str(REAL_DB), "--out", str(tmp_path / "o"), "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["rows_kept"] == 10456 and manifest["source_type"] == "sqlite"
    assert json.loads((tmp_path / "o" / "manifest.json").read_text()) == manifest
    strict = _run_cli("ingest", str(REAL_CSV), "--out", str(tmp_path / "s"), "--strict")
    assert strict.returncode == 1
    assert "2 row(s) quarantined under --strict" in strict.stderr
    assert "Traceback" not in strict.stderr and not (tmp_path / "s").exists()


# --- quarantine reasons ------------------------------------------------------------------------

CELLS = [
    ("1.5", 1.5, None),
    ("1.00", 1.0, None),
    (" 2.5\t", 2.5, None),
    ("1e2", 100.0, None),
    ("+3", 3.0, None),
    ("1.5\u20282.3", None, "not_a_number"),
    ("abc", None, "not_a_number"),
    ("1,5", None, "not_a_number"),
    ("0x10", None, "not_a_number"),
    ("1.5x", None, "not_a_number"),
    ("", None, "empty"),
    ("   ", None, "empty"),
    ("nan", None, "not_finite"),
    ("-Infinity", None, "not_finite"),
    ("inf", None, "not_finite"),
    ("nan(1)", None, "not_finite"),
    ("1e999", None, "not_finite"),
    ("-1", None, "below_minimum"),
    ("0.99", None, "below_minimum"),
    ("0", None, "below_minimum"),
]


@pytest.mark.parametrize(("text", "value", "reason"), CELLS)
def test_classify_values_table(text, value, reason):
    import pyarrow as pa

    from jetx.data.cells import REASONS

    numbers, codes = classify_values(pa.array([text]))
    if reason is None:
        assert codes[0] == 0 and numbers[0] == value
    else:
        assert REASONS[codes[0] - 1] == reason


def test_classify_values_whole_batch_agrees_with_single_cells():
    import pyarrow as pa

    batch_numbers, batch_codes = classify_values(pa.array([text for text, _, _ in CELLS]))
    for i, (text, _, _) in enumerate(CELLS):
        numbers, codes = classify_values(pa.array([text]))
        assert codes[0] == batch_codes[i], text
        assert np.array_equal(numbers[:1], batch_numbers[i : i + 1], equal_nan=True) or codes[0]


def test_csv_quarantine_lines_reasons_and_counts(tmp_path):
    source = _write(
        tmp_path / "h.csv",
        'id,value\n1,1.5\n\n3,abc\n4,1,2\n5,"1.5\n9"\n6,2.0\n7,0.5\nx,3\n9,4.25\n',
    )
    manifest = ingest(source, tmp_path / "o")
    rows = _quarantine(tmp_path / "o")
    assert [(r["source_line"], r["reason"]) for r in rows] == [
        (3, "blank_line"),
        (4, "not_a_number"),
        (5, "wrong_field_count"),
        (6, "not_a_number"),
        (9, "below_minimum"),
        (10, "bad_id"),
    ]
    assert rows[2]["raw"] == "4,1,2" and rows[3]["raw"] == "1.5\n9"
    assert manifest["rows_read"] == 9 == manifest["rows_kept"] + manifest["rows_quarantined"]
    assert read_series(tmp_path / "o").tolist() == [1.5, 2.0, 4.25]


def test_rows_are_ordered_by_id(tmp_path):
    source = _write(tmp_path / "h.csv", "value,id\n3.0,30\n1.0,10\n2.0,20\n")
    ingest(source, tmp_path / "o")
    table = pq.read_table(tmp_path / "o" / "series.parquet")
    assert table.column("id").to_pylist() == [10, 20, 30]
    assert table.column("value").to_pylist() == [1.0, 2.0, 3.0]


def test_without_id_column_id_is_record_number(tmp_path):
    source = _write(tmp_path / "h.csv", "value\r\n1.5\r\nbad\r\n2.5\r\n")
    manifest = ingest(source, tmp_path / "o")
    table = pq.read_table(tmp_path / "o" / "series.parquet")
    assert table.column("id").to_pylist() == [1, 3]
    assert manifest["ordered_by"] == "line"
    assert _quarantine(tmp_path / "o")[0] == {
        "source_line": 3,
        "id": None,
        "raw": "bad",
        "reason": "not_a_number",
    }


def test_sqlite_types_custom_table_and_rowid(tmp_path):
    rows = [(1.5,), ("2.5",), (None,), (b"\x00\xff",), (float("inf"),), (0.5,), ("x",), (3,)]
    source = _sqlite(
        tmp_path / "history.data",
        "CREATE TABLE rounds (multiplier)",
        rows,
        "INSERT INTO rounds VALUES (?)",
    )
    manifest = ingest(source, tmp_path / "o", table="rounds", column="multiplier")
    assert manifest["source_type"] == "sqlite"
    assert read_series(tmp_path / "o").tolist() == [1.5, 2.5, 3.0]
    reasons = {r["id"]: (r["raw"], r["reason"]) for r in _quarantine(tmp_path / "o")}
    assert reasons == {
        "3": (None, "empty"),
        "4": ("X'00FF'", "not_a_number"),
        "5": ("inf", "not_finite"),
        "6": ("0.5", "below_minimum"),
        "7": ("x", "not_a_number"),
    }


def test_strict_writes_nothing(tmp_path):
    source = _write(tmp_path / "h.csv", "value\n1.5\nabc\n")
    with pytest.raises(QuarantineError, match=r"1 row\(s\) quarantined .*line 3: 'abc'"):
        ingest(source, tmp_path / "o", strict=True)
    assert not (tmp_path / "o").exists()


def test_outputs_are_complete_and_no_temporary_files_remain(tmp_path):
    source = _write(tmp_path / "h.csv", "id,value\n1,1.5\n")
    manifest = ingest(source, tmp_path / "o")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        ".lock",  # the writer's lock file (jetx.io.exclusive), empty of any writer now
        "manifest.json",
        "quarantine.parquet",
        "series.parquet",
    ]
    for key in ("source", "sha256", "created_at", "quarantine_reasons"):
        assert key in manifest
    assert manifest["sha256"] == sha256_file(source)  # a CSV's digest is of the bytes parsed
    assert manifest["outputs"] == {
        name: sha256_file(tmp_path / "o" / name)
        for name in ("series.parquet", "quarantine.parquet")
    }


messy_cell = st.one_of(
    st.sampled_from(["1.5", "2", "", "nan", "-1", "0.99", "abc", "1e999", " 3 ", '"4"', "1,2"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)


@settings(max_examples=40, deadline=None)
@given(cells=st.lists(messy_cell, min_size=1, max_size=30))
def test_counts_always_add_up_on_messy_csv(tmp_path_factory, cells):
    out = tmp_path_factory.mktemp("messy")
    source = _write(out / "h.csv", "value\n" + "\n".join(cells) + "\n")
    try:
        manifest = ingest(source, out / "o")
    except JetxInputError as error:  # e.g. a cell that opens a quote never closed
        assert str(source) in str(error)
        return
    assert manifest["rows_read"] == manifest["rows_kept"] + manifest["rows_quarantined"]
    assert manifest["rows_quarantined"] == len(_quarantine(out / "o"))
    values = read_series(out / "o")
    assert np.all(np.isfinite(values)) and np.all(values >= 1.0)


# --- bad input: one line, exit 2, naming the file ----------------------------------------------


def _bad_cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(name, extra CLI args, expected message fragment); each writes its own file."""
    real_db_head = REAL_DB.read_bytes()[:1024]
    late_latin1 = b"value\n" + b"1.5\n" * 40000 + b"caf\xe9\n"
    blob = tmp / "no_table.db"
    _sqlite(blob, "CREATE TABLE other (value)", [(1.5,)], "INSERT INTO other VALUES (?)")
    nocol = tmp / "no_column.db"
    _sqlite(
        nocol,
        "CREATE TABLE jetx_results (id, v)",
        [(1, 1.5)],
        "INSERT INTO jetx_results VALUES (?, ?)",
    )
    empty_table = tmp / "empty_table.db"
    _sqlite(
        empty_table,
        "CREATE TABLE jetx_results (id, value)",
        [],
        "INSERT INTO jetx_results VALUES (?, ?)",
    )
    no_tables = tmp / "no_tables.db"
    sqlite3.connect(no_tables).execute("PRAGMA user_version = 1").connection.close()
    files = {
        "empty.csv": b"",
        "no_header.csv": b"1.5\n2.0\n",
        "no_value.csv": b"id,price\n1,1.5\n",
        "nul.csv": b"value\n1.5\x00\n",
        "latin1_header.csv": "valu\xe9\n1.5\n".encode("latin-1"),
        "latin1_late.csv": late_latin1,
        "utf16.csv": "value\n1.5\n".encode("utf-16"),
        "blank_first.csv": b"\nvalue\n1.5\n",
        "spaces_first.csv": b"   \nvalue\n",
        "header_only.csv": b"id,value\n",
        "repeated.csv": b"value,value\n1.5,2\n",
        "dup_ids.csv": b"id,value\n1,1.5\n2,2.0\n1,3.0\n",
        "gzip.csv.gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
        "png.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "fake.db": b"SQLite format 3\x00" + b"garbage" * 200,
        "truncated.db": real_db_head,
        "header_numbers.csv": b"1,1.5\n2,2.0\n",
    }
    for name, content in files.items():
        _write(tmp / name, content)
    (tmp / "a_dir").mkdir()
    os.mkfifo(tmp / "fifo.csv")
    (tmp / "dangling.csv").symlink_to(tmp / "nowhere.csv")
    return [
        ("missing", [str(tmp / "missing.csv")], "no such file"),
        ("directory", [str(tmp / "a_dir")], "is a directory"),
        ("fifo", [str(tmp / "fifo.csv")], "not a regular file"),
        ("device", ["/dev/null"], "not a regular file"),
        ("dangling symlink", [str(tmp / "dangling.csv")], "no such file"),
        ("under a file", [str(tmp / "empty.csv" / "x.csv")], "no such file"),
        ("empty", [str(tmp / "empty.csv")], "file is empty"),
        ("no header", [str(tmp / "no_header.csv")], "no header line"),
        ("numeric header", [str(tmp / "header_numbers.csv")], "no header line"),
        ("no value column", [str(tmp / "no_value.csv")], "no `value` column in header"),
        ("wrong --column", [str(tmp / "no_value.csv"), "--column", "v"], "no `v` column"),
        ("nul byte", [str(tmp / "nul.csv")], "binary content (NUL byte at offset 9)"),
        ("latin-1 header", [str(tmp / "latin1_header.csv")], "not UTF-8 text"),
        ("latin-1 late", [str(tmp / "latin1_late.csv")], "line 40002"),
        ("utf-16", [str(tmp / "utf16.csv")], "binary content"),
        ("blank first line", [str(tmp / "blank_first.csv")], "first line is blank"),
        ("spaces first line", [str(tmp / "spaces_first.csv")], "first line is blank"),
        ("header only", [str(tmp / "header_only.csv")], "no data rows"),
        ("repeated column", [str(tmp / "repeated.csv")], "repeated column name(s)"),
        ("duplicate ids", [str(tmp / "dup_ids.csv")], "duplicate id 1"),
        ("gzip", [str(tmp / "gzip.csv.gz")], "not a valid gzip file"),
        ("png", [str(tmp / "png.csv")], "binary content"),
        ("fake sqlite", [str(tmp / "fake.db")], "SQLite database"),
        ("truncated sqlite", [str(tmp / "truncated.db")], "SQLite database"),
        ("sqlite no table", [str(blob)], "no table `jetx_results` in SQLite database"),
        ("sqlite no tables", [str(no_tables)], "(tables: none)"),
        ("sqlite other table", [str(blob), "--table", "rounds"], "no table `rounds`"),
        ("sqlite no column", [str(nocol)], "has no column `value` (columns: id, v)"),
        ("sqlite empty table", [str(empty_table)], "no data rows"),
    ]


def test_at_least_25_malformed_inputs_fail_cleanly(tmp_path):
    cases = _bad_cases(tmp_path)
    assert len(cases) >= 25
    for name, args, fragment in cases:
        with pytest.raises(JetxInputError) as caught:
            ingest(Path(args[0]), tmp_path / "out", **_options(args[1:]))
        message = str(caught.value)
        assert fragment in message, (name, message)
        assert args[0] in message and "\n" not in message, (name, message)
    assert not (tmp_path / "out").exists()


def _options(flags: list[str]) -> dict:
    return {flags[i].lstrip("-"): flags[i + 1] for i in range(0, len(flags), 2)}


def test_cli_bad_inputs_one_line_exit_2(tmp_path):
    cases = {name: (args, fragment) for name, args, fragment in _bad_cases(tmp_path)}
    for name in ("missing", "directory", "nul byte", "latin-1 late", "sqlite no table"):
        args, fragment = cases[name]
        result = _run_cli("ingest", *args, "--out", str(tmp_path / "o"))
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0] and args[0] in lines[0], (name, lines)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file; see the next test")
def test_unreadable_file_exit_2(tmp_path):
    source = _write(tmp_path / "secret.csv", "value\n1.5\n")
    source.chmod(0)
    result = _run_cli("ingest", str(source), "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"{source}: cannot read: Permission denied" in result.stderr


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_file_unreadable_even_for_root_is_a_machine_error_exit_1(tmp_path):
    # /proc/self/mem is a regular file whose first read fails (EIO), for root too: an I/O
    # error is the machine's, not the user's.
    result = _run_cli("ingest", "/proc/self/mem", "--out", str(tmp_path / "o"))
    assert result.returncode == 1, result.stderr
    assert (
        result.stderr.strip()
        == "jetx ingest: error: machine: /proc/self/mem: cannot read: Input/output error (EIO)"
    )


def test_read_series_without_series_file(tmp_path):
    with pytest.raises(JetxInputError, match=r"no series.parquet; run `jetx ingest"):
        read_series(tmp_path)
