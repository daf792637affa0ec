"""Chronological train/val/test splits and the feature scaler fit on the train split only.

The split is by time: the oldest samples train, the next validate, the newest test, and no sample
ever crosses a boundary (no shuffling here; shuffling happens inside the train split only, in
jetx.training.windows). The scaler is fit on train rows alone and then passed explicitly to every
split, so that no statistic of the future leaks into training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jetx.errors import JetxInputError
from jetx.io import write_json
from jetx.readers import read_json

#: Split names, oldest first.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: docs/design.md's default split: oldest 70% train, next 15% validation, newest 15% test.
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)
#: A train std at or below this (relative to max(1, |mean|)) is a constant feature: std -> 1.
_CONSTANT_STD = 1e-12
#: Rows standardised per block by Scaler.transform.
_TRANSFORM_ROWS = 65_536


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate split fractions: three positive finite numbers that sum to 1.

    Raises:
        JetxInputError: naming the fractions received.
    """
    values = tuple(float(f) for f in fractions)
    if (
        len(values) != len(SPLITS)
        or not all(math.isfinite(f) and f > 0 for f in values)
        or abs(sum(values) - 1.0) > 1e-6
    ):
        raise JetxInputError(
            "`fractions` must be three positive numbers (train, val, test) that sum to 1. "
            f"Received: fractions={tuple(fractions)}"
        )
    return values  # type: ignore[return-value]


def split_counts(n_samples: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, int]:
    """Samples per split: train and val are floor(n x fraction), test takes the rest.

    Args:
        n_samples: number of samples in the series, oldest first.
        fractions: train, val, test fractions summing to 1.

    Returns:
        {"train": n_train, "val": n_val, "test": n_test}, summing to `n_samples`.

    Raises:
        JetxInputError: bad fractions, or a split that would be empty.
    """
    train_f, val_f, _ = check_fractions(fractions)
    n_train = int(n_samples * train_f)
    n_val = int(n_samples * val_f)
    counts = {"train": n_train, "val": n_val, "test": n_samples - n_train - n_val}
    if min(counts.values()) < 1:
        raise JetxInputError(
            f"Every split needs at least one sample; {n_samples} samples with fractions "
            f"{tuple(fractions)} give {counts}. Use a longer series."
        )
    return counts


def split_bounds(
    n_samples: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, tuple[int, int]]:
    """Row range [start, stop) of each split among the samples, oldest first."""
    bounds, start = {}, 0
    for name, count in split_counts(n_samples, fractions).items():
        bounds[name] = (start, start + count)
        start += count
    return bounds


def split_labels(
    rows: np.ndarray, n_samples: int, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> np.ndarray:
    """Split name of each sample row (0 = oldest sample), so chunks can be labelled one by one.

    Args:
        rows: int [m] sample rows in [0, n_samples).
        n_samples: total samples.
        fractions: train, val, test fractions.

    Returns:
        object [m] of "train" / "val" / "test".
    """
    bounds = split_bounds(n_samples, fractions)
    edges = np.array([bounds["train"][1], bounds["val"][1]])
    return np.asarray(SPLITS, dtype=object)[np.searchsorted(edges, rows, side="right")]


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation (x - mean) / std, fit on the train split only.

    Rule for a constant train feature (std == 0, or below 1e-12 x max(1, |mean|), which is float
    rounding of a constant): its std is stored as 1.0, so the standardised train value is 0 and
    val/test values keep their raw offset from the train mean; a division by zero can never send
    NaN or inf to the model.

    Args:
        names: feature names, in column order.
        mean: float64 [n_features] train means.
        std: float64 [n_features] train population standard deviations (ddof 0), 0 -> 1.
    """

    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Standardise float [n, n_features] rows; returns float32 [n, n_features].

        Computed in float64 (a large mean over a small std would lose digits in float32), in
        row blocks so that a long split never needs a float64 copy of the whole matrix.
        """
        features = np.asarray(features)
        out = np.empty(features.shape, np.float32)
        for start in range(0, len(features), _TRANSFORM_ROWS):
            block = features[start : start + _TRANSFORM_ROWS].astype(np.float64)
            out[start : start + _TRANSFORM_ROWS] = (block - self.mean) / self.std
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        return cls(
            tuple(data["names"]),
            np.asarray(data["mean"], np.float64),
            np.asarray(data["std"], np.float64),
        )

    def save(self, path: Path) -> None:
        """Write scaler.json atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Scaler:
        return cls.from_dict(read_json(Path(path), "rebuild it with `jetx features`"))


class ScalerFit:
    """Streaming mean/std over train row chunks (Chan's parallel update, in float64).

    Lets build_features fit the scaler while it writes row groups, without holding all rows.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.count = 0
        self.mean = np.zeros(len(self.names))
        self.m2 = np.zeros(len(self.names))

    def update(self, rows: np.ndarray) -> None:
        """Add float [m, n_features] train rows."""
        rows = np.asarray(rows, np.float64)
        if rows.shape[0] == 0:
            return
        m, mean = rows.shape[0], rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        total = self.count + m
        delta = mean - self.mean
        self.mean = self.mean + delta * (m / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * m / total)
        self.count = total

    def result(self) -> Scaler:
        """The fitted scaler; raises JetxInputError if no train row was seen."""
        if self.count == 0:
            raise JetxInputError("The scaler needs at least one train row. Received: 0 rows")
        std = np.sqrt(self.m2 / self.count)
        constant = std <= _CONSTANT_STD * np.maximum(1.0, np.abs(self.mean))
        return Scaler(self.names, self.mean.copy(), np.where(constant, 1.0, std))


def fit_scaler(train_features: np.ndarray, names: Sequence[str]) -> Scaler:
    """Fit a Scaler on train rows (float [n, n_features]) in one call."""
    fit = ScalerFit(names)
    fit.update(train_features)
    return fit.result()
