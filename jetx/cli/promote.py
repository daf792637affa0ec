"""`jetx promote BUNDLE --out OUT`: pin a bundle as OUT's champion by hand, recorded as such."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.cli.common import add_command, add_json, out_dir
from jetx.layout import Workspace


def register(subparsers) -> None:
    """Add the `promote` subcommand."""
    parser = add_command(
        subparsers,
        "promote",
        summary="pin a bundle as the champion of a flow's out dir, by hand",
        description="""
        Make BUNDLE the champion of OUT (OUT/models/champion points at it), whatever the
        promotion gate would decide. A bundle from elsewhere is copied into OUT/models under
        its run id. The decision is written to OUT/models/promotion.json and appended to
        promotions.jsonl with "manual": true, beside the gate's figures against the base rate,
        so a pin never hides what the test found. `latest` is not moved.""",
        example="jetx promote runs/demo/models/<run id> --out runs/demo",
    )
    parser.add_argument("bundle", type=Path, help="a bundle dir (jetx export) or a pointer")
    parser.add_argument("--out", type=out_dir, required=True, help="the flow's out dir")
    add_json(parser, "the decision (promotion.json)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from jetx.serving.promotion import promote_by_hand

    models = Workspace(args.out).models
    record = promote_by_hand(models, args.bundle)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    gate = "would" if record["scores"]["gate_would_bless"] else "would not"
    print(f"{models.champion} -> {record['champion']} (pinned by hand; the gate {gate} bless it)")
    print(f"decision: {models.promotion}")
    return 0
