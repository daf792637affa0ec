"""`jetx features SERIES_DIR --out DIR`: build the features dir (features, targets, splits)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.errors import JetxInputError
from jetx.features.build import build_features
from jetx.features.splits import DEFAULT_FRACTIONS


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise JetxInputError(
            f"`--fractions` must be three comma-separated numbers like 0.7,0.15,0.15. "
            f"Received: --fractions={text!r}"
        ) from None


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "features", help="compute the 121 features, targets and chronological splits"
    )
    parser.add_argument("series_dir", type=Path, help="dir with series.parquet (jetx ingest)")
    parser.add_argument("--out", type=Path, required=True, help="features dir to write")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.add_argument(
        "--fractions",
        default=",".join(str(f) for f in DEFAULT_FRACTIONS),
        help="train,val,test fractions, chronological (default: %(default)s)",
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    manifest = build_features(args.series_dir, args.out, fractions=_fractions(args.fractions))
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        counts = manifest["counts"]
        print(
            f"{sum(counts.values())} samples (train {counts['train']}, val {counts['val']}, "
            f"test {counts['test']}) x {len(manifest['feature_names'])} features -> {args.out}"
        )
    return 0
