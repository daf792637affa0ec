"""Memory plans on held-out configurations (issue 26): the analytic model and the measured plan.

Run: .venv/bin/python bench/memory_holdout.py [--cache runs/bench/memory_holdout26_set4]
     [--out runs/bench/memory_holdout26_set4.json] [--rows light-float32-28 ...]
     [--set bench/memory_holdout_set4.json]

The rows are those of a held-out set (by default the newest, bench/memory_holdout_set4.json),
written down (and committed) before the analytic model's refit (bench/memory_refit.py) and before
any was measured; the earlier sets' rows have since been fitted on. Each row is one real step of
the training engine (`jetx.training.memory_plan.measure_engine_step`: the stage-1 loss, its
float32 accumulators and Adam, a fresh process) of the full preset's model. Beside it:

- the analytic model's prediction (`jetx.model.footprint.predict_peak`);
- the measured plan's extrapolation: the line through the same variant and precision measured
  at the probe pair (`jetx.training.memory_plan.PROBE_PAIR`, micro-batches 4 and 16 since set
  2), evaluated at the row's micro-batch.

It prints each model's median |pred / meas - 1|, its largest under-estimate and how many
under-estimates exceed `jetx.config.PLAN_MARGIN`. `--cache` keeps each measurement as it ends
(the predictions are always recomputed). Cost on this 2-core CPU: see docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import keras
import tensorflow as tf

from jetx.config import GIB, PLAN_MARGIN, PRESETS
from jetx.io import write_json
from jetx.model.footprint import predict_peak
from jetx.training.memory_plan import fit_line, measure_engine_step

FULL = PRESETS["full"]
HOLDOUT_SET = Path(__file__).with_name("memory_holdout_set4.json")


def row_name(variant: str, precision: str, micro_batch: int) -> str:
    return f"{variant}-{precision}-{micro_batch}"


def measured_peak(variant: str, precision: str, micro_batch: int, cache: Path | None) -> dict:
    """One engine step's measurement (or its cached copy)."""
    path = cache / f"{row_name(variant, precision, micro_batch)}.json" if cache else None
    if path and path.exists():
        return json.loads(path.read_text())
    start = time.perf_counter()
    step = measure_engine_step(FULL.model_for(variant), FULL.stages[0], micro_batch, precision)
    step["probe_seconds"] = time.perf_counter() - start
    if path:
        write_json(path, step)
    return step


def holdout_row(row: dict, pair: list[int], cache: Path | None) -> dict:
    """A held-out row: measured, the analytic prediction and the probe pair's extrapolation."""
    variant, precision, micro_batch = row["variant"], row["precision"], row["micro_batch"]
    points = [(m, measured_peak(variant, precision, m, cache)) for m in pair]
    fixed, per_sample = fit_line([(m, p["peak_bytes"]) for m, p in points])
    measured = measured_peak(variant, precision, micro_batch, cache)
    peak = measured["peak_bytes"]
    analytic = predict_peak(FULL.model_for(variant), micro_batch, precision).predicted_peak_bytes
    extrapolated = fixed + per_sample * micro_batch
    probes = {row_name(variant, precision, m): p.get("probe_seconds", 0.0) for m, p in points}
    probes[row_name(variant, precision, micro_batch)] = measured.get("probe_seconds", 0.0)
    return {
        "row": row_name(variant, precision, micro_batch),
        "measured_peak_bytes": peak,
        "analytic_peak_bytes": analytic,
        "analytic_error": analytic / peak - 1,
        "pair_peak_bytes": [p["peak_bytes"] for _, p in points],
        "fixed_bytes": fixed,
        "per_sample_bytes": per_sample,
        "measured_plan_peak_bytes": extrapolated,
        "measured_plan_error": extrapolated / peak - 1,
        "probe_seconds": probes,
        "device": measured["device"],
    }


def print_row(r: dict) -> None:
    pair = "/".join(f"{p / GIB:.3f}" for p in r["pair_peak_bytes"])
    print(
        f"{r['row']:<30} {r['measured_peak_bytes'] / GIB:>8.3f}G "
        f"{r['analytic_peak_bytes'] / GIB:>8.3f}G {r['analytic_error']:>+7.1%} "
        f"{pair:>13} {r['measured_plan_peak_bytes'] / GIB:>8.3f}G "
        f"{r['measured_plan_error']:>+7.1%}",
        flush=True,
    )


def errors_summary(rows: list[dict], key: str) -> dict:
    """Median |error|, the largest under-estimate, and the under-estimates beyond the margin."""
    errors = [r[key] for r in rows]
    under = [e for e in errors if e < 0]
    return {
        "median_absolute_error": statistics.median(abs(e) for e in errors),
        "under_estimates": len(under),
        "largest_under_estimate": min(under, default=0.0),
        # A prediction p of a peak m is safe with margin g when p (1 + g) >= m.
        "under_estimates_beyond_margin": sum(1 for e in under if (1 + e) * (1 + PLAN_MARGIN) < 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="keep and reuse measurements")
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows (by name)")
    parser.add_argument("--set", type=Path, default=HOLDOUT_SET, help="the held-out set's file")
    args = parser.parse_args()
    spec = json.loads(args.set.read_text())
    chosen = [r for r in spec["rows"] if args.rows is None or row_name(**r) in args.rows]
    print(
        f"held-out set {args.set.name} ({len(chosen)} rows), preset full, probe pair "
        f"{spec['probe_pair']}, TF {tf.__version__}, Keras {keras.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}, "
        f"GPU: {bool(tf.config.list_physical_devices('GPU'))}"
    )
    print(
        f"{'row':<30} {'measured':>9} {'analytic':>9} {'error':>7} {'pair (GiB)':>13} "
        f"{'plan':>9} {'error':>7}"
    )
    rows = []
    for row in chosen:
        rows.append(holdout_row(row, spec["probe_pair"], args.cache))
        print_row(rows[-1])
    figures = {
        "rows": len(rows),
        "plan_margin": PLAN_MARGIN,
        "analytic": errors_summary(rows, "analytic_error"),
        "measured_plan": errors_summary(rows, "measured_plan_error"),
        # Each measurement once (rows share their probe pair), cached or measured by this run.
        "probe_seconds": sum({k: v for r in rows for k, v in r["probe_seconds"].items()}.values()),
    }
    print(json.dumps(figures, indent=1))
    if args.out:
        write_json(args.out, {"rows": rows, "figures": figures})


if __name__ == "__main__":
    main()
