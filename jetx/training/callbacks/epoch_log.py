"""One log line per epoch: losses, validation metrics, memory, learning rate, batch shape."""

from __future__ import annotations

import logging

import keras

from jetx.config import GIB

logger = logging.getLogger(__name__)


class EpochLogger(keras.callbacks.Callback):
    """Logs `stage 1 epoch 3/100: loss=... val_loss=... lr=... mem(allocator CPU:0)=... 12.3s`.

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
        logger.info(
            "stage %s epoch %d/%d: %s lr=%.3g mem(%s %s)=%s rss=%s micro=%sx%s %.1fs",
            logs.get("stage", "?"),
            epoch + 1,
            self.epochs,
            losses,
            logs.get("lr", float("nan")),
            logs.get("memory_source", "?"),
            logs.get("memory_device", "?"),
            _gib(logs.get("memory_peak_bytes")),
            _gib(logs.get("rss_peak_bytes")),
            logs.get("micro_batch", "?"),
            logs.get("accumulation", "?"),
            logs.get("seconds", 0.0),
        )


def _gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / GIB:.3f} GiB"
