"""Run as a script: train one tiny stage with strategy "none" and "mirrored" on 2 CPU devices.

A child process of tests/test_distribute.py, because the CPU must be split into logical devices
before TensorFlow starts, which the test process has long done. Prints one JSON line.

Dropout is on (the tiny preset's 0.2): every replica draws the mask of the whole global batch
and keeps its own rows (`jetx.model.layers.dropout_mask`), so the masks are the single device's,
arranged the same way; the rest of a step is deterministic and batch normalisation is
synchronised across replicas, so both runs compute the same updates up to the order of float32
sums (per-replica partial sums, then the all-reduce). One draw of a mask on the two replicas
shows what the equality rests on: the replicas' masks differ (Keras's Dropout repeats them), and
together they are the one device's mask of the same global batch.

Usage: python tests/distribute_worker.py FEATURES_DIR OUT_DIR
"""

import dataclasses
import json
import sys
from pathlib import Path

from jetx.training.distribute import split_cpu

split_cpu(2)  # first: before any TensorFlow op

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from jetx.config import PRESETS  # noqa: E402
from jetx.errors import JetxInputError  # noqa: E402
from jetx.model.layers import dropout_mask  # noqa: E402
from jetx.testing import faults  # noqa: E402
from jetx.training.distribute import get_distribution  # noqa: E402
from jetx.training.schedule import StageData, train_stage  # noqa: E402

TINY = PRESETS["tiny"]


def _arrays(checkpoint: Path) -> dict[str, np.ndarray]:
    with np.load(checkpoint / "variables.npz") as stored:
        return {k: stored[k] for k in stored.files if not k.startswith("accumulator/")}


def _max_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]), initial=0.0)) for k in a)


def _float_arrays(arrays: dict) -> dict:
    """The model's weights, not its dropout seed states (int64 counters)."""
    return {k: v for k, v in arrays.items() if "model/" in k and v.dtype.kind == "f"}


def _masks() -> dict:
    """One dropout mask under "mirrored" (2 replicas x 4 rows) and on one device (8 rows)."""
    strategy = get_distribution("mirrored").strategy
    with strategy.scope():
        seeds = keras.random.SeedGenerator(1)

    @tf.function
    def draw():
        return strategy.run(lambda: dropout_mask(tf.ones([4, 16]), 0.5, seeds, "float32"))

    replicas = [np.asarray(m) for m in strategy.experimental_local_results(draw())]
    one = np.asarray(dropout_mask(tf.ones([8, 16]), 0.5, keras.random.SeedGenerator(1), "float32"))
    return {
        "replica_masks_differ": bool(np.any(replicas[0] != replicas[1])),
        "replica_masks_are_one_devices": bool(np.array_equal(np.concatenate(replicas), one)),
        "kept": float(np.mean(one > 0)),
    }


def main(features: Path, out: Path) -> dict:
    assert TINY.model.dropout > 0
    data = StageData(features, TINY, "full", 0)
    stage = dataclasses.replace(TINY.stages[0], epochs=1, checkpoint_every=0)
    results = {
        name: train_stage(stage, data, None, out / name, verbose=0, strategy=name)
        for name in ("none", "mirrored")
    }
    first = {name: _arrays(out / name / "stage1/checkpoints/ckpt-000001") for name in results}
    last = {name: _arrays(out / name / r.last_checkpoint) for name, r in results.items()}
    with faults.injected(oom="1:1"):
        oom = train_stage(stage, data, None, out / "oom", verbose=0, strategy="mirrored")
    odd = dataclasses.replace(stage, effective_batch=24, micro_batch=3)
    try:
        train_stage(odd, data, None, out / "odd", verbose=0, strategy="mirrored")
        error = None
    except JetxInputError as caught:
        error = str(caught)
    return {
        "replicas": {name: r.replicas for name, r in results.items()},
        "updates": {name: r.updates for name, r in results.items()},
        "initial_diff": _max_diff(first["none"], first["mirrored"]),
        "final_diff": _max_diff(last["none"], last["mirrored"]),
        "moved": _max_diff(*(_float_arrays(d) for d in (first["none"], last["none"]))),
        "val_loss": {name: r.best_val_metrics["val_loss"] for name, r in results.items()},
        "normalization": {name: r.normalization for name, r in results.items()},
        "odd_error": error,
        "oom": [oom.micro_batch, oom.accumulation, oom.updates, oom.micro_batch_changes[0]["to"]],
        **_masks(),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
