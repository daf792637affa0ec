"""The promotion gate: `latest` always moves; `champion` only for a model that earns it.

As TFX's Evaluator and Pusher do, a new bundle is compared on the same rounds with a baseline
and with the last blessed model, and only a blessed one is published as the champion:

(a) it must beat the constant forecaster at the training base rate on log loss of the threshold
    head, beyond noise: the evaluation's own test (`jetx.evaluation.forecasts.compare_forecasts`,
    Diebold-Mariano/HLN, one-sided), its p-value adjusted for the skill tests its run made, read
    against the evaluation's level `ALPHA`;
(b) if there is a champion, its mean log loss must be lower than the champion's on the same
    test rounds: the candidate's own, on which the champion is re-scored when it learned from
    none of them (`jetx.serving.rescoring`: a retrain on a grown history tests on newer rounds),
    else the positions both bundles were tested on, which must hold the same outcomes (a
    history that grew at its end keeps its positions). Without common rounds nothing is
    compared, and the champion stays.

Every decision is written to models/promotion.json and appended to models/promotions.jsonl;
`promote_by_hand` pins a bundle the user chose, recorded as manual.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from jetx.errors import JetxInputError
from jetx.evaluation.forecasts import compare_forecasts
from jetx.evaluation.trials import ALPHA
from jetx.io import write_json
from jetx.layout import BundleDir, ModelsDir
from jetx.serving.bundle import read_forecasts
from jetx.serving.pointers import follow, point, pointed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleForecasts:
    """A bundle's forecasts of its test rounds (forecasts.npz), [N] each, in round order.

    Args:
        name: the bundle's name in models/ (its run id).
        index: int64 positions of the rounds in the series.
        y_value: float64 true multipliers.
        p_model: float64 the model's P(value >= 1.5).
        p_base_rate: float64 the training base rate's forecast.
        trials: skill tests its run made (the count its p-value is adjusted for).
        rescored: these are a champion's forecasts of another bundle's test rounds, computed
            afresh (`jetx.serving.rescoring`), not its own test's.
    """

    name: str
    index: np.ndarray
    y_value: np.ndarray
    p_model: np.ndarray
    p_base_rate: np.ndarray
    trials: int = 1
    rescored: bool = False

    @classmethod
    def of_bundle(cls, path: Path) -> BundleForecasts:
        info = BundleDir(path).info()
        saved = read_forecasts(path)
        return cls(name=Path(path).name, trials=int(info["test"]["skill_tests"]), **saved)


def common_rounds(a: BundleForecasts, b: BundleForecasts) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows of `a` and of `b` that are the same rounds: common positions with equal outcomes.

    Returns:
        (rows of a, rows of b), or None when they share no position or a shared position holds
        another value (not the same history).
    """
    _, rows_a, rows_b = np.intersect1d(a.index, b.index, return_indices=True)
    if rows_a.size < 2 or not np.array_equal(a.y_value[rows_a], b.y_value[rows_b]):
        return None
    return rows_a, rows_b


def decide(
    candidate: BundleForecasts, champion: BundleForecasts | None, *, seed: int = 0
) -> dict[str, Any]:
    """Whether `candidate` replaces `champion` (None: there is none yet), with reasons.

    Returns:
        blessed, reasons (one sentence per condition), and scores: vs_base_rate and
        vs_champion (`ForecastComparison.to_dict()`, or None when not compared), alpha.
    """
    base = compare_forecasts(
        candidate.y_value,
        candidate.p_model,
        candidate.p_base_rate,
        trials=candidate.trials,
        seed=seed,
    )
    beats_base = base.adjusted_p_value < ALPHA and base.skill > 0
    reasons = [_base_reason(base, beats_base)]
    versus, beats_champion = None, True
    if champion is None:
        reasons.append("There is no champion yet.")
    elif (rows := common_rounds(candidate, champion)) is None:
        beats_champion = False
        reasons.append(
            f"The champion {champion.name} was tested on other rounds; with no common test "
            "round the two cannot be compared, so the champion stays."
        )
    else:
        mine, theirs = rows
        versus = compare_forecasts(
            candidate.y_value[mine], candidate.p_model[mine], champion.p_model[theirs], seed=seed
        )
        beats_champion = versus.model_log_loss < versus.reference_log_loss
        verb = "lower" if beats_champion else "not lower"
        shares = (
            f"its {versus.rounds} test rounds, on which the champion {champion.name} was re-scored,"
            if champion.rescored
            else f"the {versus.rounds} test rounds it shares with the champion {champion.name}"
        )
        reasons.append(
            f"Its log loss on {shares} is {verb}: {versus.model_log_loss:.5f} vs "
            f"{versus.reference_log_loss:.5f} nats (DM/HLN p = {versus.p_value:.3g})."
        )
    return {
        "blessed": bool(beats_base and beats_champion),
        "reasons": reasons,
        "scores": {
            "vs_base_rate": base.to_dict(),
            "vs_champion": versus.to_dict() if versus else None,
        },
        "alpha": ALPHA,
    }


def _base_reason(base, beats: bool) -> str:
    figures = (
        f"log loss {base.model_log_loss:.5f} vs {base.reference_log_loss:.5f} nats, skill "
        f"{base.skill:+.4f} (95% CI {base.skill_ci[0]:+.4f} to {base.skill_ci[1]:+.4f}), DM/HLN "
        f"p = {base.p_value:.3g}, adjusted for {base.trials} test(s) {base.adjusted_p_value:.3g}"
    )
    if beats:
        return f"It beats the training base rate beyond noise on {base.rounds} rounds: {figures}."
    return (
        f"No evidence that it beats the training base rate on {base.rounds} test rounds "
        f"({figures}; needs < {ALPHA})."
    )


