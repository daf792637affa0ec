"""TensorBoard scalars laid out as Keras's own callback lays them out, stepped in updates.

`keras.callbacks.TensorBoard` writes a `train/` and a `validation/` run under its log dir and one
`epoch_<metric>` tag per metric in both, so that a metric's training and validation curves overlay
under one tag; its epoch scalars are stepped in epochs. This stage loop counts in optimizer updates
(an epoch of stage 3 holds 4x the updates of stage 1), so the step here is the number of updates
done when the epoch ended, which also makes a resumed stage continue its curves where they
stopped. The learning rate and the memory figures (MiB, with their source in the tag) go to the
`train/` run, as Keras puts its learning rate there.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from jetx.config import MIB

#: Runs under a stage's log dir, as Keras names them.
TRAIN_RUN, VALIDATION_RUN = "train", "validation"
#: Entries of an epoch's logs that are no metric to plot.
_NOT_SCALARS = {"stage", "epoch", "updates", "micro_batch", "accumulation"}


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes each epoch's metrics to `train/` and `validation/` runs, shared tags, update steps.

    Args:
        log_dir: this stage's log dir (`RUN_DIR/tensorboard/stage{N}`).
    """

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def on_train_begin(self, logs=None):
        self._writers = {
            run: tf.summary.create_file_writer(str(self.log_dir / run))
            for run in (TRAIN_RUN, VALIDATION_RUN)
        }

    def on_epoch_end(self, epoch, logs=None):
        if not self._writers:
            self.on_train_begin()
        logs = logs or {}
        step = int(logs.get("updates", epoch))
        for run, scalars in split_scalars(logs).items():
            with self._writers[run].as_default():
                for tag, value in scalars.items():
                    tf.summary.scalar(tag, value, step=step)
            self._writers[run].flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def split_scalars(logs: dict) -> dict[str, dict[str, float]]:
    """An epoch's logs as {run: {tag: value}}: `val_x` goes to validation as `epoch_x`, `x` to
    train as `epoch_x`, the learning rate as `epoch_learning_rate` and the memory peaks in MiB."""
    train: dict[str, float] = {}
    validation: dict[str, float] = {}
    for key, value in logs.items():
        if key in _NOT_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key.startswith("val_"):
            validation[f"epoch_{key[4:]}"] = float(value)
        elif key == "lr":
            train["epoch_learning_rate"] = float(value)
        elif key == "memory_peak_bytes":
            train[f"memory_peak_mib/{logs.get('memory_source', 'unknown')}"] = value / MIB
        elif key == "rss_peak_bytes":
            train["memory_peak_mib/rss"] = value / MIB
        else:
            train[f"epoch_{key}"] = float(value)
    return {TRAIN_RUN: train, VALIDATION_RUN: validation}
