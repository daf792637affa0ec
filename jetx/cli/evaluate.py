"""`jetx evaluate RUN_DIR`: score a run and write RUN_DIR/report/.

What the run was trained on (features dir, preset values, variant, seed) is in its run.json,
written by the training library whoever ran it (`jetx train` or the flow), so evaluating a run
needs nothing but its directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.cli.common import add_command, add_json, add_seed
from jetx.layout import RunDir


def register(subparsers) -> None:
    """Add the `evaluate` subcommand."""
    parser = add_command(
        subparsers,
        "evaluate",
        summary="score each stage by proper scores and bets against baselines; RUN_DIR/report",
        description="""
        Score the best checkpoint of every trained stage on the test rounds: its forecasts by
        log loss and Brier score against the prior base rate and the house's 0.97/1.5 (skill
        with block-bootstrap intervals, a Diebold-Mariano test with a HAR variance,
        calibration), then its bets
        against always-bet, never-bet and a bet at the base rate, at the given cut and at the cut
        chosen on validation (never on test). Every verdict is adjusted for the stages x cuts
        tried and says what its test could have detected. Writes RUN_DIR/report/:
        evaluation.json, predictions.npz, report.md and its plots. A run made by `jetx train`
        and one made by the flow are evaluated alike (their run.json says what trained them).""",
        example="jetx evaluate runs/demo/train/<run>",
    )
    parser.add_argument("run_dir", type=Path, help="training run dir (run.json, stage*/)")
    parser.add_argument(
        "--features", type=Path, help="features dir to score on (default: the run's own)"
    )
    parser.add_argument(
        "--split", choices=("test", "val"), default="test", help="the split to score"
    )
    parser.add_argument("--cut", type=float, default=0.5, help="bet when p(value >= 1.5) >= cut")
    add_seed(parser, what="the random baseline")
    add_json(parser, "evaluation.json")
    parser.set_defaults(run=_run, needs_tensorflow=True)


def _run(args: argparse.Namespace) -> int:
    from jetx.evaluation.report.markdown import write_report
    from jetx.evaluation.run import evaluate_run

    with RunDir(args.run_dir).lock():  # a run being trained or evaluated elsewhere: refuse
        evaluation = evaluate_run(
            args.run_dir, features_dir=args.features, split=args.split, cut=args.cut, seed=args.seed
        )
        path = write_report(args.run_dir)
    if args.json:
        print(json.dumps(evaluation, indent=2))
        return 0
    for stage in evaluation["stages"]:
        print(f"stage {stage['stage']} (cut {stage['cut']:.2f}): {stage['verdict']}")
        print(
            f"stage {stage['stage']} (validation cut {stage['val_cut']:.2f}): "
            f"{stage['verdict_at_val_cut']}"
        )
    print(f"report: {path}")
    return 0
