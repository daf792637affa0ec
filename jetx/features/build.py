"""Build a features dir: every sample's 121 features, targets and split, plus the train scaler.

The dir is self-contained for jetx.training.windows: features.parquet, scaler.json, a copy of the
input series.parquet (the sequences are sliced from it at batch time) and manifest.json. Each file
is written atomically, and the manifest is written last and removed first, so a dir with a
manifest is always a complete build.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jetx.data.series import read_series
from jetx.errors import JetxInputError
from jetx.features import FEATURE_NAMES, FEATURE_VERSION, FIRST_SAMPLE, iter_feature_chunks
from jetx.features.splits import (
    DEFAULT_FRACTIONS,
    SPLITS,
    ScalerFit,
    check_fractions,
    split_counts,
    split_labels,
)
from jetx.features.targets import compute_targets
from jetx.io import atomic_path, sha256_file, write_json
from jetx.layout import FeaturesDir, SeriesDir

logger = logging.getLogger(__name__)

#: Samples per feature chunk and Parquet row group: bounds peak memory on long series.
CHUNK_ROWS = 65_536

SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        *[(name, pa.float32()) for name in FEATURE_NAMES],
        ("regression", pa.float64()),
        ("classification", pa.int8()),
        ("threshold", pa.int8()),
        ("split", pa.string()),
    ]
)


def read_series_values(series_dir: Path) -> np.ndarray:
    """The ingested values of SERIES_DIR/series.parquet (float64), checked usable for samples.

    Raises:
        JetxInputError: no series.parquet, a value that is not a finite number >= 1.00, or
            too few rounds.
    """
    values = read_series(series_dir)
    path = SeriesDir(series_dir).series
    if len(values) <= FIRST_SAMPLE:
        raise JetxInputError(
            f"The series must have more than {FIRST_SAMPLE} rounds (the first sample reads the "
            f"{FIRST_SAMPLE} before it). Received: {len(values)} rounds in {path}"
        )
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 1.0)))
    if len(bad):
        raise JetxInputError(
            f"Every value in {path} must be a finite number >= 1.00 (run `jetx ingest`). "
            f"Received: {float(values[bad[0]])!r} at row {bad[0]} ({len(bad)} bad rows)"
        )
    return values


def _chunk_table(
    values: np.ndarray,
    indices: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
) -> pa.Table:
    if not np.isfinite(features).all():
        bad = [FEATURE_NAMES[j] for j in np.flatnonzero(~np.isfinite(features).all(axis=0))]
        raise ValueError(f"Non-finite feature values in {bad[:5]} near sample {indices[0]}")
    targets = compute_targets(values[indices])
    columns = [pa.array(indices, pa.int64())]
    columns += [pa.array(features[:, j]) for j in range(features.shape[1])]
    columns += [pa.array(targets[name]) for name in ("regression", "classification", "threshold")]
    columns.append(pa.array(labels.tolist(), pa.string()))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _write_features(
    values: np.ndarray, path: Path, fractions: tuple[float, float, float]
) -> ScalerFit:
    """Stream feature chunks into Parquet row groups; fit the scaler on train rows on the way."""
    n_samples = len(values) - FIRST_SAMPLE
    fit = ScalerFit(FEATURE_NAMES)
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, SCHEMA) as writer:
        chunks = iter_feature_chunks(values, start=FIRST_SAMPLE, chunk_size=CHUNK_ROWS)
        for indices, features in chunks:
            labels = split_labels(indices - FIRST_SAMPLE, n_samples, fractions)
            fit.update(features[labels == "train"])
            writer.write_table(_chunk_table(values, indices, features, labels))
            logger.debug("features: wrote samples %d..%d", indices[0], indices[-1])
    return fit


def build_features(
    series_dir: Path,
    out_dir: Path,
    *,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    wait: float | None = 0.0,
) -> dict:
    """Compute features, targets and splits of a series and write a self-contained features dir.

    Args:
        series_dir: dir with series.parquet (columns id int64, value float64), oldest first.
        out_dir: where features.parquet, scaler.json, series.parquet and manifest.json go.
        fractions: train, val, test fractions of the samples, chronological.
        wait: seconds to wait for another writer of `out_dir` (0: fail at once; None: no
            limit); the directory's lock (`jetx.layout.FeaturesDir.lock`) is held while writing.

    Returns:
        The manifest: input sha256, feature names and version, counts per split, fractions,
        first sample, created_at.

    Raises:
        JetxInputError: missing series, too short a series, bad fractions, or another process
            writes `out_dir`.
    """
    series_dir, out_dir = Path(series_dir), Path(out_dir)
    fractions = check_fractions(fractions)
    values = read_series_values(series_dir)
    counts = split_counts(len(values) - FIRST_SAMPLE, fractions)
    layout, series = FeaturesDir(out_dir), SeriesDir(series_dir).series
    with layout.lock(wait=wait):
        manifest = _write(values, layout, series, counts, fractions)
    logger.info("features: %d samples %s -> %s", sum(counts.values()), counts, out_dir)
    return manifest


def _write(values, layout: FeaturesDir, series: Path, counts, fractions) -> dict:
    """Write the directory's files, the manifest last (removed first)."""
    layout.manifest_path.unlink(missing_ok=True)
    scaler = _write_features(values, layout.features, fractions).result()
    scaler.save(layout.scaler)
    with atomic_path(layout.series) as tmp:
        shutil.copyfile(series, tmp)
    manifest = {
        "series_sha256": sha256_file(series),
        "n_rounds": len(values),
        "first_sample": FIRST_SAMPLE,
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "fractions": list(fractions),
        "counts": {name: counts[name] for name in SPLITS},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(layout.manifest_path, manifest)
    return manifest
