"""`jetx walk-forward SOURCE --out DIR`: train at K rolling origins and pool their test blocks.

The history is ingested into DIR/series; origin k's data (the history cut after its block, and
its features) goes to DIR/origin{k}, its run to DIR/origin{k}/run, and the pooled evaluation
and report to DIR/report. Running the same command again resumes: built origins are kept,
finished stages are not trained again, an interrupted stage resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from jetx.cli.common import (
    add_command,
    add_json,
    add_preset,
    add_seed,
    add_stages,
    add_variant,
    out_dir,
)
from jetx.config import get_preset
from jetx.errors import JetxInputError


def register(subparsers) -> None:
    """Add the `walk-forward` subcommand."""
    parser = add_command(
        subparsers,
        "walk-forward",
        summary="train at K rolling origins and pool their out-of-sample blocks (DIR/report)",
        description="""
        Evaluate on a rolling forecasting origin: origin k trains on every round before it
        (nothing later is read), scores the block of rounds after it, and the out-of-sample
        rounds of all origins are pooled into one proper-score comparison (log loss and Brier
        against the prior base rate and the house's 0.97/1.5), one Diebold-Mariano test (HAR
        variance),
        one bankroll and a verdict adjusted for every trial, with one row per origin beside it.
        The stage engine, its checkpoints and resume are reused: running the command again on
        the same DIR keeps built origins and finished stages.""",
        example="jetx walk-forward data/sample.csv --out runs/wf --preset demo --origins 5",
    )
    parser.add_argument("source", type=Path, help="CSV or SQLite history")
    parser.add_argument("--out", type=out_dir, required=True, help="walk-forward dir (resumed)")
    parser.add_argument("--origins", type=int, default=5, help="rolling origins, >= 5")
    parser.add_argument(
        "--block", type=int, help="rounds scored per origin (default: the preset's eval cap)"
    )
    add_preset(parser)
    add_variant(parser)
    add_stages(parser, default=1)
    add_seed(parser)
    parser.add_argument("--cut", type=float, default=0.5, help="bet when p(value >= 1.5) >= cut")
    add_json(parser, "the pooled evaluation.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run, needs_tensorflow=True)


def _run(args: argparse.Namespace) -> int:
    from jetx.data.ingest import ingest
    from jetx.evaluation.walk_forward.pool import run_walk_forward
    from jetx.layout import WalkForwardDir

    if not 0.0 <= args.cut <= 1.0:
        raise JetxInputError(f"`--cut` must be in [0, 1]. Received: {args.cut}")
    started = time.monotonic()
    layout = WalkForwardDir(args.out)
    ingest(args.source, layout.series.path)
    evaluation = run_walk_forward(
        layout.series.path,
        args.out,
        preset=get_preset(args.preset),
        variant=args.variant,
        origins=args.origins,
        block=args.block,
        stages=tuple(range(1, args.stages + 1)),
        seed=args.seed,
        cut=args.cut,
        verbose=0 if args.quiet else 1,
    )
    if args.json:
        print(json.dumps(evaluation, indent=2))
        return 0
    print(evaluation["walk_forward"]["description"].replace("**", ""))
    for stage in evaluation["stages"]:
        print(f"pooled stage {stage['stage']}: {stage['skill_verdict']}")
        print(
            f"pooled stage {stage['stage']} (cut {stage['cut']:.2f}): {stage['bankroll_verdict']}"
        )
    print(f"report: {layout.report_md} ({time.monotonic() - started:.0f} s)")
    return 0
