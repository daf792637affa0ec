"""Cost of gradient accumulation, and work redone after a kill.

Run: .venv/bin/python bench/train.py [--rounds 3000] [--variant no1000] [--kills 3]

Figures (one function each):
  1. samples/s of the training loop (micro-step + update, demo model, micro-batch 8, float32)
     with accumulation 8 vs 1; ratio goal >= 0.97 (accumulating costs almost nothing);
  2. work redone after a SIGKILL at a random update of `jetx train` (tiny preset): updates
     done before the kill minus the updates in the checkpoint it resumes from, for
     checkpoint_every 1 and 4; bound: < checkpoint_every.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402

from jetx.config import PRESETS  # noqa: E402
from jetx.features.build import build_features  # noqa: E402
from jetx.layout import RunDir  # noqa: E402
from jetx.testing import faults  # noqa: E402
from jetx.training.accumulation import GradientAccumulator  # noqa: E402
from jetx.training.checkpoint import latest_checkpoint, load_state  # noqa: E402
from jetx.training.inputs import StageData  # noqa: E402
from jetx.training.losses import StageLoss  # noqa: E402

MICRO_BATCH = 8


def environment() -> str:
    """Versions and device, printed with every figure."""
    devices = [d.device_type for d in tf.config.list_physical_devices()]
    return (
        f"python {platform.python_version()}, tensorflow {tf.__version__}, keras "
        f"{keras.__version__}, numpy {np.__version__}, pyarrow {pa.__version__}, "
        f"devices {devices}, cpus {os.cpu_count()}"
    )


def features_dir(root: Path, rounds: int, seed: int = 0) -> Path:
    """A features dir from a synthetic series with P(X >= x) = 0.97 / x (docs/design.md)."""
    values = np.maximum(
        1.0, np.floor(0.97 / np.random.default_rng(seed).random(rounds) * 100) / 100
    )
    (root / "series").mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": np.arange(rounds, dtype=np.int64), "value": values})
    pq.write_table(table, root / "series" / "series.parquet")
    build_features(root / "series", root / "features")
    return root / "features"


def accumulation_throughput(features: Path, variant: str, micro_steps: int) -> dict[str, float]:
    """Samples/s of micro-steps + updates with accumulation 8 and 1, same micro-batch."""
    preset = PRESETS["demo"]
    stage = preset.stages[0]
    data = StageData(features, preset, variant)
    batches = list(data.train_batches(MICRO_BATCH, epoch=0, skip_batches=0).take(micro_steps))
    rates = {}
    for accumulation in (1, 8, 1, 8):  # interleaved, so that machine load hits both alike
        keras.utils.set_random_seed(0)
        model = data.build_model()
        accumulator = GradientAccumulator(
            model, keras.optimizers.Adam(stage.learning_rate), StageLoss(stage)
        )
        for inputs, targets in batches[:accumulation]:  # trace both steps
            accumulator.micro_step(inputs, targets)
        accumulator.apply()
        start = time.perf_counter()
        for i, (inputs, targets) in enumerate(batches, start=1):
            accumulator.micro_step(inputs, targets)
            if i % accumulation == 0:
                accumulator.apply()
        rate = len(batches) * MICRO_BATCH / (time.perf_counter() - start)
        rates[accumulation] = max(rates.get(accumulation, 0.0), rate)
    print(
        f"[1] accumulation throughput: demo preset, variant {variant}, micro-batch {MICRO_BATCH},"
        f" {len(batches)} micro-steps, float32; {environment()}"
    )
    print(f"    accumulation 1: {rates[1]:.1f} samples/s (best of 2)")
    print(f"    accumulation 8: {rates[8]:.1f} samples/s (best of 2)")
    print(f"    ratio 8 vs 1: {rates[8] / rates[1]:.3f} (goal >= 0.97)")
    return rates


def work_redone_after_kill(features: Path, checkpoint_every: int, kills: int) -> list[int]:
    """Updates lost per SIGKILL at a random time: last update logged minus the checkpoint's."""
    rng = random.Random(checkpoint_every)
    redone = []
    for _ in range(kills):
        run_dir = Path(tempfile.mkdtemp(prefix="bench-kill-"))
        log = run_dir / "log.txt"
        command = [sys.executable, "-m", "jetx", "-v", "train", str(features), "--out",
                   str(run_dir), "--preset", "tiny", "--stages", "1", "--quiet",
                   "--checkpoint-every", str(checkpoint_every)]  # fmt: skip
        with open(log, "wb") as handle:
            env = {**os.environ, **faults.environment(step_delay=0.05)}
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
            while "update 1 done" not in log.read_text(errors="replace"):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 2.0))
            process.send_signal(signal.SIGKILL)
            process.wait()
        done = [int(m) for m in re.findall(r"update (\d+) done", log.read_text(errors="replace"))]
        resumed = load_state(latest_checkpoint(RunDir(run_dir).stage(1).path)).progress.updates
        redone.append(max(done) - resumed)
    print(
        f"[2] work redone after a kill: tiny preset, stage 1, checkpoint every {checkpoint_every}"
        f" update(s), {kills} kills at random times; {environment()}"
    )
    print(f"    updates redone per kill: {redone} (bound: < {checkpoint_every})")
    return redone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--variant", default="no1000")
    parser.add_argument("--micro-steps", type=int, default=96)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        features = features_dir(Path(tmp), args.rounds)
        accumulation_throughput(features, args.variant, args.micro_steps)
        for every in (1, 4):
            work_redone_after_kill(features, every, args.kills)
    return 0


if __name__ == "__main__":
    sys.exit(main())
