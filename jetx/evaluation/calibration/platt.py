"""Platt scaling of the threshold head, fitted on the validation rounds and applied after.

The threshold head is trained with a weighted BCE (stages 1-2) and a focal loss (stage 3): both
are deliberately not proper, so its outputs are scores, not probabilities (measured: a tiny model
on planted data forecast about 0.50 where 0.65 of the rounds reached 1.5x, and its log loss was
worse than the base rate's although it ranked the rounds well). A proper score judges
probabilities, so every stage's forecasts pass through a two-parameter logistic map
p' = sigmoid(intercept + slope * logit(p)) (Platt 1999) fitted by maximum likelihood on the
validation rounds, which precede the scored rounds: nothing of the test reaches the map.

The slope is bounded below by 0: a negative slope would turn the model's ranking upside down on
the strength of the validation block alone. On i.i.d. rounds the fit finds a slope near 0 and an
intercept near the validation base rate's logit, so the calibrated forecasts sit near the base
rate, as a good forecaster's must. The fit is two parameters with scipy's bounded L-BFGS-B on
the exact gradient; scikit-learn is not a dependency for this one map.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from jetx.errors import JetxInputError
from jetx.evaluation.scores.proper import binary_forecasts

#: Scores are clipped to [_CLIP, 1 - _CLIP] before the logit: a saturated sigmoid stays finite.
_CLIP = 1e-6
#: A small ridge on the slope: constant scores (a collapsed head) leave the slope undetermined,
#: and the ridge then sends it to 0 instead of anywhere.
_RIDGE = 1e-6


@dataclass(frozen=True)
class PlattMap:
    """p' = sigmoid(intercept + slope * logit(p)), fitted on `rounds` validation rounds."""

    intercept: float
    slope: float
    rounds: int

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Float64 [N] calibrated probabilities of the head's float [N] outputs."""
        scores = np.clip(np.asarray(p, dtype=np.float64).reshape(-1), _CLIP, 1.0 - _CLIP)
        return special.expit(self.intercept + self.slope * special.logit(scores))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> PlattMap:
        return cls(
            intercept=float(config["intercept"]),
            slope=float(config["slope"]),
            rounds=int(config["rounds"]),
        )


#: The map that changes nothing: for a bundle or an evaluation made before recalibration.
IDENTITY = PlattMap(intercept=0.0, slope=1.0, rounds=0)


def fit_platt(outcome: np.ndarray, p: np.ndarray) -> PlattMap:
    """The maximum-likelihood Platt map of head outputs `p` to 0/1 `outcome`s (slope >= 0).

    Args:
        outcome: 0/1 [N] whether each validation round reached 1.5x.
        p: float [N] the threshold head's outputs on the same rounds.

    Raises:
        JetxInputError: fewer than 2 rounds, or arrays that do not match.
    """
    y, scores = binary_forecasts(outcome, p)
    if y.size < 2:
        raise JetxInputError(
            f"Recalibration needs at least 2 validation rounds. Received: {y.size}"
        )
    x = special.logit(np.clip(scores, _CLIP, 1.0 - _CLIP))
    rate = float(np.clip(y.mean(), _CLIP, 1.0 - _CLIP))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + theta[1] * x
        # -log-likelihood per round: log(1 + e^z) - y z, stable for any z.
        nll = np.logaddexp(0.0, z) - y * z
        residual = special.expit(z) - y
        value = float(nll.mean()) + _RIDGE * theta[1] ** 2
        grad = np.array([residual.mean(), (residual * x).mean() + 2 * _RIDGE * theta[1]])
        return value, grad

    start = np.array([float(special.logit(rate)), 0.0])
    fit = optimize.minimize(
        loss, start, jac=True, method="L-BFGS-B", bounds=[(None, None), (0.0, None)]
    )
    return PlattMap(intercept=float(fit.x[0]), slope=float(fit.x[1]), rounds=int(y.size))
