"""What a batch of raw rows keeps and what it quarantines, with the reason for each row.

Every row whose value `jetx.data.cells` does not accept goes to the quarantine with its source
line (CSV) or id, its raw text and a reason, so that rows_read == rows_kept + rows_quarantined
always holds and nothing is silently dropped.

The quarantine's columns: `source_line` int64 (null for SQLite), `id` string (raw id text, null
when the source has no id column), `raw` string (the raw value cell, or the whole line of a row
with the wrong number of fields), `reason` string (one of `jetx.data.cells.REASONS`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jetx.data.cells import (
    CODE,
    REASONS,
    classify_values,
    ids_out_of_range,
    number_codes,
    parse_ids,
)
from jetx.data.sources import RawBatch

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_line", pa.int64()),
        ("id", pa.string()),
        ("raw", pa.string()),
        ("reason", pa.string()),
    ]
)


def collect(batches, has_id: bool) -> tuple[np.ndarray, np.ndarray, pa.Table, int]:
    """Validate every batch; keep valid (id, value) arrays and the quarantined rows."""
    kept_ids, kept_values, quarantined = [], [], [QUARANTINE_SCHEMA.empty_table()]
    rows_read = 0
    for raw in batches:
        ids, values, codes = _validate(raw, has_id)
        rows_read += codes.size
        ok = codes == 0
        if ok.all():
            kept_ids.append(ids)
            kept_values.append(values)
            continue
        kept_ids.append(ids[ok])
        kept_values.append(values[ok])
        quarantined.append(_quarantine_rows(raw, values, codes, ~ok))
    ids = np.concatenate(kept_ids) if kept_ids else np.empty(0, np.int64)
    values = np.concatenate(kept_values) if kept_values else np.empty(0, np.float64)
    return ids, values, pa.concat_tables(quarantined), rows_read


def _validate(raw: RawBatch, has_id: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids (int64), values (float64) and reason codes (int8) of one batch."""
    if raw.numbers is None:
        values, codes = classify_values(raw.values)
    else:
        values, codes = _sqlite_values(raw)
    if raw.lines is not None and not has_id:
        ids = raw.lines - 1
    elif raw.bad_ids is not None:
        ids = raw.ids.to_numpy()
        codes[pc.is_valid(raw.bad_ids).to_numpy(zero_copy_only=False)] = CODE["bad_id"]
        codes[ids_out_of_range(ids)] = CODE["bad_id"]  # the rule of CSV ids, `parse_ids`
    else:
        ids, bad = parse_ids(raw.ids)
        codes[bad] = CODE["bad_id"]
    if raw.lines is not None:
        cells = [raw.values] if raw.ids is None else [raw.ids, raw.values]
        blank = np.logical_and.reduce([_is_empty(cell) for cell in cells])
        codes[blank] = CODE["blank_line"]
    return ids, values, codes


def _sqlite_values(raw: RawBatch) -> tuple[np.ndarray, np.ndarray]:
    values, codes = classify_values(raw.values)
    native = ~np.isnan(raw.numbers)
    values[native] = raw.numbers[native]
    codes[native] = number_codes(raw.numbers[native])
    return values, codes


def _is_empty(cell: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.equal(cell, ""), True).to_numpy(zero_copy_only=False)


def _quarantine_rows(raw: RawBatch, values: np.ndarray, codes: np.ndarray, bad: np.ndarray):
    index = pa.array(np.flatnonzero(bad))
    texts = raw.values.take(index)
    if raw.numbers is not None:
        rendered = pc.cast(pa.array(values[bad]), pa.string())
        texts = pc.coalesce(texts, pc.if_else(pc.is_nan(pa.array(values[bad])), None, rendered))
    if raw.ids is None:
        ids = pa.nulls(len(index), pa.string())
    elif raw.bad_ids is not None:
        ids = pc.coalesce(raw.bad_ids.take(index), pc.cast(raw.ids.take(index), pa.string()))
    else:
        ids = raw.ids.take(index)
    lines = pa.nulls(len(index), pa.int64()) if raw.lines is None else raw.lines[bad]
    reasons = np.asarray(REASONS, dtype=object)[codes[bad] - 1]
    return pa.Table.from_arrays(
        [pa.array(lines, pa.int64()), ids, texts, pa.array(reasons, pa.string())],
        schema=QUARANTINE_SCHEMA,
    )


def invalid_rows(invalid: list[tuple[int | None, str]]) -> pa.Table:
    """Quarantine records of rows with the wrong number of fields: (line or None, raw text)."""
    lines = [line for line, _ in invalid]
    return pa.Table.from_arrays(
        [
            pa.array(lines, pa.int64()),
            pa.nulls(len(invalid), pa.string()),
            pa.array([text for _, text in invalid], pa.string()),
            pa.array(["wrong_field_count"] * len(invalid), pa.string()),
        ],
        schema=QUARANTINE_SCHEMA,
    )


def reason_counts(quarantine: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(quarantine.column("reason")).to_pylist()
    return {item["values"]: item["counts"] for item in sorted(counts, key=lambda c: c["values"])}
