"""Event features: thresholds, rounds since, streaks, patterns, recovery, bins, last value.

Counts and streaks are boolean reductions over short window views; "rounds since" uses a binary
search in the event positions of the whole series (see `Chunk.rounds_since`), which stays exact
and O(log N) per sample however long the gap.
"""

from __future__ import annotations

import numpy as np

from jetx.features.chunk import Chunk
from jetx.features.registry import BIN_SETS, HIGH, LOW, SINCE_THRESHOLDS


def value_class(values: np.ndarray) -> np.ndarray:
    """Class of each multiplier: 0 below 1.5, 1 from 1.5 to below 10, 2 from 10."""
    return (values >= LOW).astype(np.int8) + (values >= HIGH).astype(np.int8)


def _trailing_true(flags: np.ndarray) -> np.ndarray:
    """[n] length of the run of True that ends at the last column of `flags` [n, k]."""
    return np.cumprod(flags[:, ::-1], axis=1).sum(axis=1)


def threshold_features(chunk: Chunk) -> np.ndarray:
    """[n, 5] counts and shares of values above the cash-out lines of the original tool."""
    w10, w50 = chunk.window(10), chunk.window(50)
    return np.stack(
        [
            (w10 >= 1.5).sum(axis=1),
            (w10 >= 2.0).sum(axis=1),
            (w10 >= 3.0).mean(axis=1),
            (w50 >= 1.5).mean(axis=1),
            ((w10 >= 1.45) & (w10 <= 1.55)).sum(axis=1),
        ],
        axis=1,
    ).astype(np.float64)


def since_features(chunk: Chunk) -> np.ndarray:
    """[n, 5] rounds since the last value >= 10, 20, 50, 100, 200."""
    return np.stack([chunk.rounds_since(f"ge_{t}") for t in SINCE_THRESHOLDS], axis=1)


def streak_features(chunk: Chunk) -> np.ndarray:
    """[n, 3] rising, falling and same-class runs that end at the last value (last 10)."""
    win = chunk.window(10)
    rising = _trailing_true(win[:, 1:] > win[:, :-1])
    falling = _trailing_true(win[:, 1:] < win[:, :-1])
    classes = value_class(win)
    same = _trailing_true(classes[:, :-1] == classes[:, -1:]) + 1
    return np.stack([rising, falling, same], axis=1).astype(np.float64)


def pattern_features(chunk: Chunk) -> np.ndarray:
    """[n, 4] switches across 1.5 and zone counts in the last 10."""
    win = chunk.window(10)
    above = win >= LOW
    return np.stack(
        [
            (above[:, 1:] != above[:, :-1]).sum(axis=1),
            (win < 1.2).sum(axis=1),
            ((win >= 2.0) & (win < 5.0)).sum(axis=1),
            (win >= 5.0).sum(axis=1),
        ],
        axis=1,
    ).astype(np.float64)


def recovery_features(chunk: Chunk) -> np.ndarray:
    """[n, 3] bounce from the recent low, rounds since a lost bet, and what followed lost bets."""
    w10, w50 = chunk.window(10), chunk.window(50)
    after_low = w50[:, :-1] < LOW
    count = after_low.sum(axis=1)
    total = np.where(after_low, w50[:, 1:], 0.0).sum(axis=1)
    mean_after = np.where(count == 0, 0.0, total / np.maximum(count, 1))
    return np.stack(
        [chunk.last() / w10.min(axis=1), chunk.rounds_since("lt_low"), mean_after], axis=1
    )


def bin_features(chunk: Chunk) -> np.ndarray:
    """[n, 15] bin index of the last value in each of the registry's 15 category sets."""
    last = chunk.last()
    return np.stack(
        [np.searchsorted(np.asarray(edges), last, side="right") for edges in BIN_SETS.values()],
        axis=1,
    ).astype(np.float64)


def last_features(chunk: Chunk) -> np.ndarray:
    """[n, 2] the last value and its class."""
    last = chunk.last()
    return np.stack([last, value_class(last).astype(np.float64)], axis=1)
