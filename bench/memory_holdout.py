"""Memory model audit on held-out configurations (issue 17): predicted, measured, error.

Run: nice -n 10 .venv/bin/python bench/memory_holdout.py [--out runs/bench/memory_holdout.json]
     [--rows light-float32-4 ...] [--cache runs/bench/memory_holdout]

Each row is one real training step of the full preset's model (the engine's step at accumulation
1, `jetx.model.footprint.measure_step`, a fresh process each) beside `predict_peak`. The rows are
split by what the memory model's constants were fitted on:

- "calibration": the blockwise variant's first row, which showed that a constant planned for
  its block's compute-dtype tensors was covered by the other terms (fitted at zero, dropped);
- "first audit": a row of the first audit's configurations, re-measured with the engine's step;
- "held-out": variants, micro-batches and precisions that no constant was fitted on (the first
  audit fitted on full float32 8/16 and no1000/light/remat/chunked at mixed_bfloat16 8 and 64).

It prints the table, then the held-out rows' median absolute error, their under-estimate count
and the worst under-estimate, from which `jetx.config.PLAN_MARGIN` is derived. `--cache` keeps
each measurement as it ends and reuses it (the predictions are always recomputed), so that rows
can be measured by several processes at once and the table re-printed without measuring again.
Sizes are moderate (at most micro-batch 16) to stay within a shared machine's memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from jetx.config import GIB, PLAN_MARGIN, PRESETS
from jetx.io import write_json
from jetx.model.footprint import measure_step, predict_peak

FULL = PRESETS["full"]
#: (variant, precision, micro-batch, role). The first audit's rows are left out on purpose.
ROWS: tuple[tuple[str, str, int, str], ...] = (
    ("blockwise", "mixed_bfloat16", 8, "calibration"),
    ("chunked", "mixed_bfloat16", 8, "first audit"),
    ("blockwise", "float32", 4, "held-out"),
    ("blockwise", "mixed_bfloat16", 16, "held-out"),
    ("chunked", "float32", 4, "held-out"),
    ("chunked", "mixed_bfloat16", 16, "held-out"),
    ("remat", "float32", 4, "held-out"),
    ("light", "float32", 4, "held-out"),
    ("no1000", "float32", 16, "held-out"),
    ("full", "mixed_bfloat16", 4, "held-out"),
)


def row_name(variant: str, precision: str, micro_batch: int) -> str:
    return f"{variant}-{precision}-{micro_batch}"


def measure_rows(rows, cache: Path | None) -> list[dict]:
    """Measure each row (or read its measurement from `cache`, where each is kept as it ends)."""
    out = []
    for variant, precision, micro_batch, role in rows:
        name = row_name(variant, precision, micro_batch)
        path = cache / f"{name}.json" if cache else None
        if path and path.exists():
            measured = json.loads(path.read_text())
        else:
            measured = measure_step(FULL.model_for(variant), micro_batch, precision)
            if path:
                write_json(path, measured)
        predicted = predict_peak(FULL.model_for(variant), micro_batch, precision)
        peak = measured["measured_peak_bytes"]
        out.append(
            {
                "row": name,
                "role": role,
                "variant": variant,
                "precision": precision,
                "micro_batch": micro_batch,
                "predicted_peak_bytes": predicted.predicted_peak_bytes,
                "measured_peak_bytes": peak,
                "error": predicted.predicted_peak_bytes / peak - 1 if peak else None,
                "step_seconds": measured["step_seconds"],
                "memory_source": measured["memory_source"],
                "measured": measured,
            }
        )
        print_row(out[-1], flush=True)
    return out


def print_header() -> None:
    print(f"{'row':<30} {'role':<12} {'predicted':>10} {'measured':>10} {'error':>7} {'step s':>7}")


def print_row(r: dict, flush: bool = False) -> None:
    measured = f"{r['measured_peak_bytes'] / GIB:.3f}G" if r["measured_peak_bytes"] else "-"
    error = f"{r['error']:+.1%}" if r["error"] is not None else "-"
    print(
        f"{r['row']:<30} {r['role']:<12} {r['predicted_peak_bytes'] / GIB:>9.3f}G {measured:>10} "
        f"{error:>7} {r['step_seconds']:>7.2f}",
        flush=flush,
    )


def summary(rows: list[dict]) -> dict:
    """The held-out rows' median absolute error, under-estimates, and the margin they call for."""
    errors = [r["error"] for r in rows if r["role"] == "held-out" and r["error"] is not None]
    under = [e for e in errors if e < 0]
    worst = min(errors) if errors else 0.0
    figures = {
        "held_out_rows": len(errors),
        "median_absolute_error": statistics.median(abs(e) for e in errors) if errors else None,
        "under_estimates": len(under),
        "under_estimates_beyond_margin": sum(1 for e in under if (1 + e) * (1 + PLAN_MARGIN) < 1),
        "worst_under_estimate": worst,
        # A prediction p of a peak m is safe with margin g when p (1 + g) >= m.
        "margin_needed": max(0.0, 1 / (1 + worst) - 1),
        "plan_margin": PLAN_MARGIN,
    }
    for key, value in figures.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep (and reuse) each measurement here"
    )
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows (by name)")
    args = parser.parse_args()
    rows = [r for r in ROWS if args.rows is None or row_name(*r[:3]) in args.rows]
    print(f"memory audit, held-out rows: preset full, seq lengths {FULL.model.seq_lengths}")
    print_header()
    measured = measure_rows(rows, args.cache)
    figures = summary(measured)
    if args.out:
        write_json(args.out, {"rows": measured, "figures": figures})


if __name__ == "__main__":
    main()
