"""A small real features dir for the training tests: a seeded series, jetx.features.build."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jetx.features.build import build_features

#: 1000 warm-up rounds (the longest feature window) + 600 samples: 420 train, 90 val, 90 test.
N_ROUNDS = 1600


def make_features_dir(root: Path, n_rounds: int = N_ROUNDS, seed: int = 0) -> Path:
    """Write series.parquet (P(X >= x) = 0.97 / x) and build the features dir under `root`."""
    rng = np.random.default_rng(seed)
    values = np.maximum(1.0, np.floor(0.97 / rng.random(n_rounds) * 100) / 100)
    series_dir = root / "series"
    series_dir.mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": np.arange(n_rounds, dtype=np.int64), "value": values})
    pq.write_table(table, series_dir / "series.parquet")
    build_features(series_dir, root / "features")
    return root / "features"
