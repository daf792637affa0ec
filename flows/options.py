"""The `jetx` flow's parameters as command-line options, for every command that runs it.

`python -m flows.progressive`, `jetx run` and `jetx serve` share them. Kept apart from the flow
so that building the `jetx` parser imports neither Prefect nor TensorFlow.
"""

import argparse
from pathlib import Path

from jetx.cli.common import add_preset, add_seed, add_stages, add_variant, out_dir


def add_flow_arguments(parser: argparse.ArgumentParser) -> None:
    """The flow's parameters as command-line options (`python -m flows.progressive`, `jetx run`,
    `jetx serve`), with the flow's own defaults."""
    parser.add_argument(
        "--source", type=Path, default=Path("data/sample.csv"), help="CSV or SQLite history"
    )
    parser.add_argument(
        "--out", type=out_dir, default=Path("runs/demo"), help="where data, features and runs go"
    )
    add_variant(parser)
    add_preset(parser)
    add_stages(parser)
    parser.add_argument("--budget-gib", type=float, help="memory budget: plan the micro-batch")
    add_seed(parser)
    parser.add_argument(
        "--keep-runs",
        type=int,
        default=3,
        help="newest runs kept whole besides champion and latest; older ones are pruned",
    )


def flow_parameters(args: argparse.Namespace) -> dict:
    """The flow's parameters from parsed options (see `add_flow_arguments`)."""
    names = ("source", "out", "variant", "preset", "stages", "budget_gib", "seed", "keep_runs")
    return {name: getattr(args, name) for name in names}
