"""`jetx plan`: the largest micro-batch that fits a memory budget, measured on this device."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from jetx.cli.common import add_command, add_json, add_preset, add_stages, add_variant
from jetx.config import GIB, PRECISIONS, get_preset
from jetx.errors import JetxInputError
from jetx.model.footprint import fits_budget
from jetx.training.memory_plan import (
    PROBE_PAIR,
    check_line,
    confirm_plans,
    measure_line,
    plan_stage,
)


def register(subparsers) -> None:
    """Add the `plan` subcommand."""
    parser = add_command(
        subparsers,
        "plan",
        summary="plan the micro-batch that fits a memory budget, measured on this device",
        description="""
        Measure the training engine's own step (its stage loss, float32 accumulators and Adam)
        in a fresh process on the device the run uses (GPU:0 when present, else CPU:0) at two
        small micro-batches, fit peak = fixed + per_sample x micro_batch, check the line against
        a third measured step, and print, per stage, the largest micro-batch (and the
        accumulation that keeps the effective batch) whose peak plus the planner's margin fits
        the budget. The largest planned micro-batch is then run for real, and stepped down
        while its measured peak plus the margin does not fit (a line through small steps can
        under-estimate a larger one). Where no device step can run, the analytic model is the
        fallback and the output says so.""",
        example="jetx plan --budget-gib 15 --preset full --variant chunked --precision float32",
    )
    parser.add_argument(
        "--budget-gib", required=True, help="memory one training step may use, in GiB"
    )
    add_variant(parser)
    parser.add_argument("--precision", default="float32", choices=PRECISIONS, help="dtype policy")
    add_preset(parser)
    add_stages(parser)
    parser.add_argument(
        "--pair", type=int, nargs=2, default=PROBE_PAIR, metavar=("M1", "M2"),
        help="the two micro-batches measured",
    )  # fmt: skip
    parser.add_argument(
        "--check", type=int, default=None, metavar="M",
        help="the micro-batch of a third step that checks the line (default: 2 x M2 where the "
        "line says it fits the budget; 0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--no-confirm", action="store_true",
        help="do not run the largest planned micro-batch (the plan is then the line's alone)",
    )  # fmt: skip
    add_json(parser, "the plan")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    budget_gib = _budget_gib(args.budget_gib)
    if min(args.pair) < 1 or args.pair[0] == args.pair[1]:
        raise JetxInputError(f"`--pair` must be two different micro-batches >= 1. Received: "
                             f"{args.pair[0]} {args.pair[1]}")  # fmt: skip
    preset = get_preset(args.preset)
    variant = args.variant or preset.variant
    config = preset.model_for(variant)
    line = measure_line(config, preset.stages[0], args.precision, tuple(args.pair))
    budget = int(budget_gib * GIB)
    check = 2 * max(args.pair) if args.check is None else args.check
    # The default check is measured only where the line says it fits; one asked for, always.
    wanted = args.check is not None or fits_budget(line.peak(check), budget)
    if line.method == "measured" and check and wanted:
        line = check_line(line, config, preset.stages[0], args.precision, check)
    stages = list(preset.stages[: args.stages])
    plans = [plan_stage(line, stage, budget) for stage in stages]
    tried = []
    if line.method == "measured" and not args.no_confirm:
        plans, tried = confirm_plans(plans, stages, config, args.precision)
    if args.json:
        row = {"preset": args.preset, "variant": variant, "precision": args.precision}
        row |= {"budget_bytes": budget, "line": line.to_dict(), "residual": line.residual}
        row["stages"] = [{k: v for k, v in asdict(p).items() if k != "line"} for p in plans]
        row["confirm_steps"] = tried
        print(json.dumps(row))
        return 0
    _print(args, variant, budget_gib, line, plans, tried)
    return 0


def _budget_gib(text: str) -> float:
    """The budget in GiB, parsed here so that a bad one is one line (exit 2), not a usage."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):  # refuses nan, inf, 0 and below
        raise JetxInputError(f"`--budget-gib` must be a number of GiB > 0. Received: {text!r}")
    return value


def _print(args, variant: str, budget_gib: float, line, plans, tried) -> None:
    where = f"measured on {line.device}" if line.method == "measured" else "ANALYTIC FALLBACK"
    print(f"{args.preset}/{variant} {args.precision}, budget {budget_gib:g} GiB ({where})")
    if line.method == "analytic":
        print(f"  no device step could run: {line.note}")
    points = ", ".join(f"{m}: {p / GIB:.4f} GiB" for m, p in line.points) or "none"
    print(f"  measured points    {points}")
    print(
        f"  fit                peak = {line.fixed_bytes / GIB:.4f} GiB + "
        f"{line.per_sample_bytes / 2**20:.2f} MiB x micro_batch"
    )
    if line.check is not None:
        m, measured, predicted = line.check
        print(
            f"  check              micro-batch {m}: measured {measured / GIB:.4f} GiB, line "
            f"{predicted / GIB:.4f} GiB, residual {line.residual:+.1%}"
        )
    for m, peak in tried:
        fits = peak is not None and fits_budget(peak, plans[0].budget_bytes, plans[0].margin)
        measured = "out of memory" if peak is None else f"measured {peak / GIB:.4f} GiB"
        verdict = "fits" if fits else "does not fit"
        print(f"  run                micro-batch {m}: {measured}, {verdict}")
    for stage, p in enumerate(plans, start=1):
        print(
            f"  stage {stage}            micro-batch {p.micro_batch} x {p.accumulation} "
            f"accumulation: peak {p.predicted_peak_bytes / GIB:.3f} GiB + {p.margin:.0%} margin "
            f"<= {p.budget_bytes / GIB:.3f} GiB"
        )
