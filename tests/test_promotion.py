"""The promotion gate on forecast arrays (numpy only): what it blesses, what it refuses, what it
demotes, and why.

The bundles, pointers, the ledger on real files, `jetx promote` and retention are in
tests/test_serving.py, which shares one trained bundle; the lifetime figures are
bench/gate_lifetime.py's.
"""

import math

import numpy as np
import pytest

from jetx.evaluation.scores.forecasts import HOUSE_FORECAST
from jetx.evaluation.significance.trials import ALPHA
from jetx.serving.gate import (
    CONFIRM_ROUNDS,
    MIN_ROUNDS,
    Evidence,
    GateForecasts,
    common_rounds,
    decide,
    look_level,
)

ROUNDS = 1500
BASE_RATE = 0.66


def _forecasts(name, p_model, y_value, *, index=None, trials=1, base_rate=BASE_RATE, **kw):
    index = np.arange(1000, 1000 + len(y_value)) if index is None else index
    return GateForecasts(
        name=name,
        index=np.asarray(index, np.int64),
        y_value=np.asarray(y_value, np.float64),
        p_model=np.asarray(p_model, np.float64),
        p_base_rate=np.full(len(y_value), base_rate),
        trials=trials,
        **kw,
    )


def _iid(seed, rounds=ROUNDS):
    """Rounds that reach 1.5x with probability BASE_RATE whatever came before, and a model
    whose forecasts wander around it: nothing to learn."""
    rng = np.random.default_rng(seed)
    y_value = np.where(rng.random(rounds) < BASE_RATE, 2.0, 1.2)
    return y_value, np.clip(BASE_RATE + rng.normal(0, 0.05, rounds), 0.01, 0.99)


def _planted(seed, noise=0.0, rounds=ROUNDS):
    """Rounds whose chance of 1.5x the model knows (0.3 or 0.9, planted), give or take noise."""
    rng = np.random.default_rng(seed)
    p_true = np.where(rng.random(rounds) < 0.6, 0.9, 0.3)
    y_value = np.where(rng.random(rounds) < p_true, 2.0, 1.2)
    return y_value, np.clip(p_true + rng.normal(0, noise, rounds), 0.01, 0.99)


