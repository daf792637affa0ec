"""`jetx features SERIES_DIR --out DIR`: build the features dir (features, targets, splits)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.cli.common import add_command, add_json, out_dir
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
    """Add the `features` subcommand."""
    parser = add_command(
        subparsers,
        "features",
        summary="compute the 121 features, targets and chronological splits",
        description="""
        Compute every sample's 121 features from the rounds before it only, its three targets
        and its split (oldest train, then validation, then test; never shuffled across), and fit
        the feature scaler on the train split only. Writes a self-contained features dir:
        features.parquet, scaler.json, series.parquet and manifest.json (written last).""",
        example="jetx features runs/real/series --out runs/real/features",
    )
    parser.add_argument("series_dir", type=Path, help="dir with series.parquet (jetx ingest)")
    parser.add_argument("--out", type=out_dir, required=True, help="features dir to write")
    add_json(parser, "the manifest")
    parser.add_argument(
        "--fractions",
        default=",".join(str(f) for f in DEFAULT_FRACTIONS),
        help="train,val,test fractions, chronological",
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
