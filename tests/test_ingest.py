"""Ingestion: real history in both forms, quarantine reasons, line numbers, ordering, bad input."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetx.data.cells import classify_values
from jetx.data.ingest import QuarantineError, ingest
from jetx.data.series import read_series
from jetx.data.synth import synthesize, write_csv
from jetx.errors import JetxInputError
from jetx.io import sha256_file
from jetx.testing import faults

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
        ".jetx.lock",  # the writer's lock file (jetx.io.exclusive), empty of any writer now
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


# --- issue 13: hostile inputs of our own, on top of the 29 above ----------------------------


def _aged(path: Path, content: bytes) -> Path:
    """A file last modified a minute ago (no writer can be in the middle of its last line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    then = time.time() - 60
    os.utime(path, (then, then))
    return path


NO_VALUE = "no `value` column in header"
#: (name, content, expected fragment) of files that ingest must refuse.
REFUSED = [
    ("header U+2028", b"va\xe2\x80\xa8lue\n1.5\n", f"{NO_VALUE} (found: va\\u2028lue)"),
    ("header U+2029", b"id,value\xe2\x80\xa9\n1,1.5\n", "(found: id, value\\u2029)"),
    ("header NEL", b"value\xc2\x85\n1.5\n", "(found: value\\x85)"),
    ("header form feed", b"value\x0c\n1.5\n", "(found: value\\x0c)"),
    ("header vertical tab", b"value\x0b,id\n1.5,1\n", "(found: value\\x0b, id)"),
    ("header open quote", b'"value\n1.5\n', "the header line has a quote that is never closed"),
    ("header only, quoted break", b'"i\nd",value\n', "no data rows"),
    ("header over 64 KiB", b"v" * 70000, "the header line is longer than 64 KiB"),
    ("header of commas", b",,\n1,2,3\n", "first line is blank"),
    ("BOM then blank", b"\xef\xbb\xbf\nvalue\n1.5\n", "first line is blank"),
    ("header 'value '", b"id,value \n1,1.5\n", f"{NO_VALUE} (found: id, value )"),
    ("data open quote", b'id,value\n1,1.5\n2,"2.5\n3,4\n', "line 3 opens a quote that is never"),
    ("all quarantined", b"value\nabc\n0.5\n\n", "every row was quarantined (3 rows: "),
    ("duplicate '+1' and '1'", b"id,value\n+1,1.5\n1,2.0\n", "duplicate id 1"),
    ("truncated gzip", gzip.compress(b"value\n1.5\n")[:15], "not a valid gzip file"),
    ("gzip with junk after it", gzip.compress(b"value\n1.5\n") + b"xx", "not a valid gzip file"),
    ("gzip with a bad CRC", gzip.compress(b"value\n1.5\n")[:-8] + bytes(8), "(CRC check failed"),
    ("empty gzip", gzip.compress(b""), "no data after gzip decompression"),
    ("gzip of binary", gzip.compress(b"value\n\x00\x01\n"), "binary content after gzip"),
    ("gzip of latin-1", gzip.compress("value\ncaf\xe9\n".encode("latin-1")), "not UTF-8 text"),
    ("bz2 garbage", b"BZh91AY&SYgarbage", "not a valid bz2 file"),
    ("truncated xz", lzma.compress(b"value\n1.5\n")[:20], "not a valid xz file"),
]
OVERWRITE = "would overwrite the source"


def _hostile_errors(tmp: Path) -> list[tuple[str, Path, dict, str]]:
    """(name, source, ingest options, expected message fragment): each must be refused."""
    out = [
        (name, _aged(tmp / f"e{i}.csv", content), {}, fragment)
        for i, (name, content, fragment) in enumerate(REFUSED)
    ]
    bad_db = _sqlite(
        tmp / "all_bad.db",
        "CREATE TABLE jetx_results (id, value)",
        [(1, "x"), (2, 0.2)],
        "INSERT INTO jetx_results VALUES (?, ?)",
    )
    out.append(("sqlite all quarantined", bad_db, {}, "every row was quarantined (2 rows"))
    (tmp / "loop_a.csv").symlink_to(tmp / "loop_b.csv")
    (tmp / "loop_b.csv").symlink_to(tmp / "loop_a.csv")
    (tmp / "self.csv").symlink_to(tmp / "self.csv")
    (tmp / "dir_link.csv").symlink_to(tmp)
    out.append(("symlink to itself", tmp / "self.csv", {}, "symbolic link loop"))
    out.append(("symlink cycle of two", tmp / "loop_a.csv", {}, "symbolic link loop"))
    out.append(("symlink to a directory", tmp / "dir_link.csv", {}, "is a directory"))
    for name in ("series.parquet", "manifest.json", "quarantine.parquet"):
        source = _aged(tmp / f"named_{name}" / name, b"value\n1.5\n")
        out.append(
            (f"source named {name}", source, {"out_dir": source.parent}, f"{OVERWRITE} ({name}")
        )
    linked = _aged(tmp / "linked" / "history.csv", b"value\n1.5\n")
    (tmp / "linked" / "out").mkdir()
    os.link(linked, tmp / "linked" / "out" / "series.parquet")
    into = {"out_dir": tmp / "linked" / "out"}
    out.append(("hard link in --out", linked, into, f"{OVERWRITE} (series.parquet"))
    into = {"out_dir": _aged(tmp / "out_is_a_file", b"x")}
    source = _aged(tmp / "h.csv", b"value\n1.5\n")
    out.append(("--out is a file", source, into, "`--out` must be a directory"))
    return out


def test_at_least_30_new_hostile_inputs_are_refused_in_one_line_naming_the_file(tmp_path):
    cases = _hostile_errors(tmp_path / "in")
    kept = _hostile_kept(tmp_path / "kept")
    assert len(cases) >= 30 and len(kept) >= 15
    for name, source, options, fragment in cases:
        out = options.pop("out_dir", tmp_path / "out")
        before = sorted(p.name for p in Path(out).iterdir()) if Path(out).is_dir() else None
        with pytest.raises(JetxInputError) as caught:
            ingest(source, out, **options)
        message = str(caught.value)
        assert fragment in message, (name, message)
        assert str(source) in message or str(out) in message, (name, message)
        assert "\n" not in message and "\u2028" not in message, name
        after = sorted(p.name for p in Path(out).iterdir()) if Path(out).is_dir() else None
        assert after == before, (name, "something was written")
    assert source.read_bytes() == b"value\n1.5\n"  # no source was overwritten


BELOW = [
    "0.99999999999999999999",  # float64 1.0, decimal below 1
    "9.9999999999999999999e-1",
    " 0.999999999999999999999999 ",
    "1.00000000000000000001",  # kept from here on: at least 1.00
    "10e-1",
    "+1.0",
    "0.1e1",
]
#: (name, content, kept values, quarantine [(line, reason)]) of files that are valid histories.
INGESTED = [
    ("ids with '+'", b"id,value\n+2,2.5\n+1,1.5\n", [1.5, 2.5], []),
    ("ids ' +3 ' and 19 digits", b"id,value\n +3 ,3.5\n+1000000000000000000,2\n", [3.5],
     [(3, "bad_id")]),
    ("decimal minimum", ("value\n" + "\n".join(BELOW) + "\n").encode(), [1.0] * 4,
     [(2, "below_minimum"), (3, "below_minimum"), (4, "below_minimum")]),
    ("two multi-line cells", b'id,value\n1,"a\nb"\n2,"c\r\nd"\n3,bad\n4,1.5\n', [1.5],
     [(2, "not_a_number"), (4, "not_a_number"), (6, "not_a_number")]),
    ("CR line endings", b'value\r1.5\r"2\r5"\rx\r2.5\r', [1.5, 2.5],
     [(3, "not_a_number"), (5, "not_a_number")]),
    ("BOM", b"\xef\xbb\xbfid,value\n1,1.5\n", [1.5], []),
    ("U+2028 in another name", "id\u2028x,value\n1,1.5\n2,2.5\n".encode(), [1.5, 2.5], []),
    ("U+2029 in a value", "value\n1.5\u20292.5\n3.5\n".encode(), [3.5], [(2, "not_a_number")]),
    ("no-break space", "value\n\u00a01.5\n2.5\n".encode(), [2.5], [(2, "not_a_number")]),
    ("a quote inside a cell", b'value\n1.5"\n2.5\n', [2.5], [(2, "not_a_number")]),
    ("gzip named .csv", gzip.compress(b"value\n1.5\n2.5\n"), [1.5, 2.5], []),
    ("plain named .gz", b"value\n1.5\n", [1.5], []),
]  # fmt: skip


def _hostile_kept(tmp: Path) -> list[tuple[str, Path, dict, list, list]]:
    """(name, source, options, kept values, quarantine [(line or id, reason)]): each ingests."""
    out = []
    for i, (name, content, values, quarantined) in enumerate(INGESTED):
        suffix = ".csv.gz" if name.endswith(".gz") else ".csv"
        out.append((name, _aged(tmp / f"k{i}{suffix}", content), {}, values, quarantined))
    insert = "INSERT INTO {} VALUES (?, ?)"
    rows = [(3, 3.5), (1, 1.5), (2, 2.5)]
    schema = "CREATE TABLE jetx_results (ID INTEGER, value REAL)"
    ordered = _sqlite(tmp / "ID.db", schema, rows, insert.format("jetx_results"))
    out.append(("sqlite ID column", ordered, {}, [1.5, 2.5, 3.5], []))
    rows = [(1, "0.99999999999999999999"), (2, 1.5)]
    schema = "CREATE TABLE JETX_RESULTS (Id, VALUE)"
    cased = _sqlite(tmp / "cased.db", schema, rows, insert.format("JETX_RESULTS"))
    out.append(("sqlite names in capitals", cased, {}, [1.5], [("1", "below_minimum")]))
    schema = "CREATE TABLE Rounds (id, Multiplier)"
    custom = _sqlite(tmp / "custom.db", schema, [(1, 2.5)], insert.format("Rounds"))
    options = {"table": "rounds", "column": "multiplier"}
    out.append(("sqlite --table/--column in another case", custom, options, [2.5], []))
    return out


def test_hostile_inputs_that_are_valid_histories_are_ingested_exactly(tmp_path):
    for name, source, options, values, quarantined in _hostile_kept(tmp_path / "kept"):
        out = tmp_path / "out" / str(abs(hash(name)))
        manifest = ingest(source, out, **options)
        assert read_series(out).tolist() == values, name
        rows = _quarantine(out)
        where = [(r["source_line"] if r["source_line"] is not None else r["id"], r["reason"])
                 for r in rows]  # fmt: skip
        assert where == quarantined, (name, where)
        assert manifest["rows_read"] == manifest["rows_kept"] + manifest["rows_quarantined"]


# --- issue 13: outputs published as one set, and whose fault a failure is --------------------


def test_a_reader_never_combines_a_new_series_with_an_old_manifest(tmp_path):
    out = tmp_path / "o"
    ingest(_aged(tmp_path / "a.csv", b"value\n1.5\n2.5\n"), out)
    stale = (out / "manifest.json").read_bytes()
    ingest(_aged(tmp_path / "b.csv", b"value\n3.5\n"), out)
    (out / "manifest.json").write_bytes(stale)  # what a crash between two renames leaves
    with pytest.raises(JetxInputError, match=r"series.parquet does not match the sha256 in "):
        read_series(out)


def test_an_ingest_killed_before_its_manifest_leaves_nothing_a_reader_accepts(tmp_path):
    out = tmp_path / "o"
    ingest(_aged(tmp_path / "a.csv", b"value\n1.5\n2.5\n"), out)
    gate = tmp_path / "gate"
    gate.write_text("manifest.json\n")
    newer = _aged(tmp_path / "b.csv", b"value\n3.5\n")
    process = subprocess.Popen(
        [*JETX, "ingest", str(newer), "--out", str(out)],
        env={**os.environ, **faults.environment(hold=str(gate))},
    )
    deadline = time.monotonic() + 120
    while not gate.read_text().startswith("held"):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(JetxInputError, match=rf"SERIES_DIR {out} is being written by pid"):
        read_series(out)  # the new series is in place, the manifest not yet
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    with pytest.raises(JetxInputError, match="does not match the sha256"):
        read_series(out)
    ingest(newer, out)  # the next ingest repairs it
    assert read_series(out).tolist() == [3.5]


def test_ingesting_the_same_snapshot_again_writes_nothing(tmp_path):
    source = _aged(tmp_path / "a.csv", b"value\n1.5\n")
    first = ingest(source, tmp_path / "o")
    written = (tmp_path / "o" / "series.parquet").stat().st_mtime_ns
    assert ingest(source, tmp_path / "o") == first
    assert (tmp_path / "o" / "series.parquet").stat().st_mtime_ns == written


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux setpriv")
def test_a_read_only_out_is_the_users_fault_naming_the_directory(tmp_path):
    # Root writes anywhere: the command runs without CAP_DAC_OVERRIDE, so permissions count.
    source = _aged(tmp_path / "h.csv", b"value\n1.5\n")
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    result = subprocess.run(
        [*drop, *JETX, "ingest", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"jetx ingest: error: {out}: Permission denied (EACCES)"


def test_a_full_disk_is_the_machines_fault_naming_the_file_and_errno(tmp_path):
    # RLIMIT_FSIZE makes every write past 64 KiB fail with EFBIG, as a full disk fails with
    # ENOSPC: a real failing write of the real command.
    source = tmp_path / "h.csv"
    write_csv(source, synthesize(20000, seed=1))
    out = tmp_path / "o"
    limit = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16)); "
        "from jetx.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", limit, "ingest", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert (
        lines[-1]
        == f"jetx ingest: error: machine: {out / 'series.parquet'}: File too large (EFBIG)"
    )
    assert "Traceback" not in result.stderr
    assert not list(out.glob(".jetx-tmp-*")) and not (out / "manifest.json").exists()
