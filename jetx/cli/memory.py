"""`jetx memory`: predicted and measured peak memory of one training step of a model variant."""

from __future__ import annotations

import argparse
import json

from jetx.cli.common import add_command, add_json, add_preset, add_variant
from jetx.config import PRECISIONS, get_preset
from jetx.errors import JetxInputError
from jetx.model.footprint import gib, measure_step, predict_peak


def register(subparsers) -> None:
    """Add the `memory` subcommand."""
    parser = add_command(
        subparsers,
        "memory",
        summary="predict and measure the peak memory of one training step",
        description="""
        Predict the peak memory of one training step of a model variant (parameters, gradients,
        Adam's slots and the activations kept for the backward pass, computed without running
        the model), then measure one real step in a fresh process: the allocator's peak on GPU:0
        or CPU:0 (`memory_source: allocator`), or the process's peak RSS where the allocator
        keeps no statistics (`rss`, never compared with the prediction).""",
        example="jetx memory --variant chunked --micro-batch 8 --precision mixed_bfloat16",
    )
    add_variant(parser, required=True)
    parser.add_argument(
        "--micro-batch", type=int, required=True, help="samples in the measured step"
    )
    parser.add_argument("--precision", default="float32", choices=PRECISIONS, help="dtype policy")
    add_preset(parser, default="full")
    parser.add_argument(
        "--no-measure", action="store_true", help="print the prediction only (no subprocess)"
    )
    add_json(parser, "one object")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.micro_batch < 1:
        raise JetxInputError(f"`--micro-batch` must be >= 1. Received: {args.micro_batch}")
    config = get_preset(args.preset).model_for(args.variant)
    estimate = predict_peak(config, args.micro_batch, args.precision)
    row = {
        "preset": args.preset,
        "variant": args.variant,
        "micro_batch": args.micro_batch,
        "precision": args.precision,
        "params": estimate.params,
        "predicted_peak_bytes": estimate.predicted_peak_bytes,
        "predicted_activation_bytes": estimate.activation_bytes,
    }
    if not args.no_measure:
        measured = measure_step(config, args.micro_batch, args.precision)
        row.update({k: v for k, v in measured.items() if k not in row})
        # A prediction is compared with an allocator figure only, never with the RSS.
        row["predicted_over_measured"] = (
            estimate.predicted_peak_bytes / measured["measured_peak_bytes"]
            if measured["measured_peak_bytes"]
            else None
        )
    if args.json:
        print(json.dumps(row))
        return 0
    print(
        f"{args.preset}/{args.variant} micro_batch={args.micro_batch} {args.precision}: "
        f"params {estimate.params:,}"
    )
    print(f"  predicted peak {gib(estimate.predicted_peak_bytes):.3f} GiB")
    for branch, size in estimate.activation_bytes.items():
        print(f"    {branch:<12} {gib(size):.3f} GiB")
    if not args.no_measure:
        if row["measured_peak_bytes"] is None:
            print(f"  measured peak  unavailable ({row['memory_note']})")
        else:
            print(
                f"  measured peak  {gib(row['measured_peak_bytes']):.3f} GiB "
                f"(allocator, {row['device']}), predicted / measured "
                f"{row['predicted_over_measured']:.2f}"
            )
        rss = row["rss_peak_bytes"]
        print(
            f"  peak RSS       {'n/a' if rss is None else f'{gib(rss):.3f} GiB'} (the process, "
            f"TensorFlow's runtime included), step {row['step_seconds']:.2f} s"
        )
    return 0
