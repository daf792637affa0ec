"""The verdicts in words: skill from the proper-score test, the bankroll as its consequence.

Each sentence states the test's figures, the adjusted p-value and how many tests the
adjustment counted, and what the test could have detected with 80% power, so that "no
evidence of skill" never stands alone. Crash games are designed so that a round does not depend
on the previous ones: evidence of skill is a leakage suspect first, not a success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetx.config import BREAK_EVEN_WIN_RATE
from jetx.evaluation.formatting import interval, p_value, percent


def _level(alpha: float, tests: int) -> str:
    """The level Holm's first step applies: alpha / tests."""
    return f"{alpha:g}" if tests == 1 else f"{alpha:g}/{tests}"


def skill_verdict(
    forecast: Mapping[str, Any], test: Mapping[str, Any], *, alpha: float, power: float
) -> str:
    """One sentence on whether the forecasts beat the prior base rate's.

    Args:
        forecast: `jetx.evaluation.scores.forecasts.forecast_scores` of the rounds.
        test: the skill test after adjustment: p_value, adjusted_p_value, tests (how many the
            adjustment counted), detectable_log_loss_improvement and detectable_skill.
        alpha, power: the level the adjusted p-value is read at, and the power of the
            detectable effect.
    """
    scores = forecast["forecasters"]
    skill = forecast["skill"]["base_rate"]["log_loss"]
    shown = test["adjusted_p_value"] < alpha
    text = (
        f"The model's log loss on these {forecast['rounds']} rounds is "
        f"{scores['model']['log_loss']:.4f} nats per round against "
        f"{scores['base_rate']['log_loss']:.4f} for the prior base rate "
        f"({percent(scores['base_rate']['mean_forecast'])}) and "
        f"{scores['house']['log_loss']:.4f} for the house's "
        f"{percent(scores['house']['mean_forecast'])}: skill {percent(skill['estimate'], True)} "
        f"{interval(skill['ci'], True)} (unadjusted) over the base rate; Diebold-Mariano "
        "(HAR variance) one-sided "
        f"p = {p_value(test['p_value'])}, "
        f"{p_value(test['adjusted_p_value'])} after Holm over {test['tests']} "
        f"test{'s' if test['tests'] != 1 else ''}: "
    )
    text += skill_conclusion(shown) + "."
    delta = test["detectable_log_loss_improvement"]
    return text + (
        f" With {100 * power:.0f}% power at level {_level(alpha, test['tests'])} these rounds "
        "could only have shown a "
        f"log-loss improvement of {delta:.4f} nats per round (skill "
        f"{percent(test['detectable_skill'])}) or more."
    )


def bankroll_verdict(
    model: Mapping[str, Any],
    always: Mapping[str, Any],
    test: Mapping[str, Any],
    *,
    cut: str,
    skill_shown: bool,
    alpha: float,
    power: float,
) -> str:
    """One sentence on what betting on the forecasts did: the consequence, not the evidence.

    The win rate "differs" from always-bet's when the two 95% Wilson intervals do not overlap
    (descriptive); "above break-even" is the one-sided binomial test against 2/3, adjusted.
    A window can pay every bettor above the house's odds, so an adjusted win above break-even
    without skill in the forecasts is credited to the rounds, not the model; with skill it is a
    leakage suspect.

    Args:
        model: `jetx.evaluation.scores.heads.threshold_metrics` of the model's bets.
        always: the always-bet baseline on the same rounds.
        test: p_value, adjusted_p_value (None without a bet), tests, detectable_win_rate.
        cut: how the cut reads ("cut 0.50", "the validation cut 0.37").
        skill_shown: whether the skill test (adjusted) found skill.
        alpha, power: as for `skill_verdict`.
    """
    ref = always["win_rate"]
    if model["bets"] == 0:
        return (
            f"At {cut} the model never bets on {model['rounds']} rounds: win rate undefined, "
            f"ROI 0 on 0 bets; always-bet wins {percent(ref)} at ROI "
            f"{percent(always['roi'], True)}."
        )
    low, high = model["win_rate_ci"]
    ref_ci = always["win_rate_ci"]
    differs = ref_ci is not None and (high < ref_ci[0] or low > ref_ci[1])
    text = (
        f"At {cut} the model bets {model['bets']} of {model['rounds']} rounds and wins "
        f"{percent(model['win_rate'])} {interval(model['win_rate_ci'])} vs always-bet "
        f"{percent(ref)} {interval(ref_ci)}: {'a' if differs else 'no'} difference beyond the 95% "
        f"intervals; ROI {percent(model['roi'], True)} {interval(model['roi_ci'], True)}; "
        f"one-sided binomial p = {p_value(test['p_value'])} that it wins above break-even "
        f"({percent(BREAK_EVEN_WIN_RATE)}), {p_value(test['adjusted_p_value'])} after Holm over "
        f"{test['tests']} trials: "
    )
    text += bankroll_conclusion(model, always, test, skill_shown=skill_shown, alpha=alpha) + "."
    detectable = test["detectable_win_rate"]
    if detectable is None:
        return text + (
            f" {model['bets']} bets are too few to show any win rate at level "
            f"{_level(alpha, test['tests'])}."
        )
    return text + (
        f" With {model['bets']} bets this test could only have detected a true win rate of "
        f"{percent(detectable)} or more ({100 * power:.0f}% power at level "
        f"{_level(alpha, test['tests'])})."
    )


def skill_conclusion(shown: bool) -> str:
    """What the adjusted skill test concludes, in words (no final full stop)."""
    if shown:
        return (
            "evidence of skill over the base rate; on a game built to be unpredictable that "
            "makes it a leakage suspect first, not a success"
        )
    return "no evidence of skill"


def bankroll_conclusion(
    model: Mapping[str, Any],
    always: Mapping[str, Any],
    test: Mapping[str, Any],
    *,
    skill_shown: bool,
    alpha: float,
) -> str:
    """What the adjusted win-rate test concludes about one cut's bets (no final full stop)."""
    if model["bets"] == 0:
        return "no bet"
    if test["adjusted_p_value"] < alpha and skill_shown:
        return "it beats the house, so it is a leakage suspect first, not a success"
    if test["adjusted_p_value"] < alpha:
        return (
            "above break-even beyond chance, but its forecasts show no skill and betting every "
            f"round returned {percent(always['roi'], True)} here: no evidence that the model's "
            "choices, rather than these rounds, beat the house"
        )
    if model["roi_ci"][1] < 0:
        return "it loses money"
    return "not above break-even"


def stage_summary(stage: Mapping[str, Any], always: Mapping[str, Any], *, alpha: float) -> str:
    """The stage's verdict in one sentence: skill, then the bets at each cut (the figures are
    in the report's verdict table)."""
    shown = stage["skill_test"]["adjusted_p_value"] < alpha
    cuts = {"at_cut": f"at cut {stage['cut']:.2f}", "at_val_cut": "at the validation cut"}
    if stage.get("val_cut") is not None:
        cuts["at_val_cut"] += f" {stage['val_cut']:.2f}"
    bets = [
        f"{where}: "
        + bankroll_conclusion(
            stage[key], always, stage["bankroll_tests"][key], skill_shown=shown, alpha=alpha
        )
        for key, where in cuts.items()
    ]
    skill = skill_conclusion(shown)
    return f"{skill[:1].upper()}{skill[1:]}; {'; '.join(bets)}."
