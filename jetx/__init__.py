"""jetx: data preparation and memory-planned staged training on crash-game multiplier histories.

The library never imports Prefect: `tasks/` and `flows/` orchestrate it. Importing it changes
nothing in the process: the processes jetx owns set up TensorFlow with `jetx.runtime`.
"""

__version__ = "0.1.0"
