"""`jetx predict BUNDLE --history SOURCE`: the next round, with the bundle's verdict beside it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.cli.common import add_command, add_json


def register(subparsers) -> None:
    """Add the `predict` subcommand."""
    parser = add_command(
        subparsers,
        "predict",
        summary="predict the next round from a bundle and a history (CSV or SQLite)",
        description="""
        Validate the history with ingest's rules (a bad newest round is an error), build the
        next round's features and windows with the code that built the training batches, and
        print the probability that it reaches 1.5x, the class probabilities, the regression
        output and bet / no bet at the bundle's cut. Every prediction also prints the bundle's
        test verdict and the base rate: a model with no evidence of skill says so each time, and
        a bundle that was champion and was demoted says that first.""",
        example="jetx predict runs/demo/models/latest --history data/real/jetx_data.db",
    )
    parser.add_argument("bundle", type=Path, help="a bundle dir (jetx export, models/latest)")
    parser.add_argument(
        "--history", type=Path, required=True, help="the history: CSV or SQLite, by content"
    )
    parser.add_argument("--table", default="jetx_results", help="SQLite table")
    parser.add_argument("--column", default="value", help="value column (CSV header or SQLite)")
    add_json(parser, "one object")
    parser.set_defaults(run=_run, needs_tensorflow=True)


def _run(args: argparse.Namespace) -> int:
    from jetx.layout import ModelsDir
    from jetx.serving.bundle import load_bundle
    from jetx.serving.ledger import demotion
    from jetx.serving.predict import predict_next, read_history

    bundle = load_bundle(args.bundle)
    values = read_history(args.history, table=args.table, column=args.column)
    prediction = predict_next(bundle, values)
    demoted = demotion(ModelsDir(bundle.path.parent), bundle.path.name)
    prediction["demoted"] = (
        {"decided_at": demoted.decided_at, "reasons": demoted.reasons} if demoted else None
    )
    if args.json:
        print(json.dumps(prediction))
        return 0
    if demoted:
        print(
            f"DEMOTED on {demoted.decided_at}: this bundle was the champion and no longer beat "
            "the references on rounds it never saw; see promotion.json of that decision."
        )
    decision = "bet" if prediction["bet"] else "no bet"
    classes = ", ".join(f"{name} {p:.2f}" for name, p in prediction["classes"].items())
    print(
        f"next round: P(value >= 1.5) = {prediction['probability']:.4f} -> {decision} at the "
        f"bundle's cut {prediction['cut']:.2f}"
    )
    print(f"classes: {classes}; regression {prediction['regression']:.2f}")
    print(f"base rate (rounds before the test >= 1.5): {prediction['base_rate']:.4f}")
    print(f"this model on its test rounds: {prediction['verdict']}")
    print(
        f"bundle {prediction['bundle']['path']} (data {prediction['bundle']['data_sha256'][:12]});"
        f" {prediction['rounds_used']} rounds used"
    )
    return 0
