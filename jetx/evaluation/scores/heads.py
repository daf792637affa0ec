"""Evaluation metrics of the threshold, regression and classification heads, in pure numpy.

These are the numbers a report prints, kept apart from the Keras training losses so that they
can be checked against hand-computed confusion matrices without a model. "Bet" means the
threshold head's probability is at least the cut c: the model says the round reaches 1.5x.

Conventions, so that no degenerate case becomes a NaN:
- A rate whose denominator is zero (no bet, no round under 1.5, ...) is None ("undefined"),
  and its 95% interval is None too.
- The bankroll bets 1 unit per bet and cashes out at CASHOUT (1.5x): +0.5 on a win, -1 on a
  loss. ROI = profit / bets = 1.5 * win_rate - 1, so the ROI interval is the Wilson interval of
  the win rate mapped through that line: exact given the Wilson interval, and deterministic.
  With no bet, profit and ROI are 0 (nothing staked) and the win rate is undefined.
- Break-even win rate: 1 / CASHOUT = 2/3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from jetx.config import CASHOUT, CLASS_EDGES, NUM_CLASSES
from jetx.errors import JetxInputError

#: The original tool's targets: name -> (metric key, comparison, goal).
TARGETS: dict[str, tuple[str, str, float]] = {
    "below-1.5 accuracy >= 75%": ("below_accuracy", ">=", 0.75),
    "above-1.5 accuracy >= 75%": ("above_accuracy", ">=", 0.75),
    "money-loss risk < 20%": ("money_loss_risk", "<", 0.20),
    "MAE < 2": ("mae", "<", 2.0),
}
#: Cuts `choose_cut` tries: a coarse fixed grid, so the search over cuts stays small.
CUT_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial rate; unlike the normal one it stays inside [0, 1].

    scipy's `binomtest(...).proportion_ci(method="wilson")`, with the rate undefined at 0 trials.

    Args:
        successes: number of successes, 0 <= successes <= trials.
        trials: number of trials.
        level: the interval's coverage.

    Returns:
        (low, high), or None when `trials` is 0 (the rate is undefined).
    """
    if trials == 0:
        return None
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(level, method="wilson")
    return (max(0.0, float(ci.low)), min(1.0, float(ci.high)))


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _check_values(y_value: np.ndarray) -> np.ndarray:
    y = np.asarray(y_value, dtype=np.float64)
    if y.ndim != 1:
        raise JetxInputError(f"`y_value` must be 1-D [N]. Received: shape={y.shape}")
    if not np.all(np.isfinite(y)) or (y.size and y.min() < 1.0):
        raise JetxInputError("`y_value` must hold finite multipliers >= 1.00.")
    return y


def _check_same_length(name: str, array: np.ndarray, n: int) -> np.ndarray:
    if array.shape[0] != n:
        raise JetxInputError(
            f"`{name}` must have one row per round ({n}). Received: shape={array.shape}"
        )
    return array


def bet_signal(p_threshold: np.ndarray, cut: float) -> np.ndarray:
    """Bool [N]: where the model bets, i.e. p(value >= 1.5) >= cut."""
    if not 0.0 <= cut <= 1.0:
        raise JetxInputError(f"`cut` must be in [0, 1]. Received: cut={cut}")
    p = np.asarray(p_threshold, dtype=np.float64).reshape(-1)
    if np.isnan(p).any():
        raise JetxInputError("`p_threshold` holds NaN: the model's threshold head diverged.")
    return p >= cut


def bankroll(y_value: np.ndarray, bet: np.ndarray) -> dict[str, Any]:
    """Bankroll of betting 1 unit on each `bet` round and cashing out at 1.5x.

    Args:
        y_value: float64 [N] true multipliers.
        bet: bool [N] rounds on which a unit is staked.

    Returns:
        bets, wins, profit (units), win_rate and its Wilson interval, roi and its exact interval
        (None for the rates when there is no bet; profit and roi are then 0).
    """
    y = _check_values(y_value)
    bet = _check_same_length("bet", np.asarray(bet, dtype=bool).reshape(-1), y.size)
    bets = int(bet.sum())
    wins = int((bet & (y >= CASHOUT)).sum())
    interval = wilson_interval(wins, bets)
    return {
        "bets": bets,
        "wins": wins,
        "profit": wins * (CASHOUT - 1.0) - (bets - wins),
        "win_rate": _rate(wins, bets),
        "win_rate_ci": interval,
        "roi": CASHOUT * wins / bets - 1.0 if bets else 0.0,
        "roi_ci": None if interval is None else tuple(CASHOUT * w - 1.0 for w in interval),
    }


