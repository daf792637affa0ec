"""One real training step in a fresh process, measured: `python -m jetx.model.probe CONFIG_JSON`.

A fresh process, because TensorFlow's allocator keeps its peak and its caches for the life of a
process, and because a step that runs out of memory must not take the caller down with it.

What "peak" means here: the model is built, compiled (Adam, simple standard losses: MAE,
categorical cross-entropy, binary cross-entropy) and one warm-up step is run, so that the step
function is traced and Adam's slots exist. Then the allocator's peak is reset and a second step is
measured, with one inter-op thread. The peak therefore includes everything that lives during a
step (weights, Adam slots, the input batch, activations kept for the backward pass, gradients
and the largest temporaries), which is what `jetx.model.footprint.predict_peak` predicts, and
excludes the one-off cost of tracing.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from jetx.config import NUM_CLASSES, ModelConfig
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
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=PROBE_LOSSES, jit_compile=False)
    inputs, targets = synthetic_batch(config, micro_batch)
    inputs = {k: tf.constant(v) for k, v in inputs.items()}
    targets = {k: tf.constant(v) for k, v in targets.items()}
    model.train_on_batch(inputs, targets)
    device = memory_device()
    reset_memory(device)
    start = time.perf_counter()
    model.train_on_batch(inputs, targets)
    step_seconds = time.perf_counter() - start
    # The floor: weights and Adam's two slots live in the allocator through the whole step.
    floor = variable_bytes(model.variables) + variable_bytes(model.optimizer.variables)
    reading = read_memory(device, floor_bytes=floor)
    return {
        "micro_batch": micro_batch,
        "precision": precision,
        "params": int(model.count_params()),
        "measured_peak_bytes": reading.peak_bytes if reading.source == "allocator" else None,
        "memory_source": reading.source,
        "memory_note": reading.note,
        "rss_peak_bytes": reading.rss_peak_bytes,
        "step_seconds": step_seconds,
        "device": device,
    }


def main(argv: list[str]) -> int:
    """Read {"config", "micro_batch", "precision"} JSON from argv[0]; print the result as JSON.

    A fresh probe process: it chooses the allocator before TensorFlow loads (`jetx.runtime`).
    """
    configure_tensorflow()
    import_tensorflow()
    request = json.loads(argv[0])
    config = ModelConfig.from_dict(request["config"])
    result = measure(config, int(request["micro_batch"]), request["precision"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
