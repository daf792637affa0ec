"""The epoch loop of one stage: micro-steps, windows, checkpoints, validation, early stopping.

It works in optimizer updates: a window of `accumulation` micro-batches is one update, a
checkpoint is only ever written between windows, and `TrainState.samples_in_epoch` (a whole
number of windows) tells a resumed run how many batches of the epoch's fixed order to skip. A
non-finite micro-step is redone at the halved loss scale (float16) or, if it stays non-finite,
its whole window is dropped without an update and counted in `skipped_windows`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

from jetx.config import StageConfig
from jetx.training.accumulation import GradientAccumulator
from jetx.training.checkpoint import save_checkpoint
from jetx.training.distribute import Distribution, get_distribution
from jetx.training.state import TrainState
from jetx.training.validator import Validator

logger = logging.getLogger(__name__)

LOSS_NAMES = ("loss", "regression_loss", "classification_loss", "threshold_loss")


@dataclass
class StageLoop:
    """One stage's training objects and its mutable `TrainState`.

    Args:
        stage: the stage's configuration (effective batch, epochs, patience, plateau).
        data: a `jetx.training.schedule.StageData` (train/val batches and the train sample count).
        accumulator: compiled micro-step and update of the model and optimizer.
        validator: the validation pass.
        state: where the stage is; advanced in place.
        directory: the stage's directory, for checkpoints.
        callbacks: epoch callbacks, in order (memory first).
        keep_last: checkpoints kept besides the best.
        verbose: 1 shows a progress bar per epoch.
        distribution: the tf.distribute strategy; each global micro-batch is spread over its
            replicas (default: none, one device).
    """

    stage: StageConfig
    data: object
    accumulator: GradientAccumulator
    validator: Validator
    state: TrainState
    directory: Path
    callbacks: list
    keep_last: int = 3
    verbose: int = 1
    distribution: Distribution = field(default_factory=get_distribution)

    @property
    def accumulation(self) -> int:
        return self.stage.effective_batch // self.state.batching.micro_batch

    def run(self) -> None:
        """Train until the stage finishes (all epochs, or early stopping)."""
        while not self.state.progress.finished:
            self._run_epoch()

    def checkpoint(self, best: bool = False) -> Path:
        """Save the current state (between windows) as a new checkpoint."""
        variables = {
            "model": self.accumulator.model.variables,
            "optimizer": self.accumulator.optimizer.variables,
            "accumulator": self.accumulator.state_variables,
        }
        return save_checkpoint(
            self.directory, self.state, variables, best=best, keep_last=self.keep_last
        )

    def _run_epoch(self) -> None:
        state, micro = self.state, self.state.batching.micro_batch
        skip = state.progress.samples_in_epoch // micro
        dataset = self.distribution.distribute(
            lambda: self.data.train_batches(micro, state.progress.epoch, skip), micro
        )
        progbar = keras.utils.Progbar(self.data.num_train() // micro, verbose=self.verbose)
        progbar.update(skip)
        for callback in self.callbacks:  # a resumed epoch begins again in this process
            callback.on_epoch_begin(state.progress.epoch)
        self._segment_start = time.monotonic()
        window, consumed, self._skipping = 0, 0, False
        for inputs, targets in dataset:
            self._micro_step(inputs, targets)
            window, consumed = window + 1, consumed + 1
            if window == self.accumulation:
                self._end_window(window)
                window = 0
            progbar.update(skip + consumed, self._progress_values())
        if window:
            self._end_window(window)
        self._end_epoch()

    def _micro_step(self, inputs, targets) -> None:
        for callback in self.callbacks:
            callback.on_train_batch_begin(self.state.progress.updates)
        if self._skipping:
            return
        accumulator = self.accumulator
        scale = float(accumulator.loss_scale.numpy())
        finite, losses = accumulator.micro_step(inputs, targets)
        while not finite and accumulator.loss_scaling and scale > 1.0:
            self.state.batching.redone_micro_steps += 1
            scale = float(accumulator.loss_scale.numpy())
            finite, losses = accumulator.micro_step(inputs, targets)
        if not finite:
            logger.warning(
                "non-finite gradient at update %d: window dropped", self.state.progress.updates
            )
            self._skipping = True
            return
        sums = self.state.progress.epoch_sums
        for name, value in zip(LOSS_NAMES, losses, strict=True):
            sums[name] = sums.get(name, 0.0) + float(value)
        sums["count"] = sums.get("count", 0.0) + 1

    def _end_window(self, window: int) -> None:
        state, updated = self.state, not self._skipping
        if updated:
            self.accumulator.apply()
            state.progress.updates += 1
            logger.debug("stage %d: update %d done", self.stage.stage, state.progress.updates)
        else:
            self.accumulator.reset()
            state.batching.skipped_windows += 1
            self._skipping = False
        state.progress.samples_in_epoch += window * state.batching.micro_batch
        every = self.stage.checkpoint_every
        if updated and every and state.progress.updates % every == 0:
            self._bank_seconds()
            self.checkpoint()

    def _end_epoch(self) -> None:
        state = self.state
        self._bank_seconds()
        logs = {"stage": self.stage.stage, **self._epoch_losses()}
        logs.update(self.validator(self.data.val_batches()))
        logs.update(
            lr=self._learning_rate(),
            micro_batch=state.batching.micro_batch,
            accumulation=self.accumulation,
            updates=state.progress.updates,
            skipped_windows=state.batching.skipped_windows,
            seconds=round(state.progress.epoch_seconds, 3),
        )
        for callback in self.callbacks:
            callback.on_epoch_end(state.progress.epoch, logs)
        improved = self._watch(logs)
        progress = state.progress
        progress.epoch += 1
        progress.samples_in_epoch, progress.epoch_seconds, progress.epoch_sums = 0, 0.0, {}
        progress.finished = progress.finished or progress.epoch >= self.stage.epochs
        self.checkpoint(best=improved)

    def _watch(self, logs: dict) -> bool:
        """The best result, then the plateau and early stopping, each its own monitor with its
        own saved state; returns whether this epoch is the best so far (on val_loss)."""
        monitor, progress, stage = self.state.monitor, self.state.progress, self.stage
        improved = monitor.best_val_loss is None or logs["val_loss"] < monitor.best_val_loss
        if improved:
            monitor.best_val_loss, monitor.best_epoch = logs["val_loss"], progress.epoch
            monitor.best_metrics = {k: v for k, v in logs.items() if k.startswith("val_")}
        if monitor.plateau.update(stage.plateau, logs):
            new_lr = max(monitor.learning_rate * stage.plateau_factor, stage.min_learning_rate)
            logger.info(
                "stage %d: %s plateau, learning rate -> %.3g", stage.stage, stage.plateau.monitor,
                new_lr,
            )  # fmt: skip
            monitor.learning_rate = new_lr
            self.accumulator.optimizer.learning_rate.assign(new_lr)
        if monitor.early_stopping.update(stage.early_stopping, logs):
            logger.info("stage %d: early stop after epoch %d", stage.stage, progress.epoch + 1)
            progress.finished = True
        return improved

    def _epoch_losses(self) -> dict[str, float]:
        sums = self.state.progress.epoch_sums
        count = sums.get("count", 0.0)
        return {name: (sums[name] / count if count else math.nan) for name in LOSS_NAMES}

    def _progress_values(self) -> list:
        losses = self._epoch_losses()
        return [("loss", losses["loss"])] if math.isfinite(losses["loss"]) else []

    def _learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.accumulator.optimizer.learning_rate))

    def _bank_seconds(self) -> None:
        now = time.monotonic()
        self.state.progress.epoch_seconds += now - self._segment_start
        self._segment_start = now
