"""One log line per epoch: losses, validation metrics, memory, learning rate, batch shape."""

from __future__ import annotations

import logging

import keras

logger = logging.getLogger(__name__)

_GIB = 1024**3


class EpochLogger(keras.callbacks.Callback):
    """Logs `stage 1 epoch 3/100: loss=... val_loss=... lr=... mem=... micro=8x8 12.3s`.

    Args:
        epochs: the stage's maximum epochs, for the "3/100" counter.
    """

    def __init__(self, epochs: int) -> None:
        super().__init__()
        if epochs < 1:
            raise ValueError(f"`epochs` must be >= 1. Received: epochs={epochs}")
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        losses = " ".join(
            f"{k}={v:.4f}"
            for k, v in logs.items()
            if isinstance(v, float) and (k.endswith("loss") or k.startswith("val_"))
        )
        memory = logs.get("memory_peak_bytes", 0) / _GIB
        rss = logs.get("rss_peak_bytes", 0) / _GIB
        logger.info(
            "stage %s epoch %d/%d: %s lr=%.3g mem(%s)=%.3f GiB rss=%.2f GiB micro=%sx%s %.1fs",
            logs.get("stage", "?"),
            epoch + 1,
            self.epochs,
            losses,
            logs.get("lr", float("nan")),
            logs.get("memory_device", "?"),
            memory,
            rss,
            logs.get("micro_batch", "?"),
            logs.get("accumulation", "?"),
            logs.get("seconds", 0.0),
        )
