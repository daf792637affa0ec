"""jetx.evaluation.scores.heads against hand-computed confusion matrices, the degenerate ones."""

import numpy as np
import pytest

from jetx.config import BREAK_EVEN_WIN_RATE
from jetx.errors import JetxInputError
from jetx.evaluation.scores import heads

# Each case: y, p, cut, and the counts and rates worked out by hand.
CASES = [
    pytest.param(
        [1.2, 1.4, 1.6, 2.0, 12.0, 1.0],
        [0.7, 0.2, 0.8, 0.4, 0.9, 0.1],
        0.5,
        dict(tp=2, fp=1, tn=2, fn=1, bets=3, wins=2, profit=0.0, roi=0.0),
        dict(
            below_accuracy=2 / 3,
            above_accuracy=2 / 3,
            money_loss_risk=1 / 3,
            threshold_accuracy=4 / 6,
            precision=2 / 3,
            win_rate=2 / 3,
            base_rate=0.5,
        ),
        id="mixed",
    ),
    pytest.param(
        [1.2, 1.4, 1.6, 2.0, 12.0, 1.0],
        [0.1] * 6,
        0.5,
        dict(tp=0, fp=0, tn=3, fn=3, bets=0, wins=0, profit=0.0, roi=0.0),
        dict(
            below_accuracy=1.0,
            above_accuracy=0.0,
            money_loss_risk=0.0,
            threshold_accuracy=0.5,
            precision=None,
            win_rate=None,
            base_rate=0.5,
        ),
        id="never-bets",
    ),
    pytest.param(
        [1.5, 2.0, 3.0],
        [0.9, 0.2, 0.6],
        0.5,
        dict(tp=2, fp=0, tn=0, fn=1, bets=2, wins=2, profit=1.0, roi=0.5),
        dict(
            below_accuracy=None,
            above_accuracy=2 / 3,
            money_loss_risk=None,
            threshold_accuracy=2 / 3,
            precision=1.0,
            win_rate=1.0,
            base_rate=1.0,
        ),
        id="no-round-under-1.5",
    ),
    pytest.param(
        [1.0, 1.49, 1.5, 100.0],
        [1.0, 1.0, 1.0, 1.0],
        0.5,
        dict(tp=2, fp=2, tn=0, fn=0, bets=4, wins=2, profit=-1.0, roi=-0.25),
        dict(
            below_accuracy=0.0,
            above_accuracy=1.0,
            money_loss_risk=1.0,
            threshold_accuracy=0.5,
            precision=0.5,
            win_rate=0.5,
            base_rate=0.5,
        ),
        id="always-bets",
    ),
    pytest.param(
        [1.2, 1.6],
        [0.5, 0.49],
        0.5,
        dict(tp=0, fp=1, tn=0, fn=1, bets=1, wins=0, profit=-1.0, roi=-1.0),
        dict(
            below_accuracy=0.0,
            above_accuracy=0.0,
            money_loss_risk=1.0,
            threshold_accuracy=0.0,
            precision=0.0,
            win_rate=0.0,
            base_rate=0.5,
        ),
        id="cut-is-inclusive",
    ),
    pytest.param(
        [],
        [],
        0.5,
        dict(tp=0, fp=0, tn=0, fn=0, bets=0, wins=0, profit=0.0, roi=0.0),
        dict(
            below_accuracy=None,
            above_accuracy=None,
            money_loss_risk=None,
            threshold_accuracy=None,
            precision=None,
            win_rate=None,
            base_rate=None,
        ),
        id="empty-split",
    ),
]


@pytest.mark.parametrize("y, p, cut, counts, rates", CASES)
def test_threshold_metrics_match_hand_computed(y, p, cut, counts, rates):
    result = heads.threshold_metrics(np.array(y), heads.bet_signal(np.array(p), cut))
    for key, expected in counts.items():
        assert result[key] == pytest.approx(expected), key
    for key, expected in rates.items():
        if expected is None:
            assert result[key] is None, key
        else:
            assert result[key] == pytest.approx(expected), key
    assert result["rounds"] == len(y)
    assert (result["win_rate_ci"] is None) == (counts["bets"] == 0)
    assert (result["below_accuracy_ci"] is None) == (rates["below_accuracy"] is None)


@pytest.mark.parametrize(
    "successes, trials, expected",
    [
        (0, 10, (0.0, 0.2775)),
        (5, 10, (0.2366, 0.7634)),
        (10, 10, (0.7225, 1.0)),
        (81, 263, (0.2553, 0.3662)),
    ],
)
def test_wilson_interval_matches_published_values(successes, trials, expected):
    low, high = heads.wilson_interval(successes, trials)
    assert (low, high) == pytest.approx(expected, abs=1e-4)


def test_wilson_interval_of_no_trials_is_undefined():
    assert heads.wilson_interval(0, 0) is None


def test_roi_interval_is_the_win_rate_interval_mapped_through_the_payout():
    y = np.array([2.0] * 7 + [1.1] * 3)
    result = heads.bankroll(y, np.ones(10, dtype=bool))
    low, high = heads.wilson_interval(7, 10)
    assert result["roi"] == pytest.approx(1.5 * 0.7 - 1)
    assert result["roi_ci"] == pytest.approx((1.5 * low - 1, 1.5 * high - 1))
    assert result["profit"] == pytest.approx(7 * 0.5 - 3)


