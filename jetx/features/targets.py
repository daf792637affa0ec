"""The three training targets of a sample, computed from the round's value alone.

A sample at position i is scored on values[i]; the model's heads read these columns from
features.parquet, and evaluation uses the same rule, so the thresholds live in jetx.config only.
"""

from __future__ import annotations

import numpy as np

from jetx.config import CASHOUT, CLASS_EDGES


def regression_target(values: np.ndarray) -> np.ndarray:
    """The multiplier itself, the regression head's target.

    Args:
        values: float [n] multipliers of the target rounds.

    Returns:
        float64 [n], a copy of `values`.
    """
    return np.asarray(values, dtype=np.float64).copy()


def classification_target(values: np.ndarray) -> np.ndarray:
    """Class of each value: 0 below 1.5, 1 from 1.5 to below 10, 2 from 10 up (CLASS_EDGES).

    A value equal to an edge belongs to the upper class, as "1.5 to < 10" says.

    Args:
        values: float [n] multipliers.

    Returns:
        int8 [n] in {0, 1, 2}.
    """
    edges = np.asarray(CLASS_EDGES, dtype=np.float64)
    return np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right").astype(
        np.int8
    )


def threshold_target(values: np.ndarray) -> np.ndarray:
    """1 where the round reached the cash-out multiplier (value >= CASHOUT), else 0.

    Args:
        values: float [n] multipliers.

    Returns:
        int8 [n] in {0, 1}.
    """
    return (np.asarray(values, dtype=np.float64) >= CASHOUT).astype(np.int8)


def compute_targets(values: np.ndarray) -> dict[str, np.ndarray]:
    """All three targets of the rounds `values`, keyed by the model's output names.

    Args:
        values: float [n] multipliers of the target rounds (values[i] for each sample i).

    Returns:
        {"regression": float64 [n], "classification": int8 [n], "threshold": int8 [n]}.
    """
    return {
        "regression": regression_target(values),
        "classification": classification_target(values),
        "threshold": threshold_target(values),
    }
