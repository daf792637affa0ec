"""The statistics of a forecast evaluation: proper scores, block bootstrap, DM/HLN, Holm, power.

Pure numpy, with scipy for the distributions (t, normal, binomial) and one root. Every function
takes plain arrays, so each is checked against hand-computed cases and simulations in tests
without a model. The standards are the forecasting literature's:

- Log loss and Brier score are strictly proper (Gneiting and Raftery 2007): the forecaster who
  states its true belief minimises their expectation, so a lower score is better forecasting
  and not a lucky cut.
- Intervals come from a circular block bootstrap over rounds (Politis and Romano 1992): blocks
  of about n^(1/3) consecutive rounds are resampled, so serial dependence within a block is kept
  and cannot narrow an interval the way an i.i.d. resample would.
- Equal predictive accuracy is tested on the per-round loss differential with the Diebold-Mariano
  (1995) statistic and the small-sample correction of Harvey, Leybourne and Newbold (1997).
- Several tests are adjusted with Holm's (1979) step-down method, which controls the chance of
  any false claim among them without assuming they are independent.
- What a test could have detected is in `jetx.evaluation.power`, calibration in
  `jetx.evaluation.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from jetx.errors import JetxInputError

#: Forecasts are clipped to [EPS, 1 - EPS] before a logarithm: a forecast of exactly 0 or 1
#: that is wrong would otherwise score an infinite loss.
EPS = 1e-15
#: Resamples of every bootstrap interval: enough that the 2.5% and 97.5% quantiles move by
#: well under their interval's width between seeds.
RESAMPLES = 2000
#: Resamples evaluated at once (bounds memory to CHUNK x rounds indices).
_CHUNK = 250

Alternative = Literal["less", "greater", "two-sided"]
ALTERNATIVES: tuple[str, ...] = ("less", "greater", "two-sided")


def binary_forecasts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes and forecasts as float64 [N] each, checked: outcomes 0/1, forecasts in [0, 1].

    Raises:
        JetxInputError: arrays of different lengths, an outcome not 0 or 1, or a forecast
            outside [0, 1] or NaN.
    """
    outcome = np.asarray(y, dtype=np.float64).reshape(-1)
    forecast = np.asarray(p, dtype=np.float64).reshape(-1)
    if outcome.shape != forecast.shape:
        raise JetxInputError(
            "`y` and `p` must have one entry per round. "
            f"Received: y shape={outcome.shape}, p shape={forecast.shape}"
        )
    if not np.isin(outcome, (0.0, 1.0)).all():
        raise JetxInputError("`y` must hold outcomes 0 or 1 (whether the round reached 1.5x).")
    if np.isnan(forecast).any() or (forecast.size and (forecast.min() < 0 or forecast.max() > 1)):
        raise JetxInputError("`p` must hold probabilities in [0, 1] (no NaN).")
    return outcome, forecast


def log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-round log loss -[y ln p + (1 - y) ln(1 - p)] in nats, float64 [N].

    Args:
        y: 0/1 [N] outcomes (1: the round reached 1.5x).
        p: float [N] forecast probabilities of outcome 1, clipped to [EPS, 1 - EPS].
    """
    outcome, forecast = binary_forecasts(y, p)
    forecast = np.clip(forecast, EPS, 1.0 - EPS)
    return -(outcome * np.log(forecast) + (1.0 - outcome) * np.log1p(-forecast))


def brier(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-round Brier score (p - y)^2, float64 [N]."""
    outcome, forecast = binary_forecasts(y, p)
    return (forecast - outcome) ** 2


def skill_score(model_loss: np.ndarray, reference_loss: np.ndarray) -> float:
    """1 - mean(model) / mean(reference): above 0 when the model scores better, 1 is perfect.

    Raises:
        JetxInputError: the reference's mean loss is 0 (a perfect reference leaves no skill).
    """
    reference = float(np.mean(reference_loss))
    if reference <= 0:
        raise JetxInputError("A skill score needs a reference with a positive mean loss.")
    return 1.0 - float(np.mean(model_loss)) / reference


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


