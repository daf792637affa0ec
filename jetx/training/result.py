"""A run's records and how to read them back (no TensorFlow here): run.json, what trained the
run (`RunRecord`), and each finished stage's result.json (`StageResult`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from jetx.io import write_json
from jetx.layout import RunDir
from jetx.readers import checked, read_json


@with_config(ConfigDict(extra="forbid"))
class RunRecord(TypedDict):
    """run.json: what trained the run (checked on write and on read, as evaluation.json is)."""

    preset: dict[str, Any]  # `Preset.to_dict()`
    variant: str
    seed: int
    strategy: str
    features_dir: str


_RUN_RECORD = TypeAdapter(RunRecord)


def write_run_record(run_dir: Path, record: RunRecord) -> None:
    """run.json, checked against its shape before it is written."""
    run = RunDir(run_dir)
    write_json(run.run_file, checked(_RUN_RECORD, record, f"the run record for {run.run_file}"))


def read_run_record(run_dir: Path) -> RunRecord:
    """run.json, checked: one line naming the file and the first bad field."""
    run = RunDir(run_dir)
    return checked(_RUN_RECORD, run.run_info(), run.run_file)


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
    return StageResult.from_dict(read_json(path, "train the stage again"))
