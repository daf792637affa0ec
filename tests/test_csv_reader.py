"""A CSV read as one snapshot: exact physical lines, compression by content, and a source that
changes while it is read (real files, a real appending process), never giving a torn row."""

import bz2
import gzip
import hashlib
import lzma
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jetx.data import csv_reader, snapshot
from jetx.data.csv_lines import first_record
from jetx.data.csv_reader import CsvReader
from jetx.data.ingest import ingest, read_snapshot
from jetx.errors import JetxInputError
from jetx.io import sha256_file


def _old(path: Path, content: bytes) -> Path:
    """Write a file last modified a minute ago: no writer can be in the middle of it."""
    path.write_bytes(content)
    then = time.time() - 60
    os.utime(path, (then, then))
    return path


def _quarantine(out: Path) -> list[tuple]:
    rows = pq.read_table(out / "quarantine.parquet").to_pylist()
    return [(r["source_line"], r["reason"]) for r in rows]


@pytest.mark.parametrize(
    ("text", "fields", "end", "breaks"),
    [
        ("id,value\n1,2", ["id", "value"], 9, 0),
        ("id,value\r\n1", ["id", "value"], 10, 0),
        ("id,value\r1", ["id", "value"], 9, 0),
        ('"i\nd",value\n1', ["i\nd", "value"], 12, 1),
        ('"a""b",value\n', ['a"b', "value"], 13, 0),
        ("va\u2028lue,id\n", ["va\u2028lue", "id"], 10, 0),  # not a CSV line break
        ("value\x0c\n", ["value\x0c"], 7, 0),
    ],
)
def test_the_header_ends_at_the_first_line_break_outside_quotes(text, fields, end, breaks):
    assert first_record(text) == (fields, end, breaks)


def test_a_header_whose_quote_never_closes_is_one_clear_error():
    with pytest.raises(JetxInputError, match="the header line has a quote that is never closed"):
        first_record('"value\n1.5\n')


def test_lines_are_exact_after_multi_line_cells_and_skipped_rows(tmp_path):
    content = (
        b'"i\nd",value\n'  # a header on two lines: data starts on line 3
        b'1,"1.5\r\n9"\n'  # lines 3-4, a CRLF inside quotes
        b"2,1,2\n"  # line 5: wrong field count
        b'3,"x\ny\nz"\n'  # lines 6-8
        b"4,5,6\n"  # line 9: wrong field count
        b"5,0.5\n"  # line 10
        b"6,bad\n"  # line 11
        b"7,2.5\n"  # line 12: kept
    )
    source = _old(tmp_path / "h.csv", content)
    ingest(source, tmp_path / "o", column="value")
    assert _quarantine(tmp_path / "o") == [
        (3, "not_a_number"),
        (5, "wrong_field_count"),
        (6, "not_a_number"),
        (9, "wrong_field_count"),
        (10, "below_minimum"),
        (11, "not_a_number"),
    ]


def test_lines_stay_exact_across_block_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_reader, "CSV_BLOCK_BYTES", 64)  # dozens of blocks
    rows = [f"{i},1.5" for i in range(1, 200)]
    rows[30] = '31,"2.5\n\n7"'  # a quoted cell spanning a block boundary
    rows[60] = "61,1,2"
    rows[90] = '91,"x\ny"'
    rows[150] = "151,0"
    source = _old(tmp_path / "h.csv", ("id,value\n" + "\n".join(rows) + "\n").encode())
    manifest = ingest(source, tmp_path / "o")
    # Line of row i is i + 1, plus 2 for the breaks in row 31 and 1 more after row 91.
    assert _quarantine(tmp_path / "o") == [
        (32, "not_a_number"),
        (64, "wrong_field_count"),
        (94, "not_a_number"),
        (155, "below_minimum"),
    ]
    assert manifest["rows_read"] == 199 and manifest["rows_kept"] == 195


@pytest.mark.parametrize(
    ("name", "compress"),
    [("h.csv.gz", gzip.compress), ("h.bz2", bz2.compress), ("h.data", lzma.compress)],
)
def test_compressed_files_are_read_by_content_and_hashed_as_read(tmp_path, name, compress):
    plain = b"id,value\n1,1.5\n2,oops\n3,2.25\n"
    source = _old(tmp_path / name, compress(plain))
    manifest = ingest(source, tmp_path / "o")
    assert (manifest["rows_kept"], manifest["rows_quarantined"]) == (2, 1)
    assert _quarantine(tmp_path / "o") == [(3, "not_a_number")]
    assert manifest["sha256"] == sha256_file(source)
    assert manifest["read"]["compression"] is not None


def test_a_plain_file_named_gz_is_read_as_text(tmp_path):
    source = _old(tmp_path / "h.csv.gz", b"value\n1.5\n")
    assert ingest(source, tmp_path / "o")["rows_kept"] == 1


def test_a_last_line_that_a_writer_completes_meanwhile_is_read_again(tmp_path, caplog):
    source = tmp_path / "h.csv"
    source.write_bytes(b"id,value\n1,1.5\n10459,2")  # just written: a writer may be mid-line

    def finish_the_line() -> None:
        time.sleep(0.3)
        with open(source, "ab") as handle:
            handle.write(b".35\n")

    writer = threading.Thread(target=finish_the_line)
    writer.start()
    read = read_snapshot(source)
    writer.join()
    assert read.series.column("value").to_pylist() == [1.5, 2.35]  # never 2.0
    assert "changed while it was read (its last line was still being written)" in caplog.text
    assert read.sha256 == sha256_file(source)


