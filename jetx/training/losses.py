"""Training losses of docs/design.md, one per head, as Keras `(y_true, y_pred) -> scalar` functions.

Each loss returns the mean over the batch, so that the mean of the losses of k equal
micro-batches is the loss of their union: gradient accumulation relies on it. Evaluation
metrics live apart, in `jetx.evaluation.scores.heads` (numpy).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from jetx.config import CASHOUT, OUTPUTS, StageConfig

Loss = Callable[[object, object], object]

#: Regression weights: a lost bet, a missed bet, and a value near the cash-out.
LOST_BET_WEIGHT = 5.0
MISSED_BET_WEIGHT = 3.0
NEAR_CASHOUT_WEIGHT = 4.0
NEAR_CASHOUT = (1.4, 1.6)
_EPSILON = 1e-7


def threshold_weighted_mae(y_true, y_pred):
    """Absolute error weighted by what a wrong side of the 1.5x cash-out costs.

    Weight 5 when the value is < 1.5 but the prediction >= 1.5 (a lost bet), 3 when the value
    is >= 1.5 but the prediction < 1.5, 4 when 1.4 <= value <= 1.6; the largest that applies,
    at least 1.

    Args:
        y_true: float [B, 1], the round's multiplier.
        y_pred: float [B, 1], the regression head.

    Returns:
        float32 scalar, the batch mean.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    below = y_true < CASHOUT
    bets = y_pred >= CASHOUT
    ones = ops.ones_like(y_true)
    lost = ops.where(ops.logical_and(below, bets), LOST_BET_WEIGHT * ones, ones)
    missed_bet = ops.logical_and(ops.logical_not(below), ops.logical_not(bets))
    missed = ops.where(missed_bet, MISSED_BET_WEIGHT * ones, ones)
    near = ops.logical_and(y_true >= NEAR_CASHOUT[0], y_true <= NEAR_CASHOUT[1])
    near = ops.where(near, NEAR_CASHOUT_WEIGHT * ones, ones)
    weight = ops.maximum(ops.maximum(lost, missed), near)
    return ops.mean(weight * ops.abs(y_true - y_pred))


def categorical_crossentropy(y_true, y_pred):
    """Mean categorical cross-entropy of one-hot float32 [B, 3] targets and softmax [B, 3]."""
    y_pred = ops.cast(y_pred, "float32")
    return ops.mean(keras.losses.categorical_crossentropy(ops.cast(y_true, "float32"), y_pred))


def weighted_bce(class0_weight: float) -> Loss:
    """Binary cross-entropy with class 0 (value < 1.5, do not bet) weighted by `class0_weight`.

    Weighting class 0 makes a missed crash (a lost bet) cost more than a missed win.

    Args:
        class0_weight: weight of samples whose target is 0; class 1 has weight 1.

    Returns:
        loss(y_true float [B, 1] in {0, 1}, y_pred sigmoid [B, 1]) -> float32 scalar mean.
    """

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        p = ops.clip(ops.cast(y_pred, "float32"), _EPSILON, 1.0 - _EPSILON)
        bce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        weight = y_true + (1.0 - y_true) * class0_weight
        return ops.mean(weight * bce)

    return loss


def focal(gamma: float, alpha: float) -> Loss:
    """Binary focal loss: -alpha_t (1 - p_t)^gamma log(p_t), alpha for class 1, 1 - alpha for 0.

    Down-weights the easy rounds so that stage 3 concentrates on the ambiguous ones.

    Args:
        gamma: focusing exponent (0 gives alpha-weighted BCE).
        alpha: weight of class 1 (value >= 1.5).

    Returns:
        loss(y_true float [B, 1] in {0, 1}, y_pred sigmoid [B, 1]) -> float32 scalar mean.
    """

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        p = ops.clip(ops.cast(y_pred, "float32"), _EPSILON, 1.0 - _EPSILON)
        p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
        alpha_t = y_true * alpha + (1.0 - y_true) * (1.0 - alpha)
        return ops.mean(-alpha_t * ops.power(1.0 - p_t, gamma) * ops.log(p_t))

    return loss


def stage_losses(stage: StageConfig) -> dict[str, Loss]:
    """The loss of each output head (`OUTPUTS` order) for a stage's threshold loss choice."""
    if stage.threshold_loss == "focal":
        threshold = focal(stage.focal_gamma, stage.focal_alpha)
    else:
        threshold = weighted_bce(stage.class0_weight)
    return dict(
        zip(OUTPUTS, (threshold_weighted_mae, categorical_crossentropy, threshold), strict=True)
    )


class StageLoss:
    """The weighted sum of a stage's head losses: what each micro-step and validation minimise.

    Args:
        stage: supplies the loss weights (regression, classification, threshold) and the
            threshold loss choice.
    """

    def __init__(self, stage: StageConfig) -> None:
        self.heads = stage_losses(stage)
        self.weights = dict(zip(OUTPUTS, stage.loss_weights, strict=True))

    def __call__(self, targets: dict, outputs: dict) -> tuple[object, list[object]]:
        """Return (weighted total, [regression, classification, threshold] losses), float32."""
        heads = [self.heads[name](targets[name], outputs[name]) for name in OUTPUTS]
        total = sum(self.weights[name] * loss for name, loss in zip(OUTPUTS, heads, strict=True))
        return total, heads
