"""`jetx compare RUN_DIR [RUN_DIR ...]`: one table across runs, stages and variants."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="one table of evaluated runs (metrics, peak memory, time, parameters), with each "
        "run's previous run of the same data",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", help="evaluated run dirs")
    parser.add_argument(
        "--no-previous", action="store_true", help="do not add the previous run of the same data"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from jetx.evaluation.compare import compare_rows
    from jetx.evaluation.report import markdown_table

    rows = compare_rows(args.run_dirs, include_previous=not args.no_previous)
    print(json.dumps(rows, indent=2) if args.json else markdown_table(rows))
    return 0
