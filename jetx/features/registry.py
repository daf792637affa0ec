"""The feature registry: the one place that names, orders and documents the 121 features.

Every feature of sample i is computed from the history values[:i] only (raw multipliers >= 1.00).
"last N" always means values[i-N:i]. "log" means log10 of the multiplier (>= 0), used wherever the
heavy tail of raw multipliers would swamp a shape statistic (trend, spectrum, fractal exponents).
A feature that is undefined for a window gets the documented `fill` value, so that no NaN or inf
ever reaches the model. A window counts as flat (zero variance) when its population standard
deviation is <= FLAT_EPS * (1 + |mean|): floating-point noise of a constant window is not variance.

The model, the dataset writer and the reports read FEATURE_NAMES from here; never re-declare them.
"""

from __future__ import annotations

from dataclasses import dataclass

from jetx.config import CASHOUT, CLASS_EDGES

FEATURE_VERSION = "1"
FIRST_SAMPLE = 1000  # the longest input window (seq1000): the first usable sample position
FLAT_EPS = 1e-10

ROLLING_WINDOWS = (25, 50, 100, 200, 500)
ROLLING_STATS = ("mean", "std", "min", "max", "median")
SINCE_THRESHOLDS = (10, 20, 50, 100, 200)
MOMENTUM_WINDOWS = (25, 50, 100, 200)
ACF_LAGS = (1, 2, 3, 5, 10, 20)
ACF_MAX_LAG = 20
LOW = CASHOUT  # the cash-out line: "below 1.5" is a lost bet
HIGH = CLASS_EDGES[1]  # class boundary between "1.5 to < 10" and ">= 10"
DFA_SCALES = (5, 10, 20, 25, 50)
HURST_SCALES = (10, 20, 25, 50, 100, 200)
WAVELET_BANDS = ("a3", "d3", "d2", "d1")
FFT_LOW_BINS = 10  # frequencies k = 1..10 of 100 (periods >= 10 rounds)
FFT_HIGH_FROM = 26  # frequencies k = 26..50 (periods < 4 rounds)

