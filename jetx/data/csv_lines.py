"""Where each CSV record starts: the header record, and the physical line of every row.

pyarrow's CSV reader numbers records, not lines, and a quoted cell may hold line breaks, so the
physical line of a row (what a person opens the file at) is computed here from the line breaks
inside the records above it. Line breaks are CR, LF or CRLF, as pyarrow's parser breaks lines; a
Unicode line separator (U+2028, NEL, form feed...) inside a cell or a name is part of it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jetx.errors import JetxInputError


def first_record(text: str) -> tuple[list[str], int, int] | None:
    """The header's fields, its end (index after its line break) and the breaks inside it.

    Returns None when `text` holds no complete first record (no line break outside quotes).

    Raises:
        JetxInputError: (without the file name) a quote that is never closed.
    """
    fields, field, quoted, breaks, i = [], [], False, 0, 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == '"' and text[i + 1 : i + 2] == '"':
                field.append('"')
                i += 1
            elif char == '"':
                quoted = False
            else:
                breaks += char == "\n" or (char == "\r" and text[i + 1 : i + 2] != "\n")
                field.append(char)
        elif char == '"' and not field:
            quoted = True
        elif char == ",":
            fields.append("".join(field))
            field = []
        elif char in "\r\n":
            fields.append("".join(field))
            end = i + 2 if text[i : i + 2] == "\r\n" else i + 1
            return fields, end, breaks
        else:
            field.append(char)
        i += 1
    if quoted:
        raise JetxInputError("the header line has a quote that is never closed")
    return None


class RecordLines:
    """Physical lines of rows from pyarrow's record numbers and the breaks inside cells.

    Record r (1-based, after the header) starts on line header_lines + r + (line breaks inside
    the records before it). Valid rows come in order; invalid rows (wrong field count) come
    through pyarrow's handler with their record number, possibly read ahead of the batch.
    """

    def __init__(self, header_lines: int) -> None:
        self.header_lines = header_lines
        self.valid = 0  # valid rows seen
        self.valid_breaks = 0  # line breaks inside them
        self.break_rows: list[np.ndarray] = []  # indices of valid rows holding breaks
        self.break_sums: list[np.ndarray] = []  # cumulative breaks at those rows

    def _invalid(self, numbers, texts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        known = [(n, t) for n, t in zip(numbers, texts, strict=True) if n is not None]
        known.sort()
        records = np.fromiter((n for n, _ in known), np.int64, len(known))
        breaks = np.fromiter((_text_breaks(t) for _, t in known), np.int64, len(known))
        before = records - 1 - np.arange(records.size)  # valid rows above each invalid row
        return records, before, np.concatenate([[0], np.cumsum(breaks)])

    def of_rows(self, breaks: np.ndarray, numbers, texts) -> np.ndarray:
        """The lines of the next valid rows, given the breaks inside each."""
        _, before, invalid_breaks = self._invalid(numbers, texts)
        index = self.valid + np.arange(breaks.size, dtype=np.int64)
        above = np.searchsorted(before, index, side="right")
        inside = self.valid_breaks + np.cumsum(breaks) - breaks
        if np.any(breaks):
            self.break_rows.append(index[breaks > 0])
            self.break_sums.append((inside + breaks)[breaks > 0])
        self.valid += breaks.size
        self.valid_breaks += int(np.sum(breaks))
        return self.header_lines + index + 1 + above + inside + invalid_breaks[above]

    def of_invalid(self, numbers, texts) -> list[tuple[int | None, str]]:
        """(line, text) of every invalid row, once all rows were seen."""
        records, before, invalid_breaks = self._invalid(numbers, texts)
        rows = np.concatenate(self.break_rows) if self.break_rows else np.empty(0, np.int64)
        sums = np.concatenate(self.break_sums) if self.break_sums else np.empty(0, np.int64)
        position = np.searchsorted(rows, before, side="left")
        valid_breaks = np.concatenate([[0], sums])[position]
        lines = self.header_lines + records + valid_breaks + invalid_breaks[:-1]
        known = sorted((n, t) for n, t in zip(numbers, texts, strict=True) if n is not None)
        unknown = [(None, t) for n, t in zip(numbers, texts, strict=True) if n is None]
        return [(int(line), t) for line, (_, t) in zip(lines, known, strict=True)] + unknown


def _text_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def line_breaks(cells: pa.Array) -> np.ndarray:
    """Line breaks (LF, CR or CRLF) inside each quoted cell, int64 (n,)."""
    data = cells.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    if not (np.any(raw == 0x0A) or np.any(raw == 0x0D)):
        return np.zeros(len(cells), dtype=np.int64)
    counts = [pc.count_substring(cells, token) for token in ("\n", "\r", "\r\n")]
    total = pc.subtract(pc.add(counts[0], counts[1]), counts[2])
    return total.to_numpy(zero_copy_only=False).astype(np.int64)


class LineBound:
    """Refuse a physical line longer than `limit` bytes, fed the data's bytes in order.

    Checked on the bytes before pyarrow parses them, so that no line, wherever it is, reaches a
    parser whose blocks it would straddle (see `jetx.data.csv_reader`). A line ends at CR, LF
    or CRLF, as pyarrow's parser breaks lines; the break is not part of the line.
    """

    def __init__(self, path, first_line: int, limit: int) -> None:
        self.path, self.limit = path, limit
        self.line = first_line  # the line the next byte belongs to
        self.length = 0  # bytes of that line fed so far
        self.after_cr = False  # the last byte fed was a CR (a following LF ends no new line)

    def feed(self, chunk) -> None:
        """Check the next bytes (a bytes-like object).

        Raises:
            JetxInputError: a line longer than the limit (its number, and the file, named).
        """
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if not raw.size:
            return
        ends = np.flatnonzero((raw == 0x0A) | (raw == 0x0D))
        before = np.concatenate([[0x0D if self.after_cr else 0], raw])[ends]
        breaks = ~((raw[ends] == 0x0A) & (before == 0x0D))  # the LF of a CRLF ends no line
        lengths = np.diff(np.concatenate([[-1], ends, [raw.size]])) - 1
        lengths[0] += self.length
        over = np.flatnonzero(lengths > self.limit)
        if over.size:
            line = self.line + int(np.count_nonzero(breaks[: over[0]]))
            raise JetxInputError(
                f"{self.path}: line {line} is longer than {self.limit} bytes, the longest line "
                "a CSV history may hold; expected one round per line"
            )
        self.line += int(np.count_nonzero(breaks))
        self.length = int(lengths[-1])
        self.after_cr = bool(raw[-1] == 0x0D)
