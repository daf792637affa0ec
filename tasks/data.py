"""Task: load a raw history (CSV or SQLite) into the series directory named by its content."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from jetx.data.ingest import publish, read_snapshot
from jetx.layout import SeriesDir, Workspace
from tasks.records import DataRecord


@task(name="load_raw", cache_policy=NO_CACHE)
def load_raw(source: Path, out: Path, strict: bool = False) -> DataRecord:
    """Read `source` once and publish it to `out/data/<key>/`, the key naming what was read.

    Never cached: a key computed before the task runs could not see rows that a live source
    (a WAL database, a CSV being appended to) gained since, so the task always reads, which is
    cheap, and its directory is named by the digest of what it read in that same pass
    (`jetx.data.ingest.Snapshot.key`). Everything downstream keys on the record, which names
    that digest and the hashes of the files written, so an unchanged source is a cache hit
    from here on. A directory already holding this snapshot, intact, is not written again.
    """
    snapshot = read_snapshot(Path(source), strict=strict)
    target = Workspace(Path(out).resolve()).data(snapshot.key)
    manifest = publish(snapshot, target.path, wait=None)
    record = DataRecord.of(
        target.path,
        SeriesDir.FILES,
        content_sha256=snapshot.sha256,
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
        target.path,
    )
    return record
