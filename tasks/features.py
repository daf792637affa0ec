"""Task: build the features directory (121 features, targets, splits, train scaler)."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from jetx.features.build import build_features as build
from tasks.caching import content_policy
from tasks.records import DataRecord, FeaturesRecord

FEATURE_FILES = ("features.parquet", "scaler.json", "series.parquet", "manifest.json")


@task(name="build_features", cache_policy=content_policy(), persist_result=True)
def build_features(data: DataRecord, out_dir: Path) -> FeaturesRecord:
    """Build features of `data`'s series into `out_dir/<series hash prefix>/`.

    Cached on the series' content hash (inside `data`) and this code; a features dir whose
    files were deleted or changed is built again.
    """
    target = Path(out_dir) / data.files["series.parquet"][:12]
    manifest = build(data.directory, target)
    record = FeaturesRecord.of(target, FEATURE_FILES, samples=manifest["counts"])
    get_run_logger().info("Features %s -> %s", record.samples, target)
    return record
