"""Throughput of the `mirrored` strategy against one device at the same global micro-batch.

Run: .venv/bin/python bench/distribute.py [--rounds 3000] [--variant no1000] [--devices 2]

Figure (one function): samples/s of the training loop (distributed micro-batches, micro-step,
update; demo model, float32) with strategy "none" (one device) and "mirrored" at the same global
micro-batch, and their ratio. Without a GPU the CPU is split into `--devices` logical devices
that share its cores, so a CPU gains little: the figure shows that the strategy runs and what
its overhead costs. With several GPUs the same script reports the scaling over all of them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from jetx.training.distribute import CPU_DEVICES_ENV, split_cpu  # noqa: E402


def _early_split() -> None:
    """Split the CPU before TensorFlow starts (the `--devices` option, read by hand)."""
    devices = sys.argv[sys.argv.index("--devices") + 1] if "--devices" in sys.argv else "2"
    os.environ[CPU_DEVICES_ENV] = devices
    split_cpu(int(devices))


_early_split()

import keras  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from train import environment, features_dir  # noqa: E402

from jetx.config import PRESETS  # noqa: E402
from jetx.training.accumulation import GradientAccumulator  # noqa: E402
from jetx.training.distribute import get_distribution, synchronize_batch_norm  # noqa: E402
from jetx.training.inputs import StageData  # noqa: E402
from jetx.training.losses import StageLoss  # noqa: E402


def loop_rate(name: str, data: StageData, micro_batch: int, accumulation: int, batches) -> float:
    """Samples/s of one pass over `batches` (global micro-batches) under strategy `name`."""
    distribution = get_distribution(name)
    stage = PRESETS["demo"].stages[0]
    keras.utils.set_random_seed(0)
    with distribution.strategy.scope():
        model = data.build_model()
        if name != "none":
            synchronize_batch_norm(model)
        accumulator = GradientAccumulator(
            model,
            keras.optimizers.Adam(stage.learning_rate),
            StageLoss(stage),
            strategy=distribution.strategy,
        )
    rates = []
    for _ in range(2):  # the first pass traces the steps
        start, steps = time.perf_counter(), 0
        for inputs, targets in distribution.distribute(lambda: batches, micro_batch):
            accumulator.micro_step(inputs, targets)
            steps += 1
            if steps % accumulation == 0:
                accumulator.apply()
        rates.append(steps * micro_batch / (time.perf_counter() - start))
    return rates[-1]


def mirrored_vs_one_device(features: Path, variant: str, micro_batch: int, steps: int) -> float:
    """Samples/s of "mirrored" and "none" at the same global micro-batch; returns the ratio."""
    preset = PRESETS["demo"]
    accumulation = preset.stages[0].effective_batch // micro_batch
    data = StageData(features, preset, variant)
    batches = data.train_batches(micro_batch, epoch=0, skip_batches=0).take(steps).cache()
    for _ in batches:  # fill the cache: both strategies read the same prepared batches
        pass
    replicas = get_distribution("mirrored").replicas
    rates: dict[str, list[float]] = {"none": [], "mirrored": []}
    for name in ("none", "mirrored", "none", "mirrored"):  # interleaved against machine load
        rates[name].append(loop_rate(name, data, micro_batch, accumulation, batches))
    best = {name: max(values) for name, values in rates.items()}
    devices = list(get_distribution("mirrored").strategy.extended.worker_devices)
    print(
        f"mirrored vs one device: preset demo, variant {variant}, float32, global micro-batch "
        f"{micro_batch} ({micro_batch // replicas} per replica), accumulation {accumulation}, "
        f"{steps} micro-steps, replicas {replicas} on {devices}; {environment()}"
    )
    print(f"    none (1 device): {best['none']:.1f} samples/s (best of 2)")
    print(f"    mirrored ({replicas} replicas): {best['mirrored']:.1f} samples/s (best of 2)")
    ratio = best["mirrored"] / best["none"]
    print(f"    ratio mirrored / none: {ratio:.3f}")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--variant", default="no1000")
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--micro-steps", type=int, default=48)
    parser.add_argument("--devices", type=int, default=2, help="logical CPU devices (no GPU)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        features = features_dir(Path(tmp), args.rounds)
        mirrored_vs_one_device(features, args.variant, args.micro_batch, args.micro_steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
