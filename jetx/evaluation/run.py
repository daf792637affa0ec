"""Evaluate a trained run: predict each stage's best checkpoint on a split and score it.

The scoring (`stage_evaluation`, `build_evaluation`) is pure numpy over `Predictions`, so it is
testable without a model; `evaluate_run` loads TensorFlow only when called. The forecasts are
scored first by proper scores against the constant forecasters (`jetx.evaluation.scores.forecasts`),
then as bets; the cut chosen on validation (`jetx.evaluation.scores.heads.choose_cut`) is applied to
the evaluated split, never chosen on it, and every verdict is adjusted for the run's trials
(`jetx.evaluation.significance.trials`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from jetx.errors import JetxInputError
from jetx.evaluation.calibration import platt
from jetx.evaluation.inference import Predictions, predict, write_predictions
from jetx.evaluation.records import SCHEMA, Evaluation, write_evaluation
from jetx.evaluation.report.tables import training_rows
from jetx.evaluation.scores import forecasts, heads, proper
from jetx.evaluation.significance.trials import adjust_stages
from jetx.layout import FeaturesDir, RunDir
from jetx.training.epoch_history import read_records

logger = logging.getLogger(__name__)


def stage_evaluation(
    stage: int,
    test: Predictions,
    val: Predictions,
    *,
    base_rate: float,
    cut: float = 0.5,
    checkpoint: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """One stage's scores on the evaluated split: its forecasts by proper scores, and its bets at
    `cut` and at the cut validation chooses. The head's outputs are first recalibrated by the
    Platt map fitted on the validation rounds (`jetx.evaluation.calibration.platt`), so that what is
    scored is a probability. Its verdicts need the whole run's trials: they are added by
    `build_evaluation`.

    Args:
        stage: the stage number.
        test: predictions on the evaluated split.
        val: predictions on the validation split (its recalibration and cut choice are used).
        base_rate: the prior base rate (train and validation rounds), the constant forecaster
            the model must beat.
        cut: the given probability cut.
        checkpoint: the checkpoint evaluated, for the record.
        seed: seed of the bootstrap intervals.

    Returns:
        stage, checkpoint, cut, val_cut, recalibration (the Platt map, and the raw head's mean
        forecast and log loss on the evaluated split), forecast (`forecasts.forecast_scores` of
        the recalibrated forecasts), at_cut and at_val_cut (`heads.evaluate_predictions`).
    """
    platt_map = platt.fit_platt(forecasts.reached(val.y_value), val.p_threshold)
    raw = test.p_threshold
    val, test = val.recalibrated(platt_map), test.recalibrated(platt_map)
    val_cut = heads.choose_cut(val.y_value, val.p_threshold)
    base = forecasts.constant_forecast(base_rate, test.y_value.size)
    return {
        "stage": stage,
        "checkpoint": checkpoint,
        "cut": float(cut),
        "val_cut": val_cut,
        "recalibration": {
            **platt_map.to_dict(),
            "raw_mean_forecast": float(raw.mean()),
            "raw_log_loss": float(proper.log_loss(forecasts.reached(test.y_value), raw).mean()),
        },
        "forecast": forecasts.forecast_scores(test.y_value, test.p_threshold, base, seed=seed),
        "at_cut": test.score(cut),
        "at_val_cut": test.score(val_cut),
    }


def build_evaluation(
    y_value: np.ndarray,
    stages: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, Any],
    **run: Any,
) -> Evaluation:
    """The evaluation dict that the report (`markdown.write_report`) and `jetx compare` read:
    the stages with their tests adjusted for every trial of the run, and their verdicts.

    Args:
        y_value: float64 [N] true multipliers of the evaluated rounds.
        stages: `stage_evaluation` dicts, in stage order.
        baselines: `jetx.evaluation.scores.heads.baselines` of the same rounds.
        **run: run_dir, split, base_rate, data_sha256, features_dir, variant, normalization,
            preset, parameters, training (and, for a walk-forward pool, walk_forward and origins).

    Returns:
        The run's `Evaluation` (`jetx.evaluation.records`), JSON-ready.
    """
    adjusted, trials = adjust_stages(stages, baselines["always"])
    return {
        "schema": SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": int(np.asarray(y_value).size),
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in run.items()},
        "baselines": dict(baselines),
        "trials": trials,
        "stages": adjusted,
    }


def prior_base_rate(features_dir: Path) -> float:
    """Share of the rounds before the test block (the train and validation splits) that reached
    1.5x: the base-rate forecaster's forecast.

    Every such round, not the preset's caps: the reference must know at least what the model
    knows before the test, and the model learns the validation block's rate through the Platt
    intercept of its recalibration. A reference at the training rate alone loses to a constant
    at the validation rate whenever the rate drifted between the two blocks by chance, which a
    gate would then call skill.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from jetx.readers import read_parquet

    table = read_parquet(FeaturesDir(features_dir).features, ["threshold", "split"])
    before = pc.is_in(table["split"], pa.array(["train", "val"]))
    prior = table.filter(before)["threshold"].to_numpy()
    if prior.size == 0:
        raise JetxInputError(f"{features_dir}: the train and validation splits have no rows.")
    return float(prior.mean())


