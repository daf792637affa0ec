"""The promotion gate on forecast arrays (numpy only): what it blesses, what it refuses, and why.

The bundles, pointers, `jetx promote` and retention on real files are in tests/test_serving.py,
which shares one trained bundle.
"""

import numpy as np
import pytest

from jetx.serving.promotion import BundleForecasts, common_rounds, decide

ROUNDS = 1500
BASE_RATE = 0.66


def _forecasts(name, p_model, y_value, *, index=None, trials=1):
    index = np.arange(1000, 1000 + len(y_value)) if index is None else index
    return BundleForecasts(
        name=name,
        index=np.asarray(index, np.int64),
        y_value=np.asarray(y_value, np.float64),
        p_model=np.asarray(p_model, np.float64),
        p_base_rate=np.full(len(y_value), BASE_RATE),
        trials=trials,
    )


def _iid(seed):
    """Rounds that reach 1.5x with probability BASE_RATE whatever came before, and a model
    whose forecasts wander around it: nothing to learn."""
    rng = np.random.default_rng(seed)
    y_value = np.where(rng.random(ROUNDS) < BASE_RATE, 2.0, 1.2)
    return y_value, np.clip(BASE_RATE + rng.normal(0, 0.05, ROUNDS), 0.01, 0.99)


def _planted(seed, noise=0.0):
    """Rounds whose chance of 1.5x the model knows (0.3 or 0.9, planted), give or take noise."""
    rng = np.random.default_rng(seed)
    p_true = np.where(rng.random(ROUNDS) < 0.6, 0.9, 0.3)
    y_value = np.where(rng.random(ROUNDS) < p_true, 2.0, 1.2)
    return y_value, np.clip(p_true + rng.normal(0, noise, ROUNDS), 0.01, 0.99)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iid_forecasts_are_never_blessed_and_the_reason_says_why(seed):
    y_value, p_model = _iid(seed)
    decision = decide(_forecasts("run-a", p_model, y_value, trials=3), None)
    assert decision["blessed"] is False
    assert decision["reasons"][0].startswith(
        "No evidence that it beats the training base rate on 1500 test rounds"
    )
    assert "adjusted for 3 test(s)" in decision["reasons"][0]
    base = decision["scores"]["vs_base_rate"]
    assert base["adjusted_p_value"] >= decision["alpha"] and base["trials"] == 3
    assert decision["scores"]["vs_champion"] is None


def test_planted_forecasts_are_blessed_when_there_is_no_champion():
    y_value, p_model = _planted(0)
    decision = decide(_forecasts("run-a", p_model, y_value, trials=3), None)
    assert decision["blessed"] is True
    assert decision["reasons"][0].startswith("It beats the training base rate beyond noise")
    assert decision["reasons"][1] == "There is no champion yet."
    base = decision["scores"]["vs_base_rate"]
    assert base["skill"] > 0.1 and base["adjusted_p_value"] < 1e-6


def test_a_worse_candidate_does_not_replace_the_champion_on_the_same_rounds():
    y_value, p_champion = _planted(0)
    rng = np.random.default_rng(9)
    p_worse = np.clip(p_champion + rng.normal(0, 0.1, ROUNDS), 0.01, 0.99)
    champion = _forecasts("run-a", p_champion, y_value)
    worse = _forecasts("run-b", p_worse, y_value)
    decision = decide(worse, champion)
    assert decide(worse, None)["blessed"] is True  # it beats the base rate on its own
    assert decision["blessed"] is False
    assert "shares with the champion run-a is not lower" in decision["reasons"][1]
    versus = decision["scores"]["vs_champion"]
    assert versus["rounds"] == ROUNDS and versus["model_log_loss"] > versus["reference_log_loss"]
    assert decide(champion, worse)["blessed"] is True  # the better one would


def test_only_common_rounds_with_the_same_outcomes_are_compared():
    y_value, p_model = _planted(0)
    old = _forecasts("run-a", p_model, y_value)
    # The history grew by 500 rounds: the new test block starts 500 positions later.
    grown = _forecasts("run-b", p_model[500:], y_value[500:], index=old.index[500:])
    rows_new, rows_old = common_rounds(grown, old)
    assert rows_new.size == ROUNDS - 500 and np.array_equal(rows_old, np.arange(500, ROUNDS))
    other = _forecasts("run-c", p_model, y_value[::-1])  # same positions, other rounds
    assert common_rounds(other, old) is None
    elsewhere = _forecasts("run-d", p_model, y_value, index=old.index + ROUNDS)
    decision = decide(elsewhere, old)
    assert decision["blessed"] is False
    assert "was tested on other rounds" in decision["reasons"][1]
