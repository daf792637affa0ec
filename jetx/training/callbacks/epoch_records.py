"""RUN_DIR/metrics.jsonl: one JSON record per epoch per stage, and the one reader of it."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import keras

from jetx.io import atomic_path

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


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl, oldest first; an absent file has none.

    A line that is not a JSON object is skipped with a warning naming it, never silently.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            logger.warning("%s:%d is not a JSON record; skipped", path, number)
    return records


def _jsonable(logs: dict) -> dict:
    out = {}
    for key, value in logs.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif hasattr(value, "item"):
            value = value.item()
        out[key] = value
    return out