def evaluate_run(
    run_dir: Path,
    *,
    features_dir: Path | None = None,
    split: str = "test",
    cut: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Score the best checkpoint of every trained stage of a run on `split`; write it once.

    The run's run.json says what it was trained on (preset values, variant, features dir), so
    a run made by `jetx train` and one made by the flow are evaluated alike. The evaluation goes
    to RUN_DIR/report/evaluation.json and every stage's threshold forecasts to
    report/predictions.npz (`jetx.layout.RunDir`), where the report, the comparison, the flow
    and a walk-forward pool read them.

    Args:
        run_dir: the training run's directory.
        features_dir: the features dir to score on (default: the one it was trained on).
        split: the split to score ("test"; "val" only to inspect, its cut is chosen on itself).
        cut: the given probability cut.
        seed: seed of the random baseline and of the bootstrap intervals.

    Returns:
        The evaluation dict of `build_evaluation`.

    Raises:
        JetxInputError: not a run directory, no stage of the run has a checkpoint, or a
            checkpoint that does not fit the run's model.
    """
    from jetx.model.network import build_model
    from jetx.training.checkpoint import best_checkpoint, restore_variables
    from jetx.training.inputs import StageData

    run_dir = Path(run_dir)
    data = StageData.from_run(run_dir, features_dir)
    found = [
        (s.stage, best_checkpoint(RunDir(run_dir).stage(s.stage).path)) for s in data.preset.stages
    ]
    found = [(stage, path) for stage, path in found if path is not None]
    if not found:
        raise JetxInputError(f"`run_dir` has no stage checkpoint. Received: run_dir={run_dir}")
    model = build_model(data.model)
    cap = data.max_eval_samples
    base_rate = prior_base_rate(data.features_dir)
    stages, by_stage, test = [], [], None
    for stage, checkpoint in found:
        restore_variables(checkpoint, {"model": model.variables})
        val = predict(model, data.model, data.features_dir, "val", cap)
        test = predict(model, data.model, data.features_dir, split, cap)
        rel = str(checkpoint.relative_to(run_dir))
        evaluated = stage_evaluation(
            stage, test, val, base_rate=base_rate, cut=cut, checkpoint=rel, seed=seed
        )
        stages.append(evaluated)
        platt_map = platt.PlattMap.from_dict(evaluated["recalibration"])
        by_stage.append(platt_map.apply(test.p_threshold))
    run = RunDir(run_dir)
    evaluation = build_evaluation(
        test.y_value,
        stages,
        heads.baselines(test.y_value, seed),
        run_dir=run_dir,
        split=split,
        base_rate=base_rate,
        data_sha256=FeaturesDir(data.features_dir).manifest().get("series_sha256"),
        features_dir=data.features_dir,
        variant=data.variant,
        normalization=data.model.normalization,
        preset=data.preset.name,
        parameters=int(model.count_params()),
        training=training_rows(read_records(run.metrics)),
    )
    for stage in evaluation["stages"]:
        logger.info("stage %d: %s", stage["stage"], stage["verdict"])
    write_evaluation(run.evaluation, evaluation)
    write_predictions(
        run.predictions,
        y_value=test.y_value,
        stages=[s["stage"] for s in stages],
        p_threshold=np.stack(by_stage),
        p_base_rate=forecasts.constant_forecast(base_rate, test.y_value.size),
    )
    return evaluation
