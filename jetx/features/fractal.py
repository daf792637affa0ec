"""Fractal exponents of the last 200 log multipliers: DFA-1 and Hurst by rescaled range.

Both fit a line to log10(fluctuation) against log10(scale) over a fixed set of scales that divide
200, so every segment is whole and the estimators are deterministic closed forms: per-segment
linear detrending and the final fit are ordinary least squares written out over 3-D blocks
[segments, scale, n] (time-major, see `Chunk.columns`), which fits a whole block at once.
"""

from __future__ import annotations

import numpy as np

from jetx.features.chunk import Chunk, is_flat
from jetx.features.registry import DFA_SCALES, FLAT_EPS, HURST_SCALES

FRACTAL_WIDTH = 200
NEUTRAL_EXPONENT = 0.5  # the value of an uncorrelated series: the fill of a degenerate window


def _running_sum(blocks: np.ndarray) -> np.ndarray:
    """Cumulative sum along axis 1 of [k, s, n], in place, one contiguous row at a time.

    Same order of additions as np.cumsum, which is several times slower along a non-last axis.
    """
    for step in range(1, blocks.shape[1]):
        blocks[:, step] += blocks[:, step - 1]
    return blocks


def _loglog_fit(scales: tuple[int, ...], fluct: np.ndarray) -> tuple[np.ndarray, ...]:
    """Slope, intercept and r^2 of log10(fluct) [n, k] against log10(scales), per row."""
    x = np.log10(np.asarray(scales, dtype=np.float64))
    y = np.log10(fluct)
    xc = x - x.mean()
    yc = y - y.mean(axis=1, keepdims=True)
    sxy, sxx, syy = yc @ xc, (xc**2).sum(), (yc**2).sum(axis=1)
    slope = sxy / sxx
    intercept = y.mean(axis=1) - slope * x.mean()
    r2 = np.where(syy == 0, 0.0, sxy**2 / (sxx * np.where(syy == 0, 1.0, syy)))
    return slope, intercept, r2


def dfa_features(chunk: Chunk) -> np.ndarray:
    """[n, 2] DFA-1 exponent alpha and the r^2 of its fit.

    Profile y = cumsum(x - mean x) over the window; for each scale s the profile is cut into
    200 / s segments, a least-squares line is removed from each, and F(s) is the root mean square
    of all residuals. Any F(s) <= FLAT_EPS (a flat window) gives alpha 0.5, r^2 0.
    """
    rounds = chunk.columns(FRACTAL_WIDTH, log=True)
    profile = _running_sum((rounds - rounds.mean(axis=0))[None])[0]
    fluct = []
    for scale in DFA_SCALES:
        seg = profile.reshape(FRACTAL_WIDTH // scale, scale, -1)
        seg = seg - seg.mean(axis=1, keepdims=True)
        time = (np.arange(scale) - (scale - 1) / 2.0)[:, None]
        slope = (seg * time).sum(axis=1, keepdims=True) / (time * time).sum()
        seg -= time * slope
        fluct.append(np.sqrt((seg * seg).mean(axis=(0, 1))))
    fluct = np.stack(fluct, axis=1)
    degenerate = (fluct <= FLAT_EPS).any(axis=1)
    alpha, _, r2 = _loglog_fit(DFA_SCALES, np.where(degenerate[:, None], 1.0, fluct))
    return np.stack(
        [np.where(degenerate, NEUTRAL_EXPONENT, alpha), np.where(degenerate, 0.0, r2)], axis=1
    )


def hurst_features(chunk: Chunk) -> np.ndarray:
    """[n, 3] Hurst exponent H, log10 c and r^2 of the fit R/S(s) = c s^H.

    For each scale s, R/S(s) is the mean over the 200 / s segments of (max Z - min Z) / std,
    where Z is the cumulative sum of the segment minus its mean and std has ddof 0. A flat
    segment (no std) makes R/S undefined: the row gets H 0.5, intercept 0, r^2 0.
    """
    rounds = chunk.columns(FRACTAL_WIDTH, log=True)
    ratios, degenerate = [], np.zeros(rounds.shape[1], dtype=bool)
    for scale in HURST_SCALES:
        seg = rounds.reshape(FRACTAL_WIDTH // scale, scale, -1)
        mean = seg.mean(axis=1)
        walk = seg - mean[:, None]
        std = np.sqrt((walk * walk).mean(axis=1))
        _running_sum(walk)
        spread = walk.max(axis=1) - walk.min(axis=1)
        flat = is_flat(std, mean)
        degenerate |= flat.any(axis=0)
        ratios.append((spread / np.where(flat, 1.0, std)).mean(axis=0))
    ratios = np.where(degenerate[:, None], 1.0, np.stack(ratios, axis=1))
    slope, intercept, r2 = _loglog_fit(HURST_SCALES, ratios)
    return np.stack(
        [
            np.where(degenerate, NEUTRAL_EXPONENT, slope),
            np.where(degenerate, 0.0, intercept),
            np.where(degenerate, 0.0, r2),
        ],
        axis=1,
    )
