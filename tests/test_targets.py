"""Targets: classes and threshold at and around their edges (CLASS_EDGES, CASHOUT)."""

import numpy as np
import pytest

from jetx.config import NUM_CLASSES
from jetx.features.targets import compute_targets

CASES = [
    # value, classification, threshold
    (1.00, 0, 0),
    (1.49, 0, 0),
    (1.4999, 0, 0),
    (1.50, 1, 1),
    (2.00, 1, 1),
    (9.99, 1, 1),
    (10.00, 2, 1),
    (4321.5, 2, 1),
]


@pytest.mark.parametrize(("value", "cls", "thr"), CASES)
def test_targets_at_edges(value, cls, thr):
    targets = compute_targets(np.array([value]))
    assert targets["regression"][0] == value
    assert targets["classification"][0] == cls
    assert targets["threshold"][0] == thr


def test_target_dtypes_and_ranges():
    values = np.maximum(1.0, np.floor(0.97 / np.random.default_rng(0).random(500) * 100) / 100)
    targets = compute_targets(values)
    assert targets["regression"].dtype == np.float64
    assert targets["classification"].dtype == np.int8
    assert targets["threshold"].dtype == np.int8
    assert set(np.unique(targets["classification"])) <= set(range(NUM_CLASSES))
    np.testing.assert_array_equal(targets["threshold"], targets["classification"] >= 1)
