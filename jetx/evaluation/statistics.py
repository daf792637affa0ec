"""The statistics of a forecast evaluation: proper scores, block bootstrap, DM, Holm, power.

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
  (1995) statistic and a heteroskedasticity- and autocorrelation-robust (HAR) variance, the
  equal-weighted cosine estimate with its Student-t reference (Lazarus, Lewis, Stock and Watson
  2018), so that serially dependent forecasts do not make it reject too often.
- Several tests of one run are adjusted with Holm's (1979) step-down method, which controls the
  chance of any false claim among them without assuming they are independent.
- What a test could have detected is in `jetx.evaluation.power`, calibration in
  `jetx.evaluation.calibration`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import fft, stats

from jetx.errors import JetxInputError

#: Forecasts are clipped to [EPS, 1 - EPS] before a logarithm: a forecast of exactly 0 or 1
#: that is wrong would otherwise score an infinite loss.
EPS = 1e-15
#: Resamples of every bootstrap interval: enough that the 2.5% and 97.5% quantiles move by
#: well under their interval's width between seeds.
RESAMPLES = 2000
#: A differential whose long-run variance is below (this x its largest value)^2 does not vary:
#: it is rounding of a constant, and a constant is no evidence either way.
_FLAT = 1e-12
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
    """A Diebold-Mariano test of equal expected loss with a HAR variance (EWC).

    Args:
        statistic: sqrt(n) mean / sqrt(EWC long-run variance), Student's t with `df` degrees of
            freedom under equal accuracy; None when the differential does not vary (untestable).
        p_value: of `alternative` ("less": the first forecast's loss is lower); 1 when the
            differential does not vary: no variation is no evidence, never p = 0.
        df: the number of cosines of the variance estimate (`har_cosines(rounds)`).
        mean_differential: mean of loss_a - loss_b per round (negative: a scores better).
        rounds: n.
        alternative: "less", "greater" or "two-sided".
    """

    statistic: float | None
    p_value: float
    df: int
    mean_differential: float
    rounds: int
    alternative: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def har_cosines(rounds: int) -> int:
    """Cosines of the EWC variance for `rounds` rounds: floor(0.41 n^(2/3)), the rule of Lazarus,
    Lewis, Stock and Watson (2018) that balances size against power; 16 for 256 rounds, 48 for
    1,280; at least 1 and below n."""
    return max(1, min(rounds - 1, math.floor(0.41 * rounds ** (2.0 / 3.0))))


def diebold_mariano(
    loss_a: np.ndarray, loss_b: np.ndarray, *, alternative: Alternative = "less"
) -> DieboldMariano:
    """Test equal expected loss of two forecasts of the same rounds (Diebold and Mariano 1995).

    d_t = loss_a,t - loss_b,t. The variance of its mean is not the lag-0 variance: a model
    whose forecasts drift slowly makes d_t serially dependent, and lag 0 alone then rejects too
    often (measured: 8.5% at a nominal 5% for forecast errors following AR(0.95), 256 rounds).
    The long-run variance is the equal-weighted cosine (EWC) estimate
    Omega = mean_j Lambda_j^2 over the first nu = `har_cosines(n)` type-II cosine transforms
    Lambda_j = sqrt(2 / n) sum_t cos(pi j (t + 1/2) / n) d_t, and
    sqrt(n) mean(d) / sqrt(Omega) is Student's t with nu degrees of freedom under the null,
    exactly for Gaussian d and in fixed-b asymptotics otherwise (Lazarus, Lewis, Stock and Watson
    2018, "HAR inference: recommendations for practice"). Measured in
    bench/gate_lifetime.py: 5% size for AR(0.95) forecast errors where Newey-West with the
    usual bandwidths gave 6-8%. The cosines are orthogonal to a constant, so no centring is
    needed, and scipy's DCT computes them in O(n log n).

    Args:
        loss_a, loss_b: float [N] per-round losses of the two forecasts, same rounds in order.
        alternative: "less" tests that a's expected loss is lower (a has skill over b).

    Raises:
        JetxInputError: arrays of different lengths, fewer than 2 rounds, or an unknown
            alternative.
    """
    a = np.asarray(loss_a, dtype=np.float64).reshape(-1)
    b = np.asarray(loss_b, dtype=np.float64).reshape(-1)
    n = a.size
    if a.shape != b.shape or n < 2:
        raise JetxInputError(
            f"`loss_a` and `loss_b` must be the same rounds, at least 2. Received: {n}, {b.size}"
        )
    if alternative not in ALTERNATIVES:
        raise JetxInputError(
            f"`alternative` must be one of {ALTERNATIVES}. Received: alternative={alternative!r}"
        )
    d = a - b
    mean = float(d.mean())
    nu = har_cosines(n)
    weights = fft.dct(d, type=2)[1 : nu + 1] / 2.0 * math.sqrt(2.0 / n)
    omega = float(np.mean(weights**2))
    scale = float(np.abs(d).max())
    if omega <= (_FLAT * max(scale, 1.0)) ** 2:  # no variation (up to rounding): untestable
        return DieboldMariano(None, 1.0, nu, mean, n, alternative)
    statistic = math.sqrt(n) * mean / math.sqrt(omega)
    p_value = {
        "less": lambda: stats.t.cdf(statistic, nu),
        "greater": lambda: stats.t.sf(statistic, nu),
        "two-sided": lambda: 2.0 * stats.t.sf(abs(statistic), nu),
    }[alternative]()
    return DieboldMariano(statistic, float(min(1.0, p_value)), nu, mean, n, alternative)


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
    """One-sided exact binomial p-value of a win rate above `null`: P(W >= wins | bets, null),
    scipy's `binomtest`.

    None when there is no bet (nothing was tested).
    """
    if bets == 0:
        return None
    return float(stats.binomtest(int(wins), int(bets), null, alternative="greater").pvalue)
