"""Refit the analytic memory model's activation scales on every audited row (issue 26).

Run: .venv/bin/python bench/memory_refit.py   (seconds: no model is built or run)

Reads bench/memory_audit_rows.json (every row audited so far, as measured), takes its
engine-step rows, and fits `jetx.model.footprint.FITTED_SCALES`: measured peak = model state
(counted, not fitted) + sum over groups of scale x the group's counted activations, by
non-negative least squares on pred / meas - 1 (each row weighs the same, whatever its size).
Prints the scales to paste into footprint.py, and each fitted row's error before and after.
The held-out check is bench/memory_holdout.py, on rows this fit never sees.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from jetx.config import GIB, PRESETS
from jetx.model.footprint import FITTED_SCALES, activation_group, predict_peak

FULL = PRESETS["full"]
ROWS = Path(__file__).with_name("memory_audit_rows.json")
GROUPS = tuple(FITTED_SCALES)
ONES = dict.fromkeys(GROUPS, 1.0)


def design_row(variant: str, precision: str, micro_batch: int) -> tuple[float, np.ndarray]:
    """(model state bytes, counted activation bytes per group) of one configuration."""
    config = FULL.model_for(variant)
    estimate = predict_peak(config, micro_batch, precision, scales=ONES)
    groups = np.zeros(len(GROUPS))
    for branch, size in estimate.activation_bytes.items():
        groups[GROUPS.index(activation_group(config, branch))] += size
    return estimate.predicted_peak_bytes - groups.sum(), groups


def fit(rows: list[dict]) -> dict[str, float]:
    """The scales that minimise sum (pred / meas - 1)^2 over `rows`, each >= 0."""
    a, b = [], []
    for r in rows:
        measured = r["measured_gib"] * GIB
        state, groups = design_row(r["variant"], r["precision"], r["micro_batch"])
        a.append(groups / measured)
        b.append(1 - state / measured)
    scales, _ = nnls(np.array(a), np.array(b))
    used = np.array(a).sum(axis=0) > 0
    return {
        g: round(float(s), 3) if u else 1.0 for g, s, u in zip(GROUPS, scales, used, strict=True)
    }


def error(row: dict, scales: dict[str, float]) -> float:
    config = FULL.model_for(row["variant"])
    predicted = predict_peak(config, row["micro_batch"], row["precision"], scales=scales)
    return predicted.predicted_peak_bytes / (row["measured_gib"] * GIB) - 1


def main() -> None:
    rows = [r for r in json.loads(ROWS.read_text())["rows"] if r["step"] == "engine"]
    scales = fit(rows)
    print(f"fitted on {len(rows)} engine-step rows of {ROWS.name}")
    print(f"{'row':<32} {'measured':>9} {'before':>8} {'after':>8}")
    for r in rows:
        name = f"{r['variant']}-{r['precision']}-{r['micro_batch']}"
        print(
            f"{name:<32} {r['measured_gib']:>8.3f}G {error(r, ONES):>+8.1%} "
            f"{error(r, scales):>+8.1%}"
        )
    for label, s in (("counted (all 1.0)", ONES), ("refit", scales)):
        median = statistics.median(abs(error(r, s)) for r in rows)
        print(f"median |error| on the fitted rows, {label}: {median:.1%}")
    print("FITTED_SCALES =", json.dumps(scales))


if __name__ == "__main__":
    main()
