"""A model's outputs on a split's rounds: predicting them, and predictions.npz.

`Predictions` is what the scoring reads; `predict` runs a model over a split in round order
(TensorFlow is loaded only when it is called); predictions.npz keeps every stage's threshold
forecasts beside the evaluation, for the report's plots and for a walk-forward pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from jetx.config import EVAL_BATCH, NUM_CLASSES, ModelConfig
from jetx.errors import JetxInputError
from jetx.evaluation.calibration.platt import PlattMap
from jetx.evaluation.scores import heads
from jetx.features.splits import Scaler
from jetx.io import atomic_path
from jetx.layout import FeaturesDir
from jetx.readers import read_parquet


@dataclass(frozen=True)
class Predictions:
    """A model's outputs on one split's rounds, in round order.

    Args:
        y_value: float64 [N] true multipliers.
        p_threshold: float64 [N] threshold-head probability of value >= 1.5.
        y_pred_value: float64 [N] regression-head prediction of the multiplier.
        class_proba: float64 [N, 3] classification-head probabilities.
    """

    y_value: np.ndarray
    p_threshold: np.ndarray
    y_pred_value: np.ndarray
    class_proba: np.ndarray

    def recalibrated(self, platt: PlattMap) -> Predictions:
        """These predictions with the threshold head's outputs passed through `platt`."""
        return replace(self, p_threshold=platt.apply(self.p_threshold))

    def score(self, cut: float) -> dict[str, Any]:
        """`jetx.evaluation.scores.heads.evaluate_predictions` of these predictions at `cut`."""
        return heads.evaluate_predictions(
            self.y_value, self.p_threshold, self.y_pred_value, self.class_proba, cut
        )


def predict(
    model: Any,
    config: ModelConfig,
    features_dir: Path,
    split: str,
    max_samples: int | None,
    batch_size: int = EVAL_BATCH,
    *,
    scaler: Scaler | None = None,
) -> Predictions:
    """Run `model` over a split in round order and collect its three heads' outputs.

    Args:
        model: a built Keras model (`jetx.model.network.build_model(config)`), weights loaded.
        config: the model's config (decides which sequence windows are built).
        features_dir: a `jetx features` output dir.
        split: "train", "val" or "test".
        max_samples: keep the split's newest this many samples (the preset's eval cap).
        batch_size: samples per prediction batch (memory only; results do not depend on it).
        scaler: the scaler the model was trained with, when it is not the features dir's.

    Returns:
        The split's `Predictions`; y_value is read in float64 from the stored series, not from
        the float32 regression target.
    """

    from jetx.training.windows import load_split, make_dataset

    outputs: dict[str, list[np.ndarray]] = {"regression": [], "classification": [], "threshold": []}
    dataset = make_dataset(
        features_dir, split, config, batch_size, max_samples=max_samples, scaler=scaler
    )
    for inputs, _ in dataset:
        predicted = model(inputs, training=False)
        for name, parts in outputs.items():
            parts.append(np.asarray(predicted[name], dtype=np.float64))
    index = load_split(features_dir, split, max_samples).index
    series = read_parquet(FeaturesDir(features_dir).series, ["value"])["value"]
    return Predictions(
        y_value=series.to_numpy().astype(np.float64)[index],
        p_threshold=np.concatenate(outputs["threshold"]).reshape(-1),
        y_pred_value=np.concatenate(outputs["regression"]).reshape(-1),
        class_proba=np.concatenate(outputs["classification"]).reshape(-1, NUM_CLASSES),
    )


def write_predictions(
    path: Path,
    *,
    y_value: np.ndarray,
    stages: Sequence[int],
    p_threshold: np.ndarray,
    p_base_rate: np.ndarray,
    val_cut: np.ndarray | None = None,
) -> None:
    """predictions.npz: what the report's plots and a walk-forward pool read.

    Args:
        path: the file (`RunDir.predictions`).
        y_value: float64 [N] true multipliers of the evaluated rounds.
        stages: the S stage numbers, in order.
        p_threshold: float64 [S, N] each stage's recalibrated P(value >= 1.5).
        p_base_rate: float64 [N] the base-rate forecast of each round.
        val_cut: float64 [S, N] the validation-chosen cut that applied to each round (a pool of
            origins has one per origin); None: each stage's one cut, from the evaluation.
    """
    arrays = {
        "y_value": np.asarray(y_value, dtype=np.float64),
        "stages": np.asarray(stages, dtype=np.int64),
        "p_threshold": np.asarray(p_threshold, dtype=np.float64),
        "p_base_rate": np.asarray(p_base_rate, dtype=np.float64),
    }
    if val_cut is not None:
        arrays["val_cut"] = np.asarray(val_cut, dtype=np.float64)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """predictions.npz as `write_predictions` wrote it (JetxInputError when it is missing)."""
    if not Path(path).is_file():
        raise JetxInputError(f"{path}: no predictions; evaluate the run first (`jetx evaluate`).")
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}
