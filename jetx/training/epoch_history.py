"""The one reader of RUN_DIR/metrics.jsonl, the per-epoch records of a run (no Keras here).

The report, the comparison, the stage result and the flow's progress read the records; the
stage loop's `EpochRecordWriter` callback writes them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


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
