"""Memory audit (issue 4): measured vs predicted peak memory and step time per variant.

Run: .venv/bin/python bench/memory_audit.py [--out runs/bench/memory_audit.json] [--skip-64]
     [--original-only]

Each row is one real training step (forward, backward, Adam) in a fresh subprocess
(`jetx.model.footprint.measure_step`), next to `predict_peak` for the same configuration.
On a CPU the FP16 rows run under mixed_bfloat16 (2-byte activations like float16; float16 is about
3x slower on this CPU) and are labelled so. The original model at float32 is measured at batch 8,
16, 32 and 64 where the machine's available memory holds each batch's predicted peak with the
planner's margin (24 GiB holds batch 64's 16 GiB); a batch that does not fit is extrapolated
linearly (peak = a + b x batch) from batches 8 and 16 and labelled so. `--original-only`
measures just these rows.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import keras
import tensorflow as tf

from jetx.config import GIB, PLAN_MARGIN, PRESETS, STAGES
from jetx.io import write_json
from jetx.model.footprint import measure_step, plan, predict_peak

HALF = "mixed_bfloat16"
BUDGET = 15 * GIB
FULL = PRESETS["full"]


def _row(label: str, variant: str, micro_batch: int, precision: str) -> dict:
    config = FULL.model_for(variant)
    measured = measure_step(config, micro_batch, precision)
    predicted = predict_peak(config, micro_batch, precision).predicted_peak_bytes
    return {
        "row": label,
        "variant": variant,
        "micro_batch": micro_batch,
        "precision": precision,
        "params": measured["params"],
        "predicted_peak_bytes": predicted,
        "measured_peak_bytes": measured["measured_peak_bytes"],
        "predicted_over_measured": predicted / measured["measured_peak_bytes"],
        "rss_peak_bytes": measured["rss_peak_bytes"],
        "step_seconds": measured["step_seconds"],
        "device": measured["device"],
        "extrapolated": False,
    }


def available_bytes() -> int:
    """MemAvailable of /proc/meminfo (what can be allocated without swapping), 0 if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def original_rows(batches: tuple[int, ...] = (8, 16, 32, 64)) -> list[dict]:
    """The original model (full, float32) at each batch: measured where the machine's available
    memory holds the predicted peak with `PLAN_MARGIN` to spare (24 GiB holds batch 64's 16 GiB),
    else extrapolated linearly (peak = a + b x batch) from the two smallest measured batches."""
    rows, skipped = [], []
    for b in batches:
        predicted = predict_peak(FULL.model_for("full"), b, "float32").predicted_peak_bytes
        if len(rows) >= 2 and predicted * (1 + PLAN_MARGIN) > available_bytes():
            skipped.append(b)
            continue
        rows.append(_row(f"original full float32 b{b}", "full", b, "float32"))
    (b0, p0), (b1, p1) = ((r["micro_batch"], r["measured_peak_bytes"]) for r in rows[:2])
    slope = (p1 - p0) / (b1 - b0)
    s0, s1 = rows[0]["step_seconds"], rows[1]["step_seconds"]
    for b in skipped:
        predicted = predict_peak(FULL.model_for("full"), b, "float32").predicted_peak_bytes
        measured = int(p0 + slope * (b - b0))
        rows.append(
            {
                **rows[0],
                "row": f"original full float32 b{b} (extrapolated from b{b0}, b{b1})",
                "micro_batch": b,
                "predicted_peak_bytes": predicted,
                "measured_peak_bytes": measured,
                "predicted_over_measured": predicted / measured,
                "rss_peak_bytes": None,
                "step_seconds": s0 + (s1 - s0) / (b1 - b0) * (b - b0),
                "extrapolated": True,
            }
        )
    return rows


def plan_option_rows() -> list[dict]:
    """The plan's options: no1000 and light at micro-batch 8 (x 8 accumulation), half precision."""
    return [
        _row(f"option {i}: {v} {HALF} 8x8", v, 8, HALF) for i, v in ((1, "no1000"), (2, "light"))
    ]


