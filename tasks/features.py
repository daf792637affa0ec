"""Task: build the features directory (121 features, targets, splits, train scaler)."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from jetx.features.build import build_features
from jetx.layout import FeaturesDir, SeriesDir, Workspace
from tasks.caching import cached_task, task_code_digest
from tasks.records import DataRecord, FeaturesRecord


@cached_task("build_features")
def build_features_task(data: DataRecord, out: Path) -> FeaturesRecord:
    """Build features of `data`'s series into `out/features/<series hash>-<code version>/`.

    Cached on the series' content hash (inside `data`) and the code that computes features; a
    changed feature kernel builds into a new directory, and a features dir whose files were
    deleted or changed is built again. Another writer of the directory is waited for.
    """
    code = task_code_digest(build_features_task.fn)
    key = f"{data.files[SeriesDir.SERIES][:12]}-{code[:8]}"
    target = Workspace(Path(out).resolve()).features(key).path
    manifest = build_features(data.directory, target, wait=None)
    record = FeaturesRecord.of(target, FeaturesDir.FILES, samples=manifest["counts"])
    samples = ", ".join(f"{split} {count}" for split, count in record.samples.items())
    get_run_logger().info("Features: %s samples -> %s", samples, target)
    return record
