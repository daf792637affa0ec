"""Window statistics of raw multipliers: rolling, volatility, distribution, anomaly, cooling.

Each statistic is a reduction along the last axis of a strided window view. Means and variances
are computed per window (not from cumulative sums): a running sum of squares over a heavy-tailed
series loses every digit of a small window's variance to one outlier thousands of rounds ago.
"""

from __future__ import annotations

import numpy as np

from jetx.features.chunk import Chunk, is_flat
from jetx.features.registry import ROLLING_WINDOWS


def rolling_features(chunk: Chunk) -> np.ndarray:
    """[n, 25] mean, std, min, max, median of the last 25, 50, 100, 200, 500 values."""
    columns = []
    for width in ROLLING_WINDOWS:
        rounds = chunk.columns(width)  # time-major: fast sums; median partitions rows instead
        columns += [
            rounds.mean(axis=0),
            rounds.std(axis=0),
            rounds.min(axis=0),
            rounds.max(axis=0),
            np.median(chunk.window(width), axis=1),
        ]
    return np.stack(columns, axis=1)


def volatility_features(chunk: Chunk) -> np.ndarray:
    """[n, 3] std, mean absolute change and coefficient of variation of the last 10 values."""
    win = chunk.window(10)
    std = win.std(axis=1)
    mean_abs_change = np.abs(np.diff(win, axis=1)).mean(axis=1)
    return np.stack([std, mean_abs_change, std / win.mean(axis=1)], axis=1)


def distribution_features(chunk: Chunk) -> np.ndarray:
    """[n, 7] skew, excess kurtosis, p25/p50/p75/p90 and IQR of the last 50 values."""
    win = chunk.window(50)
    mean = win.mean(axis=1)
    centred = win - mean[:, None]
    squared = centred * centred  # products, not `**`: numpy's pow for 3 and 4 is 25x slower
    m2 = squared.mean(axis=1)
    flat = is_flat(np.sqrt(m2), mean)
    safe_m2 = np.where(flat, 1.0, m2)
    skew = np.where(flat, 0.0, (squared * centred).mean(axis=1) / safe_m2**1.5)
    kurt = np.where(flat, 0.0, (squared * squared).mean(axis=1) / safe_m2**2 - 3.0)
    p25, p50, p75, p90 = np.percentile(win, [25, 50, 75, 90], axis=1)
    return np.stack([skew, kurt, p25, p50, p75, p90, p75 - p25], axis=1)


def anomaly_features(chunk: Chunk) -> np.ndarray:
    """[n, 4] z-score, outlier flag, MAD score and percentile rank of the last value (last 50)."""
    win = chunk.window(50)
    last = chunk.last()
    mean = win.mean(axis=1)
    std = win.std(axis=1)
    flat = is_flat(std, mean)
    z = np.where(flat, 0.0, (last - mean) / np.where(flat, 1.0, std))
    median = np.median(win, axis=1)
    mad = np.median(np.abs(win - median[:, None]), axis=1)
    mad_score = np.where(mad == 0, 0.0, (last - median) / (1.4826 * np.where(mad == 0, 1.0, mad)))
    percentile = (win <= last[:, None]).mean(axis=1)
    return np.stack([z, (np.abs(z) > 3.0).astype(np.float64), mad_score, percentile], axis=1)


def cooling_features(chunk: Chunk) -> np.ndarray:
    """[n, 2] how the last 10 rounds compare with the last 50: max ratio and mean ratio."""
    short, long = chunk.window(10), chunk.window(50)
    return np.stack(
        [short.max(axis=1) / long.max(axis=1), short.mean(axis=1) / long.mean(axis=1)], axis=1
    )