def our_rows(skip_64: bool) -> list[dict]:
    """Ours at 8x8, and at the micro-batch that `plan` picks for a 15 GiB budget (stage 1)."""
    rows = [_row(f"ours: {v} {HALF} 8x8", v, 8, HALF) for v in ("remat", "chunked")]
    if not skip_64:
        for variant in ("chunked", "remat"):
            chosen = plan(FULL.model_for(variant), STAGES[0], BUDGET, HALF)
            label = (
                f"ours: {variant} {HALF} {chosen.micro_batch}x{chosen.accumulation} (15 GiB plan)"
            )
            rows.append(_row(label, variant, chosen.micro_batch, HALF))
    return rows


def largest_micro_batch(variant: str, precision: str, budget: int = BUDGET) -> int:
    """Largest micro-batch (any integer) whose predicted peak plus `PLAN_MARGIN` fits the budget."""
    micro_batch = 1
    while (
        predict_peak(FULL.model_for(variant), micro_batch * 2, precision).predicted_peak_bytes
        * (1 + PLAN_MARGIN)
        <= budget
    ):
        micro_batch *= 2
    step = micro_batch // 2
    while step:
        if (
            predict_peak(
                FULL.model_for(variant), micro_batch + step, precision
            ).predicted_peak_bytes
            * (1 + PLAN_MARGIN)
            <= budget
        ):
            micro_batch += step
        step //= 2
    return micro_batch


def print_table(rows: list[dict]) -> None:
    print(
        f"{'row':<62} {'params':>10} {'predicted':>10} {'measured':>10} {'pred/meas':>9} "
        f"{'RSS':>8} {'step s':>7}"
    )
    for r in rows:
        rss = f"{r['rss_peak_bytes'] / GIB:.2f}" if r["rss_peak_bytes"] else "-"
        print(
            f"{r['row']:<62} {r['params']:>10,} {r['predicted_peak_bytes'] / GIB:>9.3f}G "
            f"{r['measured_peak_bytes'] / GIB:>9.3f}G {r['predicted_over_measured']:>9.2f} "
            f"{rss:>8} {r['step_seconds']:>7.2f}"
        )


def print_figures(rows: list[dict]) -> dict:
    """The issue's goals as ratios from this run."""
    by_row = {r["row"]: r for r in rows}
    original = next(r for r in rows if r["micro_batch"] == 64 and r["variant"] == "full")
    figures = {"original_b64_peak_gib": original["measured_peak_bytes"] / GIB}
    for variant in ("remat", "chunked"):
        ours = by_row[f"ours: {variant} {HALF} 8x8"]
        figures[f"{variant}_8x8_over_original_b64"] = (
            ours["measured_peak_bytes"] / original["measured_peak_bytes"]
        )
        chosen = plan(FULL.model_for(variant), STAGES[0], BUDGET, HALF)
        figures[f"{variant}_15gib_plan"] = f"{chosen.micro_batch}x{chosen.accumulation}"
        figures[f"{variant}_largest_micro_batch_15gib_predicted"] = largest_micro_batch(
            variant, HALF
        )
    full_plan = plan(FULL.model_for("full"), STAGES[0], BUDGET, "float32")
    figures["original_float32_15gib_plan"] = f"{full_plan.micro_batch}x{full_plan.accumulation}"
    ratios = [r["predicted_over_measured"] for r in rows]
    figures["prediction_error_range"] = [min(ratios) - 1, max(ratios) - 1]
    for key, value in figures.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skip-64", action="store_true", help="skip the 15 GiB-plan rows")
    parser.add_argument(
        "--original-only", action="store_true", help="only the original model's rows"
    )
    args = parser.parse_args()
    print(
        f"memory audit: preset full, seq lengths {FULL.model.seq_lengths}, "
        f"{FULL.model.n_features} features, TF {tf.__version__}, Keras {keras.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"GPU: {bool(tf.config.list_physical_devices('GPU'))}"
    )
    rows = original_rows()
    if args.original_only:
        print_table(rows)
        if args.out:
            write_json(args.out, {"rows": rows})
        return
    rows += plan_option_rows() + our_rows(args.skip_64)
    print_table(rows)
    figures = print_figures(rows)
    if args.out:
        write_json(args.out, {"rows": rows, "figures": figures})


if __name__ == "__main__":
    main()
