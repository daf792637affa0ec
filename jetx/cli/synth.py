"""`jetx synth --rounds N --seed S --out FILE.csv`: write a synthetic crash-game history."""

from __future__ import annotations

import argparse
from pathlib import Path

from jetx.data.synth import SIGNALS, synthesize, write_csv


def register(subparsers) -> None:
    """Add the `synth` subcommand."""
    parser = subparsers.add_parser(
        "synth", help="write a synthetic history (id,value CSV), deterministic per seed"
    )
    parser.add_argument("--rounds", type=int, required=True, help="number of rounds")
    parser.add_argument("--seed", type=int, required=True, help="random seed (>= 0)")
    parser.add_argument("--out", type=Path, required=True, help="output CSV file")
    parser.add_argument(
        "--signal",
        choices=SIGNALS,
        default="none",
        help="none: i.i.d.; planted: a learnable run rule (see jetx.data.synth)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    values = synthesize(args.rounds, args.seed, args.signal)
    write_csv(args.out, values)
    print(f"{args.out}: {values.size} rounds, signal={args.signal}, seed={args.seed}")
    return 0
