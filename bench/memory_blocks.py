"""What a recomputed encoder holds at its peak, block by block (issue 26).

Run: nice -n 10 .venv/bin/python bench/memory_blocks.py [--variants remat chunked]
     [--layers 1 2 4] [--cache runs/bench/memory_blocks26]

Measures the engine's own step (`jetx.training.memory_plan.measure_engine_step`, a fresh process)
of the full preset's model with its encoder cut to 1, 2 and 4 blocks, at micro-batches 4 and 16,
and prints each line's per-sample bytes. The per-sample growth from one block count to the next is
what each further block keeps (its checkpoint); what remains at one block is what the peak holds
once, whatever the depth (one block's recomputed activations and their gradients). The analytic
model (`jetx.model.footprint`) is printed beside each, so the two can be compared term by term.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from jetx.config import GIB, PRESETS
from jetx.io import write_json
from jetx.model.footprint import predict_peak
from jetx.training.memory_plan import fit_line, measure_engine_step

FULL = PRESETS["full"]
PAIR = (4, 16)
MIB = 2**20


def measured(variant: str, layers: int, precision: str, micro_batch: int, cache: Path) -> int:
    """One engine step's peak bytes (or its cached copy)."""
    path = cache / f"{variant}-L{layers}-{precision}-{micro_batch}.json"
    if path.exists():
        return json.loads(path.read_text())["peak_bytes"]
    config = dataclasses.replace(FULL.model_for(variant), num_layers=layers)
    start = time.perf_counter()
    step = measure_engine_step(config, FULL.stages[0], micro_batch, precision)
    step["probe_seconds"] = time.perf_counter() - start
    write_json(path, step)
    return step["peak_bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["remat", "chunked"])
    parser.add_argument("--layers", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--cache", type=Path, default=Path("runs/bench/memory_blocks26"))
    args = parser.parse_args()
    print(
        f"{'variant':<10} {'blocks':>6} {'peak 4':>8} {'peak 16':>8} {'MiB/sample':>10} "
        f"{'analytic':>9}"
    )
    for variant in args.variants:
        for layers in args.layers:
            points = [(m, measured(variant, layers, args.precision, m, args.cache)) for m in PAIR]
            _, per_sample = fit_line(points)
            config = dataclasses.replace(FULL.model_for(variant), num_layers=layers)
            analytic = [predict_peak(config, m, args.precision).predicted_peak_bytes for m in PAIR]
            peaks = " ".join(f"{p / GIB:>7.3f}G" for _, p in points)
            analytic_per_sample = (analytic[1] - analytic[0]) / (PAIR[1] - PAIR[0])
            print(
                f"{variant:<10} {layers:>6} {peaks} {per_sample / MIB:>10.1f} "
                f"{analytic_per_sample / MIB:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
