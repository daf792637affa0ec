"""Callbacks of the stage loop, one class per module.

They subclass `keras.callbacks.Callback` and receive the epoch's `logs` dict (losses, validation
metrics, learning rate, memory, micro-batch, accumulation, seconds), which the stage loop fills
and hands to each in order; `MemoryMonitor` comes first because it adds the memory figures.
"""

from jetx.training.callbacks.epoch_log import EpochLogger
from jetx.training.callbacks.epoch_records import EpochRecordWriter
from jetx.training.callbacks.memory_monitor import MemoryMonitor
from jetx.training.callbacks.tensorboard import TensorBoardLogger

__all__ = [
    "EpochLogger",
    "MemoryMonitor",
    "EpochRecordWriter",
    "TensorBoardLogger",
]
