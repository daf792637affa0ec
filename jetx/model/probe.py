"""One real training step in a fresh process, measured: `python -m jetx.model.probe CONFIG_JSON`.

A fresh process, because TensorFlow's allocator keeps its peak and its caches for the life of a
process, and because a step that runs out of memory must not take the caller down with it.

What "peak" means here: the model is built and one warm-up step is run, so that the step function
is traced and Adam's slots exist. Then the allocator's peak is reset and a second step is
measured, with one inter-op thread. The step is the training engine's at accumulation 1
(`jetx.training.accumulation`, which this stage of the pipeline cannot import): the gradients of
simple standard losses (MAE, categorical and binary cross-entropy; the stage losses cost no
memory worth measuring) are added to one float32 accumulator per trainable weight, and Adam
applies the accumulators. The peak therefore includes everything that lives during a training
step (weights, accumulators, Adam's slots, the input batch, activations kept for the backward
pass, gradients and the largest temporaries), which is what `jetx.model.footprint.predict_peak`
predicts, and excludes the one-off cost of tracing.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from jetx.config import NUM_CLASSES, ModelConfig
from jetx.errors import EXIT_OUT_OF_MEMORY, is_out_of_memory
from jetx.runtime import (
    configure_tensorflow,
    import_tensorflow,
    memory_device,
    read_memory,
    reset_memory,
    variable_bytes,
)

#: Standard Keras losses for one probe step: the stage losses cost no memory worth measuring.
PROBE_LOSSES = {
    "regression": "mean_absolute_error",
    "classification": "categorical_crossentropy",
    "threshold": "binary_crossentropy",
}


def synthetic_batch(config: ModelConfig, micro_batch: int, seed: int = 0) -> tuple[dict, dict]:
    """A seeded random batch with the model's input and target names and shapes (float32)."""
    rng = np.random.default_rng(seed)
    inputs = {"features": rng.normal(size=(micro_batch, config.n_features)).astype("float32")}
    for name, length in config.sequence_inputs.items():
        inputs[name] = rng.normal(size=(micro_batch, length, 1)).astype("float32")
    targets = {
        "regression": (1.0 + rng.exponential(size=(micro_batch, 1))).astype("float32"),
        "classification": np.eye(NUM_CLASSES, dtype="float32")[
            rng.integers(0, NUM_CLASSES, micro_batch)
        ],
        "threshold": rng.integers(0, 2, size=(micro_batch, 1)).astype("float32"),
    }
    return inputs, targets


def measure(config: ModelConfig, micro_batch: int, precision: str) -> dict[str, Any]:
    """Build, warm up, then measure one training step in this process (see the module doc)."""
    import keras
    import tensorflow as tf

    from jetx.model.network import build_model

    # One op at a time: the peak then depends on the graph, not on how two threads interleave
    # (with two inter-op threads, repeated runs of one config differed by up to 20%).
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = build_model(config)
    optimizer = keras.optimizers.Adam(1e-4)
    step, accumulators = _engine_step(model, optimizer)
    inputs, targets = synthetic_batch(config, micro_batch)
    inputs = {k: tf.constant(v) for k, v in inputs.items()}
    targets = {k: tf.constant(v) for k, v in targets.items()}
    step(inputs, targets)
    device = memory_device()
    reset_memory(device)
    seconds = []
    for _ in range(2):  # the faster of two: this machine is shared
        start = time.perf_counter()
        step(inputs, targets)
        seconds.append(time.perf_counter() - start)
    # The floor: weights, accumulators and Adam's slots live in the allocator through the step.
    floor = sum(variable_bytes(v) for v in (model.variables, optimizer.variables, accumulators))
    reading = read_memory(device, floor_bytes=floor)
    return {
        "micro_batch": micro_batch,
        "precision": precision,
        "params": int(model.count_params()),
        "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "measured_peak_bytes": reading.peak_bytes if reading.source == "allocator" else None,
        "memory_source": reading.source,
        "memory_note": reading.note,
        "rss_peak_bytes": reading.rss_peak_bytes,
        "step_seconds": min(seconds),
        "device": device,
    }


def _engine_step(model, optimizer) -> tuple[Any, list]:
    """The training engine's micro-step and update at accumulation 1, and its accumulators.

    It mirrors `GradientAccumulator` where memory is concerned: every gradient is cast to
    float32 and checked finite before any is added (so all of them are alive at once), and the
    update divides the accumulators by the micro-step count before Adam applies them.
    """
    import keras
    import tensorflow as tf

    trainable = list(model.trainable_variables)
    optimizer.build(trainable)
    accumulators = [
        keras.Variable("zeros", shape=v.shape, dtype="float32", trainable=False) for v in trainable
    ]
    losses = {name: keras.losses.get(loss) for name, loss in PROBE_LOSSES.items()}

    @tf.function
    def micro_step(inputs, targets):
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            total = tf.add_n([tf.reduce_mean(f(targets[k], outputs[k])) for k, f in losses.items()])
            if model.losses:
                total += tf.add_n([tf.cast(x, tf.float32) for x in model.losses])
        grads = [tf.cast(g, tf.float32) for g in tape.gradient(total, trainable)]
        finite = tf.math.is_finite(total)
        for g in grads:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
        for accumulator, g in zip(accumulators, grads, strict=True):
            accumulator.assign_add(tf.where(finite, g, tf.zeros_like(g)))

    @tf.function
    def apply():
        optimizer.apply([a / 1.0 for a in accumulators], trainable)
        for accumulator in accumulators:
            accumulator.assign(tf.zeros_like(accumulator))

    def step(inputs, targets):
        micro_step(inputs, targets)
        apply()

    return step, accumulators


def main(argv: list[str]) -> int:
    """Read {"config", "micro_batch", "precision"} JSON from argv[0]; print the result as JSON.

    A fresh probe process: it chooses the allocator before TensorFlow loads (`jetx.runtime`).
    """
    configure_tensorflow()
    import_tensorflow()
    request = json.loads(argv[0])
    config = ModelConfig.from_dict(request["config"])
    try:
        result = measure(config, int(request["micro_batch"]), request["precision"])
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        message = " | ".join(str(error).strip().splitlines()[:1]) or type(error).__name__
        print(f"out of memory: {message}", file=sys.stderr)  # one line, no traceback
        return EXIT_OUT_OF_MEMORY
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
