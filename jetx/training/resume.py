"""Where a stage picks up: its last checkpoint after a crash, or after an out-of-memory error.

An out-of-memory error halves the micro-batch and doubles accumulation (the effective batch
stays); the stage then restores its last checkpoint, whose `samples_in_epoch` tells the new
micro-batch how many batches of the epoch's fixed order to skip. Under a tf.distribute strategy
the micro-batch is global, so it only halves to multiples of the replica count.

A resumed stage never runs above the micro-batch it is given: a process that the kernel killed
for memory leaves no exception behind, so its retry asks for half the micro-batch in use, and
the change is checkpointed at once so that a second kill halves again rather than repeating.

Before a stage resumes, `recover_checkpoints` makes its checkpoints trustworthy: a damaged one
(`jetx.training.checkpoint.checkpoint_problem`) is moved to `set-aside/` and logged, never
deleted, and the stage goes on from the newest intact one, whose best pointer is repaired too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from jetx.config import GIB
from jetx.errors import JetxInputError
from jetx.layout import StageDir
from jetx.training.checkpoint import (
    checkpoint_problem,
    checkpoints,
    latest_checkpoint,
    load_state,
    point_best,
    remove_partial_writes,
    restore_variables,
)
from jetx.training.inputs import StageData
from jetx.training.loop import StageLoop
from jetx.training.state import TrainState

logger = logging.getLogger(__name__)


class StageOutOfMemoryError(JetxInputError):
    """A stage ran out of memory at micro-batch 1: the variant does not fit the budget."""


def resume_state(
    loop: StageLoop, data: StageData, micro_batch: int, change: dict | None
) -> TrainState:
    """Load the stage's last checkpoint into the loop's variables, or write the first one.

    The checkpoints were recovered (`recover_checkpoints`) before the loop was built.
    """
    latest = latest_checkpoint(loop.directory)
    stage = loop.stage
    if latest is None:
        loop.state = TrainState.start(
            stage=stage.stage,
            micro_batch=micro_batch,
            seed=data.seed,
            learning_rate=stage.learning_rate,
        )
        loop.checkpoint()  # what an out-of-memory before the first update restores
        return loop.state
    state = load_state(latest)
    if state.seed != data.seed:
        raise JetxInputError(
            f"{loop.directory} was trained with seed {state.seed}; resuming it needs the same "
            f"seed. Received: seed={data.seed}"
        )
    restore_variables(
        latest,
        {
            "model": loop.accumulator.model.variables,
            "optimizer": loop.accumulator.optimizer.variables,
            "accumulator": loop.accumulator.state_variables,
        },
    )
    if change is None and state.batching.micro_batch > micro_batch:
        change = _change(state, loop.stage.effective_batch, micro_batch, "requested")
    if change:
        state.batching.micro_batch = change["to"]
        state.batching.micro_batch_changes.append(change)
        loop.state = state
        loop.checkpoint()
    logger.info(
        "stage %d: resuming from %s (epoch %d, %d samples into it, update %d, micro-batch %d)",
        stage.stage,
        latest.name,
        state.progress.epoch + 1,
        state.progress.samples_in_epoch,
        state.progress.updates,
        state.batching.micro_batch,
    )
    return state


def recover_checkpoints(directory: Path) -> Path | None:
    """Make a stage's checkpoints trustworthy before it resumes; the newest intact one, or None.

    Only the stage's writer (holding the run's lock) may call this. Interrupted writes are
    removed; damaged checkpoints, newest first, are set aside (moved, logged) until an intact
    one is found; a damaged best checkpoint is set aside too, and the pointer falls back to the
    newest intact checkpoint that was the best when written (else to the one resumed from).
    When every checkpoint is damaged the stage restarts from its start, and says so.

    Args:
        directory: the stage's directory.
    """
    for leftover in remove_partial_writes(directory):
        logger.warning("removed %s, a checkpoint write that a crash interrupted", leftover)
    stage, damaged, latest = StageDir(Path(directory)), [], None
    for checkpoint in reversed(checkpoints(directory)):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            latest = checkpoint
            break
        damaged.append(_set_aside(stage, checkpoint, problem))
    if latest is None:
        if damaged:
            logger.warning(
                "%s: every checkpoint is damaged (%s); restarting the stage from its start",
                directory,
                "; ".join(damaged),
            )
        return None
    _repair_best(stage, latest)
    return latest


def _repair_best(stage: StageDir, latest: Path) -> None:
    best = load_state(latest).best_checkpoint
    if best is None or best == latest.name:
        return
    path = stage.checkpoints / best
    problem = checkpoint_problem(path) if path.is_dir() else "it is missing"
    if problem is None:
        return
    if path.is_dir():
        _set_aside(stage, path, problem)
    fallback = next(
        (
            c.name
            for c in reversed(checkpoints(stage.path))
            if not checkpoint_problem(c) and load_state(c).best_checkpoint == c.name
        ),
        latest.name,
    )
    logger.warning(
        "%s: the best checkpoint %s is damaged (%s); its weights are lost, and the best pointer "
        "falls back to %s",
        stage.path,
        best,
        problem,
        fallback,
    )
    point_best(latest, fallback)


def _set_aside(stage: StageDir, checkpoint: Path, problem: str) -> str:
    """Move a damaged checkpoint to the stage's set-aside/ directory; returns what was wrong."""
    stage.set_aside.mkdir(parents=True, exist_ok=True)
    target, copy = stage.set_aside / checkpoint.name, 1
    while target.exists():
        copy += 1
        target = stage.set_aside / f"{checkpoint.name}-{copy}"
    os.replace(checkpoint, target)
    logger.warning("checkpoint %s is damaged (%s); set aside as %s", checkpoint, problem, target)
    return f"{checkpoint.name}: {problem}"


def _change(state: TrainState, effective_batch: int, micro_batch: int, reason: str) -> dict:
    return {
        "epoch": state.progress.epoch,
        "update": state.progress.updates,
        "from": state.batching.micro_batch,
        "to": micro_batch,
        "accumulation": effective_batch // micro_batch,
        "error": reason,
    }


def halve_micro_batch(loop: StageLoop, data: StageData, budget_bytes, error) -> tuple[int, dict]:
    """After an out-of-memory error: the next micro-batch and the change record.

    Raises:
        StageOutOfMemoryError: the micro-batch cannot be halved further.
    """
    state, effective = loop.state, loop.stage.effective_batch
    replicas = loop.distribution.replicas
    smaller = loop.stage.smaller_micro_batch(state.batching.micro_batch, replicas=replicas)
    if smaller is None:
        budget = f"{budget_bytes / GIB:.2f} GiB" if budget_bytes else "none given"
        raise StageOutOfMemoryError(
            f"stage {loop.stage.stage} of variant {data.variant!r} ran out of memory at "
            f"micro-batch {state.batching.micro_batch} (memory budget: {budget}; {replicas} "
            "replicas); it cannot be halved further. Choose a smaller variant or precision. "
            f"({error.message})"
        ) from error
    change = _change(state, effective, smaller, type(error).__name__)
    logger.warning(
        "stage %d: out of memory at update %d (%s); micro-batch %d -> %d, accumulation %d",
        loop.stage.stage,
        state.progress.updates,
        error.message,
        state.batching.micro_batch,
        smaller,
        effective // smaller,
    )
    return smaller, change
