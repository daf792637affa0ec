"""Tests of jetx.features: every feature against the per-row reference, no look-ahead, finiteness.

Tolerance: a feature matches the reference when |vectorised - reference| <= RTOL * |reference|
+ ATOL. RTOL = 1e-6 covers float32 storage (6e-8) and summation order; ATOL = 1e-9 covers
values that are zero up to rounding (e.g. the detail energy of a constant window). The DFA and
Hurst fits are closed-form least squares here and polyfit in the reference, so they get the same
tolerance; no feature needs a looser one.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from feature_reference import reference_features

from jetx.errors import JetxInputError
from jetx.features import (
    CATEGORY_COUNTS,
    FEATURE_NAMES,
    FEATURES,
    FIRST_SAMPLE,
    compute_features,
    iter_feature_chunks,
)

RTOL, ATOL = 1e-6, 1e-9

# docs/design.md "The feature vector", in its order.
DESIGN_COUNTS = [25, 5, 5, 3, 3, 4, 7, 9, 3, 4, 2, 15, 14, 2, 3, 7, 8, 2]


def crash_series(seed: int, rounds: int) -> np.ndarray:
    """P(X >= x) = 0.97 / x, floored at 1.00, two decimals: the shape of a real history."""
    uniform = 1.0 - np.random.default_rng(seed).random(rounds)  # (0, 1]
    return np.maximum(1.0, np.floor(0.97 / uniform * 100) / 100)


def _with_outliers(seed: int) -> np.ndarray:
    values = crash_series(seed, 1800)
    values[np.random.default_rng(seed).choice(1800, 12, replace=False)] = 2.5e6
    return values


def _spiky_ones(seed: int) -> np.ndarray:
    values = np.ones(1700)
    values[np.random.default_rng(seed).choice(1700, 40, replace=False)] = 37.5
    return values


SERIES = {
    "crash_a": lambda: crash_series(1, 3000),
    "crash_b": lambda: crash_series(2, 1500),
    "all_ones": lambda: np.ones(1400),
    "constant_2_37": lambda: np.full(1400, 2.37),
    "huge_outliers": lambda: _with_outliers(3),
    "ones_with_spikes": lambda: _spiky_ones(4),
    "alternating": lambda: np.tile([1.0, 100.0], 750),
}


def _mismatches(values: np.ndarray, rows: np.ndarray, samples: np.ndarray) -> list[str]:
    errors = []
    for sample in samples:
        expected = reference_features(values[:sample])
        got = rows[sample - FIRST_SAMPLE].astype(np.float64)
        bad = np.abs(got - expected) > RTOL * np.abs(expected) + ATOL
        errors += [
            f"{FEATURE_NAMES[k]} at i={sample}: got {got[k]!r}, reference {expected[k]!r}"
            for k in np.flatnonzero(bad)
        ]
    return errors


@pytest.mark.parametrize("name", list(SERIES))
def test_every_feature_matches_the_per_row_reference(name):
    values = SERIES[name]()
    rows = compute_features(values)
    samples = np.random.default_rng(0).choice(np.arange(FIRST_SAMPLE, len(values)), 60, False)
    samples = np.concatenate([[FIRST_SAMPLE, len(values) - 1], samples])
    errors = _mismatches(values, rows, samples)
    assert not errors, f"{len(errors)} mismatches, first: " + "; ".join(errors[:10])


@pytest.mark.parametrize("name", list(SERIES))
def test_every_value_is_finite(name):
    rows = compute_features(SERIES[name]())
    bad = sorted({FEATURE_NAMES[k] for k in np.flatnonzero(~np.isfinite(rows).all(axis=0))})
    assert not bad, f"non-finite values in {bad}"


@pytest.mark.parametrize("length", [1001, 1017, 1500, 2222])
def test_truncated_series_gives_the_same_rows(length):
    """No look-ahead: dropping every round from `length` on changes no earlier row."""
    values = crash_series(5, 3000)
    full = compute_features(values)
    truncated = compute_features(values[:length])
    assert truncated.shape == (length - FIRST_SAMPLE, len(FEATURE_NAMES))
    np.testing.assert_array_equal(truncated, full[: length - FIRST_SAMPLE])


def test_changing_future_rounds_changes_no_earlier_row():
    values = crash_series(6, 2000)
    altered = values.copy()
    altered[1500:] = np.maximum(1.0, altered[1500:] * 7.3)
    np.testing.assert_array_equal(compute_features(values)[:501], compute_features(altered)[:501])
    assert not np.array_equal(compute_features(values)[502], compute_features(altered)[502])


@pytest.mark.parametrize("chunk_size", [1, 37, 500, 100_000])
def test_chunk_size_does_not_change_results(chunk_size):
    values = crash_series(7, 1500)
    indices, blocks = zip(*iter_feature_chunks(values, chunk_size=chunk_size), strict=True)
    assert all(block.dtype == np.float32 for block in blocks)
    assert max(len(block) for block in blocks) <= chunk_size
    np.testing.assert_array_equal(np.concatenate(indices), np.arange(FIRST_SAMPLE, 1500))
    np.testing.assert_array_equal(np.concatenate(blocks), compute_features(values))


def test_start_and_stop_select_rows():
    values = crash_series(8, 1600)
    full = compute_features(values)
    np.testing.assert_array_equal(compute_features(values, 1200, 1300), full[200:300])
    assert compute_features(values[:FIRST_SAMPLE]).shape == (0, len(FEATURE_NAMES))
    assert compute_features(values[:700]).shape == (0, len(FEATURE_NAMES))


def test_registry_names_and_category_counts_follow_design():
    assert len(FEATURE_NAMES) == 121
    assert len(set(FEATURE_NAMES)) == 121
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in FEATURE_NAMES)
    assert list(CATEGORY_COUNTS.values()) == DESIGN_COUNTS
    assert Counter(spec.category for spec in FEATURES) == CATEGORY_COUNTS
    # Categories are contiguous blocks, in the registry's order.
    order = list(dict.fromkeys(spec.category for spec in FEATURES))
    assert order == list(CATEGORY_COUNTS)
    assert all(spec.doc and spec.fill for spec in FEATURES)


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        (np.r_[np.full(1100, 2.0), 0.5], {}, "first at position 1100 (0.5)"),
        (np.r_[np.full(1100, 2.0), np.nan], {}, "1 bad values"),
        (np.full(1100, 2.0), {"start": 999}, "`start` must be >= 1000. Received: start=999"),
        (np.full((1100, 2), 2.0), {}, "`values` must be 1-D. Received: shape=(1100, 2)"),
        (np.full(1100, 2.0), {"stop": 1200}, "Received: stop=1200"),
    ],
)
def test_bad_input_is_a_one_line_error(values, kwargs, message):
    with pytest.raises(JetxInputError) as caught:
        compute_features(values, **kwargs)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
