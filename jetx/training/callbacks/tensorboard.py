"""TensorBoard scalars per epoch in RUN_DIR/tensorboard/stage{N}."""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes every numeric entry of each epoch's logs as a TensorBoard scalar.

    The step is the epoch, so that a resumed stage continues its curves where they stopped.

    Args:
        log_dir: directory of this stage's event files.
    """

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(str(self.log_dir))

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self.on_train_begin()
        with self._writer.as_default():
            for key, value in (logs or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    tf.summary.scalar(key, value, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
