"""Gradient accumulation with its own dynamic loss scale: one optimizer update per k micro-steps.

Why not the optimizer's `gradient_accumulation_steps`: under `mixed_float16` Keras wraps the
optimizer in a LossScaleOptimizer, which drops a micro-step whose scaled gradients overflow and
lets the accumulation window silently grow. Here each micro-step unscales its gradients into
float32 accumulators only when they are all finite; a non-finite micro-step halves the loss scale
and is reported to the caller, which redoes that micro-batch (or, without loss scaling, skips the
whole window explicitly). The optimizer then sees exactly the mean gradient of the window, and its
`iterations` count optimizer updates, never micro-steps, so learning-rate schedules and
reduce-on-plateau count updates.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from jetx.losses import StageLoss

#: Dynamic loss scaling of Keras's LossScaleOptimizer: start at 2^15, double after 2000 finite
#: micro-steps, halve on an overflow.
INITIAL_LOSS_SCALE = 2.0**15
GROWTH_INTERVAL = 2000


class GradientAccumulator:
    """Owns the compiled micro-step and update step of one model, optimizer and stage loss.

    Args:
        model: a built Keras model whose call returns a dict of the stage loss's outputs.
        optimizer: a Keras optimizer; built here on the model's trainable variables.
        loss: the stage's loss (`jetx.losses.StageLoss`).
        loss_scaling: scale the loss dynamically (needed under `mixed_float16`).
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: StageLoss,
        *,
        loss_scaling: bool = False,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.loss_scaling = loss_scaling
        self._trainable = list(model.trainable_variables)
        optimizer.build(self._trainable)
        self.accumulators = [
            tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False) for v in self._trainable
        ]
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False)
        scale = INITIAL_LOSS_SCALE if loss_scaling else 1.0
        self.loss_scale = tf.Variable(scale, dtype=tf.float32, trainable=False)
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._micro_step = tf.function(self._micro_step_fn, reduce_retracing=True)
        self._apply_step = tf.function(self._apply_step_fn)

    @property
    def state_variables(self) -> list[tf.Variable]:
        """Accumulators, micro-step count, loss scale and its growth counter (for checkpoints)."""
        return [*self.accumulators, self.count, self.loss_scale, self.good_steps]

    def micro_step(self, inputs: dict, targets: dict) -> tuple[bool, np.ndarray]:
        """Add one micro-batch's mean gradient to the accumulators, if it is finite.

        Args:
            inputs: dict of input tensors, each [micro_batch, ...].
            targets: dict of target tensors, float32 [micro_batch, k].

        Returns:
            (finite, losses): whether the gradient was added; float [4] of the weighted total and
            the regression, classification and threshold losses.
        """
        result = self._micro_step(inputs, targets).numpy()
        return bool(result[0]), result[1:]

    def apply(self) -> None:
        """Apply the mean accumulated gradient as one optimizer update and clear the window."""
        if int(self.count.numpy()) == 0:
            return
        self._apply_step()

    def reset(self) -> None:
        """Drop the window's accumulated gradients without an update."""
        for accumulator in self.accumulators:
            accumulator.assign(tf.zeros_like(accumulator))
        self.count.assign(0)

    def _micro_step_fn(self, inputs, targets):
        with tf.GradientTape() as tape:
            outputs = self.model(inputs, training=True)
            total, heads = self.loss(targets, outputs)
            if self.model.losses:
                total = total + tf.add_n([tf.cast(x, tf.float32) for x in self.model.losses])
            scaled = total * self.loss_scale
        grads = tape.gradient(scaled, self._trainable)
        grads = [
            tf.zeros(v.shape, tf.float32) if g is None else tf.cast(g, tf.float32) / self.loss_scale
            for g, v in zip(grads, self._trainable, strict=True)
        ]
        finite = tf.math.is_finite(total)
        for g in grads:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
        if finite:
            for accumulator, g in zip(self.accumulators, grads, strict=True):
                accumulator.assign_add(g)
            self.count.assign_add(1)
        if self.loss_scaling:
            self._update_loss_scale(finite)
        return tf.stack([tf.cast(finite, tf.float32), total, *heads])

    def _update_loss_scale(self, finite):
        if finite:
            self.good_steps.assign_add(1)
            if self.good_steps >= GROWTH_INTERVAL:
                self.loss_scale.assign(self.loss_scale * 2.0)
                self.good_steps.assign(0)
        else:
            self.loss_scale.assign(tf.maximum(self.loss_scale / 2.0, 1.0))
            self.good_steps.assign(0)

    def _apply_step_fn(self):
        n = tf.cast(self.count, tf.float32)
        self.optimizer.apply([a / n for a in self.accumulators], self._trainable)
        for accumulator in self.accumulators:
            accumulator.assign(tf.zeros_like(accumulator))
        self.count.assign(0)
