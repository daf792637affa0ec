"""The promotion gate's decision on forecast arrays: scores in, a typed decision out.

Pure numpy and the evaluation's own statistics (no files, no TensorFlow), so that
bench/gate_lifetime.py runs this very code over simulated lifetimes. The rules
(docs/pipeline.md, "The promotion gate"):

1. **A lifetime budget.** A models dir makes many looks (every scheduled, manual and rerun
   retrain), and a test at 5% on each would bless an i.i.d. history sooner or later (26% over a
   year of weekly looks, measured). Look k is read at ALPHA x 6 / (pi^2 k^2): the levels add up
   to ALPHA over infinitely many looks, so by the union bound the chance that a history with
   nothing to learn ever gets a champion is at most ALPHA, whatever the looks' dependence and
   cadence. The look number comes from the models dir's ledger (`jetx.serving.ledger`).
2. **Two fair references.** The candidate must beat, beyond noise at its look's level, both the
   prior base rate (every round before its test block: what its recalibration knew) and the
   house's HOUSE_FORECAST = 0.97 / 1.5. A constant forecaster is refused outright: one number
   for every round knows nothing a base rate does not. Fewer than MIN_ROUNDS test rounds are
   refused: too few to tell.
3. **The champion keeps earning it.** Each look re-scores the champion on the rounds it never
   saw, and its evidence is pooled over every look since its blessing (Stouffer's z, weighted
   by rounds; the looks' new rounds are disjoint): it is demoted as soon as its pooled skill
   against either reference is not positive (one-sided p >= 1/2), and, once CONFIRM_ROUNDS new
   rounds have been scored, as soon as it does not beat both beyond noise (p >= ALPHA). A
   lucky champion is gone within a few looks; one with real skill gathers evidence and stays
   (bench/gate_lifetime.py measures both).
4. **Candidate against champion is a test.** The candidate replaces a standing champion only
   if it is not worse beyond noise (the one-sided test that its loss is higher, at ALPHA).

Every test is the Diebold-Mariano test with a HAR variance
(`jetx.evaluation.significance.diebold_mariano`) on the per-round log-loss differential; the
candidate's p-values against the references are Bonferroni-adjusted for the skill tests its run
made.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from jetx.evaluation.scores.forecasts import HOUSE_FORECAST, ForecastComparison, compare_forecasts
from jetx.evaluation.significance.diebold_mariano import har_cosines
from jetx.evaluation.significance.trials import ALPHA

#: Fewest test rounds the gate judges: below 100 the HAR test has under 8 degrees of freedom and
#: a model with 5% log-loss skill would pass look 1 less than half the time.
MIN_ROUNDS = 100
#: New rounds after which a champion must beat the references beyond noise, not just be ahead:
#: four weekly looks of 256; a champion with 5% log-loss skill then has z of about 3.6.
CONFIRM_ROUNDS = 1024
#: Forecasts whose range is below this are one constant (up to rounding).
CONSTANT_RANGE = 1e-9
#: The spending rule, as the decision records it.
SPENDING = "alpha_k = alpha * 6 / (pi^2 k^2)"
#: The test, as the decision records it.
TEST = "one-sided Diebold-Mariano on per-round log loss, EWC (HAR) variance, Student t"


def look_level(look: int, alpha: float = ALPHA) -> float:
    """The level of look `look` (1, 2, ...): alpha 6 / (pi^2 k^2); they sum to alpha."""
    if look < 1:
        raise ValueError(f"`look` must be at least 1. Received: look={look}")
    return alpha * 6.0 / (math.pi**2 * look**2)


@dataclass(frozen=True)
class GateForecasts:
    """One bundle's forecasts of test rounds, [N] each in round order.

    Args:
        name: the bundle's name in models/ (its run id).
        index: int64 positions of the rounds in the series.
        y_value: float64 true multipliers.
        p_model: float64 the model's P(value >= 1.5).
        p_base_rate: float64 the prior base rate's forecast (every round before the test).
        trials: skill tests its run made (the count its p-values are adjusted for).
        rescored: a champion's forecasts of another bundle's test rounds, computed afresh
            (`jetx.serving.rescoring`), not its own test's: rounds it never saw.
    """

    name: str
    index: np.ndarray
    y_value: np.ndarray
    p_model: np.ndarray
    p_base_rate: np.ndarray
    trials: int = 1
    rescored: bool = False

    def rows(self, rows: np.ndarray) -> GateForecasts:
        """These forecasts on `rows` only."""
        return GateForecasts(
            name=self.name,
            index=self.index[rows],
            y_value=self.y_value[rows],
            p_model=self.p_model[rows],
            p_base_rate=self.p_base_rate[rows],
            trials=self.trials,
            rescored=self.rescored,
        )


def common_rounds(a: GateForecasts, b: GateForecasts) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows of `a` and of `b` that are the same rounds: common positions with equal outcomes.

    Returns:
        (rows of a, rows of b), or None when they share fewer than 2 positions or a shared
        position holds another value (not the same history).
    """
    _, rows_a, rows_b = np.intersect1d(a.index, b.index, return_indices=True)
    if rows_a.size < 2 or not np.array_equal(a.y_value[rows_a], b.y_value[rows_b]):
        return None
    return rows_a, rows_b


