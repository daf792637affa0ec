"""Run as a script: train one tiny stage with strategy "none" and "mirrored" on 2 CPU devices.

A child process of tests/test_distribute.py, because the CPU must be split into logical devices
before TensorFlow starts, which the test process has long done. Prints one JSON line.

The model has no dropout: dropout draws its masks per replica on the replica's slice, so they
cannot equal the single device's masks; everything else in a step is deterministic and batch
normalisation is synchronised across replicas, so both runs compute the same updates up to the
order of float32 sums (per-replica partial sums, then the all-reduce).

Usage: python tests/distribute_worker.py FEATURES_DIR OUT_DIR
"""

import dataclasses
import json
import sys
from pathlib import Path

from jetx.training.distribute import split_cpu

split_cpu(2)  # first: before any TensorFlow op

import numpy as np  # noqa: E402

from jetx.config import PRESETS  # noqa: E402
from jetx.errors import JetxInputError  # noqa: E402
from jetx.training.schedule import StageData, train_stage  # noqa: E402

TINY = PRESETS["tiny"]


def _arrays(checkpoint: Path) -> dict[str, np.ndarray]:
    with np.load(checkpoint / "variables.npz") as stored:
        return {k: stored[k] for k in stored.files if not k.startswith("accumulator/")}


def _max_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a[k] - b[k]), initial=0.0)) for k in a)


def main(features: Path, out: Path) -> dict:
    preset = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, dropout=0.0))
    data = StageData(features, preset, "full", 0)
    stage = dataclasses.replace(TINY.stages[0], epochs=1, checkpoint_every=0)
    results = {
        name: train_stage(stage, data, None, out / name, verbose=0, strategy=name)
        for name in ("none", "mirrored")
    }
    first = {name: _arrays(out / name / "stage1/checkpoints/ckpt-000001") for name in results}
    last = {name: _arrays(out / name / r.last_checkpoint) for name, r in results.items()}
    oom = train_stage(
        stage, data, None, out / "oom", verbose=0, strategy="mirrored", oom_at=[(1, 1)]
    )
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
        "moved": _max_diff(
            *({k: v for k, v in d.items() if "model/" in k} for d in (first["none"], last["none"]))
        ),
        "val_loss": {name: r.best_val_metrics["val_loss"] for name, r in results.items()},
        "odd_error": error,
        "oom": [oom.micro_batch, oom.accumulation, oom.updates, oom.micro_batch_changes[0]["to"]],
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