def bankroll_curve(y_value: np.ndarray, bet: np.ndarray) -> np.ndarray:
    """Float64 [N]: cumulative profit in units after each round, for the bankroll plot."""
    y = _check_values(y_value)
    bet = np.asarray(bet, dtype=bool).reshape(-1)
    gain = np.where(y >= CASHOUT, CASHOUT - 1.0, -1.0)
    return np.cumsum(np.where(bet, gain, 0.0))


def threshold_metrics(y_value: np.ndarray, bet: np.ndarray) -> dict[str, Any]:
    """Confusion counts of the bet signal against value >= 1.5, its rates and its bankroll.

    Args:
        y_value: float64 [N] true multipliers.
        bet: bool [N] the bet signal (predicted value >= 1.5).

    Returns:
        rounds, tp/fp/tn/fn, below_accuracy = TN/(TN+FP), above_accuracy = TP/(TP+FN),
        money_loss_risk = FP/(rounds under 1.5), threshold_accuracy, precision = TP/bets,
        base_rate (share of rounds >= 1.5), and the `bankroll` keys. Undefined rates are None.
    """
    y = _check_values(y_value)
    bet = _check_same_length("bet", np.asarray(bet, dtype=bool).reshape(-1), y.size)
    above = y >= CASHOUT
    tp, fp = int((bet & above).sum()), int((bet & ~above).sum())
    tn, fn = int((~bet & ~above).sum()), int((~bet & above).sum())
    below_accuracy = _rate(tn, tn + fp)
    return {
        "rounds": int(y.size),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "base_rate": _rate(tp + fn, y.size),
        "below_accuracy": below_accuracy,
        "below_accuracy_ci": wilson_interval(tn, tn + fp),
        "above_accuracy": _rate(tp, tp + fn),
        "above_accuracy_ci": wilson_interval(tp, tp + fn),
        "money_loss_risk": None if below_accuracy is None else fp / (tn + fp),
        "threshold_accuracy": _rate(tp + tn, y.size),
        "threshold_accuracy_ci": wilson_interval(tp + tn, y.size),
        "precision": _rate(tp, tp + fp),
        **bankroll(y, bet),
    }


