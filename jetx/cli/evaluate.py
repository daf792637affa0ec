"""`jetx evaluate RUN_DIR`: score a run and write RUN_DIR/report/.

The features dir, preset, variant and seed default to what `jetx train` recorded in
RUN_DIR/run.json, so evaluating a run needs nothing but its directory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.cli.train import RUN_FILE
from jetx.config import PRESETS, VARIANTS, Preset
from jetx.errors import JetxInputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score each stage's best checkpoint on the test split against baselines; "
        "write RUN_DIR/report (report.md, metrics.json, plots)",
    )
    parser.add_argument("run_dir", type=Path, help="training run dir (stage*/checkpoints)")
    parser.add_argument("--features", type=Path, help="features dir it used (default: run.json's)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="default: run.json's")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="default: run.json's")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument(
        "--cut", type=float, default=0.5, help="bet when p(value >= 1.5) >= cut (default 0.5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    parser.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    parser.set_defaults(run=_run, needs_tensorflow=True)


def _run(args: argparse.Namespace) -> int:
    from jetx.evaluation.report import write_report
    from jetx.evaluation.scoring import evaluate_run

    features, preset, variant = _run_settings(args)
    evaluation, test = evaluate_run(
        args.run_dir,
        features,
        preset,
        variant,
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


def _run_settings(args: argparse.Namespace) -> tuple[Path, str | Preset, str | None]:
    """Features dir, preset and variant: the flags, else what `jetx train` recorded."""
    recorded_file = args.run_dir / RUN_FILE
    recorded = json.loads(recorded_file.read_text()) if recorded_file.is_file() else {}
    features = args.features or (recorded.get("features_dir") and Path(recorded["features_dir"]))
    preset = args.preset or (recorded.get("preset") and Preset.from_dict(recorded["preset"]))
    if not features or not preset:
        raise JetxInputError(
            f"{recorded_file} is missing (the run was not made by `jetx train`): give "
            "`--features DIR` and `--preset NAME`."
        )
    return features, preset, args.variant or recorded.get("variant")
