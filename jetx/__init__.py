"""jetx: data preparation and memory-planned staged training on crash-game multiplier histories.

The library never imports Prefect: `tasks/` and `flows/` orchestrate it.
"""

__version__ = "0.1.0"
