"""Proper scores of probability forecasts: log loss, Brier, and the skill against a reference.

Log loss and Brier score are strictly proper (Gneiting and Raftery 2007): the forecaster who
states its true belief minimises their expectation, so a lower score is better forecasting and
not a lucky cut. Pure numpy over plain arrays, checked against hand-computed cases.
"""

from __future__ import annotations

import numpy as np

from jetx.errors import JetxInputError

#: Forecasts are clipped to [EPS, 1 - EPS] before a logarithm: a forecast of exactly 0 or 1
#: that is wrong would otherwise score an infinite loss.
EPS = 1e-15


def binary_forecasts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes and forecasts as float64 [N] each, checked: outcomes 0/1, forecasts in [0, 1].

    Raises:
        JetxInputError: arrays of different lengths, an outcome not 0 or 1, or a forecast
            outside [0, 1] or NaN.
    """
    outcome = np.asarray(y, dtype=np.float64).reshape(-1)
    forecast = np.asarray(p, dtype=np.float64).reshape(-1)
    if outcome.shape != forecast.shape:
        raise JetxInputError(
            "`y` and `p` must have one entry per round. "
            f"Received: y shape={outcome.shape}, p shape={forecast.shape}"
        )
    if not np.isin(outcome, (0.0, 1.0)).all():
        raise JetxInputError("`y` must hold outcomes 0 or 1 (whether the round reached 1.5x).")
    if np.isnan(forecast).any() or (forecast.size and (forecast.min() < 0 or forecast.max() > 1)):
        raise JetxInputError("`p` must hold probabilities in [0, 1] (no NaN).")
    return outcome, forecast


def log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-round log loss -[y ln p + (1 - y) ln(1 - p)] in nats, float64 [N].

    Args:
        y: 0/1 [N] outcomes (1: the round reached 1.5x).
        p: float [N] forecast probabilities of outcome 1, clipped to [EPS, 1 - EPS].
    """
    outcome, forecast = binary_forecasts(y, p)
    forecast = np.clip(forecast, EPS, 1.0 - EPS)
    return -(outcome * np.log(forecast) + (1.0 - outcome) * np.log1p(-forecast))


def brier(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-round Brier score (p - y)^2, float64 [N]."""
    outcome, forecast = binary_forecasts(y, p)
    return (forecast - outcome) ** 2


def skill_score(model_loss: np.ndarray, reference_loss: np.ndarray) -> float:
    """1 - mean(model) / mean(reference): above 0 when the model scores better, 1 is perfect.

    Raises:
        JetxInputError: the reference's mean loss is 0 (a perfect reference leaves no skill).
    """
    reference = float(np.mean(reference_loss))
    if reference <= 0:
        raise JetxInputError("A skill score needs a reference with a positive mean loss.")
    return 1.0 - float(np.mean(model_loss)) / reference
