"""Peak memory per epoch: the allocator's peak on GPU:0 (or CPU:0), else the process's RSS.

A figure comes from `jetx.runtime.read_memory`, which never raises: where the allocator keeps no
statistics (a CPU without oneDNN in a process that did not choose the BFC allocator) the epoch's
record says `memory_source: rss` and why, and training goes on.
"""

from __future__ import annotations

import logging

import keras

from jetx.runtime import MemoryReading, memory_device, read_memory, reset_memory

logger = logging.getLogger(__name__)


class MemoryMonitor(keras.callbacks.Callback):
    """Adds `memory_source`, `memory_device`, `memory_peak_bytes`, `rss_peak_bytes` to the logs.

    The allocator's peak is reset when a stage starts and after each epoch, so each figure is
    the epoch's own peak; RSS is the process's peak so far (the kernel cannot reset it).

    Args:
        device: device to measure; None picks `jetx.runtime.memory_device()`.
        floor_bytes: bytes that certainly live in the allocator (the model's variables); an
            allocator peak not above it is not credible and the RSS is used instead.
    """

    def __init__(self, device: str | None = None, *, floor_bytes: int = 0) -> None:
        super().__init__()
        self.device = device or memory_device()
        self.floor_bytes = floor_bytes
        self.last: MemoryReading | None = None
        self._warned = False

    def on_train_begin(self, logs=None):
        self.last = None
        reset_memory(self.device)

    def on_epoch_end(self, epoch, logs=None):
        self.last = read_memory(self.device, floor_bytes=self.floor_bytes)
        if self.last.note and not self._warned:
            logger.info("memory: %s; recording the %s figure", self.last.note, self.last.source)
            self._warned = True
        if logs is not None:
            logs.update(self.last.to_logs())
        reset_memory(self.device)
