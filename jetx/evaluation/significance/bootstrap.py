"""Intervals from a circular block bootstrap over rounds (Politis and Romano 1992).

Blocks of about n^(1/3) consecutive rounds are resampled, so serial dependence within a block
is kept and cannot narrow an interval the way an i.i.d. resample would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jetx.errors import JetxInputError

#: Resamples of every bootstrap interval: enough that the 2.5% and 97.5% quantiles move by
#: well under their interval's width between seeds.
RESAMPLES = 2000
#: Resamples evaluated at once (bounds memory to CHUNK x rounds indices).
_CHUNK = 250


def block_length(rounds: int) -> int:
    """Default bootstrap block: ceil(n^(1/3)) rounds, the rate at which the block bootstrap's
    variance error is smallest (Hall, Horowitz and Jing 1995); 11 for 1,280 rounds."""
    return max(1, math.ceil(rounds ** (1.0 / 3.0)))


def block_bootstrap_indices(
    rounds: int, *, resamples: int, block: int | None = None, seed: int = 0
) -> np.ndarray:
    """Row indices of circular block-bootstrap resamples: int64 [resamples, rounds].

    Each resample is ceil(n / block) blocks of `block` consecutive rounds, each starting at a
    uniform round and wrapping around the end (circular, so every round is equally likely to be
    drawn), cut to n rounds. numpy's generator seeded by `seed`: the same call, the same rows.
    Written here because scipy's bootstrap resamples single observations only.
    """
    if rounds < 1 or resamples < 1:
        raise JetxInputError(
            f"`rounds` and `resamples` must be positive. Received: {rounds}, {resamples}"
        )
    block = block_length(rounds) if block is None else block
    if not 1 <= block <= rounds:
        raise JetxInputError(f"`block` must be in [1, {rounds}]. Received: block={block}")
    blocks = -(-rounds // block)
    starts = np.random.default_rng(seed).integers(0, rounds, size=(resamples, blocks, 1))
    rows = (starts + np.arange(block)) % rounds
    return rows.reshape(resamples, blocks * block)[:, :rounds]


def bootstrap_interval(
    statistic: Callable[..., np.ndarray],
    samples: Sequence[np.ndarray],
    *,
    level: float = 0.95,
    resamples: int = RESAMPLES,
    block: int | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of `statistic` over circular block-bootstrap resamples of rounds.

    Args:
        statistic: maps arrays [R, N] (one per sample, rows resampled jointly) to [R] values.
        samples: float [N] arrays over the same rounds (a model's and a reference's losses),
            resampled with the same rows so that their pairing is kept.
        level: the interval's coverage.
        resamples, block, seed: as for `block_bootstrap_indices`.

    Returns:
        (low, high), the (1 - level) / 2 and (1 + level) / 2 quantiles.
    """
    arrays = [np.asarray(s, dtype=np.float64).reshape(-1) for s in samples]
    rows = block_bootstrap_indices(arrays[0].size, resamples=resamples, block=block, seed=seed)
    values = np.concatenate(
        [statistic(*(a[rows[i : i + _CHUNK]] for a in arrays)) for i in range(0, resamples, _CHUNK)]
    )
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def skill_interval(
    model_loss: np.ndarray, reference_loss: np.ndarray, **options: Any
) -> tuple[float, float]:
    """Block-bootstrap interval of `skill_score` (options: those of `bootstrap_interval`)."""

    def skill(model: np.ndarray, reference: np.ndarray) -> np.ndarray:
        return 1.0 - model.mean(axis=1) / reference.mean(axis=1)

    return bootstrap_interval(skill, [model_loss, reference_loss], **options)
