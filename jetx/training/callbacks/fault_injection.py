"""Test hooks that make faults happen on purpose: an out-of-memory at a given update, slow steps.

Driven by a constructor argument or by environment variables, so that a flow or a test can drive
a stage running in a child process:

- `JETX_INJECT_OOM="stage:update[,stage:update]"`: raise `tf.errors.ResourceExhaustedError` in
  the first micro-step after `update` optimizer updates of `stage`. Each entry fires once per
  process; repeat an entry to make the same step fail again (after the micro-batch is halved).
- `JETX_STEP_DELAY=seconds`: sleep after each micro-step, so that a test can kill a run mid-epoch.
"""

from __future__ import annotations

import os
import time

import keras
import tensorflow as tf

from jetx.errors import JetxInputError
from jetx.training.hooks import DELAY_ENV, OOM_ENV


def parse_oom_spec(spec: str | None) -> list[tuple[int, int]]:
    """Parse "stage:update[,stage:update]" into (stage, update) pairs."""
    if not spec:
        return []
    pairs = []
    for item in spec.split(","):
        try:
            stage, update = (int(part) for part in item.split(":"))
        except ValueError:
            raise JetxInputError(
                f"`{OOM_ENV}` must look like 'stage:update[,stage:update]'. Received: {spec!r}"
            ) from None
        pairs.append((stage, update))
    return pairs


class FaultInjection(keras.callbacks.Callback):
    """Raises an injected out-of-memory error or sleeps at the start of a micro-step.

    Args:
        stage: the stage being trained.
        oom_at: (stage, update) pairs; None reads `JETX_INJECT_OOM`.
        step_delay: seconds to sleep per micro-step; None reads `JETX_STEP_DELAY`.
    """

    def __init__(
        self,
        stage: int,
        oom_at: list[tuple[int, int]] | None = None,
        step_delay: float | None = None,
    ) -> None:
        super().__init__()
        self.stage = stage
        self.pending = list(oom_at) if oom_at is not None else parse_oom_spec(os.getenv(OOM_ENV))
        self.step_delay = (
            step_delay if step_delay is not None else float(os.getenv(DELAY_ENV) or 0.0)
        )
        self.fired: list[tuple[int, int]] = []

    def on_train_batch_begin(self, batch, logs=None):
        """`batch` is the number of optimizer updates done in the stage so far."""
        if (self.stage, batch) in self.pending:
            self.pending.remove((self.stage, batch))
            self.fired.append((self.stage, batch))
            raise tf.errors.ResourceExhaustedError(
                None, None, f"injected out-of-memory at stage {self.stage} update {batch}"
            )
        if self.step_delay:
            time.sleep(self.step_delay)
