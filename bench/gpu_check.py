"""GPU check: the memory model and the training engine on a CUDA card capped at a T4's 15 GiB.

Run on any machine with a CUDA GPU and TensorFlow (nothing to edit):

    python bench/gpu_check.py [--out gpu_check.json]

(`--smoke`: tiny sizes for a run on the CPU path: tests/test_gpu_check.py runs it, 2 min 7 s here.)

It caps GPU:0 at 15 GiB (a logical device with a memory limit, here and, through
`JETX_GPU_MEMORY_LIMIT_MIB`, in every probe process), so that a bigger card behaves like the T4 the
original model failed on, and then:

  1. the memory audit at mixed_float16: one measured training step per variant
     (`jetx.model.footprint.measure_step`, a fresh process each) at the micro-batch that `plan`
     gives each stage for the budget, beside `predict_peak`;
  2. one real epoch of each stage (`jetx.training.schedule.train_stage` with the budget, so at the
     planned micro-batch) on a synthetic history, its allocator peak beside the prediction (the
     stage's peak also covers its validation pass, at the evaluation batch);
  3. an injected out-of-memory recovery: stage 1 with an OOM at its first update halves its
     micro-batch, doubles accumulation and finishes;

and prints one table with the predictions beside the measurements. Without a GPU the same code runs
on the CPU, uncapped, and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

from jetx.cli.common import add_stages
from jetx.config import GIB, MIB, get_preset
from jetx.io import write_json
from jetx.runtime import (
    GPU_MEMORY_LIMIT_ENV,
    configure_tensorflow,
    has_gpu,
    import_tensorflow,
    limit_gpu_memory,
)

BUDGET_GIB = 15
VARIANTS = ("remat", "chunked", "blockwise")


def cap_gpu(budget_gib: float) -> str:
    """Cap GPU:0 at the budget in this process and in every child; what was done, in words."""
    mib = int(budget_gib * GIB // MIB)
    os.environ[GPU_MEMORY_LIMIT_ENV] = str(mib)
    if limit_gpu_memory(mib):
        return f"GPU:0 capped at {mib} MiB"
    return "no GPU: the CPU path, uncapped" if not has_gpu() else "GPU cap failed (see log)"


def audit_rows(preset: str, variants, stages, budget: int, precision: str) -> list[dict]:
    """One measured step per variant and distinct planned micro-batch."""
    from jetx.model.footprint import measure_step, plan, predict_peak

    rows = []
    for variant in variants:
        model = get_preset(preset).model_for(variant)
        micro_batches = sorted({plan(model, s, budget, precision).micro_batch for s in stages})
        for micro_batch in micro_batches:
            measured = measure_step(model, micro_batch, precision)
            rows.append(
                _row(
                    "audit step",
                    variant,
                    f"{micro_batch}",
                    precision,
                    predict_peak(model, micro_batch, precision).predicted_peak_bytes,
                    measured["measured_peak_bytes"],
                    measured["memory_source"],
                    measured["step_seconds"],
                )
            )
    return rows


def stage_rows(data, stages, run_dir: Path, budget: int, precision: str) -> list[dict]:
    """One real epoch of each stage at the planned micro-batch."""
    from jetx.model.footprint import predict_peak
    from jetx.training.schedule import train_stage

    rows, start = [], None
    for stage in stages:
        result = train_stage(
            dataclasses.replace(stage, epochs=1),
            data,
            start,
            run_dir,
            precision=precision,
            budget_bytes=budget,
            verbose=0,
        )
        start = run_dir / result.best_checkpoint
        rows.append(_stage_row(f"stage {stage.stage} epoch", data, result, predict_peak))
    return rows


def oom_row(data, stage, run_dir: Path, budget: int, precision: str) -> dict:
    """Stage 1 with an out-of-memory injected at its first update: halved, finished."""
    from jetx.model.footprint import predict_peak
    from jetx.testing import faults
    from jetx.training.schedule import train_stage

    with faults.injected(oom=f"{stage.stage}:1"):
        result = train_stage(
            dataclasses.replace(stage, epochs=1),
            data,
            None,
            run_dir,
            precision=precision,
            budget_bytes=budget,
            verbose=0,
        )
    change = result.micro_batch_changes[0] if result.micro_batch_changes else None
    label = f"stage {stage.stage} OOM at update 1"
    label += f": {change['from']} -> {change['to']}" if change else ": NOT RECOVERED"
    return _stage_row(label, data, result, predict_peak)


def _stage_row(label, data, result, predict_peak) -> dict:
    predicted = predict_peak(data.model, result.micro_batch, result.precision)
    return _row(
        label,
        data.variant,
        f"{result.micro_batch}x{result.accumulation}",
        result.precision,
        predicted.predicted_peak_bytes,
        result.memory_peak_bytes if result.memory_source == "allocator" else None,
        result.memory_source,
        None,
        updates=result.updates,
    )


def _row(what, variant, batch, precision, predicted, measured, source, seconds, **extra) -> dict:
    return {
        "what": what,
        "variant": variant,
        "micro_batch": batch,
        "precision": precision,
        "predicted_bytes": predicted,
        "measured_bytes": measured,
        "predicted_over_measured": predicted / measured if measured else None,
        "memory_source": source,
        "step_seconds": seconds,
        **extra,
    }


def print_table(rows: list[dict]) -> None:
    print(
        f"{'what':<32} {'variant':<10} {'batch':>6} {'precision':<15} {'predicted':>10} "
        f"{'measured':>10} {'pred/meas':>9} {'source':<9} {'step s':>7}"
    )
    for r in rows:
        measured = f"{r['measured_bytes'] / GIB:.3f}G" if r["measured_bytes"] else "-"
        ratio = f"{r['predicted_over_measured']:.2f}" if r["predicted_over_measured"] else "-"
        seconds = f"{r['step_seconds']:.2f}" if r["step_seconds"] is not None else "-"
        print(
            f"{r['what']:<32} {r['variant']:<10} {r['micro_batch']:>6} {r['precision']:<15} "
            f"{r['predicted_bytes'] / GIB:>9.3f}G {measured:>10} {ratio:>9} "
            f"{r['memory_source']:<9} {seconds:>7}"
        )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help="audited")
    parser.add_argument("--variant", default="blockwise", help="trained, one epoch a stage")
    add_stages(parser)
    parser.add_argument("--precision", default="mixed_float16")
    parser.add_argument("--budget-gib", type=float, default=BUDGET_GIB)
    parser.add_argument("--rounds", type=int, default=3000, help="synthetic history length")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes (tiny preset, blockwise only, stage 1, 1500 rounds; float32 on a CPU): "
        "a CPU-path run",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.preset, args.variants, args.variant = "tiny", ["blockwise"], "blockwise"
        args.stages, args.rounds = 1, 1500
    configure_tensorflow()
    cap = cap_gpu(args.budget_gib)
    tf = import_tensorflow()
    if args.smoke and not has_gpu():
        args.precision = "float32"  # float16 is about 3x slower on a CPU

    from jetx.training.schedule import StageData

    sys.path.insert(0, str(Path(__file__).parent))
    from train import environment, features_dir

    print(f"GPU check: preset {args.preset}, {cap}; {environment()}")
    preset = get_preset(args.preset)
    stages = [s for s in preset.stages if s.stage <= args.stages]
    budget = int(args.budget_gib * GIB)
    rows = audit_rows(args.preset, args.variants, stages, budget, args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        data = StageData(features_dir(Path(tmp), args.rounds), preset, args.variant)
        rows += stage_rows(data, stages, Path(tmp) / "run", budget, args.precision)
        rows.append(oom_row(data, stages[0], Path(tmp) / "oom", budget, args.precision))
    device = "GPU:0" if has_gpu() else "CPU:0"
    print(f"budget {args.budget_gib:g} GiB, device {device}, TF {tf.__version__}")
    print_table(rows)
    if args.out:
        write_json(args.out, {"cap": cap, "rows": rows})
    return rows


if __name__ == "__main__":
    main()
