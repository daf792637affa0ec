"""Every trial counted: the tests a run's verdicts read, adjusted together, and the verdicts.

A run reads its model at every stage and at two cuts (the given one and the one validation
chooses): stages x cuts trials. Reading the best of them without a correction credits luck
(the best of 10 null trials has an expected z of about 1.5), so each verdict uses Holm-adjusted
p-values and says over how many tests:

- the skill test (DM on log loss against the base rate) has one test per stage: a cut does
  not change a forecast, so both cuts of a stage share it; adjusted over the stages;
- the bankroll test (the win rate against break-even) has one test per trial; adjusted over
  stages x cuts. A trial without a bet tested nothing and counts as p = 1.

What each test could have detected with POWER is computed at Holm's first-step level
ALPHA / tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jetx.config import BREAK_EVEN_WIN_RATE
from jetx.errors import JetxInputError
from jetx.evaluation.records import Evaluation
from jetx.evaluation.scores import heads
from jetx.evaluation.significance import power, verdicts

#: Level of every test: the adjusted p-value is read against it.
ALPHA = 0.05
#: Power of the detectable effects stated beside each verdict.
POWER = 0.8
#: The two cuts of a stage: key of its metrics -> how the trials table names it.
CUTS = {"at_cut": "given", "at_val_cut": "validation-chosen"}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    The k-th smallest of m p-values becomes max over j <= k of (m - j + 1) p_(j), capped at 1;
    rejecting where the adjusted value is below alpha keeps the chance of any false rejection
    among the m at most alpha, whatever their dependence.
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return []
    if np.isnan(p).any() or p.min() < 0 or p.max() > 1:
        raise JetxInputError(f"`p_values` must be in [0, 1]. Received: {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()


def _cut_words(stage: Mapping[str, Any], key: str) -> str:
    if key == "at_cut":
        return f"cut {stage['cut']:.2f}"
    if stage.get("val_cut") is None:
        return "each origin's validation-chosen cut"
    return f"the validation cut {stage['val_cut']:.2f}"


def _skill_test(stage: Mapping[str, Any], adjusted: float, tests: int) -> dict[str, Any]:
    forecast = stage["forecast"]
    delta = power.detectable_log_loss_improvement(
        forecast["rounds"], alpha=ALPHA / tests, power=POWER
    )
    base = forecast["forecasters"]["base_rate"]["log_loss"]
    return {
        "p_value": forecast["dm"]["p_value"],
        "adjusted_p_value": adjusted,
        "tests": tests,
        "detectable_log_loss_improvement": delta,
        "detectable_skill": None if delta is None or base <= 0 else delta / base,
    }


def adjust_stages(
    stages: Sequence[Mapping[str, Any]], always: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The stages with their tests adjusted for every trial and their verdicts, and the trials.

    Args:
        stages: `jetx.evaluation.run.stage_evaluation` dicts (forecast, at_cut, at_val_cut).
        always: the always-bet baseline on the same rounds.

    Returns:
        (stages, trials): each stage gains skill_test, bankroll_tests (per cut), skill_verdict,
        bankroll_verdict, bankroll_verdict_at_val_cut, verdict (skill and the given cut's
        bankroll) and verdict_at_val_cut; trials holds count (stages x cuts), skill_tests,
        bankroll_tests, alpha, power and tried (one row per trial).
    """
    skill_adjusted = holm([s["forecast"]["dm"]["p_value"] for s in stages])
    raw = {
        (i, key): heads.win_rate_p_value(s[key]["wins"], s[key]["bets"], BREAK_EVEN_WIN_RATE)
        for i, s in enumerate(stages)
        for key in CUTS
    }
    bank_adjusted = dict(zip(raw, holm([p or 1.0 for p in raw.values()]), strict=True))
    n_skill, n_bank = len(stages), len(raw)
    out, tried = [], []
    for i, stage in enumerate(stages):
        skill = _skill_test(stage, skill_adjusted[i], n_skill)
        shown = skill["adjusted_p_value"] < ALPHA
        tests, sentences = {}, {}
        for key in CUTS:
            bets = stage[key]["bets"]
            tests[key] = {
                "p_value": raw[(i, key)] if raw[(i, key)] is not None else 1.0,
                "adjusted_p_value": bank_adjusted[(i, key)],
                "tests": n_bank,
                "detectable_win_rate": power.detectable_win_rate(
                    bets, null=BREAK_EVEN_WIN_RATE, alpha=ALPHA / n_bank, power=POWER
                ),
            }
            sentences[key] = verdicts.bankroll_verdict(
                stage[key],
                always,
                tests[key],
                cut=_cut_words(stage, key),
                skill_shown=shown,
                alpha=ALPHA,
                power=POWER,
            )
            tried.append(_tried_row(stage, key, skill, tests[key]))
        skill_sentence = verdicts.skill_verdict(stage["forecast"], skill, alpha=ALPHA, power=POWER)
        out.append(
            {
                **stage,
                "skill_test": skill,
                "bankroll_tests": tests,
                "skill_verdict": skill_sentence,
                "bankroll_verdict": sentences["at_cut"],
                "bankroll_verdict_at_val_cut": sentences["at_val_cut"],
                "verdict": f"{skill_sentence} {sentences['at_cut']}",
                "verdict_at_val_cut": sentences["at_val_cut"],
            }
        )
    trials = {
        "count": len(stages) * len(CUTS),
        "stages": [s["stage"] for s in stages],
        "cuts": list(CUTS.values()),
        "skill_tests": n_skill,
        "bankroll_tests": n_bank,
        "alpha": ALPHA,
        "power": POWER,
        "tried": tried,
    }
    return out, trials


def _tried_row(stage: Mapping[str, Any], key: str, skill: dict, bank: dict) -> dict[str, Any]:
    return {
        "stage": stage["stage"],
        "cut": CUTS[key],
        "cut_value": stage["cut"] if key == "at_cut" else stage.get("val_cut"),
        "bets": stage[key]["bets"],
        "skill_p_value": skill["p_value"],
        "skill_adjusted_p_value": skill["adjusted_p_value"],
        "bankroll_p_value": bank["p_value"],
        "bankroll_adjusted_p_value": bank["adjusted_p_value"],
    }


def run_trials(evaluation: Evaluation) -> int:
    """Skill tests a run's evaluation made (one per stage): the count a gate adjusts for."""
    return int(evaluation["trials"]["skill_tests"])