@dataclass(frozen=True)
class DieboldMariano:
    """A Diebold-Mariano test with the Harvey-Leybourne-Newbold correction.

    Args:
        statistic: the corrected statistic, t with `df` degrees of freedom under equal accuracy
            (None when the differential is constant and not zero: the statistic is infinite).
        p_value: of `alternative` ("less": the first forecast's loss is lower).
        df: n - 1.
        mean_differential: mean of loss_a - loss_b per round (negative: a scores better).
        rounds: n.
        horizon: forecast horizon h (autocovariances up to lag h - 1 enter the variance).
        alternative: "less", "greater" or "two-sided".
    """

    statistic: float | None
    p_value: float
    df: int
    mean_differential: float
    rounds: int
    horizon: int
    alternative: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diebold_mariano(
    loss_a: np.ndarray,
    loss_b: np.ndarray,
    *,
    horizon: int = 1,
    alternative: Alternative = "less",
) -> DieboldMariano:
    """Test equal expected loss of two forecasts of the same rounds (DM 1995, HLN 1997).

    d_t = loss_a,t - loss_b,t; the variance of its mean is (gamma_0 + 2 sum_{k<h} gamma_k) / n
    with autocovariances gamma_k = sum (d_t - dbar)(d_t-k - dbar) / n; DM = dbar / sqrt(that);
    HLN multiply it by sqrt((n + 1 - 2h + h(h - 1) / n) / n) and compare with Student's t with
    n - 1 degrees of freedom. A variance that comes out negative (possible for h > 1) falls back
    to h = 1, as R's forecast::dm.test does.

    Args:
        loss_a, loss_b: float [N] per-round losses of the two forecasts, same rounds in order.
        horizon: steps ahead the forecasts were made (1 for the next round).
        alternative: "less" tests that a's expected loss is lower (a has skill over b).

    Raises:
        JetxInputError: arrays of different lengths, fewer than 2 rounds, a horizon outside
            [1, n - 1] or an unknown alternative.
    """
    a = np.asarray(loss_a, dtype=np.float64).reshape(-1)
    b = np.asarray(loss_b, dtype=np.float64).reshape(-1)
    n = a.size
    if a.shape != b.shape or n < 2:
        raise JetxInputError(
            f"`loss_a` and `loss_b` must be the same rounds, at least 2. Received: {n}, {b.size}"
        )
    if not 1 <= horizon < n:
        raise JetxInputError(f"`horizon` must be in [1, {n - 1}]. Received: horizon={horizon}")
    if alternative not in ALTERNATIVES:
        raise JetxInputError(
            f"`alternative` must be one of {ALTERNATIVES}. Received: alternative={alternative!r}"
        )
    d = a - b
    mean = float(d.mean())
    centred = d - mean
    gammas = [float(centred[k:] @ centred[: n - k]) / n for k in range(horizon)]
    variance = (gammas[0] + 2.0 * sum(gammas[1:])) / n
    if variance < 0:
        return diebold_mariano(a, b, horizon=1, alternative=alternative)
    correction = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    if variance == 0:
        statistic = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        statistic = correction * mean / math.sqrt(variance)
    p_value = {
        "less": lambda: stats.t.cdf(statistic, n - 1),
        "greater": lambda: stats.t.sf(statistic, n - 1),
        "two-sided": lambda: 2.0 * stats.t.sf(abs(statistic), n - 1),
    }[alternative]()
    return DieboldMariano(
        statistic=statistic if math.isfinite(statistic) else None,
        p_value=float(min(1.0, p_value)),
        df=n - 1,
        mean_differential=mean,
        rounds=n,
        horizon=horizon,
        alternative=alternative,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    The k-th smallest of m p-values becomes max over j <= k of (m - j + 1) p_(j), capped at 1;
    rejecting where the adjusted value is below alpha keeps the chance of any false rejection
    among the m at most alpha, whatever their dependence.
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return []
    if np.isnan(p).any() or p.min() < 0 or p.max() > 1:
        raise JetxInputError(f"`p_values` must be in [0, 1]. Received: {p.tolist()}")
    order = np.argsort(p, kind="stable")
    scaled = (p.size - np.arange(p.size)) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()


def win_rate_p_value(wins: int, bets: int, null: float) -> float | None:
    """One-sided exact binomial p-value of a win rate above `null`: P(W >= wins | bets, null).

    None when there is no bet (nothing was tested).
    """
    if bets == 0:
        return None
    return float(stats.binom.sf(wins - 1, bets, null))
