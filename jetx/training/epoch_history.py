"""The one reader of RUN_DIR/metrics.jsonl, the per-epoch records of a run (no Keras here).

The report, the comparison, the stage result and the flow's progress read the records; the
stage loop's `EpochRecordWriter` callback writes them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jetx.io import json_lines

logger = logging.getLogger(__name__)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl, oldest first; an absent file has none.

    A line that is not a JSON object is skipped with a warning naming it, never silently.
    """
    records = []
    for number, record in json_lines(path):
        if record is None:
            logger.warning("%s:%d is not a JSON record; skipped", path, number)
        else:
            records.append(record)
    return records
