"""The primary evidence: the threshold head's forecasts scored by proper scores against the
constant forecasters on the same rounds.

Two constant forecasters are the references: the prior base rate (the share of the training
and validation rounds that reached 1.5x: what anyone knows before the test) and the house's
own HOUSE_RETURN / CASHOUT = 0.6467 (the game's design). A model has skill only when the
Diebold-Mariano test (HAR variance) on the per-round log-loss differential against the base
rate says so; the bankroll is the consequence of the forecasts, not the evidence.

`compare_forecasts` is the one call for a gate (model vs the base rate, or model vs another
model on the same rounds); `forecast_scores` is the JSON-ready block a report reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from jetx.config import CASHOUT, HOUSE_RETURN
from jetx.errors import JetxInputError
from jetx.evaluation.calibration import reliability
from jetx.evaluation.scores import proper
from jetx.evaluation.significance import bootstrap, diebold_mariano

#: The house's forecast of P(X >= 1.5): x P(X >= x) = 0.97 for every x (docs/design.md).
HOUSE_FORECAST = HOUSE_RETURN / CASHOUT
#: The scores of the comparison, each a per-round loss of (outcomes, forecasts).
SCORES = {"log_loss": proper.log_loss, "brier": proper.brier}


def reached(y_value: np.ndarray) -> np.ndarray:
    """Float64 [N] outcomes: 1 where the round reached the cash-out (value >= 1.5), else 0."""
    return (np.asarray(y_value, dtype=np.float64).reshape(-1) >= CASHOUT).astype(np.float64)


def constant_forecast(probability: float, rounds: int) -> np.ndarray:
    """Float64 [rounds] of one probability: a constant forecaster's forecasts."""
    if not 0.0 <= probability <= 1.0:
        raise JetxInputError(f"`probability` must be in [0, 1]. Received: {probability}")
    return np.full(rounds, float(probability))


@dataclass(frozen=True)
class ForecastComparison:
    """Model vs reference forecasts of the same rounds, scored by log loss.

    Args:
        rounds: rounds compared.
        model_log_loss, reference_log_loss: mean log loss (nats per round).
        skill: log-loss skill score 1 - model / reference (above 0: the model is better).
        skill_ci: its 95% circular block-bootstrap interval over rounds, unadjusted for
            `trials` (report it as such beside an adjusted p-value).
        statistic: the DM statistic (negative: the model's loss is lower); None if infinite.
        p_value: one-sided p-value of `alternative`: that the model's expected loss is lower
            ("less", the default) or higher ("greater").
        adjusted_p_value: `p_value` adjusted for `trials` comparisons by Bonferroni's
            trials x p, capped at 1: valid whatever the other comparisons' p-values, which a
            gate does not see (Holm's step-down needs them all).
        trials: comparisons made of which this is one (the run's stages, runs x seeds, ...).
    """

    rounds: int
    model_log_loss: float
    reference_log_loss: float
    skill: float
    skill_ci: tuple[float, float] | None
    statistic: float | None
    p_value: float
    adjusted_p_value: float
    trials: int
    alternative: str = "less"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_forecasts(
    y_value: np.ndarray,
    p_model: np.ndarray,
    p_reference: np.ndarray,
    *,
    trials: int = 1,
    alternative: diebold_mariano.Alternative = "less",
    interval: bool = True,
    seed: int = 0,
) -> ForecastComparison:
    """Whether `p_model` forecasts the rounds better than `p_reference`, counted as one of
    `trials` comparisons: what a promotion gate calls.

    Args:
        y_value: float64 [N] true multipliers, in round order.
        p_model: float [N] the model's P(value >= 1.5).
        p_reference: float [N] the reference's: `constant_forecast(base_rate, N)` for the base
            rate, or another model's forecasts of the same rounds.
        trials: how many such comparisons were made (a gate that picks the best of its
            candidates counts them all), >= 1.
        alternative: of the test: "less" (the model's loss is lower: it has skill) or
            "greater" (the model's loss is higher: it is worse).
        interval: compute the skill's bootstrap interval (False: `skill_ci` is None; a
            simulation of many decisions skips it, as no rule reads it).
        seed: seed of the bootstrap interval.

    Raises:
        JetxInputError: arrays of different lengths, fewer than 2 rounds, or trials < 1.
    """
    if trials < 1:
        raise JetxInputError(f"`trials` must be at least 1. Received: trials={trials}")
    outcome = reached(y_value)
    model = proper.log_loss(outcome, p_model)
    reference = proper.log_loss(outcome, p_reference)
    test = diebold_mariano.diebold_mariano(model, reference, alternative=alternative)
    return ForecastComparison(
        rounds=int(outcome.size),
        model_log_loss=float(model.mean()),
        reference_log_loss=float(reference.mean()),
        skill=proper.skill_score(model, reference),
        skill_ci=bootstrap.skill_interval(model, reference, seed=seed) if interval else None,
        statistic=test.statistic,
        p_value=test.p_value,
        adjusted_p_value=min(1.0, trials * test.p_value),
        trials=trials,
        alternative=alternative,
    )


