"""jetx: data preparation and memory-planned staged training on crash-game multiplier histories.

The library never imports Prefect: `tasks/` and `flows/` orchestrate it.
"""

import os

# TensorFlow's C++ start-up banner (oneDNN, CUDA probing) buries every command's own output, in
# the CLI, the stage child processes and the flows alike. A user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
