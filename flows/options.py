"""The `jetx` flow's parameters as command-line options, for every command that runs it.

`python -m flows.progressive`, `jetx run` and `jetx serve` share them. Kept apart from the flow
so that building the `jetx` parser imports neither Prefect nor TensorFlow.
"""

import argparse
from pathlib import Path

from jetx.config import PRESETS, VARIANTS


def add_flow_arguments(parser: argparse.ArgumentParser) -> None:
    """The flow's parameters as command-line options (`python -m flows.progressive`, `jetx run`,
    `jetx serve`), with the flow's own defaults."""
    parser.add_argument(
        "--source", type=Path, default=Path("data/sample.csv"), help="CSV or SQLite history"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="where data, features and runs go"
    )
    parser.add_argument(
        "--variant", choices=sorted(VARIANTS), help="model variant (default: the preset's)"
    )
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="demo", help="model size and schedule"
    )
    parser.add_argument(
        "--stages", type=int, choices=(1, 2, 3), default=3, help="how many stages to train"
    )
    parser.add_argument("--budget-gib", type=float, help="memory budget: plan the micro-batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling")


def flow_parameters(args: argparse.Namespace) -> dict:
    """The flow's parameters from parsed options (see `add_flow_arguments`)."""
    names = ("source", "out", "variant", "preset", "stages", "budget_gib", "seed")
    return {name: getattr(args, name) for name in names}
