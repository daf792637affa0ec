"""Callbacks of the stage loop, one class per module.

They subclass `keras.callbacks.Callback` and receive the epoch's `logs` dict (losses, validation
metrics, learning rate, memory, micro-batch, accumulation, seconds), which the stage loop fills
and hands to each in order; `MemoryMonitor` comes first because it adds the memory figures.
"""

from jetx.callbacks.epoch_log import EpochLogger
from jetx.callbacks.fault_injection import FaultInjection
from jetx.callbacks.memory import MemoryMonitor
from jetx.callbacks.metrics_jsonl import MetricsWriter
from jetx.callbacks.tensorboard import TensorBoardLogger

__all__ = ["EpochLogger", "FaultInjection", "MemoryMonitor", "MetricsWriter", "TensorBoardLogger"]