def _skills(
    losses: dict[str, dict[str, np.ndarray]], reference: str, seed: int
) -> dict[str, dict[str, Any]]:
    return {
        score: {
            "estimate": proper.skill_score(by_forecaster["model"], by_forecaster[reference]),
            "ci": bootstrap.skill_interval(
                by_forecaster["model"], by_forecaster[reference], seed=seed
            ),
        }
        for score, by_forecaster in losses.items()
    }


def forecast_scores(
    y_value: np.ndarray, p_model: np.ndarray, p_base_rate: np.ndarray, *, seed: int = 0
) -> dict[str, Any]:
    """Proper scores of the model and the two constant forecasters, skill scores with block-
    bootstrap intervals, the DM test against the base rate, calibration and reliability.

    Args:
        y_value: float64 [N] true multipliers, in round order.
        p_model: float [N] the threshold head's P(value >= 1.5).
        p_base_rate: float [N] the base-rate forecast of each round (constant within a run; in a
            walk-forward pool each origin's own prior base rate).
        seed: seed of the bootstrap intervals.

    Returns:
        rounds; forecasters (model, base_rate, house: mean forecast, log_loss, brier); skill
        (vs base_rate and vs house: per score, estimate and ci); dm (model vs base rate, log
        loss, one-sided: `diebold_mariano.DieboldMariano`); calibration (Spiegelhalter z and
        p-value, mean forecast vs observed rate, the forecasts' spread); reliability (the
        diagram's bins).

    Raises:
        JetxInputError: fewer than 2 rounds or arrays that do not match.
    """
    outcome = reached(y_value)
    forecasts = {
        "model": np.asarray(p_model, dtype=np.float64).reshape(-1),
        "base_rate": np.asarray(p_base_rate, dtype=np.float64).reshape(-1),
        "house": constant_forecast(HOUSE_FORECAST, outcome.size),
    }
    losses = {
        score: {name: loss(outcome, p) for name, p in forecasts.items()}
        for score, loss in SCORES.items()
    }
    model = forecasts["model"]
    test = diebold_mariano.diebold_mariano(
        losses["log_loss"]["model"], losses["log_loss"]["base_rate"], alternative="less"
    )
    return {
        "rounds": int(outcome.size),
        "forecasters": {
            name: {
                "mean_forecast": float(p.mean()),
                **{score: float(losses[score][name].mean()) for score in SCORES},
            }
            for name, p in forecasts.items()
        },
        "skill": {ref: _skills(losses, ref, seed) for ref in ("base_rate", "house")},
        "dm": test.to_dict(),
        "calibration": {
            "spiegelhalter": reliability.spiegelhalter(outcome, model),
            "mean_forecast": float(model.mean()),
            "observed_rate": float(outcome.mean()),
            "forecast_sd": float(model.std()),
            "forecast_range": (float(model.min()), float(model.max())),
        },
        "reliability": reliability.reliability_bins(outcome, model),
    }
