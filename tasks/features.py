"""Task: build the features directory (121 features, targets, splits, train scaler)."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from jetx.features.build import build_features as build
from jetx.layout import FeaturesDir, SeriesDir
from tasks.caching import content_policy, task_code_digest
from tasks.records import DataRecord, FeaturesRecord


@task(name="build_features", cache_policy=content_policy(), persist_result=True)
def build_features(data: DataRecord, out_dir: Path) -> FeaturesRecord:
    """Build features of `data`'s series into `out_dir/<series hash>-<code version>/`.

    Cached on the series' content hash (inside `data`) and the code that computes features; a
    changed feature kernel builds into a new directory, and a features dir whose files were
    deleted or changed is built again.
    """
    code = task_code_digest(build_features.fn)
    target = Path(out_dir) / f"{data.files[SeriesDir.SERIES][:12]}-{code[:8]}"
    manifest = build(data.directory, target)
    record = FeaturesRecord.of(target, FeaturesDir.FILES, samples=manifest["counts"])
    samples = ", ".join(f"{split} {count}" for split, count in record.samples.items())
    get_run_logger().info("Features: %s samples -> %s", samples, target)
    return record
