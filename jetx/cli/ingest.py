"""`jetx ingest SOURCE --out DIR`: validate a raw history into series, quarantine and manifest."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jetx.cli.common import add_command, add_json, out_dir
from jetx.data.ingest import QuarantineError, ingest


def register(subparsers) -> None:
    """Add the `ingest` subcommand."""
    parser = add_command(
        subparsers,
        "ingest",
        summary="validate a CSV or SQLite history into series.parquet, quarantine and manifest",
        description="""
        Read a raw history, a CSV with a `value` column (and an optional `id` that orders the
        rounds) or a SQLite database (told apart by content, not by name), in batches. A valid
        value is a finite number >= 1.00; every other row goes to quarantine.parquet with its
        line or id, its raw text and the reason, so that rows read = rows kept + rows
        quarantined. Writes series.parquet, quarantine.parquet and manifest.json.""",
        example="jetx ingest data/real/jetx_data.db --out runs/real/series",
    )
    parser.add_argument("source", type=Path, help="CSV file or SQLite database (by content)")
    parser.add_argument("--out", type=out_dir, required=True, help="output directory")
    add_json(parser, "the manifest")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1, writing nothing, if any row is quarantined"
    )
    parser.add_argument("--table", default="jetx_results", help="SQLite table")
    parser.add_argument("--column", default="value", help="value column (CSV header or SQLite)")
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
