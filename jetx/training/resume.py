"""Where a stage picks up: its last checkpoint after a crash, or after an out-of-memory error.

An out-of-memory error halves the micro-batch and doubles accumulation (the effective batch
stays); the stage then restores its last checkpoint, whose `samples_in_epoch` tells the new
micro-batch how many batches of the epoch's fixed order to skip. Under a tf.distribute strategy
the micro-batch is global, so it only halves to multiples of the replica count.

A resumed stage never runs above the micro-batch it is given: a process that the kernel killed
for memory leaves no exception behind, so its retry asks for half the micro-batch in use, and
the change is checkpointed at once so that a second kill halves again rather than repeating.
"""

from __future__ import annotations

import logging

from jetx.config import GIB
from jetx.errors import JetxInputError
from jetx.training.checkpoint import (
    TrainState,
    latest_checkpoint,
    load_state,
    remove_partial_writes,
    restore_variables,
)
from jetx.training.inputs import StageData
from jetx.training.loop import StageLoop

logger = logging.getLogger(__name__)


class StageOutOfMemoryError(JetxInputError):
    """A stage ran out of memory at micro-batch 1: the variant does not fit the budget."""


def resume_state(
    loop: StageLoop, data: StageData, micro_batch: int, change: dict | None
) -> TrainState:
    """Load the stage's last checkpoint into the loop's variables, or write the first one."""
    for leftover in remove_partial_writes(loop.directory):
        logger.warning("removed %s, a checkpoint write that a crash interrupted", leftover)
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