@dataclass(frozen=True)
class Budget:
    """Which share of the lifetime budget a look spends."""

    look: int
    level: float
    alpha: float = ALPHA
    rule: str = SPENDING

    @classmethod
    def of_look(cls, look: int) -> Budget:
        return cls(look=look, level=look_level(look))


@dataclass(frozen=True)
class Evidence:
    """A champion's record on rounds it never saw since it was blessed, one entry per look.

    Args:
        rounds: new rounds scored at each look.
        z: at each look, Stouffer's z of its one-sided p-value against each reference
            (base_rate, house).
        last_index: the newest round position scored so far (-1: none yet).
    """

    rounds: tuple[int, ...] = ()
    z: tuple[dict[str, float], ...] = ()
    last_index: int = -1

    @property
    def total(self) -> int:
        return int(sum(self.rounds))

    def add(self, rounds: int, z: dict[str, float], last_index: int) -> Evidence:
        return Evidence((*self.rounds, rounds), (*self.z, z), last_index)

    def pooled_p(self) -> dict[str, float]:
        """One-sided p-value against each reference, pooled over the looks (weights sqrt n)."""
        weights = np.sqrt(np.asarray(self.rounds, dtype=np.float64))
        return {
            role: float(
                stats.norm.sf(
                    sum(w * z[role] for w, z in zip(weights, self.z, strict=True))
                    / math.sqrt(float(weights @ weights))
                )
            )
            for role in self.z[0]
        }


def _z(p_value: float) -> float:
    """Stouffer's z of a one-sided p-value, finite."""
    return float(np.clip(stats.norm.isf(np.clip(p_value, 1e-300, 1.0)), -40.0, 40.0))


