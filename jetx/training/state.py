"""What a stage's checkpoint remembers: its position, its monitor and its batching.

The state is grouped by the component that owns each part (like a per-component `state_dict`),
so that the stage loop, early stopping and the out-of-memory halving each read their own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from jetx.training.monitors import MonitorState


@dataclass
class Progress:
    """How far a stage got: enough to continue from the exact optimizer update it reached.

    Args:
        epoch: the epoch in progress, from 0.
        samples_in_epoch: samples of `epoch` already consumed (a whole number of windows).
        updates: optimizer updates in this stage.
        finished: the stage ended (all epochs, or early stopping).
        epoch_sums, epoch_seconds: running loss sums and time of the epoch in progress.
    """

    epoch: int = 0
    samples_in_epoch: int = 0
    updates: int = 0
    finished: bool = False
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_seconds: float = 0.0


@dataclass
class Monitor:
    """The best validation result, and the two monitors' own states.

    Args:
        learning_rate: current learning rate (after the plateau's reductions).
        best_val_loss, best_epoch, best_metrics: the best validation result so far (the best
            checkpoint's); best_epoch counts from 0.
        early_stopping, plateau: each monitor's best and wait (`jetx.training.monitors`).
    """

    learning_rate: float
    best_val_loss: float | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    early_stopping: MonitorState = field(default_factory=MonitorState)
    plateau: MonitorState = field(default_factory=MonitorState)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Monitor:
        """Also reads a checkpoint saved before the two monitors (`wait`, `plateau_wait` on
        val_loss)."""
        data = dict(data)
        for old, new in (("wait", "early_stopping"), ("plateau_wait", "plateau")):
            if old in data:
                data.setdefault(new, {"best": data.get("best_val_loss"), "wait": data.pop(old)})
        for key in ("early_stopping", "plateau"):
            if isinstance(data.get(key), dict):
                data[key] = MonitorState(**data[key])
        return cls(**data)


@dataclass
class Batching:
    """How the stage's batches ran: the micro-batch in use and what memory and numerics did.

    Args:
        micro_batch: micro-batch in use (smaller than the stage's after an out-of-memory).
        micro_batch_changes: one record per out-of-memory halving.
        skipped_windows: windows dropped without an update because a gradient was non-finite.
        redone_micro_steps: micro-steps redone at a halved loss scale after an overflow.
    """

    micro_batch: int
    micro_batch_changes: list[dict[str, Any]] = field(default_factory=list)
    skipped_windows: int = 0
    redone_micro_steps: int = 0


@dataclass
class TrainState:
    """Where a stage is, grouped by what owns each part (like a per-component `state_dict`).

    Args:
        stage: the stage number.
        seed: shuffle seed; the epoch's sample order is `windows.epoch_order(n, seed, epoch)`.
        progress: the stage loop's position.
        monitor: early stopping and the plateau.
        batching: the micro-batch and its history.
        sequence: number of the last checkpoint written.
        best_checkpoint: name of the checkpoint with the best validation loss, if any.
    """

    stage: int
    seed: int
    progress: Progress
    monitor: Monitor
    batching: Batching
    sequence: int = 0
    best_checkpoint: str | None = None

    @classmethod
    def start(cls, *, stage: int, micro_batch: int, seed: int, learning_rate: float) -> TrainState:
        """The state of a stage before its first update."""
        return cls(stage, seed, Progress(), Monitor(learning_rate), Batching(micro_batch))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        parts = {
            "progress": lambda v: Progress(**v),
            "monitor": Monitor.from_dict,
            "batching": lambda v: Batching(**v),
        }
        return cls(**{k: parts[k](v) if k in parts else v for k, v in data.items()})
