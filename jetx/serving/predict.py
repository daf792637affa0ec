"""The next round's prediction from a bundle and a history, with the bundle's verdict beside it.

The history is validated by ingest's own rules (it is ingested into a temporary directory), and
a bad newest round is an error, not a silent skip: the prediction would otherwise be for a round
other than the one the user means. The inputs are built by the code that builds training
batches (`jetx.training.windows.next_round_inputs`), so that the prediction for values[:k] is the
model's output for training sample k.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from jetx.config import CLASS_NAMES
from jetx.data.series import read_series
from jetx.errors import JetxInputError
from jetx.features import FIRST_SAMPLE
from jetx.layout import SeriesDir
from jetx.serving.bundle import Bundle


def read_history(source: Path, *, table: str = "jetx_results", column: str = "value") -> np.ndarray:
    """The valid multipliers of a history, oldest first (ingest's rules, nothing written).

    Raises:
        JetxInputError: the source cannot be read, or its newest round is not a valid
            multiplier (its line or id, raw text and reason are named).
    """
    from jetx.data import ingest as ingest_module

    quiet = logging.getLogger(ingest_module.__name__)
    level = quiet.level
    with tempfile.TemporaryDirectory(prefix="jetx-predict-") as tmp:
        quiet.setLevel(logging.WARNING)  # the temporary ingest's own line would be noise here
        try:
            ingest_module.ingest(Path(source), Path(tmp), table=table, column=column)
        finally:
            quiet.setLevel(level)
        layout = SeriesDir(Path(tmp))
        _check_newest(source, layout)
        return read_series(Path(tmp))


def _check_newest(source: Path, layout: SeriesDir) -> None:
    """Raise when the last round of the source is quarantined (by line, or by id)."""
    quarantine = pq.read_table(layout.quarantine).to_pylist()
    if not quarantine:
        return
    series = pq.read_table(layout.series, columns=["id"])["id"].to_numpy()
    manifest = layout.manifest()
    newest_kept = int(series.max()) if series.size else -1
    if manifest["ordered_by"] == "line":
        newest_bad = max(quarantine, key=lambda row: row["source_line"] or -1)
        bad_after = (newest_bad["source_line"] or -1) - 1 > newest_kept
        where = f"line {newest_bad['source_line']}"
    else:
        numeric = [row for row in quarantine if _as_int(row["id"]) is not None]
        newest_bad = max(numeric, key=lambda row: _as_int(row["id"]), default=None)
        bad_after = newest_bad is not None and _as_int(newest_bad["id"]) > newest_kept
        where = f"id {newest_bad['id']}" if newest_bad else ""
    if bad_after:
        raise JetxInputError(
            f"{source}: the newest round ({where}, {newest_bad['raw']!r}) is not a valid "
            f"multiplier ({newest_bad['reason']}); fix it or remove it before predicting"
        )


def _as_int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def predict_next(bundle: Bundle, values: np.ndarray) -> dict[str, Any]:
    """Predict the round after `values` and say what the bundle's test found.

    Args:
        bundle: a loaded bundle.
        values: float64 [N] valid multipliers, oldest first.

    Returns:
        probability (that the next round reaches the cash-out: the threshold head's output
        through the bundle's recalibration, as the test scored it), bet and cut, classes (name ->
        probability), regression, base_rate (training), verdict, rounds_used, and bundle (its
        path, the sha256 of the data it was trained on, its run and stage).

    Raises:
        JetxInputError: fewer rounds than the features need.
    """
    from jetx.training.windows import next_round_inputs

    values = np.asarray(values, dtype=np.float64)
    if len(values) < FIRST_SAMPLE:
        raise JetxInputError(
            f"Predicting needs at least {FIRST_SAMPLE} valid rounds (the longest window). "
            f"Received: {len(values)} valid rounds"
        )
    inputs = next_round_inputs(values, bundle.scaler, bundle.model_config)
    outputs = bundle.model(inputs, training=False)
    probability = float(bundle.recalibration.apply(np.asarray(outputs["threshold"]))[0])
    classes = np.asarray(outputs["classification"], dtype=np.float64).reshape(-1)
    info = bundle.info
    return {
        "probability": probability,
        "bet": probability >= info["cut"],
        "cut": info["cut"],
        "classes": {name: float(p) for name, p in zip(CLASS_NAMES, classes, strict=True)},
        "regression": float(np.asarray(outputs["regression"]).reshape(-1)[0]),
        "base_rate": info["base_rate"],
        "verdict": info["test"]["verdict"],
        "rounds_used": int(len(values)),
        "bundle": {
            "path": str(Path(bundle.path).resolve()),
            "data_sha256": info["data_sha256"],
            "run": info["run"],
            "stage": info["stage"],
        },
    }