def test_the_looks_levels_add_up_to_alpha_over_any_lifetime():
    levels = [look_level(k) for k in range(1, 100_001)]
    assert levels[0] == pytest.approx(ALPHA * 6 / math.pi**2)
    assert all(a > b for a, b in zip(levels, levels[1:], strict=False))
    assert sum(levels) < ALPHA and sum(levels) == pytest.approx(ALPHA, rel=1e-4)
    with pytest.raises(ValueError, match="`look` must be at least 1"):
        look_level(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iid_forecasts_are_never_blessed_and_the_reason_says_why(seed):
    y_value, p_model = _iid(seed)
    decision = decide(_forecasts("run-a", p_model, y_value, trials=3), None, look=1)
    assert decision.blessed is False
    assert decision.reasons[0].startswith(
        f"It does not beat both references beyond noise at level {look_level(1):.3g} on 1500"
    )
    assert "x3 tests" in decision.reasons[0] and "unadjusted 95% CI" in decision.reasons[0]
    record = decision.to_dict()
    base = record["scores"]["vs_base_rate"]["comparison"]
    assert base["adjusted_p_value"] == pytest.approx(min(1.0, 3 * base["p_value"]))
    assert record["budget"]["look"] == 1 and record["scores"]["vs_house"]["passed"] is False
    assert record["references"] == {"base_rate": BASE_RATE, "house": HOUSE_FORECAST}
    assert "Diebold-Mariano" in record["test"]["name"] and record["min_rounds"] == MIN_ROUNDS


def test_planted_forecasts_are_blessed_when_there_is_no_champion():
    y_value, p_model = _planted(0)
    decision = decide(_forecasts("run-a", p_model, y_value, trials=3), None, look=1)
    assert decision.blessed is True
    assert decision.reasons[0].startswith("It beats both references beyond noise")
    assert decision.reasons[1] == "There is no champion yet."
    for role in ("vs_base_rate", "vs_house"):
        test = decision.tests[role]
        assert test.passed and test.comparison.skill > 0.1, role
        assert test.comparison.adjusted_p_value < 1e-6


def test_the_same_evidence_passes_an_early_look_and_fails_a_late_one():
    # A modest skill: p about 0.01, inside look 1's level 0.030 and outside look 10's 0.0003.
    y_value, p_model = _planted(0, noise=0.3, rounds=300)
    candidate = _forecasts("run-a", p_model, y_value)
    tests = decide(candidate, None, look=1).tests
    for role in ("vs_base_rate", "vs_house"):
        assert look_level(10) < tests[role].comparison.p_value < look_level(1), role
    assert decide(candidate, None, look=1).blessed is True
    late = decide(candidate, None, look=10)
    assert late.blessed is False and "This is look 10 of the models dir" in late.reasons[0]


def test_a_constant_forecaster_is_never_blessed_even_when_the_rate_drifted():
    # The validation block's rate 0.75 where the training block's was 0.60: a constant at 0.75
    # beats a reference at the training rate on these rounds by a wide margin, and still is not
    # blessed: it knows nothing a base rate does not.
    rng = np.random.default_rng(4)
    y_value = np.where(rng.random(ROUNDS) < 0.75, 2.0, 1.2)
    constant = _forecasts("run-a", np.full(ROUNDS, 0.75), y_value, base_rate=0.60)
    decision = decide(constant, None, look=1)
    assert decision.blessed is False
    assert "one constant (0.7500) for every round" in decision.reasons[0]
    assert decision.tests["vs_base_rate"] is None


def test_fewer_test_rounds_than_the_minimum_are_refused():
    y_value, p_model = _planted(0, rounds=MIN_ROUNDS - 1)
    decision = decide(_forecasts("run-a", p_model, y_value), None, look=1)
    assert decision.blessed is False
    assert (
        f"It has {MIN_ROUNDS - 1} test rounds; the gate judges no fewer than"
        in (decision.reasons[0])
    )
    y_value, p_model = _planted(0, rounds=MIN_ROUNDS)
    assert decide(_forecasts("run-a", p_model, y_value), None, look=1).blessed is True


def test_a_worse_candidate_does_not_replace_the_champion_on_the_same_rounds():
    y_value, p_champion = _planted(0)
    rng = np.random.default_rng(9)
    p_worse = np.clip(p_champion + rng.normal(0, 0.1, ROUNDS), 0.01, 0.99)
    champion = _forecasts("run-a", p_champion, y_value)
    worse = _forecasts("run-b", p_worse, y_value)
    decision = decide(worse, champion, look=2)
    assert decide(worse, None, look=2).blessed is True  # it beats the references on its own
    assert decision.blessed is False and decision.demoted is None
    assert "shares with the champion run-a, its log loss is" in decision.reasons[1]
    assert ": worse beyond noise (one-sided p = " in decision.reasons[1]
    versus = decision.tests["vs_champion"].comparison
    assert versus.rounds == ROUNDS and versus.model_log_loss > versus.reference_log_loss
    assert versus.alternative == "greater" and versus.p_value < ALPHA
    assert decide(champion, worse, look=2).blessed is True  # the better one would


def test_a_candidate_not_worse_beyond_noise_replaces_the_champion():
    # Two forecasters of the planted rule with the same noise: equally good, neither worse
    # beyond noise, so the newer one (trained on more rounds) takes over.
    y_value, p_a = _planted(0, noise=0.05)
    rng = np.random.default_rng(10)
    p_b = np.clip(np.where(p_a > 0.6, 0.9, 0.3) + rng.normal(0, 0.05, ROUNDS), 0.01, 0.99)
    decision = decide(_forecasts("run-b", p_b, y_value), _forecasts("run-a", p_a, y_value), look=2)
    assert decision.blessed is True, decision.reasons
    assert "not worse beyond noise" in decision.reasons[1]


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
    decision = decide(elsewhere, old, look=2)
    assert decision.blessed is False
    assert "was tested on other rounds" in decision.reasons[1]


def test_a_champion_rescored_on_new_iid_rounds_is_demoted_and_the_candidate_judged_alone():
    # The champion was blessed on planted rounds; the game is i.i.d. now, so on the rounds it
    # never saw its forecasts are no better than the references.
    y_value, p_candidate = _iid(5)
    rng = np.random.default_rng(6)
    p_champion = np.clip(0.66 + rng.normal(0, 0.2, ROUNDS), 0.01, 0.99)
    champion = _forecasts("run-a", p_champion, y_value, rescored=True)
    decision = decide(_forecasts("run-b", p_candidate, y_value), champion, look=2)
    assert decision.demoted == "run-a" and decision.blessed is False
    assert (
        "Re-scored on 1500 rounds it never saw, the champion run-a does not beat"
        in (decision.reasons[1])
    )
    assert decision.reasons[1].endswith("it is demoted, as a champion must keep earning it.")
    assert decision.tests["champion_vs_base_rate"].comparison.skill < 0
    entry = decision.to_dict()["prospective"]
    assert entry["champion"] == "run-a" and entry["rounds"] == ROUNDS
    assert entry["last_index"] == 1000 + ROUNDS - 1


def test_a_champion_with_skill_stays_and_its_evidence_is_pooled_over_looks():
    evidence = Evidence()
    for look, seed in enumerate((11, 12, 13), start=2):
        y_value, p_model = _planted(seed, noise=0.1, rounds=400)
        index = np.arange(400 * look, 400 * look + 400)
        champion = _forecasts("run-a", p_model, y_value, index=index, rescored=True)
        candidate = _forecasts("run-b", np.clip(p_model + 0.05, 0, 1), y_value, index=index)
        decision = decide(candidate, champion, look=look, evidence=evidence)
        assert decision.demoted is None and "it stays" in decision.reasons[1], decision.reasons
        evidence = decision.evidence
    assert evidence.rounds == (400, 400, 400) and evidence.total >= CONFIRM_ROUNDS
    first = Evidence(evidence.rounds[:1], evidence.z[:1], 0).pooled_p()
    pooled = evidence.pooled_p()
    assert all(pooled[role] < min(first[role], 1e-6) for role in pooled), (first, pooled)
    # Rounds it was scored on before are not new: nothing to re-judge it on.
    again = decide(candidate, champion, look=5, evidence=evidence)
    assert (
        again.evidence == evidence and "0 rounds it was not scored on before" in (again.reasons[1])
    )


def test_a_lucky_champion_must_beat_the_references_beyond_noise_once_confirmed():
    # The same new rounds after two histories: strong early evidence (600 rounds at z = 2), and
    # evidence that is ahead but not beyond noise (100,000 rounds at z = 1, p = 0.16).
    y_value, p_model = _iid(7, rounds=256)
    index = np.arange(100, 356)
    champion = _forecasts("run-a", p_model, y_value, index=index, rescored=True)
    candidate = _forecasts("run-b", p_model, y_value, index=index)
    z = {"base_rate": 2.0, "house": 2.0}
    early = decide(candidate, champion, look=3, evidence=Evidence((600,), (z,), 99))
    assert early.evidence.total < CONFIRM_ROUNDS and early.demoted is None, early.reasons
    assert f"until {CONFIRM_ROUNDS} new rounds it must stay ahead of both" in early.reasons[1]
    z = {"base_rate": 1.0, "house": 1.0}
    late = decide(candidate, champion, look=3, evidence=Evidence((100_000,), (z,), 99))
    pooled = late.evidence.pooled_p()
    assert all(ALPHA < p < 0.5 for p in pooled.values()), pooled
    assert late.demoted == "run-a" and "it must beat both beyond noise" in late.reasons[1]