@dataclass(frozen=True)
class GateTest:
    """One test the decision read: against what, at which level, and whether it passed."""

    forecaster: str
    reference: str
    comparison: ForecastComparison
    level: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "comparison": self.comparison.to_dict()}


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided about a candidate, and on which evidence.

    Args:
        blessed: the candidate is the champion now.
        demoted: the champion before, if it failed its re-score on new rounds, else None.
        reasons: one sentence per condition, for people.
        budget: the look's share of the lifetime budget.
        tests: every test read, by role: vs_base_rate and vs_house (the candidate),
            champion_vs_base_rate and champion_vs_house (its re-score), vs_champion.
        references: the constant forecasts the tests used (base_rate: the prior base rate's
            mean forecast; house).
        rounds: the candidate's test rounds.
        evidence: the champion's evidence after this look's re-score (None: not re-scored).
    """

    blessed: bool
    demoted: str | None
    reasons: list[str]
    budget: Budget
    tests: dict[str, GateTest | None] = field(default_factory=dict)
    references: dict[str, float] = field(default_factory=dict)
    rounds: int = 0
    evidence: Evidence | None = None
    champion: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "demoted": self.demoted,
            "reasons": list(self.reasons),
            "budget": asdict(self.budget),
            "test": {"name": TEST, "cosines": har_cosines(max(self.rounds, 2))},
            "min_rounds": MIN_ROUNDS,
            "references": dict(self.references),
            "scores": {k: (t.to_dict() if t else None) for k, t in self.tests.items()},
            "alpha": self.budget.alpha,
            "prospective": self._prospective(),
        }

    def _prospective(self) -> dict[str, Any] | None:
        """This look's entry of the champion's evidence, which the next look pools."""
        if self.evidence is None or not self.evidence.rounds:
            return None
        return {
            "champion": self.champion,
            "rounds": self.evidence.rounds[-1],
            "z": self.evidence.z[-1],
            "last_index": self.evidence.last_index,
            "total_rounds": self.evidence.total,
            "pooled_p": self.evidence.pooled_p(),
            "confirm_rounds": CONFIRM_ROUNDS,
        }


def _skill_tests(
    forecasts: GateForecasts, who: str, *, level: float, trials: int, seed: int | None
) -> dict[str, GateTest]:
    """`forecasts` against the prior base rate and the house, each one-sided at `level`."""
    house = np.full(forecasts.y_value.size, HOUSE_FORECAST)
    out = {}
    for role, label, reference in (
        ("base_rate", "the prior base rate", forecasts.p_base_rate),
        ("house", f"the house's {HOUSE_FORECAST:.4f}", house),
    ):
        scored = compare_forecasts(
            forecasts.y_value,
            forecasts.p_model,
            reference,
            trials=trials,
            interval=seed is not None,
            seed=seed or 0,
        )
        passed = scored.adjusted_p_value < level and scored.skill > 0
        out[role] = GateTest(who, label, scored, level, bool(passed))
    return out


def _skill_sentence(subject: str, tests: dict[str, GateTest], level: float) -> str:
    parts = []
    for test in tests.values():
        c = test.comparison
        adjusted = f", x{c.trials} tests {c.adjusted_p_value:.3g}" if c.trials > 1 else ""
        interval = (
            f" (unadjusted 95% CI {c.skill_ci[0]:+.4f} to {c.skill_ci[1]:+.4f})"
            if c.skill_ci
            else ""
        )
        parts.append(
            f"vs {test.reference}: log loss {c.model_log_loss:.5f} vs {c.reference_log_loss:.5f},"
            f" skill {c.skill:+.4f}{interval}, p = {c.p_value:.3g}{adjusted}"
        )
    verb = "beats" if all(t.passed for t in tests.values()) else "does not beat"
    return (
        f"{subject} {verb} both references beyond noise at level {level:.3g} on "
        f"{next(iter(tests.values())).comparison.rounds} rounds ({'; '.join(parts)})."
    )


def decide(
    candidate: GateForecasts,
    champion: GateForecasts | None,
    *,
    look: int,
    evidence: Evidence | None = None,
    seed: int | None = 0,
) -> GateDecision:
    """Whether `candidate` becomes the champion at look `look`, and whether `champion` (None:
    there is none) keeps its place; the rules are the module's.

    Args:
        candidate: the new bundle's test forecasts.
        champion: the champion's forecasts: re-scored on the candidate's rounds
            (`rescored=True`: new to it) or its own test's (compared where they are common).
        look: this look's number in the models dir's life (1 for the first).
        evidence: the champion's evidence from earlier looks since its blessing (None: none).
        seed: seed of the bootstrap intervals; None skips them (no rule reads them: a
            simulation of many lifetimes does).
    """
    budget = Budget.of_look(look)
    rounds = int(candidate.y_value.size)
    references = {"base_rate": float(np.mean(candidate.p_base_rate)), "house": HOUSE_FORECAST}
    tests: dict[str, GateTest | None] = {"vs_base_rate": None, "vs_house": None}
    reasons = []
    skill = False
    spread = float(np.ptp(candidate.p_model)) if rounds else 0.0
    if rounds < MIN_ROUNDS:
        reasons.append(
            f"It has {rounds} test rounds; the gate judges no fewer than {MIN_ROUNDS}, too few "
            "to tell skill from luck."
        )
    elif spread < CONSTANT_RANGE:
        reasons.append(
            f"Its forecasts are one constant ({float(candidate.p_model[0]):.4f}) for every "
            "round: a constant knows nothing that a base rate does not, so it is never blessed."
        )
    else:
        found = _skill_tests(
            candidate, "candidate", level=budget.level, trials=candidate.trials, seed=seed
        )
        tests.update(vs_base_rate=found["base_rate"], vs_house=found["house"])
        skill = all(t.passed for t in found.values())
        reasons.append(
            _skill_sentence("It", found, budget.level)
            + f" This is look {look} of the models dir, whose level is {budget.rule} = "
            f"{budget.level:.3g}, so that all its looks together risk at most {ALPHA}."
        )
    demoted, stays = None, True
    if champion is None:
        reasons.append("There is no champion yet.")
    elif champion.rescored:
        evidence, stays, kept, reason = _rejudge(champion, evidence or Evidence(), seed)
        tests.update(kept)
        demoted = None if stays else champion.name
        reasons.append(reason)
    replaces = champion is None
    if champion is not None:  # recorded even against a demoted champion, which it need not beat
        better, sentence, versus = _versus_champion(candidate, champion, seed)
        tests["vs_champion"] = versus
        reasons.append(sentence)
        replaces = better or not stays
    return GateDecision(
        blessed=bool(skill and replaces),
        demoted=demoted,
        reasons=reasons,
        budget=budget,
        tests=tests,
        references=references,
        rounds=rounds,
        evidence=evidence if champion is not None and champion.rescored else None,
        champion=champion.name if champion is not None else None,
    )


def _rejudge(
    champion: GateForecasts, evidence: Evidence, seed: int | None
) -> tuple[Evidence, bool, dict[str, GateTest], str]:
    """The champion re-judged on its rounds it never saw: evidence, stays, tests, reason."""
    new = champion.index > evidence.last_index
    count = int(new.sum())
    if count < MIN_ROUNDS:
        return (
            evidence,
            True,
            {},
            f"The champion {champion.name} has {count} rounds it was not scored on "
            f"before; it is judged again when {MIN_ROUNDS} have come.",
        )
    fresh = champion.rows(new)
    kept = _skill_tests(fresh, "champion", level=ALPHA, trials=1, seed=seed)
    z = {role: _z(test.comparison.p_value) for role, test in kept.items()}
    evidence = evidence.add(count, z, int(fresh.index.max()))
    pooled = evidence.pooled_p()
    confirming = evidence.total >= CONFIRM_ROUNDS
    level = ALPHA if confirming else 0.5
    stays = all(p < level for p in pooled.values())
    pooled_words = ", ".join(f"{role} p = {p:.3g}" for role, p in pooled.items())
    rule = (
        f"after {CONFIRM_ROUNDS} new rounds it must beat both beyond noise (p < {ALPHA})"
        if confirming
        else f"until {CONFIRM_ROUNDS} new rounds it must stay ahead of both (p < 0.5)"
    )
    sentence = (
        _skill_sentence(
            f"Re-scored on {count} rounds it never saw, the champion {champion.name}",
            kept,
            ALPHA,
        )
        + f" Pooled over the {evidence.total} new rounds since its blessing ({pooled_words}); "
        + rule
        + (": it stays." if stays else ": it is demoted, as a champion must keep earning it.")
    )
    roles = {"champion_vs_base_rate": kept["base_rate"], "champion_vs_house": kept["house"]}
    return evidence, stays, roles, sentence


def _versus_champion(
    candidate: GateForecasts, champion: GateForecasts, seed: int | None
) -> tuple[bool, str, GateTest | None]:
    """Whether the candidate is not worse than the standing champion beyond noise, on the
    rounds both were scored on."""
    if (rows := common_rounds(candidate, champion)) is None:
        return (
            False,
            f"The champion {champion.name} was tested on other rounds; with no common test "
            "round the two cannot be compared, so the champion stays.",
            None,
        )
    mine, theirs = (candidate.rows(rows[0]), champion.rows(rows[1]))
    worse = compare_forecasts(
        mine.y_value,
        mine.p_model,
        theirs.p_model,
        alternative="greater",
        interval=seed is not None,
        seed=seed or 0,
    )
    passed = not worse.p_value < ALPHA
    test = GateTest("candidate", f"the champion {champion.name}", worse, ALPHA, passed)
    where = (
        f"its {worse.rounds} test rounds, on which the champion {champion.name} was re-scored"
        if champion.rescored
        else f"the {worse.rounds} test rounds it shares with the champion {champion.name}"
    )
    verdict = "not worse beyond noise" if passed else "worse beyond noise"
    return (
        passed,
        f"On {where}, its log loss is {worse.model_log_loss:.5f} against the champion's "
        f"{worse.reference_log_loss:.5f} nats: {verdict} (one-sided p = {worse.p_value:.3g}, "
        f"needs >= {ALPHA} to replace it).",
        test,
    )
