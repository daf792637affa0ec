"""Ingest a raw multiplier history into a clean series, a quarantine and a manifest.

Every row whose value `jetx.data.cells` does not accept goes to the quarantine with its source
line (CSV) or id, its raw text and a reason, so that rows_read == rows_kept + rows_quarantined
always holds and nothing is silently dropped.

Outputs in the output directory, each written atomically:
- series.parquet: `id` int64, `value` float64, ordered by id (by line when a CSV has no `id`
  column, in which case id = line - 1, the row's record number).
- quarantine.parquet: `source_line` int64 (null for SQLite), `id` string (raw id text, null
  when the source has no id column), `raw` string (the raw value cell, or the whole line of a row
  with the wrong number of fields), `reason` string (one of `REASONS`).
- manifest.json: the dict `ingest` returns.

Duplicate ids are an error, not a quarantine: which copy is the real round would be a guess.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jetx.data.cells import CODE, REASONS, classify_values, number_codes, parse_ids
from jetx.data.sources import (
    RawBatch,
    csv_header,
    detect_source,
    read_csv_batches,
    read_sqlite_batches,
)
from jetx.errors import JetxInputError
from jetx.io import sha256_file, write_json, write_parquet
from jetx.layout import SeriesDir

logger = logging.getLogger(__name__)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_line", pa.int64()),
        ("id", pa.string()),
        ("raw", pa.string()),
        ("reason", pa.string()),
    ]
)


class QuarantineError(Exception):
    """Raised under `strict=True` when any row was quarantined; nothing is written then."""


def ingest(
    source: Path,
    out_dir: Path,
    *,
    strict: bool = False,
    table: str = "jetx_results",
    column: str = "value",
) -> dict:
    """Validate a CSV or SQLite history and write series, quarantine and manifest to `out_dir`.

    Args:
        source: a CSV file with a header naming `column` (optional `id`), or a SQLite database
            holding `table` with `column` (ordered by its `id`, or rowid without one).
        out_dir: directory for series.parquet, quarantine.parquet and manifest.json.
        strict: refuse to write anything when a single row is quarantined.
        table: SQLite table name.
        column: name of the value column (CSV header or SQLite column).

    Returns:
        The manifest: source, source_type, sha256, rows_read, rows_kept, rows_quarantined,
        quarantine_reasons (reason -> count), ordered_by, outputs, created_at.

    Raises:
        JetxInputError: the source cannot be used (missing, empty, binary, not UTF-8, no
            header, no such table or column, no data rows, duplicate ids).
        QuarantineError: `strict` and at least one row was quarantined.
    """
    source, out_dir = Path(source), Path(out_dir)
    source_type = detect_source(source)
    invalid: list[tuple[int, str]] = []
    if source_type == "sqlite":
        batches, has_id = read_sqlite_batches(source, table, column), True
    else:
        header, roles = _csv_roles(source, column)
        batches, has_id = read_csv_batches(source, header, roles, invalid), roles[0] is not None
    ids, values, quarantine, rows_read = _collect(batches, has_id)
    quarantine = pa.concat_tables([quarantine, _invalid_rows(invalid)])
    if source_type == "csv":
        quarantine = quarantine.sort_by("source_line")
    rows_read += len(invalid)
    if rows_read == 0:
        raise JetxInputError(f"{source}: no data rows; expected at least one round")
    if has_id:
        ids, values = _order_by_id(source, ids, values)
    if rows_read != ids.size + quarantine.num_rows:
        raise RuntimeError(f"row counts do not add up for {source}: read {rows_read}")
    reasons = _reason_counts(quarantine)
    if strict and quarantine.num_rows:
        raise QuarantineError(_strict_message(source, quarantine, reasons))
    series = pa.table({"id": pa.array(ids), "value": pa.array(values)})
    return _write(source, out_dir, series, quarantine, reasons, source_type, has_id)


def read_series(series_dir: Path) -> np.ndarray:
    """The ingested multipliers, float64 (n,), in series order, from `series_dir`/series.parquet.

    Raises:
        JetxInputError: the directory holds no series.parquet, or it lacks a `value` column.
    """
    path = SeriesDir(series_dir).series
    if not path.is_file():
        raise JetxInputError(
            f"{series_dir}: no {path.name}; run `jetx ingest SOURCE --out {series_dir}` first"
        )
    schema = pq.read_schema(path)
    if "value" not in schema.names:
        raise JetxInputError(f"{path}: no `value` column (columns: {', '.join(schema.names)})")
    column = pq.read_table(path, columns=["value"]).column("value")
    return column.to_numpy().astype(np.float64, copy=False)


def _csv_roles(source: Path, column: str) -> tuple[list[str], tuple[str | None, str]]:
    """The header and the (id column or None, value column) it provides."""
    header = csv_header(source)
    if column in header:
        return header, ("id" if "id" in header and column != "id" else None, column)
    if all(_looks_numeric(field) for field in header):
        raise JetxInputError(
            f"{source}: no header line (first line is {','.join(header)!r}); "
            f"expected a header naming a `{column}` column"
        )
    raise JetxInputError(f"{source}: no `{column}` column in header (found: {', '.join(header)})")


def _looks_numeric(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _collect(batches, has_id: bool) -> tuple[np.ndarray, np.ndarray, pa.Table, int]:
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


def _invalid_rows(invalid: list[tuple[int, str]]) -> pa.Table:
    lines = [line if line >= 0 else None for line, _ in invalid]
    return pa.Table.from_arrays(
        [
            pa.array(lines, pa.int64()),
            pa.nulls(len(invalid), pa.string()),
            pa.array([text for _, text in invalid], pa.string()),
            pa.array(["wrong_field_count"] * len(invalid), pa.string()),
        ],
        schema=QUARANTINE_SCHEMA,
    )


def _order_by_id(source: Path, ids: np.ndarray, values: np.ndarray):
    if ids.size < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return ids, values
    order = np.argsort(ids, kind="stable")
    ids, values = ids[order], values[order]
    duplicated = np.flatnonzero(ids[1:] == ids[:-1])
    if duplicated.size:
        first = int(ids[duplicated[0]])
        count = np.unique(ids[duplicated]).size
        raise JetxInputError(
            f"{source}: duplicate id {first} ({count} ids appear more than once); "
            "ids must be unique to define the order of rounds"
        )
    return ids, values


def _reason_counts(quarantine: pa.Table) -> dict[str, int]:
    counts = pc.value_counts(quarantine.column("reason")).to_pylist()
    return {item["values"]: item["counts"] for item in sorted(counts, key=lambda c: c["values"])}


def _strict_message(source: Path, quarantine: pa.Table, reasons: dict[str, int]) -> str:
    first = quarantine.slice(0, 1).to_pylist()[0]
    line = first["source_line"]
    where = f"line {line}" if line is not None else f"id {first['id']}"
    summary = ", ".join(f"{reason}: {count}" for reason, count in reasons.items())
    return (
        f"{source}: {quarantine.num_rows} row(s) quarantined under --strict ({summary}; "
        f"first at {where}: {first['raw']!r}); nothing written"
    )


def _write(source, out_dir, series, quarantine, reasons, source_type, has_id) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    layout = SeriesDir(out_dir)
    write_parquet(layout.series, series)
    write_parquet(layout.quarantine, quarantine)
    manifest = {
        "source": str(source.resolve()),
        "source_type": source_type,
        "sha256": sha256_file(source),
        "rows_read": series.num_rows + quarantine.num_rows,
        "rows_kept": series.num_rows,
        "rows_quarantined": quarantine.num_rows,
        "quarantine_reasons": reasons,
        "ordered_by": "id" if has_id else "line",
        "outputs": {p.name: sha256_file(p) for p in (layout.series, layout.quarantine)},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(layout.manifest_path, manifest)
    logger.info(
        "ingested %s: %d read, %d kept, %d quarantined",
        source,
        manifest["rows_read"],
        manifest["rows_kept"],
        manifest["rows_quarantined"],
    )
    return manifest
