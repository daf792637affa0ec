"""Evaluate a trained run: predict each stage's best checkpoint on a split and score it.

The scoring (`stage_evaluation`, `build_evaluation`) is pure numpy over `Predictions`, so it is
testable without a model; `predict` and `evaluate_run` load TensorFlow only when called.
The cut chosen on validation (`jetx.metrics.choose_cut`) is applied to the evaluated split,
never chosen on it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from jetx import metrics

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
        """`jetx.metrics.evaluate_predictions` of these predictions at `cut`."""
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
    """The evaluation dict that `jetx.report.write_report` and `jetx compare` read.

    Args:
        y_value: float64 [N] true multipliers of the evaluated rounds.
        stages: `stage_evaluation` dicts, in stage order.
        baselines: `jetx.metrics.baselines` of the same rounds.
        **run: run_dir, split, data_sha256, features_dir, variant, preset, parameters, training.

    Returns:
        A JSON-ready dict (see `jetx.report`'s module docstring).
    """
    return {
        "schema": SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": int(np.asarray(y_value).size),
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in run.items()},
        "baselines": dict(baselines),
        "stages": list(stages),
    }
