"""A finished stage's one record, `StageResult`, and how to read it back (no TensorFlow here)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jetx.layout import RunDir


@dataclass(frozen=True)
class StageResult:
    """What a finished stage leaves: where its weights are and how it went.

    Written once, to stage{N}/result.json (`jetx.layout.StageDir.result`); checkpoint paths
    are relative to the run directory, so that a run stays valid where it is moved or mounted.

    Args:
        stage: the stage number.
        best_checkpoint: the checkpoint with the best validation loss (the last one when no
            epoch was validated), relative to the run directory.
        last_checkpoint: the newest checkpoint, relative to the run directory.
        resumed_from: the stage's own checkpoint this process continued from, if any.
        epochs_run, updates: epochs and optimizer updates done.
        best_epoch, best_val_metrics: the best validation result; best_epoch counts from 0, as
            Keras and metrics.jsonl do (logs and reports show it counted from 1).
        micro_batch, accumulation: the batch shape the stage ended with.
        micro_batch_changes: its out-of-memory halvings.
        memory_peak_bytes, memory_source: the stage's peak memory and its source.
        skipped_windows: windows dropped for a non-finite gradient.
        precision, strategy, replicas: how it ran.
        normalization: the MLP branches' and fusion's normalisation
            (`jetx.config.NORMALIZATIONS` says what accumulation guarantees under it).
        memory_plan: how a memory budget planned the micro-batch ("measured on CPU:0",
            "analytic fallback", "analytic model"); "" without a budget.
    """

    stage: int
    best_checkpoint: str
    last_checkpoint: str
    resumed_from: str | None
    epochs_run: int
    updates: int
    best_epoch: int | None
    best_val_metrics: dict[str, float]
    micro_batch: int
    accumulation: int
    micro_batch_changes: tuple[dict[str, Any], ...]
    memory_peak_bytes: int | None
    memory_source: str
    skipped_windows: int
    precision: str
    strategy: str = "none"
    replicas: int = 1
    normalization: str = "batch"
    memory_plan: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["micro_batch_changes"] = list(self.micro_batch_changes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageResult:
        return cls(**{**data, "micro_batch_changes": tuple(data["micro_batch_changes"])})


def read_stage_result(run_dir: Path, stage: int) -> StageResult | None:
    """The result a finished stage wrote, or None while it has not finished."""
    path = RunDir(run_dir).stage(stage).result
    if not path.is_file():
        return None
    return StageResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
