"""Ingest a raw multiplier history into a clean series, a quarantine and a manifest.

Reading and writing are apart. `read_snapshot` reads the source once, as one consistent
snapshot (`jetx.data.csv_reader`: the bytes parsed; `jetx.data.sqlite_reader`: the rows of one
read transaction, WAL included), validates it (`jetx.data.quarantine`) and computes the digest of
what it read in the same pass, so that whatever is named after the digest (the flow's
`out/data/<key>/`) names what was really read. A CSV that changes while it is read is read again,
up to `READ_ATTEMPTS` times. `publish` writes the three outputs under the directory's lock.

Outputs in the output directory (`jetx.layout.SeriesDir`):
- series.parquet: `id` int64, `value` float64, ordered by id (by line when a CSV has no `id`
  column, in which case id = line - 1).
- quarantine.parquet: see `jetx.data.quarantine`.
- manifest.json: the dict `publish` returns, written last; its `outputs` hold the sha256 of the
  two others, which `jetx.data.series.read_series` checks, so that a reader never combines a new
  series with an old manifest (each file is renamed into place on its own).

Duplicate ids are an error, not a quarantine: which copy is the real round would be a guess.
A source in which every row is quarantined is an error too: there is nothing to train on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from jetx.data.csv_reader import CsvReader
from jetx.data.quarantine import collect, invalid_rows, reason_counts
from jetx.data.snapshot import SourceChanged
from jetx.data.sources import detect_source
from jetx.data.sqlite_reader import SqliteReader
from jetx.errors import JetxInputError
from jetx.io import sha256_file, write_json, write_parquet
from jetx.layout import SeriesDir

logger = logging.getLogger(__name__)

#: Passes over a CSV that changed while it was read before giving up, and the pause before the
#: k-th pass again (k times this).
READ_ATTEMPTS = 3
RETRY_SECONDS = 0.2


class QuarantineError(Exception):
    """Raised under `strict=True` when any row was quarantined; nothing is written then."""


@dataclass(frozen=True)
class Snapshot:
    """One validated read of a source: what to write, and the digest of what was read.

    Args:
        source: the source file.
        source_type: "csv" or "sqlite".
        sha256: sha256 of the content read (CSV: the bytes parsed, so the file's own sha256
            when it did not grow; SQLite: the rows of the read transaction).
        read: how much was read (bytes or rows) and the names used.
        series, quarantine: the tables to write.
        ordered_by: "id" or "line".
    """

    source: Path
    source_type: str
    sha256: str
    read: dict[str, Any]
    series: pa.Table
    quarantine: pa.Table
    ordered_by: str

    @property
    def key(self) -> str:
        """A directory name for this content and the names it was read with."""
        text = f"{self.source_type}\n{self.read.get('column')}\n{self.sha256}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def ingest(
    source: Path,
    out_dir: Path,
    *,
    strict: bool = False,
    table: str = "jetx_results",
    column: str = "value",
    wait: float | None = 0.0,
) -> dict:
    """Validate a CSV or SQLite history and write series, quarantine and manifest to `out_dir`.

    Args:
        source: a CSV file with a header naming `column` (optional `id`; plain or gzip, bz2,
            xz), or a SQLite database holding `table` with `column` (ordered by its `id`, or
            rowid without one; names in any case).
        out_dir: directory for series.parquet, quarantine.parquet and manifest.json.
        strict: refuse to write anything when a single row is quarantined.
        table: SQLite table name.
        column: name of the value column (CSV header or SQLite column).
        wait: seconds to wait for another writer of `out_dir` (0: fail at once; None: no limit).

    Returns:
        The manifest: source, source_type, sha256 (of the content read), read, rows_read,
        rows_kept, rows_quarantined, quarantine_reasons (reason -> count), ordered_by,
        outputs (file -> sha256), created_at.

    Raises:
        JetxInputError: the source cannot be used (missing, empty, binary, not UTF-8, no
            header, no such table or column, no data rows, no valid row, duplicate ids, it
            kept changing while it was read), or `out_dir` would overwrite it, or another
            process writes `out_dir`.
        QuarantineError: `strict` and at least one row was quarantined.
    """
    _refuse_overwrite(Path(source), Path(out_dir))
    snapshot = read_snapshot(source, strict=strict, table=table, column=column)
    return publish(snapshot, out_dir, wait=wait)


def read_snapshot(
    source: Path, *, strict: bool = False, table: str = "jetx_results", column: str = "value"
) -> Snapshot:
    """Read and validate `source` once, consistently (see the module docstring).

    Raises:
        JetxInputError, QuarantineError: as for `ingest`.
    """
    source = Path(source)
    source_type = detect_source(source)
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            snapshot = _read(source, source_type, table, column)
            break
        except SourceChanged as change:
            logger.warning("%s changed while it was read (%s); reading it again", source, change)
            if attempt == READ_ATTEMPTS:
                raise JetxInputError(
                    f"{source}: changed while it was read, {READ_ATTEMPTS} times (last: "
                    f"{change}); ingest it when its writer is idle, or ingest a copy"
                ) from None
            time.sleep(RETRY_SECONDS * attempt)  # a writer in mid-line finishes it meanwhile
    quarantine = snapshot.quarantine
    rows_read = snapshot.series.num_rows + quarantine.num_rows
    if rows_read == 0:
        raise JetxInputError(f"{source}: no data rows; expected at least one round")
    if quarantine.num_rows and (strict or not snapshot.series.num_rows):
        message = _quarantine_message(source, quarantine, reason_counts(quarantine), strict)
        raise QuarantineError(message) if strict else JetxInputError(message)
    return snapshot


def _read(source: Path, source_type: str, table: str, column: str) -> Snapshot:
    if source_type == "sqlite":
        reader = SqliteReader(source, table, column)
        ids, values, quarantine, rows = collect(reader.batches(), has_id=True)
        read = {"rows": reader.rows, "table": reader.table, "column": reader.column}
        has_id = True
    else:
        reader = CsvReader(source)
        id_column, value_column = reader.roles(column)
        has_id = id_column is not None
        ids, values, quarantine, rows = collect(reader.batches(value_column, id_column), has_id)
        invalid = reader.invalid_rows()
        quarantine = pa.concat_tables([quarantine, invalid_rows(invalid)])
        quarantine = quarantine.sort_by("source_line")
        rows += len(invalid)
        read = {"bytes": reader.size, "compression": reader.compression, "column": column}
    if rows != ids.size + quarantine.num_rows:
        raise RuntimeError(f"row counts do not add up for {source}: read {rows}")
    if has_id:
        ids, values = _order_by_id(source, ids, values)
    series = pa.table({"id": pa.array(ids), "value": pa.array(values)})
    ordered_by = "id" if has_id else "line"
    return Snapshot(source, source_type, reader.sha256, read, series, quarantine, ordered_by)


def publish(snapshot: Snapshot, out_dir: Path, *, wait: float | None = 0.0) -> dict:
    """Write a snapshot's series, quarantine and manifest (last) to `out_dir`, under its lock.

    A directory that already holds this snapshot, intact, of the same source, is left as it is.

    Raises:
        JetxInputError: `out_dir` would overwrite the source, or it is in use after `wait`.
    """
    out_dir = Path(out_dir)
    _refuse_overwrite(snapshot.source, out_dir)
    layout = SeriesDir(out_dir)
    with layout.lock(wait=wait):
        existing = _intact_manifest(layout)
        if existing and (existing.get("sha256"), existing.get("source")) == (
            snapshot.sha256,
            str(snapshot.source.resolve()),
        ):
            return existing
        write_parquet(layout.series, snapshot.series)
        write_parquet(layout.quarantine, snapshot.quarantine)
        manifest = _manifest(snapshot, layout)
        write_json(layout.manifest_path, manifest)
    logger.info(
        "ingested %s: %d read, %d kept, %d quarantined",
        snapshot.source,
        manifest["rows_read"],
        manifest["rows_kept"],
        manifest["rows_quarantined"],
    )
    return manifest


def _manifest(snapshot: Snapshot, layout: SeriesDir) -> dict[str, Any]:
    series, quarantine = snapshot.series, snapshot.quarantine
    return {
        "source": str(snapshot.source.resolve()),
        "source_type": snapshot.source_type,
        "sha256": snapshot.sha256,
        "read": snapshot.read,
        "rows_read": series.num_rows + quarantine.num_rows,
        "rows_kept": series.num_rows,
        "rows_quarantined": quarantine.num_rows,
        "quarantine_reasons": reason_counts(quarantine),
        "ordered_by": snapshot.ordered_by,
        "outputs": {p.name: sha256_file(p) for p in (layout.series, layout.quarantine)},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _intact_manifest(layout: SeriesDir) -> dict[str, Any] | None:
    """The manifest of a complete directory whose outputs match it, else None."""
    if not layout.is_complete():
        return None
    try:
        manifest = layout.manifest()
    except JetxInputError:
        return None
    outputs = manifest.get("outputs") or {}
    for path in (layout.series, layout.quarantine):
        if not path.is_file() or outputs.get(path.name) != sha256_file(path):
            return None
    return manifest


def _refuse_overwrite(source: Path, out_dir: Path) -> None:
    """Refuse an output directory where writing would replace the source itself."""
    if out_dir.exists() and not out_dir.is_dir():
        raise JetxInputError(f"`--out` must be a directory. Received: {out_dir} (a file)")
    for name in SeriesDir.FILES:
        target = out_dir / name
        if target.exists() and source.exists() and os.path.samefile(target, source):
            raise JetxInputError(
                f"{source}: `--out {out_dir}` would overwrite the source ({name} is an output "
                "of ingest); choose another output directory"
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


def _quarantine_message(
    source: Path, quarantine: pa.Table, reasons: dict[str, int], strict: bool
) -> str:
    first = quarantine.slice(0, 1).to_pylist()[0]
    line = first["source_line"]
    where = f"line {line}" if line is not None else f"id {first['id']}"
    summary = ", ".join(f"{reason}: {count}" for reason, count in reasons.items())
    raw = first["raw"]
    if strict:
        return (
            f"{source}: {quarantine.num_rows} row(s) quarantined under --strict ({summary}; "
            f"first at {where}: {raw!r}); nothing written"
        )
    return (
        f"{source}: every row was quarantined ({quarantine.num_rows} rows: {summary}; first at "
        f"{where}: {raw!r}); no valid round to keep, nothing written"
    )
