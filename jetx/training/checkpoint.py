"""Atomic training checkpoints and the resume state they carry.

A checkpoint is a directory `RUN_DIR/stage{N}/checkpoints/ckpt-{seq:06d}` holding
`variables.npz` (model variables, including batch-norm statistics and dropout seed states;
optimizer variables; the accumulator's gradients, count and loss scale) and `state.json` (a
`TrainState`: epoch, samples consumed in the epoch, updates, micro-batch in use, shuffle seed,
early-stopping and plateau state). It is written under a temporary name and renamed into place,
so a crash in the middle of a write leaves the previous checkpoint as the latest usable one.
Each state names the checkpoint with the best validation loss so far (itself, when it is the
best), so the pointer is as atomic as the checkpoint; pruning keeps it and the last k.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetx.errors import JetxInputError
from jetx.layout import RunDir, StageDir

logger = logging.getLogger(__name__)

CHECKPOINTS = StageDir.CHECKPOINTS
STATE_FILE = "state.json"
VARIABLES_FILE = "variables.npz"
_PREFIX = "ckpt-"
_TMP_PREFIX = ".tmp-ckpt-"
#: Test hook "k:seconds": sleep inside the k-th checkpoint write of this process (after the
#: variables, before the state), so that a test can kill the process in the middle of a write.
PAUSE_ENV = "JETX_CHECKPOINT_PAUSE"
_writes = 0


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
    """Early stopping and reduce-on-plateau on the validation loss.

    Args:
        learning_rate: current learning rate (after reduce-on-plateau).
        best_val_loss, best_epoch, best_metrics: the best validation result so far.
        wait, plateau_wait: epochs without improvement, for early stopping and the plateau.
    """

    learning_rate: float
    best_val_loss: float | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    wait: int = 0
    plateau_wait: int = 0


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
        parts = {"progress": Progress, "monitor": Monitor, "batching": Batching}
        return cls(**{k: parts[k](**v) if k in parts else v for k, v in data.items()})


def stage_dir(run_dir: Path, stage: int) -> Path:
    """Directory of one stage's checkpoints and records inside a run (see `jetx.layout`)."""
    return RunDir(run_dir).stage(stage).path


def save_checkpoint(
    directory: Path,
    state: TrainState,
    variables: dict[str, list],
    *,
    best: bool = False,
    keep_last: int = 3,
) -> Path:
    """Write a checkpoint atomically, mark it best if asked, and prune older ones.

    Args:
        directory: the stage's directory (`stage_dir`).
        state: the resume state; its `sequence` is advanced here.
        variables: groups of variables (e.g. "model", "optimizer", "accumulator"), each a list
            of Keras or tf variables in a stable order.
        best: this checkpoint has the best validation loss so far.
        keep_last: how many of the newest checkpoints to keep, besides the best.

    Returns:
        The checkpoint's directory.
    """
    root = Path(directory) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    state.sequence += 1
    final = root / f"{_PREFIX}{state.sequence:06d}"
    if best:
        state.best_checkpoint = final.name
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    arrays = {
        f"{group}/{i:05d}": np.asarray(v.numpy())
        for group, items in variables.items()
        for i, v in enumerate(items)
    }
    with open(tmp / VARIABLES_FILE, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    _pause_hook(tmp)
    with open(tmp / STATE_FILE, "w", encoding="utf-8") as handle:
        json.dump(state.to_dict(), handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    _fsync_dir(root)
    _prune(Path(directory), keep_last)
    logger.debug(
        "checkpoint %s (epoch %d, update %d)", final, state.progress.epoch, state.progress.updates
    )
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint of a stage, or None. Safe to call while a run writes."""
    root = Path(directory) / CHECKPOINTS
    if not root.is_dir():
        return None
    complete = [p for p in _checkpoints(root) if (p / STATE_FILE).is_file()]
    return complete[-1] if complete else None


def remove_partial_writes(directory: Path) -> list[Path]:
    """Delete the temporary directories of checkpoint writes that a crash interrupted.

    Only the process that owns the stage may call this (before it writes), never an observer.

    Returns:
        The directories removed.
    """
    leftovers = sorted((Path(directory) / CHECKPOINTS).glob(f"{_TMP_PREFIX}*"))
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    return leftovers


def best_checkpoint(directory: Path) -> Path | None:
    """The checkpoint with the best validation loss of a stage, or None."""
    latest = latest_checkpoint(directory)
    name = load_state(latest).best_checkpoint if latest else None
    return Path(directory) / CHECKPOINTS / name if name else None


def load_state(checkpoint: Path) -> TrainState:
    """The `TrainState` stored in a checkpoint."""
    return TrainState.from_dict(json.loads((Path(checkpoint) / STATE_FILE).read_text()))


def restore_variables(checkpoint: Path, variables: dict[str, list]) -> None:
    """Assign a checkpoint's stored values to the given variable groups.

    Raises:
        JetxInputError: the checkpoint holds a different number or shape of variables (it was
            written for another model config or variant).
    """
    with np.load(Path(checkpoint) / VARIABLES_FILE) as stored:
        for group, items in variables.items():
            keys = sorted(k for k in stored.files if k.startswith(f"{group}/"))
            if len(keys) != len(items):
                raise JetxInputError(
                    f"checkpoint {checkpoint} holds {len(keys)} {group} variables; the model "
                    f"being trained has {len(items)}. Was it written for another variant?"
                )
            for key, variable in zip(keys, items, strict=True):
                value = stored[key]
                if tuple(value.shape) != tuple(variable.shape):
                    raise JetxInputError(
                        f"checkpoint {checkpoint}: {group} variable {key} has shape "
                        f"{value.shape}; expected {tuple(variable.shape)}."
                    )
                variable.assign(value)


def _checkpoints(root: Path) -> list[Path]:
    return sorted(p for p in root.glob(f"{_PREFIX}*") if p.is_dir())


def _prune(directory: Path, keep_last: int) -> None:
    best = best_checkpoint(directory)
    old = _checkpoints(directory / CHECKPOINTS)[: -max(keep_last, 1)]
    for path in old:
        if best is None or path.name != best.name:
            shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pause_hook(tmp: Path) -> None:
    global _writes
    _writes += 1
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    write, seconds = spec.split(":")
    if int(write) == _writes:
        logger.warning("%s: pausing %s s inside checkpoint write %s", PAUSE_ENV, seconds, tmp)
        time.sleep(float(seconds))
