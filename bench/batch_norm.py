"""Batch norm under accumulation: stage 3 at micro-batch 2 x 8 against one batch of 16 x 1.

Run: .venv/bin/python bench/batch_norm.py [--rounds 6000] [--seeds 0 1 2] [--epochs 4]

Figures (one function each), for batch norm and layer norm in the MLP branches and the fusion:
  1. stage 3's validation figures after training at 2 x 8 and at 16 x 1 (same seed, same
     samples in the same order, same effective batch), per seed, and their differences;
  2. the batch-norm layers' moving statistics against the population statistics of their inputs
     (the whole train split through the trained model in inference mode): the moving variance
     over the population variance (1.0 is right) and the moving mean's error in population
     standard deviations. At micro-batch 2 a batch's (biased) variance is on average half the
     population's, and the moving averages inherit it.

The model is the demo preset's `no1000` variant (the batch-norm layers are all in the MLP branches
and the fusion, which it keeps), trained from fresh weights; dropout is on in every run, so
layer norm's 2 x 8 and 16 x 1 runs differ by their dropout masks only.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from jetx.config import PRESETS, MonitorConfig
from jetx.training.callbacks.epoch_records import read_records
from jetx.training.checkpoint import restore_variables
from jetx.training.schedule import StageData, train_stage

sys.path.insert(0, str(Path(__file__).parent))
from train import environment, features_dir  # noqa: E402

DEMO = PRESETS["demo"]
FIGURES = ("val_loss", "val_threshold_loss", "val_threshold_accuracy", "val_mae")


def run_stage3(
    features: Path, root: Path, *, normalization: str, micro_batch: int, seed: int, epochs: int
) -> dict:
    """Train stage 3 alone at `micro_batch` (accumulation keeps the effective batch 16)."""
    model = dataclasses.replace(DEMO.model, normalization=normalization)
    preset = dataclasses.replace(DEMO, model=model, max_train_samples=None, max_eval_samples=None)
    data = StageData(features, preset, "no1000", seed)
    stage = dataclasses.replace(
        DEMO.stages[2],
        epochs=epochs,
        early_stopping=MonitorConfig(patience=epochs),
        checkpoint_every=0,
    )
    run_dir = root / f"{normalization}-mb{micro_batch}-seed{seed}"
    result = train_stage(stage, data, None, run_dir, micro_batch=micro_batch, verbose=0)
    last = [r for r in read_records(run_dir / "metrics.jsonl") if r.get("stage") == 3][-1]
    figures = {name: last[name] for name in FIGURES}
    if normalization == "batch":
        figures.update(moving_statistics(data, run_dir / result.last_checkpoint))
    return {"micro_batch": result.micro_batch, "accumulation": result.accumulation, **figures}


def moving_statistics(data: StageData, checkpoint: Path) -> dict[str, float]:
    """Moving variance / population variance and moving-mean error, over all BN units."""
    model = data.build_model()
    restore_variables(checkpoint, {"model": model.variables})
    norms = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    probe = keras.Model(model.inputs, [x.input for x in norms])
    batches = [probe(inputs, training=False) for inputs, _ in data.train_batches(64, 0, 0)]
    ratios, errors = [], []
    for i, norm in enumerate(norms):
        values = np.concatenate([np.asarray(b[i]) for b in batches]).astype("float64")
        mean, var = values.mean(axis=0), values.var(axis=0)
        live = var > 1e-8  # dead ReLU units have no variance to estimate
        moving_mean, moving_var = (np.asarray(v) for v in (norm.moving_mean, norm.moving_variance))
        ratios.append(moving_var[live] / var[live])
        errors.append(np.abs(moving_mean[live] - mean[live]) / np.sqrt(var[live]))
    ratio, error = np.concatenate(ratios), np.concatenate(errors)
    return {
        "moving_var_ratio_median": float(np.median(ratio)),
        "moving_mean_error_sd_median": float(np.median(error)),
        "units": int(ratio.size),
    }


def print_rows(rows: list[dict]) -> None:
    print(
        f"{'norm':<6} {'seed':>4} {'mb x acc':>8} "
        + " ".join(f"{n:>22}" for n in FIGURES)
        + f" {'movvar/popvar':>13} {'|mean err|/sd':>13}"
    )
    for r in rows:
        extra = (
            f" {r['moving_var_ratio_median']:>13.3f} {r['moving_mean_error_sd_median']:>13.3f}"
            if "units" in r
            else ""
        )
        print(
            f"{r['normalization']:<6} {r['seed']:>4} {r['micro_batch']:>4} x {r['accumulation']:<2}"
            + " ".join(f"{r[n]:>22.4f}" for n in FIGURES)
            + extra
        )


def print_differences(rows: list[dict], seeds: list[int]) -> None:
    """Mean |2 x 8 - 16 x 1| per figure over seeds, against the spread across seeds at 16 x 1."""
    for norm in ("batch", "layer"):
        pick = {(r["seed"], r["micro_batch"]): r for r in rows if r["normalization"] == norm}
        for name in FIGURES:
            gaps = [abs(pick[(s, 2)][name] - pick[(s, 16)][name]) for s in seeds]
            spread = statistics.pstdev([pick[(s, 16)][name] for s in seeds])
            print(
                f"{norm} norm, {name}: mean |2x8 - 16x1| {statistics.mean(gaps):.4f} "
                f"(seed-to-seed sd at 16x1: {spread:.4f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    print(f"batch norm under accumulation: demo preset, no1000, stage 3; {environment()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        features = features_dir(root, args.rounds)
        rows = []
        for seed in args.seeds:
            for normalization in ("batch", "layer"):
                for micro_batch in (2, 16):
                    row = run_stage3(
                        features,
                        root,
                        normalization=normalization,
                        micro_batch=micro_batch,
                        seed=seed,
                        epochs=args.epochs,
                    )
                    rows.append({"normalization": normalization, "seed": seed, **row})
                    print_rows(rows[-1:])
    print(f"{args.rounds} rounds, {args.epochs} epochs of stage 3 from fresh weights")
    print_rows(rows)
    print_differences(rows, args.seeds)


if __name__ == "__main__":
    main()
