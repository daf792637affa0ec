"""Chronological splits and the train-only scaler."""

import numpy as np
import pytest

from jetx.errors import JetxInputError
from jetx.features.splits import (
    Scaler,
    ScalerFit,
    fit_scaler,
    split_bounds,
    split_counts,
    split_labels,
)


@pytest.mark.parametrize(
    ("n", "fractions", "expected"),
    [
        (100, (0.70, 0.15, 0.15), {"train": 70, "val": 15, "test": 15}),
        (9458, (0.70, 0.15, 0.15), {"train": 6620, "val": 1418, "test": 1420}),
        (10, (0.5, 0.3, 0.2), {"train": 5, "val": 3, "test": 2}),
        (7, (0.70, 0.15, 0.15), {"train": 4, "val": 1, "test": 2}),
    ],
)
def test_split_counts(n, fractions, expected):
    assert split_counts(n, fractions) == expected


def test_labels_are_chronological_blocks():
    n = 1234
    labels = split_labels(np.arange(n), n)
    bounds = split_bounds(n)
    for name, (start, stop) in bounds.items():
        assert (labels[start:stop] == name).all()
    # Oldest first, each split one contiguous block: label changes exactly twice, in order.
    changes = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    assert list(labels[[0, *changes]]) == ["train", "val", "test"]


def test_labels_of_chunks_match_whole():
    n = 1000
    whole = split_labels(np.arange(n), n, (0.6, 0.2, 0.2))
    chunks = [
        split_labels(np.arange(a, min(a + 77, n)), n, (0.6, 0.2, 0.2)) for a in range(0, n, 77)
    ]
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


@pytest.mark.parametrize(
    ("fractions", "n"),
    [
        ((0.7, 0.2, 0.2), 100),
        ((0.7, 0.3), 100),
        ((1.0, 0.0, 0.0), 100),
        ((0.8, -0.1, 0.3), 100),
        ((float("nan"), 0.5, 0.5), 100),
    ],
)
def test_bad_fractions(fractions, n):
    with pytest.raises(JetxInputError, match="`fractions` must be three positive numbers"):
        split_counts(n, fractions)


def test_empty_split_is_an_error():
    with pytest.raises(JetxInputError, match="Every split needs at least one sample; 3 samples"):
        split_counts(3)


def test_streaming_fit_equals_numpy():
    rows = np.random.default_rng(1).normal(5.0, 3.0, size=(1000, 4)) * [1, 10, 1e-3, 1e4]
    fit = ScalerFit(["a", "b", "c", "d"])
    for start in range(0, 1000, 137):
        fit.update(rows[start : start + 137])
    scaler = fit.result()
    np.testing.assert_allclose(scaler.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.std, rows.std(axis=0), rtol=1e-10)
    standardized = scaler.transform(rows)
    np.testing.assert_allclose(standardized.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(standardized.std(axis=0), 1, atol=1e-5)


def test_constant_feature_gets_std_one_and_stays_finite():
    rows = np.column_stack([np.full(300, 0.1), np.arange(300.0)])
    scaler = fit_scaler(rows, ["constant", "ramp"])
    assert scaler.std[0] == 1.0
    out = scaler.transform(np.array([[0.1, 3.0], [2.1, 3.0]]))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], [0.0, 2.0], atol=1e-6)


def test_scaler_ignores_val_and_test_rows():
    n = 500
    rows = np.random.default_rng(2).normal(size=(n, 3))
    labels = split_labels(np.arange(n), n)
    before = fit_scaler(rows[labels == "train"], "xyz")
    perturbed = rows.copy()
    perturbed[labels != "train"] += 1e6
    after = fit_scaler(perturbed[labels == "train"], "xyz")
    np.testing.assert_array_equal(before.mean, after.mean)
    np.testing.assert_array_equal(before.std, after.std)


def test_scaler_json_round_trip(tmp_path):
    scaler = fit_scaler(np.random.default_rng(3).normal(size=(50, 2)), ["a", "b"])
    scaler.save(tmp_path / "scaler.json")
    loaded = Scaler.load(tmp_path / "scaler.json")
    assert loaded.names == ("a", "b")
    np.testing.assert_array_equal(loaded.mean, scaler.mean)
    np.testing.assert_array_equal(loaded.std, scaler.std)


def test_fit_without_rows_is_an_error():
    with pytest.raises(JetxInputError, match="at least one train row"):
        ScalerFit(["a"]).result()


def test_transform_in_row_blocks_equals_one_pass(monkeypatch):
    rows = np.random.default_rng(4).normal(1000.0, 0.01, size=(100, 3))
    scaler = fit_scaler(rows, "abc")
    monkeypatch.setattr("jetx.features.splits._TRANSFORM_ROWS", 7)
    expected = ((rows - rows.mean(axis=0)) / rows.std(axis=0)).astype(np.float32)
    np.testing.assert_array_equal(scaler.transform(rows), expected)
