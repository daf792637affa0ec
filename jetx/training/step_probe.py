"""The training engine's own step, measured in a fresh process: `python -m jetx.training.step_probe
REQUEST_JSON`.

Where `jetx.model.probe` mirrors the engine's step (the model stage cannot import training), this
probe runs it: a `GradientAccumulator` with the stage's own loss, its float32 accumulators and
Adam, on the device the run uses (GPU:0 when present). One warm-up micro-step and update trace
the step and create Adam's slots; then the allocator's peak is reset and one micro-step and update
are measured (on CPU the BFC allocator keeps the statistics: `jetx.runtime.TF_ENVIRONMENT`, set
here before TensorFlow loads). A step that runs out of memory exits with the out-of-memory code
and one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from jetx.config import ModelConfig, StageConfig
from jetx.errors import EXIT_OUT_OF_MEMORY, is_out_of_memory
from jetx.runtime import configure_tensorflow, import_tensorflow


def measure(
    config: ModelConfig, stage: StageConfig, micro_batch: int, precision: str
) -> dict[str, Any]:
    """Build the model, warm up, then measure one micro-step and update of the engine."""
    import keras
    import tensorflow as tf

    from jetx.model.network import build_model
    from jetx.model.probe import synthetic_batch
    from jetx.runtime import memory_device, read_memory, reset_memory, variable_bytes
    from jetx.training.accumulation import GradientAccumulator
    from jetx.training.losses import StageLoss
    from jetx.training.precision import needs_loss_scaling

    # One op at a time: the peak then depends on the graph, not on how threads interleave.
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = build_model(config)
    optimizer = keras.optimizers.Adam(stage.learning_rate)
    engine = GradientAccumulator(
        model, optimizer, StageLoss(stage), loss_scaling=needs_loss_scaling(precision)
    )
    inputs, targets = synthetic_batch(config, micro_batch)
    inputs = {k: tf.constant(v) for k, v in inputs.items()}
    targets = {k: tf.constant(v) for k, v in targets.items()}
    engine.micro_step(inputs, targets)
    engine.apply()
    device = memory_device()
    reset_memory(device)
    start = time.perf_counter()
    engine.micro_step(inputs, targets)
    engine.apply()
    seconds = time.perf_counter() - start
    state = (model.variables, optimizer.variables, engine.accumulators)
    reading = read_memory(device, floor_bytes=sum(variable_bytes(v) for v in state))
    return {
        "micro_batch": micro_batch,
        "precision": precision,
        "peak_bytes": reading.peak_bytes if reading.source == "allocator" else None,
        "source": reading.source,
        "note": reading.note,
        "device": device,
        "step_seconds": seconds,
    }


def main(argv: list[str]) -> int:
    """Read {"config", "stage", "micro_batch", "precision"} from argv[0]; print the result."""
    configure_tensorflow()
    import_tensorflow()
    request = json.loads(argv[0])
    try:
        result = measure(
            ModelConfig.from_dict(request["config"]),
            StageConfig.from_dict(request["stage"]),
            int(request["micro_batch"]),
            request["precision"],
        )
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        message = " | ".join(str(error).strip().splitlines()[:1]) or type(error).__name__
        print(f"out of memory: {message}", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
