"""The champion's forecasts of a candidate's test rounds, computed afresh.

A scheduled retrain tests on the newest rounds of a history that has grown, so its test rounds
soon share none with the champion's, and without common rounds the gate could never replace
a champion. The champion is therefore re-scored on the candidate's own test rounds: its model,
its scaler and its recalibration over the candidate's features dir, by the evaluation's own
`predict`. That is fair only when the champion has not learned from those rounds and they are
the same history: every round it trained or validated on precedes its own first test round
(splits are chronological), so the candidate's first test round must not precede the
champion's, and the champion's test rounds that the candidate's history holds must hold the same
values.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from jetx.errors import JetxInputError
from jetx.evaluation.inference import predict
from jetx.layout import FeaturesDir
from jetx.readers import read_parquet
from jetx.serving.bundle import Bundle, read_forecasts

logger = logging.getLogger(__name__)


def unseen_by(champion: Bundle, features_dir: Path, index: np.ndarray) -> str | None:
    """Why `champion` cannot be scored on the rounds `index` of `features_dir`, or None if it
    can (it learned from none of them, and they are of the history it was tested on)."""
    tested = read_forecasts(champion.path)
    if index.size == 0 or index.min() < tested["index"].min():
        return (
            f"its test rounds start at {int(index.min()) if index.size else None}, before the "
            f"champion's ({int(tested['index'].min())}): the champion may have trained on them"
        )
    values = read_parquet(FeaturesDir(features_dir).series, ["value"])["value"]
    values = values.to_numpy().astype(np.float64)
    shared = tested["index"] < values.size
    if not np.array_equal(values[tested["index"][shared]], tested["y_value"][shared]):
        return "the champion was tested on another history"
    return None


def rescore(champion: Bundle, features_dir: Path, index: np.ndarray) -> np.ndarray:
    """Float64 [N]: the champion's recalibrated P(value >= 1.5) for the test rounds `index` of
    `features_dir` (the candidate's: the newest N of its test split), in round order.

    Raises:
        JetxInputError: `index` is not the newest rows of the test split, or (from `predict`)
            a features dir the champion's model does not fit.
    """
    from jetx.training.windows import load_split

    rows = load_split(Path(features_dir), "test", index.size).index
    if not np.array_equal(rows, index):
        raise JetxInputError(
            f"{features_dir}: its newest {index.size} test rounds are not the candidate's "
            "test rounds; export the candidate from this features dir"
        )
    scored = predict(
        champion.model,
        champion.model_config,
        Path(features_dir),
        "test",
        index.size,
        scaler=champion.scaler,
    )
    logger.info("re-scored champion %s on %d test rounds", Path(champion.path).name, index.size)
    return champion.recalibration.apply(scored.p_threshold)
