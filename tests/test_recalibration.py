"""Platt scaling of the threshold head: the fit against known maps, its bounds, and its use.

The fit is checked against the truth of simulated rounds (outcomes drawn from a known map of
the scores), against the closed form of its degenerate cases (constant or anti-ranked scores
give the validation base rate), and in `stage_evaluation`: a head that ranks well but is
biased, as the weighted and focal losses make it, scores better after the map, and the map is
fitted on the validation rounds only.
"""

import numpy as np
import pytest
from scipy import special

from jetx.errors import JetxInputError
from jetx.evaluation.calibration.platt import IDENTITY, PlattMap, fit_platt
from jetx.evaluation.inference import Predictions
from jetx.evaluation.run import stage_evaluation
from jetx.evaluation.scores import proper


def _rounds(n, seed, intercept, slope):
    """Scores uniform on (0.05, 0.95) and outcomes drawn with P = sigmoid(a + b logit(score))."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.05, 0.95, n)
    truth = special.expit(intercept + slope * special.logit(scores))
    return (rng.random(n) < truth).astype(float), scores, truth


@pytest.mark.parametrize(("intercept", "slope"), [(0.6, 1.0), (1.2, 0.5), (-0.3, 2.0)])
def test_the_fit_recovers_a_known_map(intercept, slope):
    outcome, scores, _ = _rounds(40_000, 1, intercept, slope)
    platt = fit_platt(outcome, scores)
    # Standard errors at 40,000 rounds are about 0.012 (intercept) and 0.015 (slope).
    assert platt.intercept == pytest.approx(intercept, abs=0.06)
    assert platt.slope == pytest.approx(slope, abs=0.07)
    assert platt.rounds == 40_000


def test_the_fitted_map_has_the_highest_likelihood_nearby():
    outcome, scores, _ = _rounds(5_000, 2, 0.4, 0.8)
    platt = fit_platt(outcome, scores)

    def nll(intercept, slope):
        mapped = PlattMap(intercept, slope, 0).apply(scores)
        return proper.log_loss(outcome, mapped).mean()

    best = nll(platt.intercept, platt.slope)
    for di, ds in [(0.02, 0), (-0.02, 0), (0, 0.02), (0, -0.02)]:
        assert best < nll(platt.intercept + di, platt.slope + ds)


def test_constant_scores_map_to_the_validation_base_rate():
    outcome = np.array([1.0] * 65 + [0.0] * 35)
    platt = fit_platt(outcome, np.full(100, 0.5))
    assert platt.slope == pytest.approx(0.0, abs=1e-4)
    assert platt.apply(np.array([0.1, 0.9])) == pytest.approx([0.65, 0.65], abs=1e-4)


def test_a_ranking_upside_down_is_not_turned_over_by_the_fit():
    outcome, scores, _ = _rounds(5_000, 3, 0.5, -1.5)
    platt = fit_platt(outcome, scores)
    assert platt.slope == 0.0
    assert platt.apply(scores) == pytest.approx(np.full(scores.size, outcome.mean()), abs=1e-4)


def test_the_map_keeps_the_order_and_the_identity_changes_nothing():
    scores = np.array([0.01, 0.2, 0.5, 0.8, 0.99])
    assert np.all(np.diff(PlattMap(0.3, 0.7, 10).apply(scores)) > 0)
    np.testing.assert_allclose(IDENTITY.apply(scores), scores, atol=1e-12)
    assert PlattMap.from_dict(PlattMap(0.3, 0.7, 10).to_dict()) == PlattMap(0.3, 0.7, 10)


def test_too_few_validation_rounds_is_a_clear_error():
    with pytest.raises(JetxInputError, match="at least 2 validation rounds"):
        fit_platt(np.array([1.0]), np.array([0.5]))


def _predictions(outcome, p):
    y_value = np.where(outcome == 1, 2.0, 1.2)
    return Predictions(y_value, p, np.full(p.size, 2.0), np.tile([0.3, 0.5, 0.2], (p.size, 1)))


def test_a_biased_head_scores_better_after_the_map_fitted_on_validation():
    # The head ranks the rounds by their true chance but says about 0.4 where 0.64 happens: what
    # a class-0-weighted loss does. The raw forecasts lose to the base rate; the recalibrated win.
    outcome_val, _, truth_val = _rounds(3_000, 4, 0.6, 0.5)
    outcome_test, _, truth_test = _rounds(3_000, 5, 0.6, 0.5)
    biased = lambda truth: special.expit(special.logit(truth) - 1.0)  # noqa: E731
    val = _predictions(outcome_val, biased(truth_val))
    test = _predictions(outcome_test, biased(truth_test))
    base_rate = float(outcome_val.mean())
    evaluated = stage_evaluation(1, test, val, base_rate=base_rate)
    platt, forecast = evaluated["recalibration"], evaluated["forecast"]
    assert platt["rounds"] == 3_000
    # The head's logit is the truth's minus 1: the true map is intercept 1, slope 1.
    assert platt["intercept"] == pytest.approx(1.0, abs=0.2)
    assert platt["slope"] == pytest.approx(1.0, abs=0.2)
    base_loss = forecast["forecasters"]["base_rate"]["log_loss"]
    assert platt["raw_log_loss"] > base_loss > forecast["forecasters"]["model"]["log_loss"]
    assert forecast["skill"]["base_rate"]["log_loss"]["ci"][0] > 0
    assert abs(forecast["calibration"]["mean_forecast"] - outcome_test.mean()) < 0.03
