"""A CSV history read as one consistent snapshot: the bytes parsed, their sha256, exact lines.

A pass reads exactly the file's first `size` bytes (its size when opened), hashing them as pyarrow
parses them, so that the digest names what was parsed and nothing else; a file that changed
meanwhile (`jetx.data.snapshot`) raises `SourceChanged`, and the caller reads it again.

The header is split from the data here, at the first line break outside quotes
(`jetx.data.csv_lines.first_record`), and pyarrow reads the data with those column names, as
text, with quoted line breaks allowed, so that a block boundary never splits a record; the
physical line of each row comes from `jetx.data.csv_lines.RecordLines`. Compressed files (gzip,
bz2, xz) are decompressed by content, never by extension; the digest is of the bytes as read.

pyarrow never reads a Python stream: its reader reads ahead on a thread of its own, and a Python
object read from that thread while the main thread raised (a block straddled by a long line)
and the interpreter shut down aborted it ("PyGILState_Release", exit 134) or hung it. So this
thread first copies the data (decompressed, hashed, every line checked against
`MAX_LINE_BYTES` by `jetx.data.csv_lines.LineBound`) to an unlinked temporary file in TMPDIR,
and pyarrow reads that copy natively: a line over the limit is one error naming its line,
wherever it is, before pyarrow has seen a byte. The copy is held in memory up to
`_MEMORY_BYTES`, and beyond that costs the data's size in TMPDIR while the pass runs.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import logging
import lzma
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from jetx.data.csv_lines import LineBound, RecordLines, first_record, line_breaks
from jetx.data.snapshot import FileWatch, HashedPrefix, Remainder, SourceChanged
from jetx.data.sources import RawBatch, check_text, compression
from jetx.errors import JetxInputError

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 1 << 16
#: Bytes per pyarrow block (module-level so that tests can make blocks small).
CSV_BLOCK_BYTES = 1 << 22
#: The longest physical line (bytes, its line break excluded) a CSV history may hold: a round is
#: a few dozen bytes, and a line shorter than a block never straddles two of them.
MAX_LINE_BYTES = 1 << 20
_COPY_BYTES = 1 << 20
_MEMORY_BYTES = 1 << 24
_OPENERS = {
    "gzip": lambda stream: gzip.GzipFile(fileobj=stream),
    "bz2": bz2.BZ2File,
    "xz": lzma.LZMAFile,
}
_DECOMPRESSION_ERRORS = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


class CsvReader:
    """One pass over a CSV file: its header, then its rows in batches (see the module doc).

    Args:
        path: the CSV file (plain, gzip, bz2 or xz).

    Attributes (after `batches` is exhausted): sha256 (of the bytes read), size (bytes read),
    compression (None for plain text), and `invalid_rows()`.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.handle = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed by batches)
        self.watch = FileWatch(self.path, self.handle.fileno())
        self.hashed = HashedPrefix(self.handle, self.watch.size)
        self.compression = compression(os.pread(self.handle.fileno(), 8, 0))
        self.stream: BinaryIO = io.BufferedReader(self.hashed, CSV_BLOCK_BYTES)
        if self.compression:
            self.stream = _OPENERS[self.compression](self.stream)
        try:
            self.header, self._rest, self._header_lines = self._read_header()
        except BaseException:
            self.handle.close()
            raise
        self._invalid: list[tuple[int | None, str]] = []
        self.sha256 = ""

    def _read_header(self) -> tuple[list[str], Remainder, int]:
        head = self._decoded(lambda: self.stream.read(_SNIFF_BYTES))
        if not head:
            raise JetxInputError(f"{self.path}: no data after {self.compression} decompression")
        if self.compression:
            check_text(self.path, head, f" after {self.compression} decompression")
        bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(head[bom:], final=False)
        except UnicodeDecodeError as error:
            raise JetxInputError(
                f"{self.path}: not UTF-8 text (invalid byte at offset {bom + error.start}); "
                "expected a CSV file"
            ) from None
        try:
            record = first_record(text)
            if record is None and len(head) < _SNIFF_BYTES:  # a header line without a break
                fields, _, breaks = first_record(text + "\n")
                record = (fields, len(text), breaks)
        except JetxInputError as error:
            raise JetxInputError(f"{self.path}: {error}") from None
        if record is None:
            raise JetxInputError(f"{self.path}: the header line is longer than 64 KiB")
        fields, end, breaks = record
        if not "".join(fields).strip(" \t"):
            raise JetxInputError(f"{self.path}: first line is blank; expected a CSV header line")
        offset = bom + len(text[:end].encode("utf-8"))
        return fields, Remainder(head[offset:], self.stream, head[offset - 1 : offset]), 1 + breaks

    def roles(self, column: str) -> tuple[str | None, str]:
        """The (id column or None, value column) that the header provides.

        Raises:
            JetxInputError: a repeated column name, no header line (the first line is all
                numbers), or no `column` in the header.
        """
        header = self.header
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise JetxInputError(
                f"{self.path}: repeated column name(s) in header: {_names(repeated)}"
            )
        if column in header:
            return ("id" if "id" in header and column != "id" else None), column
        if all(_looks_numeric(field) for field in header):
            raise JetxInputError(
                f"{self.path}: no header line (first line is {_names(header, ',')}); "
                f"expected a header naming a `{column}` column"
            )
        raise JetxInputError(
            f"{self.path}: no `{column}` column in header (found: {_names(header)})"
        )

    def invalid_rows(self) -> list[tuple[int | None, str]]:
        """(physical line or None, raw text) of each row with the wrong number of fields."""
        return list(self._invalid)

    def batches(self, value: str, id_column: str | None) -> Iterator[RawBatch]:
        """The rows as text cells, a block at a time, with the physical line each starts on.

        Raises:
            JetxInputError: the data is not UTF-8, cannot be parsed as CSV, or does not
                decompress.
            SourceChanged: the file changed while it was read.
        """
        numbers: list[int | None] = []
        texts: list[str] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            numbers.append(None if row.number is None else int(row.number))
            texts.append(row.text)
            return "skip"

        lines = RecordLines(self._header_lines)
        try:
            with _Copy(self.path) as data:
                self._decoded(lambda: self._copy(data))
                self.sha256, self.size = self.hashed.digest.hexdigest(), self.hashed.count
                reader = self._decoded(lambda: self._open(data, on_invalid))
                while reader and (batch := self._decoded(lambda: _next(reader))) is not None:
                    breaks = sum(line_breaks(column) for column in batch.columns)
                    yield RawBatch(
                        lines=lines.of_rows(breaks, numbers, texts),
                        ids=None if id_column is None else batch.column(id_column),
                        values=batch.column(value),
                    )
            self._invalid = lines.of_invalid(numbers, texts)
            self._check_unchanged()
            if self._rest.quotes % 2:
                self._check_quotes()
        finally:
            self.handle.close()

    def _copy(self, sink: _Copy) -> None:
        """Copy the data after the header to `sink`, refusing a line over `MAX_LINE_BYTES`."""
        bound = LineBound(self.path, self._header_lines + 1, MAX_LINE_BYTES)
        buffer = bytearray(_COPY_BYTES)
        while count := self._rest.readinto(buffer):
            chunk = memoryview(buffer)[:count]
            bound.feed(chunk)
            sink.write(chunk)

    def _open(self, data: _Copy, on_invalid) -> pacsv.CSVStreamingReader | None:
        """pyarrow's reader of the copied data (a native stream); None when there is none."""
        if not data.size:
            return None
        return pacsv.open_csv(
            data.native(),
            read_options=pacsv.ReadOptions(
                block_size=CSV_BLOCK_BYTES, use_threads=False, column_names=self.header
            ),
            parse_options=pacsv.ParseOptions(
                ignore_empty_lines=False, newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in self.header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    def _decoded(self, read):
        """Run one read, turning decompression and parse errors into one-line errors."""
        try:
            return read()
        except _DECOMPRESSION_ERRORS as error:
            self._raise_if_changed()
            reason = str(error) or type(error).__name__
            raise JetxInputError(
                f"{self.path}: not a valid {self.compression} file ({reason})"
            ) from None
        except OSError as error:
            if self.compression and error.errno is None:  # bz2's "Invalid data stream"
                self._raise_if_changed()
                raise JetxInputError(
                    f"{self.path}: not a valid {self.compression} file ({error})"
                ) from None
            raise
        except pa.ArrowInvalid as error:
            self._raise_if_changed()
            raise self._parse_error(error) from None

    def _parse_error(self, error: pa.ArrowInvalid) -> JetxInputError:
        message = str(error).splitlines()[0]
        if "UTF8" in message:
            return JetxInputError(f"{self.path}: not UTF-8 text ({self._invalid_utf8()}); "
                                  "expected a CSV file")  # fmt: skip
        return JetxInputError(f"{self.path}: cannot parse as CSV: {message}")

    def _check_quotes(self) -> None:
        """Refuse a quote opened and never closed: pyarrow would take the rest of the file for
        one cell. Only run when the data holds an odd number of quote characters (a quote
        inside an unquoted cell, `1.5"`, is a character like any other and is fine)."""
        with open(self.path, "rb") as raw:
            stream = _OPENERS[self.compression](raw) if self.compression else raw
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, strict=True)
            start = 1
            try:
                for _ in reader:
                    start = reader.line_num + 1
            except csv.Error as error:
                if "unexpected end of data" not in str(error):
                    return  # another oddity, which pyarrow read as its dialect says
                raise JetxInputError(
                    f"{self.path}: line {start} opens a quote that is never closed; the rest of "
                    "the file would be one cell"
                ) from None

    def _invalid_utf8(self) -> str:
        """Locate the first invalid UTF-8 byte (line and offset); only run on the error path."""
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset, line = 0, 1
        with open(self.path, "rb") as raw:
            stream = _OPENERS[self.compression](raw) if self.compression else raw
            while chunk := stream.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    line += chunk[: error.start].count(b"\n")
                    return f"invalid byte at offset {offset + error.start}, line {line}"
                offset += len(chunk)
                line += chunk.count(b"\n")
        return "invalid byte sequence"

    def _raise_if_changed(self, finished: bool = False) -> None:
        change = self.watch.change(self.hashed.count if finished else None)
        if change is not None:
            raise SourceChanged(change)

    def _check_unchanged(self) -> None:
        self._raise_if_changed(finished=True)
        self.watch.check_last_line(complete=self._rest.last in (b"\n", b"\r") or not self.size)


class _Copy:
    """The data pyarrow parses: in memory up to `_MEMORY_BYTES`, then an unlinked file in TMPDIR
    (nothing is left behind, even by a killed pass)."""

    def __init__(self, source: Path) -> None:
        self.source, self.size = source, 0
        self.memory: bytearray | None = bytearray()
        self.file: BinaryIO | None = None

    def write(self, chunk: memoryview) -> None:
        if self.memory is not None and self.size + len(chunk) > _MEMORY_BYTES:
            self.file = tempfile.TemporaryFile(prefix="jetx-csv-")  # noqa: SIM115 (closed in __exit__)
            self._write(self.memory)
            self.memory = None
        if self.memory is not None:
            self.memory += chunk
        else:
            self._write(chunk)
        self.size += len(chunk)

    def _write(self, chunk) -> None:
        try:
            self.file.write(chunk)
        except OSError as error:  # name what was written: the file itself has no name
            where = f"{tempfile.gettempdir()} (the temporary copy of {self.source})"
            raise OSError(error.errno, error.strerror, where) from None

    def native(self) -> pa.NativeFile:
        """The copy as a stream that pyarrow reads without calling into Python."""
        if self.memory is not None:
            return pa.BufferReader(pa.py_buffer(self.memory))
        self.file.flush()
        self.file.seek(0)  # where /dev/fd/N shares the descriptor's offset (macOS), start there
        return pa.OSFile(f"/dev/fd/{self.file.fileno()}")

    def __enter__(self) -> _Copy:
        return self

    def __exit__(self, *exc) -> None:
        self.memory = None
        if self.file is not None:
            self.file.close()


def _looks_numeric(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _names(names: list[str], separator: str = ", ") -> str:
    """Column names on one line: a name holding a line separator or control is escaped."""
    shown = [n if n.isprintable() else n.encode("unicode_escape").decode("ascii") for n in names]
    return repr(separator.join(shown)) if separator == "," else separator.join(shown)


def _next(reader: pacsv.CSVStreamingReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
