"""`jetx evaluate RUN_DIR --features DIR --preset P`: score a run and write RUN_DIR/report/."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.config import PRESETS, VARIANTS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score each stage's best checkpoint on the test split against baselines; "
        "write RUN_DIR/report (report.md, metrics.json, plots)",
    )
    parser.add_argument("run_dir", type=Path, help="training run dir (stage*/checkpoints)")
    parser.add_argument("--features", type=Path, required=True, help="features dir it used")
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="default: the preset's")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument(
        "--cut", type=float, default=0.5, help="bet when p(value >= 1.5) >= cut (default 0.5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    parser.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from jetx.evaluate import evaluate_run
    from jetx.report import write_report

    evaluation, test = evaluate_run(
        args.run_dir,
        args.features,
        args.preset,
        args.variant,
        split=args.split,
        cut=args.cut,
        seed=args.seed,
    )
    path = write_report(args.run_dir, evaluation, test.y_value, test.p_threshold)
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
