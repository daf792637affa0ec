"""Compute the 121 features for every sample of a series, block by block.

Samples are processed in blocks of `chunk_size` consecutive positions; each category function
reduces strided window views of one block, so memory is bounded by the block, not the series,
and the only Python loops run over blocks, categories, windows, lags or scales.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np

from jetx.errors import JetxInputError
from jetx.features import events, fractal, rolling, spectral, trend
from jetx.features.chunk import Chunk, hit_indices
from jetx.features.registry import CATEGORY_COUNTS, FEATURE_NAMES, FIRST_SAMPLE

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 8192

# Category -> function returning its columns [n, count] in registry order.
_CATEGORIES: dict[str, Callable[[Chunk], np.ndarray]] = {
    "rolling": rolling.rolling_features,
    "threshold": events.threshold_features,
    "since": events.since_features,
    "streak": events.streak_features,
    "volatility": rolling.volatility_features,
    "pattern": events.pattern_features,
    "distribution": rolling.distribution_features,
    "momentum": trend.momentum_features,
    "recovery": events.recovery_features,
    "anomaly": rolling.anomaly_features,
    "cooling": rolling.cooling_features,
    "bins": events.bin_features,
    "wavelet": spectral.wavelet_features,
    "dfa": fractal.dfa_features,
    "hurst": fractal.hurst_features,
    "fft": spectral.fft_features,
    "acf": trend.acf_features,
    "last": events.last_features,
}


def _check_values(values: np.ndarray, start: int, chunk_size: int) -> np.ndarray:
    """Return `values` as float64 [N], or raise JetxInputError naming what is wrong."""
    series = np.asarray(values, dtype=np.float64)
    if series.ndim != 1:
        raise JetxInputError(f"`values` must be 1-D. Received: shape={series.shape}")
    bad = np.flatnonzero(~np.isfinite(series) | (series < 1.0))
    if bad.size:
        raise JetxInputError(
            f"`values` must be finite multipliers >= 1.0. Received: {bad.size} bad values, "
            f"first at position {bad[0]} ({float(series[bad[0]])!r})"
        )
    if start < FIRST_SAMPLE:
        raise JetxInputError(f"`start` must be >= {FIRST_SAMPLE}. Received: start={start}")
    if chunk_size < 1:
        raise JetxInputError(f"`chunk_size` must be >= 1. Received: chunk_size={chunk_size}")
    return series


def _block_features(chunk: Chunk) -> np.ndarray:
    """[n, 121] float32 features of one block, categories concatenated in registry order."""
    out = np.empty((chunk.size, len(FEATURE_NAMES)), dtype=np.float32)
    col = 0
    for category, function in _CATEGORIES.items():
        block = function(chunk)
        count = CATEGORY_COUNTS[category]
        if block.shape != (chunk.size, count):
            raise RuntimeError(f"{category} gave {block.shape}, expected ({chunk.size}, {count})")
        out[:, col : col + count] = block
        col += count
    return out


def iter_feature_chunks(
    values: np.ndarray, start: int = FIRST_SAMPLE, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the features of samples start..len(values)-1 in blocks, for streaming writers.

    Args:
        values: float64 [N] raw multipliers (finite, >= 1.0), oldest first.
        start: first sample position (>= FIRST_SAMPLE, the longest window).
        chunk_size: samples per block; memory grows with it, results do not change.

    Yields:
        (sample_indices int64 [n], features float32 [n, 121]); row j uses values[:i] only,
        i = sample_indices[j].

    Raises:
        JetxInputError: for a value that is not a finite multiplier >= 1.0, or a bad start or
            chunk_size.
    """
    series = _check_values(values, start, chunk_size)
    hits = hit_indices(series)
    for block_start in range(start, len(series), chunk_size):
        chunk = Chunk(series, block_start, min(block_start + chunk_size, len(series)), hits)
        yield chunk.samples, _block_features(chunk)
        logger.debug("features for samples %d..%d", chunk.start, chunk.stop - 1)


def next_round_features(values: np.ndarray) -> np.ndarray:
    """The features of the round not played yet, position len(values): what a predictor needs.

    A sample's features read values[:i] only, so the round at position len(values) is computed
    by the same code as every training sample, on the history with a placeholder appended in
    the target's slot, which no feature reads (the truncation tests prove it).

    Args:
        values: float64 [N] raw multipliers (finite, >= 1.0), oldest first, N >= FIRST_SAMPLE.

    Returns:
        float32 [121].

    Raises:
        JetxInputError: as `iter_feature_chunks`, or for fewer than FIRST_SAMPLE rounds.
    """
    series = np.asarray(values, dtype=np.float64)
    if len(series) < FIRST_SAMPLE:
        raise JetxInputError(
            f"The next round's features need the last {FIRST_SAMPLE} rounds. "
            f"Received: {len(series)} rounds"
        )
    return compute_features(with_next_slot(series), len(series), len(series) + 1)[0]


def with_next_slot(values: np.ndarray) -> np.ndarray:
    """`values` with a placeholder appended where the next round's target would be."""
    return np.append(np.asarray(values, dtype=np.float64), 1.0)


def compute_features(
    values: np.ndarray, start: int = FIRST_SAMPLE, stop: int | None = None
) -> np.ndarray:
    """Features of samples start..stop-1 as one array.

    Args:
        values: float64 [N] raw multipliers (finite, >= 1.0), oldest first.
        start: first sample position (>= FIRST_SAMPLE).
        stop: one past the last sample; defaults to N (a sample needs its target values[i]).

    Returns:
        float32 [max(stop - start, 0), 121]; row j is sample i = start + j from values[:i] only.

    Raises:
        JetxInputError: as `iter_feature_chunks`, or for a stop outside [start, N].
    """
    series = np.asarray(values, dtype=np.float64)
    # A series shorter than `start` simply has no samples: an empty result, not an error.
    stop = max(len(series), start) if stop is None else stop
    if stop > max(len(series), start) or stop < start:
        raise JetxInputError(
            f"`stop` must lie in [start, len(values)] = [{start}, {len(series)}]. "
            f"Received: stop={stop}"
        )
    # Truncating is exact: no feature of a sample < stop reads values[stop - 1:] anyway.
    out = np.empty((max(stop - start, 0), len(FEATURE_NAMES)), dtype=np.float32)
    for samples, block in iter_feature_chunks(series[: min(stop, len(series))], start):
        out[samples - start] = block
    return out
