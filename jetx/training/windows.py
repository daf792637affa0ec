"""Lazy window batches for Keras: features, sequences sliced on the fly, and targets.

A sample i of a split reads the standardised feature row of i and, for each sequence input of the
model, log10(values[i-L:i]) gathered from the one stored series at batch time. Nothing of size
N x L exists, on disk or in memory: the split's N x n_features matrix, its targets and the 1-D
log series are loaded once, and each batch is a pure-TF gather over them (measured in
bench/windows.py to be far faster than training consumes). Models consume these ready batches
and never slice a series.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tensorflow as tf

from jetx.config import NUM_CLASSES, ModelConfig
from jetx.errors import JetxInputError
from jetx.features.splits import SPLITS, Scaler
from jetx.layout import FeaturesDir
from jetx.readers import numeric_column, parquet_damage, read_parquet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitArrays:
    """One split's rows, loaded once: what every batch gathers from.

    Args:
        index: int64 [N] sample positions i in the series, oldest first.
        features: float32 [N, n_features], standardised with the train scaler.
        regression: float32 [N, 1] values[i].
        classification: float32 [N, 3] one-hot class of values[i].
        threshold: float32 [N, 1] values[i] >= 1.5.
    """

    index: np.ndarray
    features: np.ndarray
    regression: np.ndarray
    classification: np.ndarray
    threshold: np.ndarray


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise JetxInputError(f"`split` must be one of {SPLITS}. Received: split={split!r}")


def num_samples(features_dir: Path, split: str, max_samples: int | None = None) -> int:
    """Samples a split yields: its count in the manifest, capped by `max_samples`."""
    _check_split(split)
    count = int(FeaturesDir(features_dir).manifest()["counts"][split])
    if max_samples is not None:
        if max_samples < 1:
            raise JetxInputError(
                f"`max_samples` must be a positive int or None. Received: max_samples={max_samples}"
            )
        count = min(count, max_samples)
    return count


def load_split(
    features_dir: Path,
    split: str,
    max_samples: int | None = None,
    *,
    scaler: Scaler | None = None,
) -> SplitArrays:
    """Read one split's features (standardised) and targets; keep its newest `max_samples`.

    The features are standardised by the dir's own train scaler, or by `scaler`: another
    model's, to score that model on these rounds (the promotion gate re-scores a champion).

    Keeping the newest rows means a cap never reaches across into the previous split. The
    feature matrix is filled batch by batch, so peak memory is the split's float32 matrix plus
    one batch, not the whole file.

    Raises:
        JetxInputError: the split's rows are not one contiguous block (not a jetx build).
    """
    layout = FeaturesDir(features_dir)
    path = layout.features
    keep = num_samples(features_dir, split, max_samples)
    scaler = scaler or Scaler.load(layout.scaler)
    small = read_parquet(path, ["index", "regression", "classification", "threshold"])
    labels = read_parquet(path, ["split"])["split"]
    rows = np.flatnonzero(pc.equal(labels, split).to_numpy(zero_copy_only=False))[-keep:]
    if len(rows) != keep or rows[-1] - rows[0] + 1 != keep:
        raise JetxInputError(
            f"{path}: the {split!r} rows must be one chronological block of {keep} rows. "
            f"Received: {len(rows)} rows from row {rows[0] if len(rows) else None}"
        )
    small = small.slice(rows[0], keep)
    classes = small["classification"].to_numpy().astype(np.int64)
    return SplitArrays(
        index=small["index"].to_numpy().astype(np.int64),
        features=_feature_rows(path, scaler, int(rows[0]), int(rows[0]) + keep),
        regression=small["regression"].to_numpy().astype(np.float32)[:, None],
        classification=np.eye(NUM_CLASSES, dtype=np.float32)[classes],
        threshold=small["threshold"].to_numpy().astype(np.float32)[:, None],
    )


def _feature_rows(path: Path, scaler: Scaler, start: int, stop: int) -> np.ndarray:
    """Standardised float32 [stop - start, n_features] of file rows [start, stop).

    Reads only the row groups that overlap the rows, one at a time, to bound peak memory.
    """
    out = np.empty((stop - start, len(scaler.names)), np.float32)
    with parquet_damage(path):
        parquet, offset = pq.ParquetFile(path), 0
        for group in range(parquet.num_row_groups):
            size = parquet.metadata.row_group(group).num_rows
            lo, hi = max(start, offset) - offset, min(stop, offset + size) - offset
            if lo < hi:
                table = parquet.read_row_group(group, columns=list(scaler.names))
                table = table.slice(lo, hi - lo)
                block = np.stack([table[n].to_numpy() for n in scaler.names], axis=1)
                out[offset + lo - start : offset + hi - start] = scaler.transform(block)
            offset += size
    return out


def load_log_series(features_dir: Path) -> np.ndarray:
    """The stored series as float32 [T] log10 values: the one array every window slices."""
    path = FeaturesDir(features_dir).series
    return log_series(numeric_column(read_parquet(path, ["value"]), "value", path).to_numpy())


def log_series(values: np.ndarray) -> np.ndarray:
    """float32 [T] log10 of the multipliers, computed in float64: what the sequences hold."""
    return np.log10(np.asarray(values, dtype=np.float64)).astype(np.float32)


def next_round_inputs(values: np.ndarray, scaler: Scaler, model: ModelConfig) -> dict:
    """The model's inputs for the round not played yet, by the code that builds training batches.

    The features come from `next_round_features`, standardised by the training scaler, and the
    sequences from the same gather as every training batch (`_gather_fn`) on the history with
    the next round's slot appended (never read: a window of position i ends at i - 1).

    Args:
        values: float64 [N] multipliers, oldest first, N >= the longest feature window.
        scaler: the scaler the model was trained with.
        model: the model's config (which sequences, of which lengths).

    Returns:
        {"features": float32 [1, n_features], name: float32 [1, L, 1] per sequence input}.
    """
    from jetx.features import next_round_features, with_next_slot

    position = len(values)
    row = scaler.transform(next_round_features(values)[None, :])
    empty = np.zeros((1, 1), np.float32)
    arrays = SplitArrays(
        index=np.array([position], np.int64),
        features=row,
        regression=empty,
        classification=np.zeros((1, NUM_CLASSES), np.float32),
        threshold=empty,
    )
    gather = _gather_fn(arrays, log_series(with_next_slot(values)), model)
    inputs, _ = gather(tf.constant([0], tf.int64))
    return {name: tensor.numpy() for name, tensor in inputs.items()}


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """Shuffled order of n samples for one epoch: a pure function of (seed, epoch).

    Exact resume recreates an interrupted epoch's order from these two numbers alone.

    Returns:
        int64 [n], a permutation of range(n).
    """
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def _sample_order(
    n: int, batch_size: int, shuffle: bool, seed: int, epoch: int, skip_batches: int
) -> np.ndarray:
    if batch_size < 1:
        raise JetxInputError(f"`batch_size` must be a positive int. Received: {batch_size}")
    n_batches = -(-n // batch_size)
    if not 0 <= skip_batches <= n_batches:
        raise JetxInputError(
            f"`skip_batches` must be in [0, {n_batches}] (batches in this epoch). "
            f"Received: skip_batches={skip_batches}"
        )
    order = epoch_order(n, seed, epoch) if shuffle else np.arange(n, dtype=np.int64)
    return order[skip_batches * batch_size :]


def _gather_fn(arrays: SplitArrays, log_series: np.ndarray, model: ModelConfig):
    """A TF function mapping int64 [B] split rows to one (inputs, targets) batch."""
    index = tf.constant(arrays.index)
    features = tf.constant(arrays.features)
    series = tf.constant(log_series)
    targets = {
        "regression": tf.constant(arrays.regression),
        "classification": tf.constant(arrays.classification),
        "threshold": tf.constant(arrays.threshold),
    }
    offsets = {
        name: tf.range(-length, 0, dtype=tf.int64)[None, :]
        for name, length in model.sequence_inputs.items()
    }

    def gather(rows: tf.Tensor):
        starts = tf.gather(index, rows)[:, None]
        inputs = {"features": tf.gather(features, rows)}
        for name, offset in offsets.items():
            inputs[name] = tf.gather(series, starts + offset)[..., None]
        return inputs, {key: tf.gather(value, rows) for key, value in targets.items()}

    return gather


def make_dataset(
    features_dir: Path,
    split: str,
    model: ModelConfig,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    skip_batches: int = 0,
    max_samples: int | None = None,
    drop_remainder: bool = False,
    scaler: Scaler | None = None,
) -> tf.data.Dataset:
    """One epoch of (inputs, targets) batches of a split, built lazily from the series.

    Args:
        features_dir: output of `jetx features` (features.parquet, scaler.json, series.parquet,
            manifest.json).
        split: "train", "val" or "test".
        model: the model config; its `sequence_inputs` decide which sequences exist (no seq1000
            for a no1000 variant) and their lengths; `n_features` must match the features dir.
        batch_size: samples per batch (the micro-batch in training).
        shuffle: shuffle the split in the order `epoch_order(n, seed, epoch)`.
        seed, epoch: the shuffle's identity; the same pair gives the same order.
        skip_batches: start mid-epoch at this batch of the (shuffled) epoch, for exact resume.
        max_samples: keep only the split's newest this many samples.
        drop_remainder: drop a last batch smaller than `batch_size`.
        scaler: standardise the features with this scaler instead of the dir's (`load_split`).

    Returns:
        A tf.data.Dataset of ({"features": float32 [B, n_features], name: float32 [B, L, 1] =
        log10(values[i-L:i]) per sequence input}, {"regression": float32 [B, 1],
        "classification": float32 [B, 3] one-hot, "threshold": float32 [B, 1]}).

    Raises:
        JetxInputError: an incomplete features dir, an unknown split, a model whose feature
            width or longest window does not fit the dir, or a bad batch/skip/cap.
    """
    manifest = FeaturesDir(features_dir).manifest()
    if model.n_features != len(manifest["feature_names"]):
        raise JetxInputError(
            f"`model.n_features` must equal the features dir's {len(manifest['feature_names'])} "
            f"features. Received: n_features={model.n_features}"
        )
    if model.longest_window > int(manifest["first_sample"]):
        raise JetxInputError(
            f"The model's longest window must be <= the first sample {manifest['first_sample']}."
            f" Received: longest_window={model.longest_window}"
        )
    arrays = load_split(features_dir, split, max_samples, scaler=scaler)
    order = _sample_order(len(arrays.index), batch_size, shuffle, seed, epoch, skip_batches)
    gather = _gather_fn(arrays, load_log_series(features_dir), model)
    dataset = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder)
    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    logger.debug(
        "%s: %d samples from batch %d, batch %d", split, len(order), skip_batches, batch_size
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
