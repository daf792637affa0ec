"""What a valid multiplier (and a valid id) is, decided on the raw text of each cell.

A valid value is a finite number >= 1.00, written as a plain decimal (surrounding spaces and
tabs are allowed; nothing else is coerced). Values are parsed from text here, vectorised with
pyarrow compute, because a reader's own number parsing would hide the raw text of damaged cells
(such as two numbers joined by U+2028). Every invalid cell gets a reason code, never a guess.
The minimum is decided on the decimal text, not its float64: `0.99999999999999999999` parses
to 1.0 and is still below 1.00. An id may carry a leading `+`, as a value may.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Quarantine reasons; a row's code is its index + 1 (0 = kept). Earlier reasons win.
REASONS = (
    "blank_line",
    "wrong_field_count",
    "bad_id",
    "empty",
    "not_a_number",
    "not_finite",
    "below_minimum",
)
CODE = {reason: code for code, reason in enumerate(REASONS, start=1)}
MIN_VALUE = 1.0
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NON_FINITE = r"^[+-]?(nan(\([0-9a-z_]*\))?|inf|infinity)$"
_INTEGER = r"^[+-]?[0-9]{1,18}$"
#: Texts whose float64 is 1.0 and whose decimal value is exactly 1: no Decimal needed.
_EXACT_ONE = r"^[ \t]*\+?0*1(\.0*)?([eE][+-]?0+)?[ \t]*$"
_ID_LIMIT = 10**18
_BLANKS = " \t"


def classify_values(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parse raw value cells and give each a reason code (0 = valid).

    The common case, a batch whose every cell is a plain number, takes one cast; any other
    batch goes cell by cell through the regular expressions, which define what is a number.

    Args:
        texts: (n,) string array of raw cells; nulls count as empty.

    Returns:
        numbers: float64 (n,), NaN where the text is not a decimal number.
        codes: int8 (n,), 0 or an index + 1 into `REASONS`.
    """
    if texts.null_count == 0:
        try:
            numbers = pc.cast(texts, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            return numbers, _below_one(texts, numbers, number_codes(numbers))
    numbers, codes = _classify_cells(texts)
    return numbers, _below_one(texts, numbers, codes)


def _below_one(texts: pa.Array, numbers: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Mark below_minimum the cells read as 1.0 whose decimal text is below 1."""
    ones = np.flatnonzero((numbers == MIN_VALUE) & (codes == 0))
    if not ones.size:
        return codes
    cells = texts.take(pa.array(ones))
    exact = pc.fill_null(pc.match_substring_regex(cells, _EXACT_ONE), True)
    unusual = np.flatnonzero(~exact.to_numpy(zero_copy_only=False))
    for i in unusual:
        if _decimal(cells[int(i)].as_py()) < 1:
            codes[ones[i]] = CODE["below_minimum"]
    return codes


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text.strip(_BLANKS))
    except InvalidOperation:
        return Decimal(1)


def _classify_cells(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    trimmed = pc.utf8_trim(texts, characters=_BLANKS)
    empty = pc.fill_null(pc.equal(trimmed, ""), True).to_numpy(zero_copy_only=False)
    numeric = pc.fill_null(pc.match_substring_regex(trimmed, _NUMBER), False)
    special = pc.fill_null(pc.match_substring_regex(trimmed, _NON_FINITE, ignore_case=True), False)
    parsed = pc.cast(pc.if_else(numeric, trimmed, "nan"), pa.float64())
    numbers = parsed.to_numpy(zero_copy_only=False)
    numeric = numeric.to_numpy(zero_copy_only=False)
    codes = number_codes(numbers)
    codes[~numeric] = CODE["not_a_number"]
    codes[special.to_numpy(zero_copy_only=False)] = CODE["not_finite"]
    codes[empty] = CODE["empty"]
    return np.where(numeric, numbers, np.nan), codes


def number_codes(numbers: np.ndarray) -> np.ndarray:
    codes = np.zeros(numbers.size, dtype=np.int8)
    codes[numbers < MIN_VALUE] = CODE["below_minimum"]
    codes[~np.isfinite(numbers)] = CODE["not_finite"]
    return codes


def ids_out_of_range(ids: np.ndarray) -> np.ndarray:
    """Mask of int64 ids of more than 18 digits: the one id rule of CSV and SQLite sources
    (`np.abs` would keep the smallest int64, whose absolute value overflows)."""
    return (ids >= _ID_LIMIT) | (ids <= -_ID_LIMIT)


def parse_ids(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Integer ids (int64) and a mask of cells that are not integers of at most 18 digits."""
    if texts.null_count == 0:
        try:
            ids = pc.cast(texts, pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            return ids, ids_out_of_range(ids)
    trimmed = pc.utf8_trim(texts, characters=_BLANKS)
    good = pc.fill_null(pc.match_substring_regex(trimmed, _INTEGER), False)
    unsigned = pc.replace_substring_regex(trimmed, r"^\+", "")  # Arrow's cast refuses a "+"
    ids = pc.cast(pc.if_else(good, unsigned, "0"), pa.int64()).to_numpy(zero_copy_only=False)
    return ids, ~good.to_numpy(zero_copy_only=False)
