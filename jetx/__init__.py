"""jetx: data preparation and memory-planned staged training on crash-game multiplier histories.

The library never imports Prefect: `tasks/` and `flows/` orchestrate it.
"""

import os

# TensorFlow's C++ info lines (per-op and allocator chatter) bury every command's own output, in
# the CLI, the stage child processes and the flows alike; the few lines absl prints while TF
# loads ignore this setting. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