def promote_run(
    models: ModelsDir, name: str, *, features_dir: Path | None = None, seed: int = 0
) -> dict[str, Any]:
    """Point `latest` at the bundle models/<name>, then decide whether it becomes the champion.

    One decision at a time (the models dir's lock). With the candidate's `features_dir`, the
    champion is re-scored on all of the candidate's test rounds when it learned from none of
    them (`jetx.serving.rescoring`); otherwise the two are compared on the test rounds they
    share. Returns the decision as written to promotion.json: decided_at, bundle, manual,
    blessed, reasons, scores, champion_before, champion and latest.
    """
    with models.lock():
        point(models, ModelsDir.LATEST, name, at=_now())
        before = pointed(models, ModelsDir.CHAMPION)
        candidate = BundleForecasts.of_bundle(models.bundle(name).path)
        if before == name:  # the same run again (a cached export): nothing to decide
            decision = decide(candidate, None, seed=seed)
            decision.update(blessed=True, reasons=["It is the champion already."])
            return _record(models, name, decision, before, manual=False)
        champion = None
        if before:
            champion = _champion_forecasts(models.bundle(before).path, candidate, features_dir)
        return _record(models, name, decide(candidate, champion, seed=seed), before, manual=False)


def _champion_forecasts(
    path: Path, candidate: BundleForecasts, features_dir: Path | None
) -> BundleForecasts:
    """The champion's forecasts to compare with: of the candidate's own test rounds when it can
    be re-scored on them, else of its own test rounds (compared where they are common)."""
    from jetx.serving.bundle import load_bundle
    from jetx.serving.rescoring import rescore, unseen_by

    tested = BundleForecasts.of_bundle(path)
    if features_dir is None:
        return tested
    try:  # a champion this jetx cannot load (an older bundle format) keeps its own forecasts
        champion = load_bundle(path)
        why_not = unseen_by(champion, features_dir, candidate.index)
    except JetxInputError as error:
        why_not = str(error)
    if why_not is not None:
        logger.info("champion %s not re-scored: %s", tested.name, why_not)
        return tested
    return dataclasses.replace(
        tested,
        index=candidate.index,
        y_value=candidate.y_value,
        p_model=rescore(champion, features_dir, candidate.index),
        p_base_rate=candidate.p_base_rate,
        rescored=True,
    )


def promote_by_hand(models: ModelsDir, bundle: Path) -> dict[str, Any]:
    """Make `bundle` the champion, whatever the gate would say; recorded as manual.

    A bundle outside the models dir is copied in, under its run id. The gate's figures against
    the base rate are recorded beside the decision, so a pin never hides them.
    """
    source = follow(bundle)
    info = BundleDir(source).info()
    name = source.name if source.parent.resolve() == Path(models.path).resolve() else info["run"]
    target = models.bundle(name)
    with models.lock():
        if source.resolve() != target.path.resolve() and not _same_model(source, target):
            if target.path.exists():
                raise JetxInputError(
                    f"{target.path} exists and is another bundle; pin that one or remove it"
                )
            shutil.copytree(source, target.path)
        before = pointed(models, ModelsDir.CHAMPION)
        gate = decide(BundleForecasts.of_bundle(target.path), None)
        decision = {
            "blessed": True,
            "reasons": [f"Pinned by hand (`jetx promote {bundle}`); the gate did not decide."],
            "scores": {**gate["scores"], "gate_would_bless": gate["blessed"]},
            "alpha": gate["alpha"],
        }
        return _record(models, name, decision, before, manual=True)


def _same_model(source: Path, target: BundleDir) -> bool:
    """Whether `target` is an export of the same checkpoint of the same run as `source`."""
    if not target.is_complete():
        return False
    mine, theirs = BundleDir(source).info(), target.info()
    return all(mine[key] == theirs[key] for key in ("run", "checkpoint", "data_sha256"))


def _record(
    models: ModelsDir, name: str, decision: dict, before: str | None, *, manual: bool
) -> dict[str, Any]:
    decided_at = _now()
    if decision["blessed"]:
        point(models, ModelsDir.CHAMPION, name, at=decided_at, manual=manual)
    record = {
        "decided_at": decided_at,
        "bundle": name,
        "manual": manual,
        **decision,
        "champion_before": before,
        "champion": pointed(models, ModelsDir.CHAMPION),
        "latest": pointed(models, ModelsDir.LATEST),
    }
    record = json.loads(json.dumps(record))
    write_json(models.promotion, record)
    with open(models.promotions, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    logger.info("promotion of %s: blessed=%s", name, record["blessed"])
    return record


def decision_markdown(record: dict[str, Any]) -> str:
    """The decision for people (the flow's Prefect artifact)."""
    verdict = "**blessed**: it is the champion" if record["blessed"] else "**not blessed**"
    how = " (pinned by hand)" if record["manual"] else ""
    lines = [
        f"# Promotion of `{record['bundle']}`{how}",
        "",
        f"{verdict}. Champion: `{record['champion']}` (before: `{record['champion_before']}`); "
        f"latest: `{record['latest']}`.",
        "",
        *[f"- {reason}" for reason in record["reasons"]],
    ]
    return "\n".join(lines) + "\n"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
