"""docs/design.md's losses, against hand-computed values."""

import math

import numpy as np
import pytest

from jetx.config import STAGES
from jetx.training.losses import (
    StageLoss,
    categorical_crossentropy,
    focal,
    stage_losses,
    threshold_weighted_mae,
    weighted_bce,
)


def _col(*values: float) -> np.ndarray:
    return np.array(values, dtype="float32").reshape(-1, 1)


@pytest.mark.parametrize(
    ("value", "prediction", "weight"),
    [
        (1.2, 2.0, 5.0),  # lost bet
        (3.0, 1.2, 3.0),  # missed bet
        (1.45, 1.3, 4.0),  # near the cash-out, same side
        (1.45, 1.6, 5.0),  # near the cash-out and a lost bet: the largest applies
        (1.55, 1.45, 4.0),  # near the cash-out and a missed bet: 4 > 3
        (5.0, 4.0, 1.0),  # right side, far from 1.5
        (1.1, 1.0, 1.0),
    ],
)
def test_threshold_weighted_mae_weights(value, prediction, weight):
    loss = float(threshold_weighted_mae(_col(value), _col(prediction)))
    assert loss == pytest.approx(weight * abs(value - prediction), rel=1e-5)


def test_threshold_weighted_mae_is_a_batch_mean():
    loss = float(threshold_weighted_mae(_col(1.2, 5.0), _col(2.0, 4.0)))
    assert loss == pytest.approx((5 * 0.8 + 1 * 1.0) / 2, rel=1e-5)


def test_categorical_crossentropy():
    y = np.array([[0, 1, 0], [1, 0, 0]], dtype="float32")
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]], dtype="float32")
    expected = -(math.log(0.7) + math.log(0.5)) / 2
    assert float(categorical_crossentropy(y, p)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("class0_weight", [1.0, 1.2, 1.5])
def test_weighted_bce_weights_class_zero(class0_weight):
    y, p = _col(0.0, 1.0), _col(0.3, 0.6)
    expected = (class0_weight * -math.log(0.7) - math.log(0.6)) / 2
    assert float(weighted_bce(class0_weight)(y, p)) == pytest.approx(expected, rel=1e-5)


def test_focal_loss_matches_the_formula():
    gamma, alpha = 2.0, 0.7
    y, p = _col(1.0, 0.0), _col(0.8, 0.4)
    expected = (alpha * 0.2**2 * -math.log(0.8) + (1 - alpha) * 0.4**2 * -math.log(0.6)) / 2
    assert float(focal(gamma, alpha)(y, p)) == pytest.approx(expected, rel=1e-5)


def test_focal_with_gamma_zero_is_alpha_weighted_bce():
    y, p = _col(1.0, 0.0), _col(0.9, 0.9)
    expected = (0.5 * -math.log(0.9) + 0.5 * -math.log(0.1)) / 2
    assert float(focal(0.0, 0.5)(y, p)) == pytest.approx(expected, rel=1e-5)


def test_losses_are_finite_at_saturated_probabilities():
    y, p = _col(1.0, 0.0), _col(0.0, 1.0)
    assert math.isfinite(float(weighted_bce(1.5)(y, p)))
    assert math.isfinite(float(focal(2.0, 0.7)(y, p)))


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_stage_losses_pick_the_threshold_loss(stage):
    heads = stage_losses(STAGES[stage])
    assert list(heads) == ["regression", "classification", "threshold"]
    y, p = _col(1.0, 0.0), _col(0.8, 0.4)
    expected = (
        focal(2.0, 0.7)(y, p)
        if STAGES[stage].threshold_loss == "focal"
        else weighted_bce(STAGES[stage].class0_weight)(y, p)
    )
    assert float(heads["threshold"](y, p)) == pytest.approx(float(expected), rel=1e-6)


def test_stage_loss_weights_the_heads():
    stage = STAGES[0]
    targets = {
        "regression": _col(1.2, 3.0),
        "classification": np.eye(3, dtype="float32")[[0, 1]],
        "threshold": _col(0.0, 1.0),
    }
    outputs = {
        "regression": _col(1.3, 2.0),
        "classification": np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]], dtype="float32"),
        "threshold": _col(0.3, 0.6),
    }
    total, heads = StageLoss(stage)(targets, outputs)
    expected = sum(w * float(h) for w, h in zip(stage.loss_weights, heads, strict=True))
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert float(heads[0]) == pytest.approx(
        float(threshold_weighted_mae(_col(1.2, 3.0), _col(1.3, 2.0)))
    )
