"""The promotion gate on a models dir: `latest` always moves; `champion` only for a model that
earns it, and only while it keeps earning it.

As TFX's Evaluator and Pusher do, a new bundle is compared on the same rounds with baselines
and with the last blessed model, and only a blessed one is published as the champion. One
decision is one straight line, under the models dir's lock:

    inputs   the candidate's test forecasts, the champion's (re-scored on the candidate's
             rounds when it learned from none of them, `jetx.serving.rescoring`), and the
             look number from the ledger (`jetx.serving.ledger`);
    decision `jetx.serving.gate.decide`: the rules, on arrays;
    record   the pointers moved and the decision written to promotion.json and appended to
             promotions.jsonl (`jetx.serving.ledger.Promotion`).

`promote_by_hand` pins a bundle the user chose, recorded as manual with the gate's figures.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jetx.errors import JetxInputError
from jetx.layout import BundleDir, ModelsDir
from jetx.serving import ledger
from jetx.serving.bundle import BUNDLE_FORMAT, read_forecasts, read_manifest
from jetx.serving.gate import GateDecision, GateForecasts, decide
from jetx.serving.pointers import follow, point, pointed, unpoint

logger = logging.getLogger(__name__)


def bundle_forecasts(path: Path) -> GateForecasts:
    """A bundle's own test forecasts (forecasts.npz) and the skill tests its run made.

    A bundle of an older format (a champion exported by an earlier jetx, with no hashes) is
    read with a warning rather than failing the promotion of its successor; any other damage
    is refused (`read_manifest`).
    """
    try:
        trials = read_manifest(path).test.skill_tests
    except JetxInputError as error:
        info = BundleDir(path).info()
        older = isinstance(info, dict) and isinstance(info.get("format"), int)
        if not older or info["format"] >= BUNDLE_FORMAT:
            raise
        logger.warning("%s read without its files' hashes: %s", path, error)
        trials = int(info["test"]["skill_tests"])
    return GateForecasts(name=Path(path).name, trials=trials, **read_forecasts(path))


def promote_run(
    models: ModelsDir, name: str, *, features_dir: Path | None = None, seed: int = 0
) -> dict[str, Any]:
    """Point `latest` at the bundle models/<name>, then decide whether it becomes the champion
    and whether the champion keeps its place.

    With the candidate's `features_dir`, the champion is re-scored on all of the candidate's
    test rounds when it learned from none of them; otherwise the two are compared on the test
    rounds they share, and the champion is not re-judged. Returns promotion.json's content
    (`jetx.serving.ledger.Promotion`).
    """
    with models.lock():
        point(models, ModelsDir.LATEST, name, at=_now())
        before = pointed(models, ModelsDir.CHAMPION)
        if before == name:  # the same run again (a cached export): no new test, no look
            return _record(models, name, before, reasons=["It is the champion already."])
        candidate = bundle_forecasts(models.bundle(name).path)
        champion = None
        if before:
            champion = _champion_forecasts(models.bundle(before).path, candidate, features_dir)
        test = ledger.look_id(candidate)
        decision = decide(
            candidate,
            champion,
            look=ledger.next_look(models, test),
            evidence=ledger.evidence(models, before) if before else None,
            seed=seed,
        )
        return _record(models, name, before, decision=decision, look_id=test)


def _champion_forecasts(
    path: Path, candidate: GateForecasts, features_dir: Path | None
) -> GateForecasts:
    """The champion's forecasts to compare with: of the candidate's own test rounds when it can
    be re-scored on them, else of its own test rounds (compared where they are common)."""
    from jetx.serving.bundle import load_bundle
    from jetx.serving.rescoring import rescore, unseen_by

    tested = bundle_forecasts(path)
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
    return GateForecasts(
        name=tested.name,
        index=candidate.index,
        y_value=candidate.y_value,
        p_model=rescore(champion, features_dir, candidate.index),
        p_base_rate=candidate.p_base_rate,
        trials=1,
        rescored=True,
    )


def promote_by_hand(models: ModelsDir, bundle: Path) -> dict[str, Any]:
    """Make `bundle` the champion, whatever the gate would say; recorded as manual.

    A bundle outside the models dir is copied in, under its run id. The gate's figures against
    the references, at the level of the next look, are recorded beside the decision, so a pin
    never hides them; a pin spends no look.
    """
    source = follow(bundle)
    run = read_manifest(source).run
    name = source.name if source.parent.resolve() == Path(models.path).resolve() else run
    target = models.bundle(name)
    with models.lock():
        if source.resolve() != target.path.resolve() and not _same_model(source, target):
            if target.path.exists():
                raise JetxInputError(
                    f"{target.path} exists and is another bundle; pin that one or remove it"
                )
            shutil.copytree(source, target.path)
        before = pointed(models, ModelsDir.CHAMPION)
        candidate = bundle_forecasts(target.path)
        gate = decide(candidate, None, look=ledger.next_look(models, ledger.look_id(candidate)))
        scores = {**gate.to_dict()["scores"], "gate_would_bless": gate.blessed}
        return _record(
            models,
            name,
            before,
            reasons=[f"Pinned by hand (`jetx promote {bundle}`); the gate did not decide."],
            scores=scores,
            manual=True,
        )


def _same_model(source: Path, target: BundleDir) -> bool:
    """Whether `target` is an export of the same checkpoint of the same run as `source`."""
    if not target.is_complete():
        return False
    mine, theirs = BundleDir(source).info(), target.info()
    return all(mine[key] == theirs[key] for key in ("run", "checkpoint", "data_sha256"))


def _record(
    models: ModelsDir,
    name: str,
    before: str | None,
    *,
    decision: GateDecision | None = None,
    look_id: str | None = None,
    reasons: list[str] | None = None,
    scores: dict[str, Any] | None = None,
    manual: bool = False,
) -> dict[str, Any]:
    """Move the champion pointer as decided, then write the decision (the ledger's writer).

    Without a gate `decision` the candidate is the champion (already, or pinned by hand)."""
    decided_at = _now()
    gate = decision.to_dict() if decision else {}
    blessed = decision.blessed if decision else True
    if blessed:
        point(models, ModelsDir.CHAMPION, name, at=decided_at, manual=manual)
    elif decision and decision.demoted:
        unpoint(models, ModelsDir.CHAMPION)
    promotion = ledger.Promotion(
        decided_at=decided_at,
        bundle=name,
        manual=manual,
        blessed=blessed,
        reasons=gate.get("reasons", reasons or []),
        champion_before=before,
        champion=pointed(models, ModelsDir.CHAMPION),
        latest=pointed(models, ModelsDir.LATEST),
        demoted=gate.get("demoted"),
        prospective=gate.get("prospective"),
        budget=gate.get("budget"),
        look_id=look_id,
        scores=gate.get("scores", scores or {}),
        test=gate.get("test"),
        references=gate.get("references", {}),
        min_rounds=gate.get("min_rounds"),
        alpha=gate.get("alpha"),
    )
    record = ledger.write(models, promotion)
    logger.info("promotion of %s: blessed=%s", name, blessed)
    return record


def decision_markdown(record: dict[str, Any]) -> str:
    """The decision for people (the flow's Prefect artifact)."""
    verdict = "**blessed**: it is the champion" if record["blessed"] else "**not blessed**"
    how = " (pinned by hand)" if record["manual"] else ""
    demoted = f" `{record['demoted']}` was demoted." if record.get("demoted") else ""
    lines = [
        f"# Promotion of `{record['bundle']}`{how}",
        "",
        f"{verdict}. Champion: `{record['champion']}` (before: `{record['champion_before']}`); "
        f"latest: `{record['latest']}`.{demoted}",
        "",
        *[f"- {reason}" for reason in record["reasons"]],
    ]
    return "\n".join(lines) + "\n"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
