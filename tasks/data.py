"""Task: load a raw history (CSV or SQLite) into a versioned series directory."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from jetx.data.ingest import ingest
from jetx.io import sha256_file
from jetx.layout import SeriesDir
from tasks.caching import content_policy
from tasks.records import DataRecord


@task(name="load_raw", cache_policy=content_policy("source"), persist_result=True)
def load_raw(source: Path, out_dir: Path, strict: bool = False) -> DataRecord:
    """Ingest `source` into `out_dir/<sha256 prefix>/`, so that each history has its own dir.

    Cached on the source's bytes, the arguments and this code; a rerun whose series was deleted
    ingests again.
    """
    source_sha = sha256_file(source)
    target = Path(out_dir) / source_sha[:12]
    manifest = ingest(Path(source), target, strict=strict)
    record = DataRecord.of(
        target,
        SeriesDir.FILES,
        source_sha256=source_sha,
        rows_read=manifest["rows_read"],
        rows_kept=manifest["rows_kept"],
        rows_quarantined=manifest["rows_quarantined"],
    )
    get_run_logger().info(
        "Loaded %s: %d rows read, %d kept, %d quarantined -> %s",
        source,
        record.rows_read,
        record.rows_kept,
        record.rows_quarantined,
        target,
    )
    return record
