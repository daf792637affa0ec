"""`jetx synth --rounds N --seed S --out FILE.csv`: write a synthetic crash-game history."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.cli.common import add_command, add_json, add_seed
from jetx.data.synth import SIGNALS, synthesize, write_csv


def register(subparsers) -> None:
    """Add the `synth` subcommand."""
    parser = add_command(
        subparsers,
        "synth",
        summary="write a synthetic history (id,value CSV), deterministic per seed",
        description="""
        Write a synthetic crash-game history: i.i.d. rounds with P(X >= x) = 0.97 / x (a 3% house
        edge, nothing to learn), or the same with one planted, learnable rule (see jetx.data.synth
        for the rule and its exact Bayes-optimal accuracy). Use it to check that the pipeline
        finds nothing where there is nothing, and something where there is.""",
        example="jetx synth --rounds 20000 --seed 2 --out data/sample.csv",
    )
    parser.add_argument("--rounds", type=int, required=True, help="number of rounds")
    add_seed(parser, required=True, what="the rounds (>= 0)")
    parser.add_argument("--out", type=Path, required=True, help="output CSV file")
    parser.add_argument(
        "--signal",
        choices=SIGNALS,
        default="none",
        help="none: i.i.d.; planted: a learnable run rule (see jetx.data.synth)",
    )
    add_json(parser, "what was written")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    values = synthesize(args.rounds, args.seed, args.signal)
    write_csv(args.out, values)
    written = {"out": str(args.out), "rounds": int(values.size)}
    written.update(signal=args.signal, seed=args.seed)
    if args.json:
        print(json.dumps(written))
    else:
        print(f"{args.out}: {values.size} rounds, signal={args.signal}, seed={args.seed}")
    return 0
