"""`jetx ingest SOURCE --out DIR`: validate a raw history into series, quarantine and manifest."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jetx.data.ingest import QuarantineError, ingest


def register(subparsers) -> None:
    """Add the `ingest` subcommand."""
    parser = subparsers.add_parser(
        "ingest",
        help="validate a CSV or SQLite history into series.parquet, quarantine and manifest",
    )
    parser.add_argument("source", type=Path, help="CSV file or SQLite database (by content)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1, writing nothing, if any row is quarantined"
    )
    parser.add_argument(
        "--table", default="jetx_results", help="SQLite table (default: %(default)s)"
    )
    parser.add_argument("--column", default="value", help="value column (default: %(default)s)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        manifest = ingest(
            args.source, args.out, strict=args.strict, table=args.table, column=args.column
        )
    except QuarantineError as error:
        print(f"jetx ingest: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    reasons = ", ".join(f"{r}: {n}" for r, n in manifest["quarantine_reasons"].items())
    print(
        f"{args.source}: {manifest['rows_read']} read, {manifest['rows_kept']} kept, "
        f"{manifest['rows_quarantined']} quarantined{f' ({reasons})' if reasons else ''} "
        f"-> {args.out}"
    )
    return 0
