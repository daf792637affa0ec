"""Evaluate a trained run: predict each stage's best checkpoint on a split and score it.

The scoring (`stage_evaluation`, `build_evaluation`) is pure numpy over `Predictions`, so it is
testable without a model; `predict` and `evaluate_run` load TensorFlow only when called.
The cut chosen on validation (`jetx.evaluation.metrics.choose_cut`) is applied to the evaluated
split, never chosen on it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from jetx.config import EVAL_BATCH, NUM_CLASSES, ModelConfig
from jetx.errors import JetxInputError
from jetx.evaluation import metrics
from jetx.evaluation.tables import training_rows
from jetx.io import atomic_path, write_json
from jetx.layout import FeaturesDir, RunDir
from jetx.training.epoch_history import read_records

logger = logging.getLogger(__name__)

SCHEMA = 1


@dataclass(frozen=True)
class Predictions:
    """A model's outputs on one split's rounds, in round order.

    Args:
        y_value: float64 [N] true multipliers.
        p_threshold: float64 [N] threshold-head probability of value >= 1.5.
        y_pred_value: float64 [N] regression-head prediction of the multiplier.
        class_proba: float64 [N, 3] classification-head probabilities.
    """

    y_value: np.ndarray
    p_threshold: np.ndarray
    y_pred_value: np.ndarray
    class_proba: np.ndarray

    def score(self, cut: float) -> dict[str, Any]:
        """`jetx.evaluation.metrics.evaluate_predictions` of these predictions at `cut`."""
        return metrics.evaluate_predictions(
            self.y_value, self.p_threshold, self.y_pred_value, self.class_proba, cut
        )


def stage_evaluation(
    stage: int,
    test: Predictions,
    val: Predictions,
    always: Mapping[str, Any],
    cut: float = 0.5,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """One stage's scores on the evaluated split, at `cut` and at the cut validation chooses.

    Args:
        stage: the stage number.
        test: predictions on the evaluated split.
        val: predictions on the validation split (only its cut choice is used).
        always: the always-bet baseline on the evaluated rounds, for the verdicts.
        cut: the given probability cut.
        checkpoint: the checkpoint evaluated, for the record.

    Returns:
        stage, checkpoint, cut, val_cut, at_cut, at_val_cut, verdict, verdict_at_val_cut.
    """
    val_cut = metrics.choose_cut(val.y_value, val.p_threshold)
    at_cut, at_val_cut = test.score(cut), test.score(val_cut)
    return {
        "stage": stage,
        "checkpoint": checkpoint,
        "cut": float(cut),
        "val_cut": val_cut,
        "at_cut": at_cut,
        "at_val_cut": at_val_cut,
        "verdict": metrics.verdict(at_cut, always),
        "verdict_at_val_cut": metrics.verdict(at_val_cut, always),
    }


def build_evaluation(
    y_value: np.ndarray,
    stages: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, Any],
    **run: Any,
) -> dict[str, Any]:
    """The evaluation dict that `jetx.evaluation.report.write_report` and `jetx compare` read.

    Args:
        y_value: float64 [N] true multipliers of the evaluated rounds.
        stages: `stage_evaluation` dicts, in stage order.
        baselines: `jetx.evaluation.metrics.baselines` of the same rounds.
        **run: run_dir, split, data_sha256, features_dir, variant, preset, parameters, training.

    Returns:
        A JSON-ready dict (see `jetx.evaluation.report`'s module docstring).
    """
    return {
        "schema": SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": int(np.asarray(y_value).size),
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in run.items()},
        "baselines": dict(baselines),
        "stages": list(stages),
    }


def predict(
    model: Any,
    config: ModelConfig,
    features_dir: Path,
    split: str,
    max_samples: int | None,
    batch_size: int = EVAL_BATCH,
) -> Predictions:
    """Run `model` over a split in round order and collect its three heads' outputs.

    Args:
        model: a built Keras model (`jetx.model.network.build_model(config)`), weights loaded.
        config: the model's config (decides which sequence windows are built).
        features_dir: a `jetx features` output dir.
        split: "train", "val" or "test".
        max_samples: keep the split's newest this many samples (the preset's eval cap).
        batch_size: samples per prediction batch (memory only; results do not depend on it).

    Returns:
        The split's `Predictions`; y_value is read in float64 from the stored series, not from
        the float32 regression target.
    """
    import pyarrow.parquet as pq

    from jetx.training.windows import load_split, make_dataset

    outputs: dict[str, list[np.ndarray]] = {"regression": [], "classification": [], "threshold": []}
    dataset = make_dataset(features_dir, split, config, batch_size, max_samples=max_samples)
    for inputs, _ in dataset:
        predicted = model(inputs, training=False)
        for name, parts in outputs.items():
            parts.append(np.asarray(predicted[name], dtype=np.float64))
    index = load_split(features_dir, split, max_samples).index
    series = pq.read_table(FeaturesDir(features_dir).series, columns=["value"])["value"]
    return Predictions(
        y_value=series.to_numpy().astype(np.float64)[index],
        p_threshold=np.concatenate(outputs["threshold"]).reshape(-1),
        y_pred_value=np.concatenate(outputs["regression"]).reshape(-1),
        class_proba=np.concatenate(outputs["classification"]).reshape(-1, NUM_CLASSES),
    )


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
    to RUN_DIR/report/evaluation.json and the last stage's predictions to report/predictions.npz
    (`jetx.layout.RunDir`), where the report, the comparison and the flow read them.

    Args:
        run_dir: the training run's directory.
        features_dir: the features dir to score on (default: the one it was trained on).
        split: the split to score ("test"; "val" only to inspect, its cut is chosen on itself).
        cut: the given probability cut.
        seed: seed of the random baseline.

    Returns:
        The evaluation dict of `build_evaluation`.

    Raises:
        JetxInputError: not a run directory, no stage of the run has a checkpoint, or a
            checkpoint that does not fit the run's model.
    """
    from jetx.model.network import build_model
    from jetx.training.checkpoint import best_checkpoint, restore_variables, stage_dir
    from jetx.training.inputs import StageData

    run_dir = Path(run_dir)
    data = StageData.from_run(run_dir, features_dir)
    found = [(s.stage, best_checkpoint(stage_dir(run_dir, s.stage))) for s in data.preset.stages]
    found = [(stage, path) for stage, path in found if path is not None]
    if not found:
        raise JetxInputError(f"`run_dir` has no stage checkpoint. Received: run_dir={run_dir}")
    model = build_model(data.model)
    cap = data.max_eval_samples
    stages, test = [], None
    for stage, checkpoint in found:
        restore_variables(checkpoint, {"model": model.variables})
        val = predict(model, data.model, data.features_dir, "val", cap)
        test = predict(model, data.model, data.features_dir, split, cap)
        if not stages:
            baselines = metrics.baselines(test.y_value, seed)
        rel = str(checkpoint.relative_to(run_dir))
        stages.append(stage_evaluation(stage, test, val, baselines["always"], cut, rel))
        logger.info("stage %d: %s", stage, stages[-1]["verdict"])
    run = RunDir(run_dir)
    evaluation = build_evaluation(
        test.y_value,
        stages,
        baselines,
        run_dir=run_dir,
        split=split,
        data_sha256=FeaturesDir(data.features_dir).manifest().get("series_sha256"),
        features_dir=data.features_dir,
        variant=data.variant,
        preset=data.preset.name,
        parameters=int(model.count_params()),
        training=training_rows(read_records(run.metrics)),
    )
    write_json(run.evaluation, evaluation)
    with atomic_path(run.predictions) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, y_value=test.y_value, p_threshold=test.p_threshold)
    return evaluation
