"""Gradient accumulation with its own dynamic loss scale: one optimizer update per k micro-steps.

Why not the optimizer's `gradient_accumulation_steps`: under `mixed_float16` Keras wraps the
optimizer in a LossScaleOptimizer, which drops a micro-step whose scaled gradients overflow and
lets the accumulation window silently grow. Here each micro-step unscales its gradients into
float32 accumulators only when they are all finite; a non-finite micro-step halves the loss scale
and is reported to the caller, which redoes that micro-batch (or, without loss scaling, skips the
whole window explicitly). The optimizer then sees exactly the mean gradient of the window, and its
`iterations` count optimizer updates, never micro-steps, so learning-rate schedules and
reduce-on-plateau count updates.

Under a tf.distribute strategy (`jetx.training.distribute`) the micro-step runs on every replica:
each replica adds its own gradient of (its mean loss / replicas) to its own accumulators (on-read
variables, summed when read), the replicas agree on "finite" through one all-reduce of a scalar,
so that they keep, redo or skip the same micro-step, and the update's single all-reduce (the
optimizer's) sums the replicas' accumulated gradients into the global mean. Only the model and
optimizer variables are mirrored; no gradient crosses devices between updates.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from jetx.training.losses import StageLoss

#: Dynamic loss scaling of Keras's LossScaleOptimizer: start at 2^15, double after 2000 finite
#: micro-steps, halve on an overflow.
INITIAL_LOSS_SCALE = 2.0**15
GROWTH_INTERVAL = 2000


class GradientAccumulator:
    """Owns the compiled micro-step and update step of one model, optimizer and stage loss.

    Args:
        model: a built Keras model whose call returns a dict of the stage loss's outputs.
        optimizer: a Keras optimizer; built here on the model's trainable variables.
        loss: the stage's loss (`jetx.training.losses.StageLoss`).
        loss_scaling: scale the loss dynamically (needed under `mixed_float16`).
        strategy: the tf.distribute strategy the model and optimizer were created under
            (default: the current one). Create the accumulator inside its scope.
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        loss: StageLoss,
        *,
        loss_scaling: bool = False,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.loss_scaling = loss_scaling
        self.strategy = strategy or tf.distribute.get_strategy()
        self._trainable = list(model.trainable_variables)
        optimizer.build(self._trainable)
        self.accumulators = [_local(tf.zeros(v.shape, tf.float32), "sum") for v in self._trainable]
        self.count = _local(tf.constant(0, tf.int64), "only_first_replica")
        scale = INITIAL_LOSS_SCALE if loss_scaling else 1.0
        self.loss_scale = _local(tf.constant(scale, tf.float32), "only_first_replica")
        self.good_steps = _local(tf.constant(0, tf.int64), "only_first_replica")
        self._micro_step = tf.function(self._micro_step_fn, reduce_retracing=True)
        self._apply_step = tf.function(self._apply_step_fn)

    @property
    def state_variables(self) -> list[tf.Variable]:
        """Accumulators, micro-step count, loss scale and its growth counter (for checkpoints)."""
        return [*self.accumulators, self.count, self.loss_scale, self.good_steps]

    def micro_step(self, inputs: dict, targets: dict) -> tuple[bool, np.ndarray]:
        """Add one micro-batch's mean gradient to the accumulators, if it is finite.

        Args:
            inputs: dict of input tensors, each [micro_batch, ...] (per-replica values of a
                distributed dataset under a strategy).
            targets: dict of target tensors, float32 [micro_batch, k].

        Returns:
            (finite, losses): whether the gradient was added (on every replica); float [4] of
            the weighted total and the regression, classification and threshold losses, means
            over the global micro-batch.
        """
        with self.strategy.scope():
            result = self._micro_step(inputs, targets).numpy()
        return bool(result[0]), result[1:]

    def apply(self) -> None:
        """Apply the mean accumulated gradient as one optimizer update and clear the window."""
        if int(self.count.numpy()) == 0:
            return
        with self.strategy.scope():
            self._apply_step()

    def reset(self) -> None:
        """Drop the window's accumulated gradients without an update."""
        with self.strategy.scope():
            for accumulator in self.accumulators:
                accumulator.assign(tf.zeros(accumulator.shape, accumulator.dtype))
            self.count.assign(0)

    def _micro_step_fn(self, inputs, targets):
        losses = self.strategy.run(self._replica_micro_step, args=(inputs, targets))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def _replica_micro_step(self, inputs, targets):
        """One replica's share: its loss is its slice's mean / replicas (see module doc)."""
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = self.model(inputs, training=True)
            total, heads = self.loss(targets, outputs)
            if self.model.losses:
                total = total + tf.add_n([tf.cast(x, tf.float32) for x in self.model.losses])
            total, heads = total / replicas, [h / replicas for h in heads]
            scaled = total * self.loss_scale
        grads = tape.gradient(scaled, self._trainable)
        grads = [
            tf.zeros(v.shape, tf.float32) if g is None else tf.cast(g, tf.float32) / self.loss_scale
            for g, v in zip(grads, self._trainable, strict=True)
        ]
        finite = tf.math.is_finite(total)
        for g in grads:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
        failed = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32)
        )
        finite = tf.equal(failed, 0.0)
        for accumulator, g in zip(self.accumulators, grads, strict=True):
            accumulator.assign_add(tf.where(finite, g, tf.zeros_like(g)))
        self.count.assign_add(tf.cast(finite, tf.int64))
        if self.loss_scaling:
            self._update_loss_scale(finite)
        return tf.stack([tf.cast(finite, tf.float32) / replicas, total, *heads])

    def _update_loss_scale(self, finite):
        """Double after GROWTH_INTERVAL finite micro-steps in a row, halve on an overflow."""
        good = tf.where(finite, self.good_steps + 1, tf.zeros_like(self.good_steps))
        grow = good >= GROWTH_INTERVAL
        scale = tf.where(grow, self.loss_scale * 2.0, self.loss_scale)
        self.loss_scale.assign(tf.where(finite, scale, tf.maximum(self.loss_scale / 2.0, 1.0)))
        self.good_steps.assign(tf.where(grow, tf.zeros_like(good), good))

    def _apply_step_fn(self):
        self.strategy.run(self._replica_apply)

    def _replica_apply(self):
        """The optimizer all-reduces (sums) the replicas' accumulated gradients."""
        n = tf.cast(self.count, tf.float32)
        self.optimizer.apply([a / n for a in self.accumulators], self._trainable)
        for accumulator in self.accumulators:
            accumulator.assign(tf.zeros_like(accumulator))
        self.count.assign(0)


def _local(initial: tf.Tensor, aggregation: str) -> tf.Variable:
    """A replica-local variable: each replica updates its own copy; a read aggregates them."""
    return tf.Variable(
        initial,
        trainable=False,
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=getattr(tf.VariableAggregation, aggregation.upper()),
    )
