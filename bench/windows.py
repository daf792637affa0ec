"""Window pipeline throughput against one training step, and feature prep on the real history.

Run: .venv/bin/python bench/windows.py [--rounds 20000] [--history data/real/jetx_history.csv]

Figures (one function each):
  1. samples/s that jetx.training.windows.make_dataset yields (train split, micro-batch 8, full
     variant),
     plus a numpy-gather + from_generator alternative for the record of the design choice;
  2. samples/s of one train step of the fastest variant (no1000, micro-batch 8, float32), and the
     ratio of 1 to 2 (goal >= 20x: the input pipeline never starves training);
  3. `build_features` wall time and counts per split on the real history.
"""

from __future__ import annotations

import argparse
import os
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

from jetx.config import PRESETS, ModelConfig  # noqa: E402
from jetx.features.build import build_features  # noqa: E402
from jetx.training.windows import load_log_series, load_split, make_dataset  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from train import environment  # noqa: E402

BATCH = 8


def write_series(directory: Path, values: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ids = np.arange(1, len(values) + 1, dtype=np.int64)
    pq.write_table(pa.table({"id": ids, "value": values}), directory / "series.parquet")
    return directory


def synthetic_series(n: int, seed: int = 0) -> np.ndarray:
    """P(X >= x) = 0.97 / x, floored at 1.00, rounded to 2 decimals (docs/design.md)."""
    u = np.random.default_rng(seed).random(n)
    return np.maximum(1.0, np.floor(0.97 / u * 100) / 100)


def window_throughput(features_dir: Path, model: ModelConfig, epochs: int = 2) -> dict:
    """Samples/s of whole train epochs of make_dataset (construction timed apart)."""
    start = time.perf_counter()
    dataset = make_dataset(features_dir, "train", model, BATCH, shuffle=True, seed=0)
    build_s = time.perf_counter() - start
    for _ in dataset.take(1):
        pass
    samples, start = 0, time.perf_counter()
    for epoch in range(epochs):
        dataset = make_dataset(features_dir, "train", model, BATCH, shuffle=True, epoch=epoch)
        for _, targets in dataset:
            samples += int(targets["regression"].shape[0])
    seconds = time.perf_counter() - start
    return {"samples": samples, "seconds": seconds, "per_s": samples / seconds, "build_s": build_s}


def numpy_generator_throughput(features_dir: Path, model: ModelConfig) -> dict:
    """The alternative design: numpy fancy-index gather in a Python generator (one epoch)."""
    arrays = load_split(features_dir, "train")
    series = load_log_series(features_dir)
    offsets = {n: np.arange(-length, 0) for n, length in model.sequence_inputs.items()}

    def batches():
        order = np.random.default_rng(0).permutation(len(arrays.index))
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            starts = arrays.index[rows][:, None]
            inputs = {"features": arrays.features[rows]}
            inputs |= {n: series[starts + o][..., None] for n, o in offsets.items()}
            yield inputs, {"regression": arrays.regression[rows]}

    spec = {
        n: tf.TensorSpec([None, length, 1], tf.float32)
        for n, length in model.sequence_inputs.items()
    }
    spec["features"] = tf.TensorSpec([None, model.n_features], tf.float32)
    signature = (spec, {"regression": tf.TensorSpec([None, 1], tf.float32)})
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(2)
    samples, start = 0, time.perf_counter()
    for _, targets in dataset:
        samples += int(targets["regression"].shape[0])
    seconds = time.perf_counter() - start
    return {"samples": samples, "seconds": seconds, "per_s": samples / seconds}


def train_step_throughput(features_dir: Path, model: ModelConfig, steps: int = 20) -> dict:
    """Samples/s of train_on_batch (float32, simple losses) on one real micro-batch."""
    from jetx.model.network import build_model
    from jetx.model.probe import PROBE_LOSSES

    keras.mixed_precision.set_global_policy("float32")
    net = build_model(model)
    net.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss=PROBE_LOSSES,
    )
    inputs, targets = next(iter(make_dataset(features_dir, "train", model, BATCH)))
    for _ in range(3):
        net.train_on_batch(inputs, targets)
    start = time.perf_counter()
    for _ in range(steps):
        net.train_on_batch(inputs, targets)
    seconds = (time.perf_counter() - start) / steps
    return {"params": net.count_params(), "step_s": seconds, "per_s": BATCH / seconds}


def real_history_prep(history: Path, root: Path) -> dict:
    """build_features wall time and split counts on the real history (ingested first)."""
    from jetx.data.ingest import ingest

    series_dir = root / "real_series"
    ingest(history, series_dir)
    start = time.perf_counter()
    manifest = build_features(series_dir, root / "real_features")
    return {"seconds": time.perf_counter() - start, **manifest}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--history", type=Path, default=Path("data/real/jetx_history.csv"))
    args = parser.parse_args()
    print(environment())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        series_dir = write_series(root / "series", synthetic_series(args.rounds))
        start = time.perf_counter()
        manifest = build_features(series_dir, root / "features")
        print(
            f"synthetic series: {args.rounds} rounds, counts {manifest['counts']}, "
            f"build_features {time.perf_counter() - start:.1f} s"
        )
        full = PRESETS["full"].model_for("full")
        lengths = dict(full.sequence_inputs)
        windows = window_throughput(root / "features", full)
        print(
            f"[1] make_dataset train, batch {BATCH}, variant full {lengths}: "
            f"{windows['per_s']:,.0f} samples/s ({windows['samples']} samples in "
            f"{windows['seconds']:.2f} s; dataset construction {windows['build_s']:.2f} s)"
        )
        alt = numpy_generator_throughput(root / "features", full)
        print(
            f"[1b] numpy gather + from_generator, same config: {alt['per_s']:,.0f} samples/s "
            f"(pure-TF gather is {windows['per_s'] / alt['per_s']:.1f}x that)"
        )
        try:
            step = train_step_throughput(root / "features", PRESETS["full"].model_for("no1000"))
        except ImportError as error:
            print(f"[2] no train-step figure: jetx.model.network is not importable ({error})")
        else:
            print(
                f"[2] train_on_batch, variant no1000 ({step['params']:,} params), micro-batch "
                f"{BATCH}, float32: {step['step_s'] * 1e3:.1f} ms/step = "
                f"{step['per_s']:,.0f} samples/s"
            )
            print(
                f"[1/2] window pipeline / fastest variant's training = "
                f"{windows['per_s'] / step['per_s']:.0f}x (goal >= 20x)"
            )
        if args.history.is_file():
            real = real_history_prep(args.history, root)
            print(
                f"[3] real history {args.history}: {real['n_rounds']} rounds, build_features "
                f"{real['seconds']:.2f} s, counts {real['counts']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
