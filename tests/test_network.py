"""The model: names, shapes, dtypes, parameter counts, remat/chunked gradients, mixed precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from jetx.config import OUTPUTS, PRESETS, VARIANTS
from jetx.model.footprint import count_params
from jetx.model.network import build_model
from jetx.model.probe import PROBE_LOSSES, synthetic_batch

TINY = PRESETS["tiny"]


def _build(variant: str, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_model(TINY.model_for(variant))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_has_the_contract_inputs_and_outputs(variant):
    config = TINY.model_for(variant)
    model = _build(variant)
    expected = {"features": (None, config.n_features)}
    expected |= {name: (None, length, 1) for name, length in config.sequence_inputs.items()}
    assert {t.name: tuple(t.shape) for t in model.inputs} == expected
    inputs, _ = synthetic_batch(config, 5)
    outputs = model(inputs, training=False)
    assert set(outputs) == set(OUTPUTS)
    assert [tuple(outputs[k].shape) for k in OUTPUTS] == [(5, 1), (5, 3), (5, 1)]
    assert all(outputs[k].dtype == "float32" for k in OUTPUTS)
    np.testing.assert_allclose(np.sum(outputs["classification"], axis=1), 1.0, rtol=1e-5)
    threshold = np.asarray(outputs["threshold"])
    assert ((threshold > 0) & (threshold < 1)).all()
    assert model.count_params() == count_params(config)


def test_no1000_has_no_seq1000_input():
    assert "seq1000" not in {t.name for t in _build("no1000").inputs}


@pytest.mark.parametrize("variant", ["full", "no1000", "light"])
def test_full_size_parameter_counts_match_the_analytic_count(variant):
    config = PRESETS["full"].model_for(variant)
    assert build_model(config).count_params() == count_params(config)


def test_full_size_parameter_counts_per_variant():
    counts = {v: count_params(PRESETS["full"].model_for(v)) for v in VARIANTS}
    assert 9_300_000 <= counts["full"] <= 10_300_000
    assert counts["no1000"] < counts["light"] < counts["full"]
    assert counts["remat"] == counts["chunked"] == counts["full"]


def test_construction_is_deterministic_given_the_seed():
    first, second, other = _build("full", seed=3), _build("full", seed=3), _build("full", seed=4)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(first.get_weights(), other.get_weights(), strict=True)
    )


def _training_gradients(variant: str, seed: int = 0) -> list[np.ndarray]:
    """Gradients of a fixed loss in training mode (real dropout), weights and masks from `seed`."""
    model = _build(variant, seed)
    inputs, _ = synthetic_batch(TINY.model_for(variant), 6, seed=1)
    with tf.GradientTape() as tape:
        out = model(inputs, training=True)
        loss = (
            tf.reduce_sum(out["regression"])
            + tf.reduce_sum(out["threshold"])
            + tf.reduce_sum(out["classification"][:, 0])
        )
    return [np.asarray(g) for g in tape.gradient(loss, model.trainable_variables)]


@pytest.mark.parametrize("variant", ["remat", "chunked"])
def test_memory_saving_variant_gradients_equal_the_plain_models(variant):
    plain = _training_gradients("full")
    saving = _training_gradients(variant)
    assert len(plain) == len(saving) and all(g is not None for g in saving)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(plain, saving, strict=True))
    assert diff < 1e-5
    # The comparison can fail: other dropout masks (another seed) change the gradients.
    other = _training_gradients("full", seed=7)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(plain, other, strict=True)) > 1e-3


def test_mixed_float16_keeps_heads_float32_and_trains_one_step():
    policy = "mixed_float16"
    keras.mixed_precision.set_global_policy(policy)
    try:
        config = TINY.model_for("remat")
        model = _build("remat")
        assert all(model.get_layer(name).dtype_policy.name == "float32" for name in OUTPUTS)
        assert model.get_layer("encoder_1").compute_dtype == "float16"
        inputs, targets = synthetic_batch(config, 8)
        out = model(inputs, training=True)
        assert all(out[k].dtype == "float32" for k in OUTPUTS)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=PROBE_LOSSES,
        )
        loss = model.train_on_batch(inputs, targets)
        assert np.all(np.isfinite(loss))
    finally:
        keras.mixed_precision.set_global_policy("float32")
