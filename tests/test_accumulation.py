"""Gradient accumulation: k micro-batches equal one big batch (with a batch-independent
normalisation); overflows never corrupt a window."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from jetx.config import PRESETS, STAGES
from jetx.model.network import dense_block
from jetx.training.accumulation import INITIAL_LOSS_SCALE, GradientAccumulator
from jetx.training.losses import StageLoss


def _model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    features = keras.Input((6,), name="features")
    hidden = keras.layers.Dense(8, activation="tanh")(features)
    outputs = {
        "regression": keras.layers.Dense(1, name="regression")(hidden),
        "classification": keras.layers.Dense(3, activation="softmax", name="classification")(
            hidden
        ),
        "threshold": keras.layers.Dense(1, activation="sigmoid", name="threshold")(hidden),
    }
    return keras.Model({"features": features}, outputs)


def _batch(n: int, seed: int = 1) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    value = np.round(0.97 / rng.uniform(0.001, 1.0, size=(n, 1)), 2).clip(1.0).astype("float32")
    classes = np.digitize(value[:, 0], [1.5, 10.0])
    inputs = {"features": rng.normal(size=(n, 6)).astype("float32")}
    targets = {
        "regression": value,
        "classification": np.eye(3, dtype="float32")[classes],
        "threshold": (value >= 1.5).astype("float32"),
    }
    return inputs, targets


def _slice(batch: tuple[dict, dict], start: int, stop: int) -> tuple[dict, dict]:
    return tuple({k: v[start:stop] for k, v in part.items()} for part in batch)


def _train(micro_batch: int, updates: int, effective: int = 64) -> keras.Model:
    model = _model()
    accumulator = GradientAccumulator(model, keras.optimizers.SGD(0.05), StageLoss(STAGES[0]))
    data = _batch(effective * updates)
    for update in range(updates):
        for start in range(update * effective, (update + 1) * effective, micro_batch):
            finite, _ = accumulator.micro_step(*_slice(data, start, start + micro_batch))
            assert finite
        accumulator.apply()
    assert int(accumulator.optimizer.iterations.numpy()) == updates
    return model


def _max_diff(a: keras.Model, b: keras.Model) -> float:
    return _max_diff_weights(a.get_weights(), b.get_weights())


@pytest.mark.parametrize("micro_batch", [8, 16, 32])
def test_micro_batches_equal_one_big_batch_sgd(micro_batch):
    big = _train(micro_batch=64, updates=3)
    small = _train(micro_batch=micro_batch, updates=3)
    assert _max_diff(big, small) < 1e-5
    assert _max_diff(big, _model()) > 1e-3  # the updates did move the weights


def _normalised_model(normalization: str) -> keras.Model:
    """`_model` with two of the network's own Dense -> norm -> dropout blocks (dropout off)."""
    config = dataclasses.replace(PRESETS["tiny"].model, dropout=0.0, normalization=normalization)
    keras.utils.set_random_seed(0)
    features = keras.Input((6,), name="features")
    hidden = dense_block(features, 8, config, "block_1", l2=0.0)
    hidden = dense_block(hidden, 8, config, "block_2", l2=0.0)
    outputs = {
        "regression": keras.layers.Dense(1, name="regression")(hidden),
        "classification": keras.layers.Dense(3, activation="softmax", name="classification")(
            hidden
        ),
        "threshold": keras.layers.Dense(1, activation="sigmoid", name="threshold")(hidden),
    }
    return keras.Model({"features": features}, outputs)


def _train_normalised(normalization: str, micro_batch: int, updates: int = 3) -> keras.Model:
    model = _normalised_model(normalization)
    accumulator = GradientAccumulator(model, keras.optimizers.SGD(0.05), StageLoss(STAGES[0]))
    data = _batch(64 * updates)
    for update in range(updates):
        for start in range(update * 64, (update + 1) * 64, micro_batch):
            finite, _ = accumulator.micro_step(*_slice(data, start, start + micro_batch))
            assert finite
        accumulator.apply()
    return model


def test_layer_norm_8x8_equals_64x1_in_training_mode():
    # Batch-independent normalisation: accumulation is exact, in training mode.
    big, small = _train_normalised("layer", 64), _train_normalised("layer", 8)
    assert _max_diff(big, small) < 1e-5
    assert _max_diff(big, _normalised_model("layer")) > 1e-3  # the updates did move the weights


def test_batch_norm_8x8_differs_from_64x1():
    # The comparison can fail: batch norm normalises each micro-batch by its own statistics,
    # so 8 micro-batches of 8 are not one batch of 64, in the weights and in the moving averages.
    big, small = _train_normalised("batch", 64), _train_normalised("batch", 8)
    assert _max_diff(big, small) > 1e-3


def test_optimizer_counts_updates_not_micro_steps():
    model = _model()
    accumulator = GradientAccumulator(model, keras.optimizers.Adam(1e-3), StageLoss(STAGES[1]))
    data = _batch(32)
    for start in range(0, 32, 4):
        accumulator.micro_step(*_slice(data, start, start + 4))
    assert int(accumulator.optimizer.iterations.numpy()) == 0
    accumulator.apply()
    assert int(accumulator.optimizer.iterations.numpy()) == 1
    assert int(accumulator.count.numpy()) == 0
    assert all(not np.any(a.numpy()) for a in accumulator.accumulators)


def test_overflowing_micro_step_is_not_added_and_halves_the_scale():
    model = _model()
    accumulator = GradientAccumulator(
        model, keras.optimizers.SGD(0.05), StageLoss(STAGES[0]), loss_scaling=True
    )
    data = _batch(16)
    finite, _ = accumulator.micro_step(*_slice(data, 0, 8))
    assert finite
    before = [a.numpy().copy() for a in accumulator.accumulators]
    accumulator.loss_scale.assign(3e38)  # the scaled loss overflows to inf
    finite, _ = accumulator.micro_step(*_slice(data, 8, 16))
    assert not finite
    assert float(accumulator.loss_scale.numpy()) == pytest.approx(1.5e38)
    assert int(accumulator.count.numpy()) == 1
    for a, b in zip(accumulator.accumulators, before, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)


def test_redone_micro_step_gives_the_unscaled_reference_update():
    reference = _train(micro_batch=8, updates=1, effective=16)
    model = _model()
    accumulator = GradientAccumulator(
        model, keras.optimizers.SGD(0.05), StageLoss(STAGES[0]), loss_scaling=True
    )
    assert float(accumulator.loss_scale.numpy()) == INITIAL_LOSS_SCALE
    data = _batch(16)
    accumulator.micro_step(*_slice(data, 0, 8))
    accumulator.loss_scale.assign(3e38)
    finite, _ = accumulator.micro_step(*_slice(data, 8, 16))
    while not finite:  # what the stage loop does: redo the micro-batch at the halved scale
        finite, _ = accumulator.micro_step(*_slice(data, 8, 16))
    accumulator.apply()
    assert _max_diff(reference, model) < 1e-5


def test_mixed_float16_accumulates_float32_gradients():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model()
        accumulator = GradientAccumulator(
            model, keras.optimizers.Adam(1e-3), StageLoss(STAGES[2]), loss_scaling=True
        )
        data = _batch(16)
        for start in (0, 8):
            finite, losses = accumulator.micro_step(*_slice(data, start, start + 8))
            assert finite and np.all(np.isfinite(losses))
        assert all(a.dtype == tf.float32 for a in accumulator.accumulators)
        before = model.get_weights()
        accumulator.apply()
        assert _max_diff_weights(before, model.get_weights()) > 0
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _max_diff_weights(a: list, b: list) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
