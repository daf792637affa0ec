"""An ingested series read back, checked against the manifest that describes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jetx.errors import JetxInputError
from jetx.io import is_locked, lock_holder, sha256_file
from jetx.layout import SeriesDir
from jetx.readers import numeric_column, read_parquet


def read_series(series_dir: Path) -> np.ndarray:
    """The ingested multipliers, float64 (n,), in series order, from `series_dir`/series.parquet.

    When the directory has a manifest, the series must match the sha256 it records.

    Raises:
        JetxInputError: no series.parquet, no `value` column, or a series that does not match
            its manifest (being rewritten by another process, or damaged).
    """
    layout = SeriesDir(series_dir)
    path = layout.series
    if not path.is_file():
        raise JetxInputError(
            f"{series_dir}: no {path.name}; run `jetx ingest SOURCE --out {series_dir}` first"
        )
    if layout.is_complete():
        expected = (layout.manifest().get("outputs") or {}).get(path.name)
        if expected and sha256_file(path) != expected:
            raise JetxInputError(_mismatch(layout))
    column = numeric_column(read_parquet(path), "value", path)
    return column.to_numpy().astype(np.float64, copy=False)


def _mismatch(layout: SeriesDir) -> str:
    if is_locked(layout.lock_file):
        return (
            f"SERIES_DIR {layout.path} is being written by pid {lock_holder(layout.lock_file)}; "
            "read it when that ingest has finished"
        )
    return (
        f"{layout.series} does not match the sha256 in {layout.manifest_path.name} (an "
        f"interrupted or damaged write); run `jetx ingest SOURCE --out {layout.path}` again"
    )