def classification_metrics(y_value: np.ndarray, class_proba: np.ndarray) -> dict[str, Any]:
    """Accuracy and 3x3 confusion matrix (rows true class, columns predicted) of the class head.

    Args:
        y_value: float64 [N] true multipliers; classes by CLASS_EDGES (< 1.5, 1.5 to < 10, >= 10).
        class_proba: float [N, 3] class probabilities; the prediction is the argmax.

    Returns:
        classification_accuracy (None for N = 0) and confusion_matrix as a nested list of ints.
    """
    y = _check_values(y_value)
    proba = np.asarray(class_proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != NUM_CLASSES:
        raise JetxInputError(
            f"`class_proba` must be [N, {NUM_CLASSES}]. Received: shape={proba.shape}"
        )
    _check_same_length("class_proba", proba, y.size)
    true = np.searchsorted(np.asarray(CLASS_EDGES), y, side="right")
    predicted = proba.argmax(axis=1)
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return {
        "classification_accuracy": _rate(int(np.trace(matrix)), y.size),
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_predictions(
    y_value: np.ndarray,
    p_threshold: np.ndarray,
    y_pred_value: np.ndarray,
    class_proba: np.ndarray,
    cut: float = 0.5,
) -> dict[str, Any]:
    """Every metric of one model on one split's rounds, at probability cut `cut`.

    Args:
        y_value: float64 [N] true multipliers.
        p_threshold: float [N] (or [N, 1]) threshold-head probabilities of value >= 1.5.
        y_pred_value: float [N] (or [N, 1]) regression-head predictions of the multiplier.
        class_proba: float [N, 3] classification-head probabilities.
        cut: the model bets where p_threshold >= cut.

    Returns:
        A JSON-ready dict: cut, the `threshold_metrics` keys, mae and median_abs_error,
        classification_accuracy, confusion_matrix, and targets (name -> True/False/None).

    Raises:
        JetxInputError: on arrays of the wrong shape or a cut outside [0, 1].
    """
    y = _check_values(y_value)
    p = _check_same_length("p_threshold", np.asarray(p_threshold).reshape(-1), y.size)
    pred = np.asarray(y_pred_value, dtype=np.float64).reshape(-1)
    _check_same_length("y_pred_value", pred, y.size)
    error = np.abs(pred - y)
    result: dict[str, Any] = {"cut": float(cut)}
    result.update(threshold_metrics(y, bet_signal(p, cut)))
    result["mae"] = float(error.mean()) if y.size else None
    result["median_abs_error"] = float(np.median(error)) if y.size else None
    result.update(classification_metrics(y, class_proba))
    result["targets"] = targets(result)
    return result


def targets(result: dict[str, Any]) -> dict[str, bool | None]:
    """The original tool's targets as pass (True) / fail (False) / undefined (None)."""
    verdicts: dict[str, bool | None] = {}
    for name, (key, op, goal) in TARGETS.items():
        value = result.get(key)
        verdicts[name] = (
            None if value is None else bool(value >= goal if op == ">=" else value < goal)
        )
    return verdicts


def baselines(y_value: np.ndarray, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Bet rules that use no model, scored on the same rounds as the model.

    `random` bets on each round with probability equal to the share of these rounds that reach
    1.5x (the base rate), drawn with numpy's generator seeded by `seed`, so its numbers are
    reproducible; its expected win rate is the base rate itself, since the draw ignores the
    outcome. `always` bets every round (its win rate is the base rate), `never` bets none.

    Args:
        y_value: float64 [N] true multipliers.
        seed: seed of the random baseline's draw.

    Returns:
        {"always": ..., "never": ..., "random": ...}, each a `threshold_metrics` dict with an
        added "rule" string.
    """
    y = _check_values(y_value)
    base_rate = float((y >= CASHOUT).mean()) if y.size else 0.0
    draw = np.random.default_rng(seed).random(y.size) < base_rate
    rules = {
        "always": (np.ones(y.size, dtype=bool), "bet every round"),
        "never": (np.zeros(y.size, dtype=bool), "bet no round"),
        "random": (draw, f"p = base rate {base_rate:.3f}, seed {seed}"),
    }
    return {
        name: {"rule": rule, **threshold_metrics(y, bet)} for name, (bet, rule) in rules.items()
    }


def choose_cut(y_val: np.ndarray, p_val: np.ndarray) -> float:
    """The cut that maximises the validation bankroll's profit, to be applied to test.

    Profit (units won), not ROI: ROI is maximised by a single lucky bet. The candidates are the
    fixed grid 0.01..0.99 (CUT_GRID), so that the search over cuts stays small; a cut above
    every probability means "never bet" (profit 0), which on a game with a house edge is often
    the honest optimum. Ties go to the higher cut (fewer bets). Choose on validation only:
    a cut chosen on test would report its own noise as skill.

    Args:
        y_val: float64 [N] true multipliers of the validation split.
        p_val: float [N] threshold-head probabilities on the validation split.

    Returns:
        The chosen cut, a float in CUT_GRID.
    """
    y = _check_values(y_val)
    p = _check_same_length("p_val", np.asarray(p_val, dtype=np.float64).reshape(-1), y.size)
    gain = np.where(y >= CASHOUT, CASHOUT - 1.0, -1.0)
    profits = np.array([gain[p >= cut].sum() for cut in CUT_GRID])
    best = np.flatnonzero(np.isclose(profits, profits.max()))[-1]
    return float(CUT_GRID[best])


def win_rate_p_value(wins: int, bets: int, null: float) -> float | None:
    """One-sided exact binomial p-value of a win rate above `null`: P(W >= wins | bets, null),
    scipy's `binomtest`.

    None when there is no bet (nothing was tested).
    """
    if bets == 0:
        return None
    return float(stats.binomtest(int(wins), int(bets), null, alternative="greater").pvalue)
