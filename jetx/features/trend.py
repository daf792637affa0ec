"""Momentum, trend strength and autocorrelation of log multipliers.

Logs keep one 1000x round from deciding a trend on its own. Each statistic is a closed form over a
window view (a matrix-vector product for the trend's covariance with time), one loop over
windows or lags, never over samples.
"""

from __future__ import annotations

import numpy as np

from jetx.features.chunk import Chunk, is_flat
from jetx.features.registry import ACF_LAGS, ACF_MAX_LAG, MOMENTUM_WINDOWS


def _trend(win: np.ndarray) -> np.ndarray:
    """[n] Pearson correlation of each row with time; 0 for a flat row."""
    width = win.shape[1]
    mean = win.mean(axis=1)
    centred = win - mean[:, None]
    time = np.arange(width) - (width - 1) / 2.0
    ss = (centred**2).sum(axis=1)
    flat = is_flat(np.sqrt(ss / width), mean)
    denom = np.sqrt(np.where(flat, 1.0, ss) * (time**2).sum())
    return np.where(flat, 0.0, (centred @ time) / denom)


def momentum_features(chunk: Chunk) -> np.ndarray:
    """[n, 9] half-window momentum and trend over 25/50/100/200 rounds, and acceleration."""
    momentum, trend = [], []
    for width in MOMENTUM_WINDOWS:
        win = chunk.window(width, log=True)
        half = width // 2
        momentum.append(win[:, half:].mean(axis=1) - win[:, :half].mean(axis=1))
        trend.append(_trend(win))
    w30 = chunk.window(30, log=True)
    accel = w30[:, 20:].mean(axis=1) - 2.0 * w30[:, 10:20].mean(axis=1) + w30[:, :10].mean(axis=1)
    return np.stack([*momentum, *trend, accel], axis=1)


def acf_features(chunk: Chunk) -> np.ndarray:
    """[n, 8] autocorrelation of the last 50 logs at lags 1, 2, 3, 5, 10, 20, its max and lag.

    r_k = sum_t c_t c_{t+k} / sum_t c_t^2 with c the window minus its mean (the standard biased
    estimator, bounded by 1). A flat window has no autocorrelation: every column is 0.
    """
    win = chunk.window(50, log=True)
    mean = win.mean(axis=1)
    centred = win - mean[:, None]
    ss = (centred**2).sum(axis=1)
    flat = is_flat(np.sqrt(ss / 50), mean)
    safe_ss = np.where(flat, 1.0, ss)
    acf = np.stack(
        [
            (centred[:, :-k] * centred[:, k:]).sum(axis=1) / safe_ss
            for k in range(1, ACF_MAX_LAG + 1)
        ],
        axis=1,
    )
    acf[flat] = 0.0
    best = np.argmax(acf, axis=1)
    max_value = acf[np.arange(len(acf)), best]
    max_lag = np.where(flat, 0.0, best + 1.0)
    return np.column_stack([acf[:, [k - 1 for k in ACF_LAGS]], max_value, max_lag])
