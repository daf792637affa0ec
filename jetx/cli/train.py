"""`jetx train FEATURES_DIR --out RUN_DIR`: the staged schedule, without Prefect (see -h)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from jetx.cli.common import (
    add_command,
    add_json,
    add_preset,
    add_seed,
    add_stages,
    add_variant,
    out_dir,
)
from jetx.config import GIB, PRECISIONS, STRATEGIES, Preset, get_preset
from jetx.errors import JetxInputError
from jetx.layout import FeaturesDir

if TYPE_CHECKING:
    from jetx.training.memory_plan import MemoryLine


def register(subparsers) -> None:
    """Add the `train` subcommand."""
    parser = add_command(
        subparsers,
        "train",
        summary="train the stages (mixed precision, accumulation, checkpoints, resume)",
        description="""
        Train the preset's stages in order, each from the previous stage's best weights, with
        micro-batches and gradient accumulation (the effective batch is the stage's), mixed
        precision on a GPU, checkpoints every N optimizer updates and at each epoch's end, and
        an out-of-memory halving the micro-batch. Running it again on the same RUN_DIR resumes
        from the exact update it reached; --stages 2 trains stages 1 and 2 (a stage finished in
        RUN_DIR is not trained again, so stage 2 starts from stage 1's best checkpoint).
        --strategy mirrored trains on every visible GPU (or on the CPU split into
        JETX_CPU_DEVICES logical devices), multi-worker on the cluster TF_CONFIG describes; the
        micro-batch is global.""",
        example="jetx train runs/real/features --out runs/real/run --preset demo",
    )
    parser.add_argument("features_dir", type=Path, help="features dir (jetx features)")
    parser.add_argument("--out", type=out_dir, required=True, help="run dir (created or resumed)")
    add_preset(parser)
    add_variant(parser)
    add_stages(parser, default=None)
    parser.add_argument("--precision", choices=PRECISIONS, help="dtype policy (default: by device)")
    parser.add_argument(
        "--budget-gib", type=float, help="memory budget per device: plan the micro-batch"
    )
    add_seed(parser)
    parser.add_argument(
        "--strategy",
        default="none",
        choices=STRATEGIES,
        help="tf.distribute strategy; the micro-batch is global (split over the replicas)",
    )
    parser.add_argument("--epochs", type=int, help="override every stage's epochs")
    parser.add_argument("--checkpoint-every", type=int, help="override: updates per checkpoint")
    parser.add_argument(
        "--deterministic", action="store_true", help="deterministic ops (exact reruns, slower)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json(parser, "one stage result per line")
    parser.set_defaults(run=_run, needs_tensorflow=True)


def _preset(args: argparse.Namespace) -> Preset:
    preset = get_preset(args.preset)
    overrides = {}
    for name in ("epochs", "checkpoint_every"):
        value = getattr(args, name)
        if value is not None:
            if value < (1 if name == "epochs" else 0):
                raise JetxInputError(f"`--{name.replace('_', '-')}` is too small: {value}")
            overrides[name] = value
    if not overrides:
        return preset
    stages = tuple(dataclasses.replace(s, **overrides) for s in preset.stages)
    return dataclasses.replace(preset, stages=stages)


def _memory_line(args: argparse.Namespace) -> MemoryLine:
    """The measured plan's line for `--budget-gib`, as the flow measures it (two engine steps on
    this device, each in a fresh process; the analytic model only where none can run), before
    this process touches the device."""
    from jetx.training.memory_plan import measure_line
    from jetx.training.precision import check_precision

    preset = get_preset(args.preset)
    config = preset.model_for(args.variant)
    return measure_line(config, preset.stages[0], check_precision(args.precision))


def _run(args: argparse.Namespace) -> int:
    if args.budget_gib is not None and args.budget_gib <= 0:
        raise JetxInputError(f"`--budget-gib` must be positive. Received: {args.budget_gib}")
    FeaturesDir(args.features_dir).manifest()  # a clear error before TensorFlow starts
    memory_line = None if args.budget_gib is None else _memory_line(args)
    import tensorflow as tf

    from jetx.training.distribute import get_distribution
    from jetx.training.schedule import StageData, run_schedule

    get_distribution(args.strategy)  # before any TensorFlow op: it may split the CPU
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = StageData(args.features_dir, _preset(args), args.variant, args.seed)
    results = run_schedule(
        data,
        args.out,
        stages=None if args.stages is None else tuple(range(1, args.stages + 1)),
        precision=args.precision,
        budget_bytes=int(args.budget_gib * GIB) if args.budget_gib else None,
        memory_line=memory_line,
        verbose=0 if args.quiet else 1,
        strategy=args.strategy,
    )
    for result in results:
        if args.json:
            print(json.dumps(result.to_dict()))
            continue
        val_loss = result.best_val_metrics.get("val_loss")
        print(
            f"stage {result.stage}: {result.epochs_run} epochs, {result.updates} updates, "
            f"micro-batch {result.micro_batch} x {result.accumulation}, best epoch "
            f"{result.best_epoch} (val_loss {val_loss:.4f}) -> {args.out / result.best_checkpoint}"
        )
    return 0
