"""Peak memory per epoch: the allocator's peak on GPU:0 (or CPU:0) and the process's RSS."""

from __future__ import annotations

import resource

import keras
import tensorflow as tf


def memory_device() -> str:
    """The device whose allocator is measured: GPU:0 when present, else CPU:0."""
    return "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"


def rss_peak_bytes() -> int:
    """Peak resident set size of this process's own memory so far, in bytes.

    Linux's `ru_maxrss` survives `execve`, so a child started by a big parent (a flow process
    after an evaluation, say) would report the parent's peak; `VmHWM` belongs to the process's
    current address space and starts afresh at exec. `ru_maxrss` (KiB) is the fallback where
    /proc is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemoryMonitor(keras.callbacks.Callback):
    """Adds `memory_device`, `memory_peak_bytes` and `rss_peak_bytes` to each epoch's logs.

    The allocator's peak is reset when a stage starts and after each epoch, so each figure is
    the epoch's own peak; RSS is the process's peak so far (the kernel cannot reset it).

    Args:
        device: device to measure; None picks `memory_device()`.
    """

    def __init__(self, device: str | None = None) -> None:
        super().__init__()
        self.device = device or memory_device()
        self.stage_peak_bytes = 0

    def on_train_begin(self, logs=None):
        self.stage_peak_bytes = 0
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        peak = int(tf.config.experimental.get_memory_info(self.device)["peak"])
        self.stage_peak_bytes = max(self.stage_peak_bytes, peak)
        if logs is not None:
            logs["memory_device"] = self.device
            logs["memory_peak_bytes"] = peak
            logs["rss_peak_bytes"] = rss_peak_bytes()
        self._reset()

    def _reset(self) -> None:
        tf.config.experimental.reset_memory_stats(self.device)
