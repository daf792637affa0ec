"""A line over the CSV line limit is one error naming its line, wherever it is, plain or gzip:
real files, real `jetx ingest` processes with a timeout, never a hang or an interpreter abort.

pyarrow used to read a Python stream from its read-ahead thread; a 4 MiB line made the main
thread raise meanwhile, and about half the runs then aborted (exit 134, PyGILState_Release) or
hung. The default tier runs each case once; the e2e tier runs each ten times in fresh processes.
"""

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from jetx.data.csv_lines import LineBound
from jetx.data.csv_reader import MAX_LINE_BYTES
from jetx.errors import JetxInputError

JETX = [sys.executable, "-m", "jetx"]
MIB = 1 << 20
CASES = [(mib, row, packed) for mib in (5, 50) for row in (1, 2) for packed in (False, True)]


@pytest.mark.parametrize(
    ("chunks", "line"),
    [
        ([b"1,2\n1234"], 3),
        ([b"12", b"3", b"4\n"], 2),  # a line fed across chunks
        ([b"1\r\n", b"\n", b"1234"], 4),  # CRLF is one break, a CR alone or an LF alone too
        ([b"1\r", b"\n2\r3\n1234"], 5),  # a CRLF split between chunks is still one break
    ],
)
def test_a_line_over_the_limit_is_refused_naming_its_physical_line(chunks, line):
    bound = LineBound("h.csv", 2, limit=3)
    with pytest.raises(JetxInputError, match=rf"^h\.csv: line {line} is longer than 3 bytes"):
        for chunk in chunks:
            bound.feed(chunk)


def test_lines_at_the_limit_pass_and_are_counted():
    bound = LineBound("h.csv", 2, limit=3)
    for chunk in (b"123\r", b"\n12", b"3\n", b"\r123"):
        bound.feed(chunk)
    assert (bound.line, bound.length) == (5, 3)


def _history(path: Path, line_bytes: int, row: int, packed: bool, rows: int = 4) -> Path:
    body = [f"{i},{'9' * line_bytes if i == row else '1.50'}" for i in range(1, rows + 1)]
    data = ("id,value\n" + "\n".join(body) + "\n").encode()
    path.write_bytes(gzip.compress(data, compresslevel=1) if packed else data)
    return path


@pytest.fixture(scope="module")
def histories(tmp_path_factory) -> dict[tuple, Path]:
    folder = tmp_path_factory.mktemp("long-lines")
    return {
        (mib, row, packed): _history(
            folder / f"r{row}-{mib}mib.csv{'.gz' if packed else ''}", mib * MIB, row, packed
        )
        for mib, row, packed in CASES
    }


def _ingest_refuses(source: Path, out: Path, line: int) -> None:
    result = subprocess.run(
        [*JETX, "ingest", str(source), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = (
        f"jetx ingest: error: {source}: line {line} is longer than {MAX_LINE_BYTES} bytes, "
        "the longest line a CSV history may hold; expected one round per line"
    )
    assert (result.returncode, result.stderr.splitlines()) == (2, [expected])
    assert not out.exists()


@pytest.mark.parametrize(("mib", "row", "packed"), CASES)
def test_a_long_line_is_one_error_and_exit_2(histories, tmp_path, mib, row, packed):
    _ingest_refuses(histories[mib, row, packed], tmp_path / "out", line=row + 1)


def test_a_long_line_after_500k_rows_is_the_same_error(tmp_path):
    source = _history(tmp_path / "late.csv", 5 * MIB, 500_001, packed=False, rows=500_002)
    _ingest_refuses(source, tmp_path / "out", line=500_002)


def test_a_line_just_under_the_limit_is_an_ordinary_quarantined_row(tmp_path):
    source = _history(tmp_path / "h.csv", MAX_LINE_BYTES - 2, 2, packed=True)
    result = subprocess.run(
        [*JETX, "ingest", str(source), "--out", str(tmp_path / "out"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert '"rows_quarantined": 1' in result.stdout


@pytest.mark.e2e
@pytest.mark.parametrize(("mib", "row", "packed"), CASES)
def test_a_long_line_is_one_error_in_ten_fresh_processes(histories, tmp_path, mib, row, packed):
    for run in range(10):
        _ingest_refuses(histories[mib, row, packed], tmp_path / f"out{run}", line=row + 1)


def test_jetx_predict_history_with_a_long_line_is_the_same_error(tiny_export, tmp_path):
    # `jetx predict --history` reads through the same reader as ingest (and the flow's load_raw).
    source = _history(tmp_path / "h.csv.gz", 5 * MIB, 2, packed=True)
    result = subprocess.run(
        [*JETX, "predict", str(tiny_export["bundle"]), "--history", str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    expected = (
        f"jetx predict: error: {source}: line 3 is longer than {MAX_LINE_BYTES} bytes, "
        "the longest line a CSV history may hold; expected one round per line"
    )
    lines = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert (result.returncode, lines) == (2, [expected]), result.stderr