def test_a_file_that_grows_mid_read_yields_the_consistent_prefix_or_a_reread(tmp_path, monkeypatch):
    source = _old(tmp_path / "h.csv", b"id,value\n" + b"".join(b"%d,1.5\n" % i for i in range(500)))
    size = source.stat().st_size
    original = snapshot.HashedPrefix.readinto
    appended = []

    def append_once(self, buffer):
        if not appended:  # the app appends a whole line, then a half one, while we read
            with open(source, "ab") as handle:
                handle.write(b"500,1.5\n501,2")
            appended.append(True)
        return original(self, buffer)

    monkeypatch.setattr(snapshot.HashedPrefix, "readinto", append_once)
    read = read_snapshot(source)
    assert read.read["bytes"] == size  # the bytes that existed when the pass began
    assert (
        read.series.num_rows == 500
        and read.sha256 == hashlib.sha256(source.read_bytes()[:size]).hexdigest()
    )


def test_a_file_replaced_while_it_is_read_is_read_again(tmp_path, monkeypatch, caplog):
    source = _old(tmp_path / "h.csv", b"value\n1.5\n")
    original = snapshot.HashedPrefix.readinto
    replaced = []

    def replace_once(self, buffer):
        if not replaced:
            new = _old(tmp_path / "new.csv", b"value\n3.5\n4.5\n")
            os.replace(new, source)
            replaced.append(True)
        return original(self, buffer)

    monkeypatch.setattr(snapshot.HashedPrefix, "readinto", replace_once)
    read = read_snapshot(source)
    assert read.series.column("value").to_pylist() == [3.5, 4.5]
    assert "it was replaced by another file" in caplog.text


def test_a_file_that_never_stops_changing_is_refused_in_one_line(tmp_path, monkeypatch):
    source = _old(tmp_path / "h.csv", b"value\n1.5\n")
    original = snapshot.HashedPrefix.readinto
    monkeypatch.setattr(csv_reader, "CSV_BLOCK_BYTES", 4)  # several reads per pass

    def rewrite(self, buffer):
        count = original(self, buffer)
        source.write_bytes(b"value\n9.5\n")  # same size, new content, every time
        return count

    monkeypatch.setattr(snapshot.HashedPrefix, "readinto", rewrite)
    monkeypatch.setattr("jetx.data.ingest.RETRY_SECONDS", 0.0)
    with pytest.raises(JetxInputError) as refused:
        read_snapshot(source)
    message = str(refused.value)
    assert message.startswith(f"{source}: changed while it was read, 3 times (last: it was")
    assert "\n" not in message


#: A process that appends rounds the way a buffered app does: each line in two writes.
APPENDER = textwrap.dedent(
    """
    import sys, time
    path, count = sys.argv[1], int(sys.argv[2])
    for i in range(count):
        with open(path, "ab", buffering=0) as handle:
            handle.write(b"%d,2" % i)
            time.sleep(0.04)
            handle.write(b".35\\n")
        time.sleep(0.15)
    """
)


def test_a_live_appender_never_gives_a_torn_row(tmp_path):
    source = tmp_path / "live.csv"
    source.write_bytes(b"id,value\n")
    appender = subprocess.Popen([sys.executable, "-c", APPENDER, str(source), "30"])
    outcomes = []
    try:
        while appender.poll() is None:
            try:
                read = read_snapshot(source)
            except JetxInputError as error:  # 'no data rows' at first, or kept changing
                outcomes.append(str(error))
                continue
            values = set(read.series.column("value").to_pylist())
            assert values == {2.35}, values  # a torn '7,2' would be 2.0
            prefix = source.read_bytes()[: read.read["bytes"]]
            assert hashlib.sha256(prefix).hexdigest() == read.sha256
            outcomes.append(read.series.num_rows)
    finally:
        appender.wait(timeout=60)
    counts = [o for o in outcomes if isinstance(o, int)]
    assert counts == sorted(counts) and len(counts) >= 3, outcomes
    errors = [o for o in outcomes if isinstance(o, str)]
    assert all("no data rows" in e or "changed while it was read" in e for e in errors), errors
    assert read_snapshot(source).series.num_rows == 30


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")
def test_the_reader_closes_its_file_when_its_header_is_refused(tmp_path):
    source = _old(tmp_path / "h.csv", b'"value\n1.5\n')
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(JetxInputError, match="quote that is never closed"):
            CsvReader(source)
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_copy_spilled_to_a_temporary_file_parses_the_same(tmp_path, monkeypatch):
    # pyarrow reads a native copy of the data: in memory, or past _MEMORY_BYTES an unlinked
    # file in TMPDIR (monkeypatched small here); both give the same rows, lines and digest.
    rows = "".join(f"{i},{'x' if i % 7 == 0 else 1.5 + i}\n" for i in range(1, 200))
    source = _old(tmp_path / "h.csv.gz", gzip.compress(f"id,value\n{rows}".encode()))
    in_memory = read_snapshot(source)
    monkeypatch.setattr(csv_reader, "_MEMORY_BYTES", 64)
    monkeypatch.setattr(csv_reader, "_COPY_BYTES", 16)
    spilled = read_snapshot(source)
    assert spilled.series.equals(in_memory.series)
    assert spilled.quarantine.equals(in_memory.quarantine)
    assert spilled.sha256 == in_memory.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
