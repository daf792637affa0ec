"""Validation pass of the stage loop: the stage's losses and a few head metrics on the val split.

Early stopping and reduce-on-plateau watch `val_loss`. The full evaluation (bankroll, intervals,
baselines) is `jetx.evaluation.scores.heads`, run on predictions after training; these are only the
running figures a user watches per epoch.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from jetx.config import CASHOUT
from jetx.training.losses import StageLoss

_NAMES = (
    "val_loss",
    "val_regression_loss",
    "val_classification_loss",
    "val_threshold_loss",
    "val_mae",
    "val_class_accuracy",
    "val_threshold_accuracy",
)


class Validator:
    """Computes validation figures of a model with a compiled step.

    Args:
        model: the model being trained.
        loss: the stage's loss.
        cut: threshold-probability cut for a "bet" (docs/design.md's default 0.5).
    """

    def __init__(self, model: keras.Model, loss: StageLoss, cut: float = 0.5) -> None:
        self.model = model
        self.loss = loss
        self.cut = cut
        self._step = tf.function(self._step_fn, reduce_retracing=True)

    def __call__(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Mean of each figure over the dataset's samples, plus below/above-1.5 accuracies.

        Returns:
            {"val_loss", "val_regression_loss", "val_classification_loss",
            "val_threshold_loss", "val_mae", "val_class_accuracy", "val_threshold_accuracy",
            "val_below_accuracy", "val_above_accuracy"}; an accuracy whose class is absent is nan.
        """
        sums = np.zeros(len(_NAMES) + 5)
        for inputs, targets in dataset:
            sums += self._step(inputs, targets).numpy()
        n = max(sums[0], 1.0)
        figures = {name: float(sums[i + 1] / n) for i, name in enumerate(_NAMES)}
        below, below_right, above, above_right = sums[len(_NAMES) + 1 :]
        figures["val_below_accuracy"] = float(below_right / below) if below else float("nan")
        figures["val_above_accuracy"] = float(above_right / above) if above else float("nan")
        return figures

    def _step_fn(self, inputs, targets):
        outputs = self.model(inputs, training=False)
        total, heads = self.loss(targets, outputs)
        value = tf.cast(targets["regression"], tf.float32)
        batch = tf.cast(tf.shape(value)[0], tf.float32)
        mae = tf.reduce_mean(tf.abs(value - tf.cast(outputs["regression"], tf.float32)))
        class_right = tf.equal(
            tf.argmax(targets["classification"], -1), tf.argmax(outputs["classification"], -1)
        )
        below = value < CASHOUT
        bet = tf.cast(outputs["threshold"], tf.float32) >= self.cut
        right = tf.equal(below, tf.logical_not(bet))
        count = lambda mask: tf.reduce_sum(tf.cast(mask, tf.float32))  # noqa: E731
        means = [total, *heads, mae, count(class_right) / batch, count(right) / batch]
        return tf.stack(
            [
                batch,
                *[m * batch for m in means],
                count(below),
                count(below & right),
                count(~below),
                count(~below & right),
            ]
        )
