"""The verdicts in words: each says what its test found, after how many tests, and what it could
have detected; the bankroll is credited to the model only with skill in its forecasts."""

import numpy as np
import pytest

from jetx.config import BREAK_EVEN_WIN_RATE
from jetx.evaluation.scores import forecasts, heads
from jetx.evaluation.significance import power, trials, verdicts

ALPHA, POWER, TRIALS = 0.05, 0.8, 6
NOT_ABOVE = "not above break-even"


def _model(wins: int, bets: int, rounds: int = 1000) -> dict:
    y = np.array([2.0] * wins + [1.1] * (bets - wins) + [1.1] * (rounds - bets))
    return heads.threshold_metrics(y, np.arange(rounds) < bets)


def _test(model: dict) -> dict:
    p = heads.win_rate_p_value(model["wins"], model["bets"], BREAK_EVEN_WIN_RATE)
    return {
        "p_value": 1.0 if p is None else p,
        "adjusted_p_value": 1.0 if p is None else min(1.0, TRIALS * p),
        "tests": TRIALS,
        "detectable_win_rate": power.detectable_win_rate(
            model["bets"], null=BREAK_EVEN_WIN_RATE, alpha=ALPHA / TRIALS
        ),
    }


def _bankroll(model: dict, always: dict, skill_shown: bool) -> str:
    return verdicts.bankroll_verdict(
        model, always, _test(model), cut="cut 0.50", skill_shown=skill_shown, alpha=ALPHA,
        power=POWER,
    )  # fmt: skip


@pytest.mark.parametrize(
    "wins, bets, always_wins, skill, expected",
    [
        pytest.param(850, 1000, 640, True, ["a difference", "leakage suspect"], id="beats-house"),
        pytest.param(64, 100, 645, False, ["no difference", NOT_ABOVE], id="like-always"),
        # 72.3% [58.2%, 83.1%] vs 60.9% [57.8%, 63.9%]: the intervals overlap.
        pytest.param(34, 47, 609, False, ["no difference", NOT_ABOVE], id="overlapping"),
        pytest.param(300, 1000, 640, False, ["a difference", "loses money"], id="worse"),
        pytest.param(0, 0, 640, False, ["never bets", "undefined", "ROI 0 on 0 bets"], id="never"),
    ],
)  # fmt: skip
def test_bankroll_verdict_says_what_the_test_says(wins, bets, always_wins, skill, expected):
    sentence = _bankroll(_model(wins, bets), _model(always_wins, 1000, 1000), skill)
    assert "\n" not in sentence
    for phrase in expected:
        assert phrase in sentence
    if bets:
        assert f"after Holm over {TRIALS} trials" in sentence
        assert "could only have detected a true win rate of" in sentence


def test_a_lucky_test_window_is_not_credited_to_the_model_without_skill():
    # The demo's stage 1 of an earlier run: 73.0% [68.2%, 77.2%] vs always-bet 69.3% on 512
    # rounds that paid above the house's odds: above break-even even after Holm over 6.
    model, always = _model(267, 366, rounds=512), _model(355, 512, rounds=512)
    assert _test(model)["adjusted_p_value"] < ALPHA
    sentence = _bankroll(model, always, skill_shown=False)
    assert "no difference" in sentence and "leakage suspect" not in sentence
    assert "betting every round returned +4.0% here: no evidence" in sentence
    assert "leakage suspect" in _bankroll(model, always, skill_shown=True)


def test_too_few_bets_say_so():
    sentence = _bankroll(_model(3, 3), _model(640, 1000, 1000), skill_shown=False)
    assert "3 bets are too few to show any win rate at level 0.05/6" in sentence


def _forecast(p_model: np.ndarray, y: np.ndarray) -> dict:
    return forecasts.forecast_scores(y, p_model, np.full(y.size, 0.65))


def test_skill_verdict_states_the_test_the_adjustment_and_the_power():
    y = np.where(np.random.default_rng(0).random(1280) < 0.65, 2.0, 1.2)
    forecast = _forecast(np.full(y.size, 0.64), y)
    test = {
        "p_value": forecast["dm"]["p_value"],
        "adjusted_p_value": min(1.0, 3 * forecast["dm"]["p_value"]),
        "tests": 3,
        "detectable_log_loss_improvement": 0.0138,
        "detectable_skill": 0.021,
    }
    sentence = verdicts.skill_verdict(forecast, test, alpha=ALPHA, power=POWER)
    assert sentence.startswith("The model's log loss on these 1280 rounds is ")
    assert "after Holm over 3 tests: no evidence of skill." in sentence
    assert (
        "With 80% power at level 0.05/3 these rounds could only have shown a log-loss "
        "improvement of 0.0138 nats per round (skill 2.1%) or more." in sentence
    )
    shown = verdicts.skill_verdict(
        forecast, {**test, "adjusted_p_value": 0.001}, alpha=ALPHA, power=POWER
    )
    assert "evidence of skill over the base rate" in shown and "leakage suspect" in shown


def test_run_trials_counts_one_skill_test_per_stage():
    assert trials.run_trials({"trials": {"skill_tests": 2}}) == 2
