"""Calibration of probability forecasts: Spiegelhalter's test and the reliability diagram's bins.

A forecast is calibrated when the rounds given probability p reach 1.5x a share p of the time.
On i.i.d. rounds a good model is calibrated by forecasting about the base rate every time; a
spread of forecasts is then noise, and the diagram shows where it went.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from jetx.evaluation.scores.heads import wilson_interval
from jetx.evaluation.scores.proper import binary_forecasts


def spiegelhalter(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """Spiegelhalter's (1986) calibration test: z and its two-sided p-value.

    z = sum (y - p)(1 - 2p) / sqrt(sum (1 - 2p)^2 p (1 - p)) is standard normal when the
    forecasts are calibrated (each round's outcome has the forecast's probability), whatever
    their spread. None for both when every forecast is 0, 1/2 or 1 (nothing to weigh).
    """
    outcome, forecast = binary_forecasts(y, p)
    weight = 1.0 - 2.0 * forecast
    variance = float(np.sum(weight**2 * forecast * (1.0 - forecast)))
    if variance <= 0:
        return {"z": None, "p_value": None}
    z = float(np.sum((outcome - forecast) * weight)) / math.sqrt(variance)
    return {"z": z, "p_value": float(2.0 * stats.norm.sf(abs(z)))}


def reliability_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """The reliability diagram's points: forecasts in `bins` equal-count bins, each with its
    forecast range, count, mean forecast, observed rate and the rate's Wilson interval.

    Equal counts, not equal widths: forecasts near the base rate would fill one width bin.
    Ties stay together, so there may be fewer bins than asked; empty input gives no bin.
    """
    outcome, forecast = binary_forecasts(y, p)
    if forecast.size == 0:
        return []
    order = np.argsort(forecast, kind="stable")
    edges = np.unique(np.quantile(forecast, np.linspace(0, 1, bins + 1)[1:-1]))
    labels = np.searchsorted(edges, forecast[order], side="right")
    rows = []
    for label in np.unique(labels):
        members = order[labels == label]
        hits = int(outcome[members].sum())
        rows.append(
            {
                "low": float(forecast[members].min()),
                "high": float(forecast[members].max()),
                "count": int(members.size),
                "mean_forecast": float(forecast[members].mean()),
                "observed_rate": hits / members.size,
                "observed_ci": wilson_interval(hits, int(members.size)),
            }
        )
    return rows