# 15 category sets: the bin index of the last value is the number of edges <= value (0..len).
BIN_SETS: dict[str, tuple[float, ...]] = {
    "ge_1_5": (1.5,),
    "ge_2": (2.0,),
    "ge_3": (3.0,),
    "ge_5": (5.0,),
    "ge_10": (10.0,),
    "classes3": (1.5, 10.0),
    "quartiles": (1.29, 1.94, 3.88),  # quartiles of P(X >= x) = 0.97 / x
    "deciles": (1.08, 1.21, 1.39, 1.62, 1.94, 2.43, 3.23, 4.85, 9.7),
    "log2": (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0),
    "log10": (10.0, 100.0, 1000.0),
    "fine_low": (1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0),
    "half_units": (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
    "cash_targets": (1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0),
    "near_1_5": (1.4, 1.45, 1.55, 1.6),
    "low_mid_high": (1.2, 2.0, 5.0, 20.0),
}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column: its stable name, category, meaning and value when undefined."""

    name: str
    category: str
    doc: str
    fill: str = "always defined"


def _rolling() -> list[FeatureSpec]:
    return [
        FeatureSpec(
            f"roll_{stat}_{w}", "rolling", f"{stat} of the last {w} raw values (std ddof=0)"
        )
        for w in ROLLING_WINDOWS
        for stat in ROLLING_STATS
    ]


_GAP_FILL = "i (rounds in the history), as if a hit stood just before the first round"

_SPECS: list[FeatureSpec] = [
    *_rolling(),
    FeatureSpec("thr_count_ge_1_5_last10", "threshold", "count of values >= 1.5 in the last 10"),
    FeatureSpec("thr_count_ge_2_last10", "threshold", "count of values >= 2 in the last 10"),
    FeatureSpec("thr_ratio_ge_3_last10", "threshold", "share of values >= 3 in the last 10"),
    FeatureSpec("thr_ratio_ge_1_5_last50", "threshold", "share of values >= 1.5 in the last 50"),
    FeatureSpec("thr_count_near_1_5_last10", "threshold", "count of 1.45 <= v <= 1.55, last 10"),
    *[
        FeatureSpec(f"since_ge_{t}", "since", f"rounds since the last value >= {t}", _GAP_FILL)
        for t in SINCE_THRESHOLDS
    ],
    FeatureSpec("streak_rising_last10", "streak", "strict rises ending at the last value (0..9)"),
    FeatureSpec("streak_falling_last10", "streak", "strict falls ending at the last value (0..9)"),
    FeatureSpec("streak_same_class_last10", "streak", "trailing run of the last class (1..10)"),
    FeatureSpec("vol_std_10", "volatility", "std (ddof=0) of the last 10 raw values"),
    FeatureSpec("vol_mean_abs_change_10", "volatility", "mean |v[k] - v[k-1]| over the last 10"),
    FeatureSpec("vol_cv_10", "volatility", "std / mean of the last 10 (mean >= 1, so defined)"),
    FeatureSpec("pat_alternations_last10", "pattern", "switches across 1.5 between neighbours"),
    FeatureSpec("zone_count_lt_1_2_last10", "pattern", "count of values < 1.2 in the last 10"),
    FeatureSpec("zone_count_2_to_5_last10", "pattern", "count of 2 <= v < 5 in the last 10"),
    FeatureSpec("zone_count_ge_5_last10", "pattern", "count of values >= 5 in the last 10"),
    FeatureSpec("dist_skew_50", "distribution", "population skewness, last 50 raw", "0 if flat"),
    FeatureSpec(
        "dist_kurt_50", "distribution", "excess kurtosis (population), last 50", "0 if flat"
    ),
    *[
        FeatureSpec(f"dist_p{q}_50", "distribution", f"{q}th percentile (numpy linear), last 50")
        for q in (25, 50, 75, 90)
    ],
    FeatureSpec("dist_iqr_50", "distribution", "p75 - p25 of the last 50"),
    *[
        FeatureSpec(f"mom_{w}", "momentum", f"mean log of newer half - older half, last {w}")
        for w in MOMENTUM_WINDOWS
    ],
    *[
        FeatureSpec(f"trend_{w}", "momentum", f"Pearson r of log vs time, last {w}", "0 if flat")
        for w in MOMENTUM_WINDOWS
    ],
    FeatureSpec("mom_accel_30", "momentum", "mean log of last 10 - 2 x previous 10 + 10 before"),
    FeatureSpec("rec_last_over_min10", "recovery", "last value / min of the last 10"),
    FeatureSpec("rec_since_lt_1_5", "recovery", "rounds since the last value < 1.5", _GAP_FILL),
    FeatureSpec(
        "rec_mean_after_low_50", "recovery", "mean of values right after a < 1.5, last 50", "0"
    ),
    FeatureSpec("anom_zscore_50", "anomaly", "(last - mean) / std, last 50 raw", "0 if flat"),
    FeatureSpec("anom_outlier_50", "anomaly", "1 if |anom_zscore_50| > 3 else 0"),
    FeatureSpec(
        "anom_mad_score_50", "anomaly", "(last - median) / (1.4826 MAD), last 50", "0 if MAD == 0"
    ),
    FeatureSpec("anom_percentile_50", "anomaly", "share of the last 50 that are <= last value"),
    FeatureSpec("cool_max10_over_max50", "cooling", "max of the last 10 / max of the last 50"),
    FeatureSpec("cool_mean10_over_mean50", "cooling", "mean of the last 10 / mean of the last 50"),
    *[
        FeatureSpec(f"bin_{name}", "bins", f"count of edges {edges} <= last value")
        for name, edges in BIN_SETS.items()
    ],
    *[
        FeatureSpec(f"wav_{band}_{stat}", "wavelet", f"{stat} of db4 level-3 {band}, log last 100")
        for band in WAVELET_BANDS
        for stat in ("mean", "std", "energy")
    ],
    FeatureSpec("wav_detail_share", "wavelet", "detail energy / total energy", "0 if total 0"),
    FeatureSpec("wav_band_entropy", "wavelet", "entropy (nats) of band energy shares", "0"),
    FeatureSpec(
        "dfa_alpha_200", "dfa", f"DFA-1 exponent, log last 200, scales {DFA_SCALES}", "0.5"
    ),
    FeatureSpec("dfa_r2_200", "dfa", "r^2 of the DFA log-log fit", "0 if any F(s) is flat"),
    FeatureSpec("hurst_exponent_200", "hurst", f"R/S slope, scales {HURST_SCALES}", "0.5"),
    FeatureSpec("hurst_intercept_200", "hurst", "log10 c in R/S = c s^H", "0 if a segment is flat"),
    FeatureSpec("hurst_r2_200", "hurst", "r^2 of the R/S log-log fit", "0 if a segment is flat"),
    FeatureSpec("fft_dom_freq_100", "fft", "argmax power frequency k/100, demeaned log", "0"),
    FeatureSpec("fft_dom_share_100", "fft", "max power / total power (k = 1..50)", "0 if flat"),
    FeatureSpec("fft_centroid_100", "fft", "power-weighted mean frequency k/100", "0 if flat"),
    FeatureSpec("fft_entropy_100", "fft", "entropy of power shares / ln 50", "0 if flat"),
    FeatureSpec("fft_low_share_100", "fft", "power share of k = 1..10", "0 if flat"),
    FeatureSpec("fft_high_share_100", "fft", "power share of k = 26..50", "0 if flat"),
    FeatureSpec("fft_power_100", "fft", "sum of |X_k|^2 over k = 1..50, / 100^2", "0 if flat"),
    *[
        FeatureSpec(f"acf_lag{k}_50", "acf", f"autocorrelation at lag {k}, log last 50", "0")
        for k in ACF_LAGS
    ],
    FeatureSpec("acf_max_50", "acf", f"max autocorrelation over lags 1..{ACF_MAX_LAG}", "0"),
    FeatureSpec("acf_argmax_lag_50", "acf", "lag of acf_max_50 (first if tied)", "0 if flat"),
    FeatureSpec("last_value", "last", "values[i-1]"),
    FeatureSpec("last_class", "last", "class of values[i-1]: 0 (< 1.5), 1 (< 10), 2 (>= 10)"),
]

FEATURES: tuple[FeatureSpec, ...] = tuple(_SPECS)
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)

# docs/design.md "The feature vector": category -> count, in column order.
CATEGORY_COUNTS: dict[str, int] = {
    "rolling": 25,
    "threshold": 5,
    "since": 5,
    "streak": 3,
    "volatility": 3,
    "pattern": 4,
    "distribution": 7,
    "momentum": 9,
    "recovery": 3,
    "anomaly": 4,
    "cooling": 2,
    "bins": 15,
    "wavelet": 14,
    "dfa": 2,
    "hurst": 3,
    "fft": 7,
    "acf": 8,
    "last": 2,
}
