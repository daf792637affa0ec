"""RUN_DIR/metrics.jsonl: one JSON record per epoch per stage (read by `epoch_history`)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import keras

from jetx.io import atomic_path
from jetx.training.epoch_history import read_records

logger = logging.getLogger(__name__)


class EpochRecordWriter(keras.callbacks.Callback):
    """Writes each epoch's logs as one record of `metrics.jsonl`, keyed by (stage, epoch).

    A stage resumed after a crash may finish an epoch whose record was already written (the
    process died after the record, before the epoch's checkpoint): the record is replaced, not
    duplicated. The file is rewritten atomically, so a kill never leaves half a line.

    Args:
        path: the metrics file (usually `RUN_DIR/metrics.jsonl`).
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch, **_jsonable(logs or {})}
        key = (record.get("stage"), record["epoch"])
        kept = [r for r in read_records(self.path) if (r.get("stage"), r.get("epoch")) != key]
        with atomic_path(self.path) as tmp:
            tmp.write_text(
                "".join(json.dumps(r, sort_keys=True) + "\n" for r in [*kept, record]),
                encoding="utf-8",
            )


def _jsonable(logs: dict) -> dict:
    out = {}
    for key, value in logs.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif hasattr(value, "item"):
            value = value.item()
        out[key] = value
    return out
