"""`jetx export RUN_DIR --out DIR`: a bundle of an evaluated run (see jetx.serving.bundle)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jetx.cli.common import add_command, add_json, out_dir


def register(subparsers) -> None:
    """Add the `export` subcommand."""
    parser = add_command(
        subparsers,
        "export",
        summary="export an evaluated run as a bundle: model.keras, scaler.json, bundle.json",
        description="""
        Export the last stage's best model of an evaluated run as a self-contained bundle: the
        model as a .keras file (float32, loadable with keras.saving.load_model(path,
        safe_mode=True) after importing jetx.model.layers), the training scaler as JSON, and
        bundle.json with the feature version and names, the window lengths, the preset,
        variant and precision, the cut chosen on validation, the data's sha256, the number of
        rounds, the prior base rate and the test verdict with its figures. No pickle.""",
        example="jetx export runs/demo/train/<run> --out runs/demo/bundle",
    )
    parser.add_argument("run_dir", type=Path, help="an evaluated run dir (jetx evaluate)")
    parser.add_argument("--out", type=out_dir, required=True, help="the bundle's directory")
    add_json(parser, "bundle.json")
    parser.set_defaults(run=_run, needs_tensorflow=True)


def _run(args: argparse.Namespace) -> int:
    from jetx.serving.bundle import export_bundle

    info = export_bundle(args.run_dir, args.out)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    test = info["test"]
    print(
        f"{args.out}: stage {info['stage']} of {info['run']} ({info['variant']}, "
        f"{info['precision']}), cut {info['cut']:.2f}, trained on {info['rounds']} rounds "
        f"(data {info['data_sha256'][:12]})"
    )
    print(f"test ({test['rounds']} rounds): {test['verdict']}")
    return 0
