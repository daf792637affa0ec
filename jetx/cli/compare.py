"""`jetx compare RUN_DIR [RUN_DIR ...]`: one table across runs, stages and variants."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.cli.common import add_command, add_json


def register(subparsers) -> None:
    """Add the `compare` subcommand."""
    parser = add_command(
        subparsers,
        "compare",
        summary="one table of evaluated runs, with the run each one replaces",
        description="""
        One table across evaluated runs: each stage at its cut and the always-bet baseline, with
        the peak memory (and its source), the training time and the parameters. Each run's
        previous run (the newest older evaluated run beside it) joins the table, marked as
        trained on the same data or on another history.""",
        example="jetx compare runs/demo/train/*",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", help="evaluated run dirs")
    parser.add_argument(
        "--no-previous", action="store_true", help="do not add the run each one replaces"
    )
    add_json(parser, "the rows")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from jetx.evaluation.report.compare import compare_rows
    from jetx.evaluation.report.tables import markdown_table

    rows = compare_rows(args.run_dirs, include_previous=not args.no_previous)
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))
    return 0