def test_break_even_win_rate_is_two_thirds():
    assert abs(BREAK_EVEN_WIN_RATE - 2 / 3) < 1e-12
    y = np.array([2.0, 2.0, 1.1])
    assert heads.bankroll(y, np.ones(3, dtype=bool))["roi"] == pytest.approx(0.0)


def test_bankroll_curve_accumulates_only_bets():
    y = np.array([2.0, 1.1, 1.1, 3.0])
    curve = heads.bankroll_curve(y, np.array([True, True, False, True]))
    np.testing.assert_allclose(curve, [0.5, -0.5, -0.5, 0.0])


def test_classification_confusion_matrix_rows_true_columns_predicted():
    y = np.array([1.2, 1.6, 12.0, 10.0, 1.5])
    proba = np.eye(3)[[0, 0, 2, 1, 1]]
    result = heads.classification_metrics(y, proba)
    assert result["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    assert result["classification_accuracy"] == pytest.approx(3 / 5)


def test_evaluate_predictions_combines_heads_and_targets():
    y = np.array([1.2, 1.4, 1.6, 2.0, 12.0, 1.0])
    p = np.array([[0.1], [0.2], [0.8], [0.9], [0.9], [0.1]])
    pred = y + np.array([1.0, -1.0, 0.5, 0.5, -3.0, 0.0])
    proba = np.eye(3)[[0, 0, 1, 1, 1, 0]]
    result = heads.evaluate_predictions(y, p, pred, proba, cut=0.5)
    assert result["mae"] == pytest.approx(6.0 / 6)
    assert result["median_abs_error"] == pytest.approx(0.75)
    assert result["classification_accuracy"] == pytest.approx(5 / 6)
    assert result["targets"] == {
        "below-1.5 accuracy >= 75%": True,
        "above-1.5 accuracy >= 75%": True,
        "money-loss risk < 20%": True,
        "MAE < 2": True,
    }


def test_targets_are_undefined_without_rounds_under_one_and_a_half():
    y = np.array([1.5, 2.0, 3.0])
    result = heads.evaluate_predictions(y, np.ones(3), y + 5, np.eye(3)[[1, 1, 1]])
    assert result["targets"]["below-1.5 accuracy >= 75%"] is None
    assert result["targets"]["money-loss risk < 20%"] is None
    assert result["targets"]["MAE < 2"] is False


def test_baselines_on_the_same_rounds():
    y = np.array([1.2, 1.4, 1.6, 2.0, 12.0, 1.0, 3.0, 1.7])
    rows = heads.baselines(y, seed=3)
    assert rows["always"]["bets"] == 8
    assert rows["always"]["win_rate"] == pytest.approx(5 / 8)
    assert rows["never"]["bets"] == 0 and rows["never"]["roi"] == 0.0
    assert rows["never"]["win_rate"] is None
    again = heads.baselines(y, seed=3)["random"]
    assert rows["random"] == again
    assert "0.625" in rows["random"]["rule"]


def test_random_baseline_bets_at_the_base_rate_on_average():
    rng = np.random.default_rng(0)
    y = np.where(rng.random(20_000) < 0.64, 2.0, 1.2)
    random_row = heads.baselines(y, seed=1)["random"]
    assert random_row["bets"] / y.size == pytest.approx(0.64, abs=0.02)
    assert random_row["win_rate"] == pytest.approx(0.64, abs=0.02)


@pytest.mark.parametrize(
    "y, p, expected",
    [
        pytest.param([2, 2, 1.2, 1.2], [0.9, 0.8, 0.3, 0.6], 0.8, id="best-profit-highest-tie"),
        pytest.param([1.2, 1.3], [0.2, 0.3], 0.99, id="never-bet-is-best"),
        pytest.param([2, 2, 2], [0.1, 0.2, 0.3], 0.1, id="bet-everything"),
    ],
)
def test_choose_cut_maximises_validation_profit(y, p, expected):
    assert heads.choose_cut(np.array(y, dtype=float), np.array(p)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: heads.bet_signal(np.ones(3), 1.5), "`cut` must be in [0, 1]. Received: cut=1.5"),
        (lambda: heads.threshold_metrics(np.array([0.5]), [True]), "multipliers >= 1.00"),
        (lambda: heads.threshold_metrics(np.ones(3), [True]), "`bet` must have one row"),
        (lambda: heads.bet_signal(np.array([np.nan]), 0.5), "holds NaN"),
        (
            lambda: heads.classification_metrics(np.ones(2), np.ones((2, 2))),
            "`class_proba` must be [N, 3]. Received: shape=(2, 2)",
        ),
        (
            lambda: heads.evaluate_predictions(np.ones(2), np.ones(3), np.ones(2), np.ones((2, 3))),
            "`p_threshold` must have one row per round (2)",
        ),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(JetxInputError) as error:
        call()
    assert message in str(error.value)
