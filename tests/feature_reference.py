"""The slow, obvious per-row reference of every feature: the oracle of tests/test_features.py.

`reference_features(history)` sees only the history values[:i] of one sample, so a vectorised
result that matches it can neither look ahead nor mean something else. It is written the way the
original tool computed features, one sample at a time with plain loops and per-row numpy/pywt
calls, and shares with jetx/ only the registry's constants (windows, thresholds, bin edges).
"""

from __future__ import annotations

import math

import numpy as np
import pywt

from jetx.features.registry import (
    ACF_LAGS,
    ACF_MAX_LAG,
    BIN_SETS,
    DFA_SCALES,
    FEATURE_NAMES,
    FLAT_EPS,
    HURST_SCALES,
    MOMENTUM_WINDOWS,
    ROLLING_WINDOWS,
    SINCE_THRESHOLDS,
)


def _flat(window) -> bool:
    return float(np.std(window)) <= FLAT_EPS * (1.0 + abs(float(np.mean(window))))


def _cls(value: float) -> int:
    return 0 if value < 1.5 else (1 if value < 10 else 2)


def _rounds_since(history, hit) -> float:
    for gap, value in enumerate(reversed(history)):
        if hit(value):
            return float(gap)
    return float(len(history))


def _trailing(pairs) -> int:
    run = 0
    for ok in reversed(pairs):
        if not ok:
            break
        run += 1
    return run


def _entropy(shares) -> float:
    return -sum(p * math.log(p) for p in shares if p > 0)


def _rolling(h, f) -> None:
    for w in ROLLING_WINDOWS:
        win = h[-w:]
        f[f"roll_mean_{w}"] = np.mean(win)
        f[f"roll_std_{w}"] = np.std(win)
        f[f"roll_min_{w}"] = min(win)
        f[f"roll_max_{w}"] = max(win)
        f[f"roll_median_{w}"] = np.median(win)


def _events(h, f) -> None:
    w10, w50 = list(h[-10:]), list(h[-50:])
    f["thr_count_ge_1_5_last10"] = sum(v >= 1.5 for v in w10)
    f["thr_count_ge_2_last10"] = sum(v >= 2 for v in w10)
    f["thr_ratio_ge_3_last10"] = sum(v >= 3 for v in w10) / 10
    f["thr_ratio_ge_1_5_last50"] = sum(v >= 1.5 for v in w50) / 50
    f["thr_count_near_1_5_last10"] = sum(1.45 <= v <= 1.55 for v in w10)
    for t in SINCE_THRESHOLDS:
        f[f"since_ge_{t}"] = _rounds_since(h, lambda v, t=t: v >= t)
    pairs = list(zip(w10[:-1], w10[1:], strict=True))
    f["streak_rising_last10"] = _trailing([b > a for a, b in pairs])
    f["streak_falling_last10"] = _trailing([b < a for a, b in pairs])
    f["streak_same_class_last10"] = 1 + _trailing([_cls(v) == _cls(w10[-1]) for v in w10[:-1]])
    f["vol_std_10"] = np.std(w10)
    f["vol_mean_abs_change_10"] = sum(abs(b - a) for a, b in pairs) / 9
    f["vol_cv_10"] = np.std(w10) / np.mean(w10)
    f["pat_alternations_last10"] = sum((a >= 1.5) != (b >= 1.5) for a, b in pairs)
    f["zone_count_lt_1_2_last10"] = sum(v < 1.2 for v in w10)
    f["zone_count_2_to_5_last10"] = sum(2 <= v < 5 for v in w10)
    f["zone_count_ge_5_last10"] = sum(v >= 5 for v in w10)
    after = [b for a, b in zip(w50[:-1], w50[1:], strict=True) if a < 1.5]
    f["rec_last_over_min10"] = h[-1] / min(w10)
    f["rec_since_lt_1_5"] = _rounds_since(h, lambda v: v < 1.5)
    f["rec_mean_after_low_50"] = sum(after) / len(after) if after else 0.0
    f["cool_max10_over_max50"] = max(w10) / max(w50)
    f["cool_mean10_over_mean50"] = np.mean(w10) / np.mean(w50)
    for name, edges in BIN_SETS.items():
        f[f"bin_{name}"] = sum(edge <= h[-1] for edge in edges)
    f["last_value"] = h[-1]
    f["last_class"] = _cls(h[-1])


def _distribution(h, f) -> None:
    win = h[-50:]
    mean, std = np.mean(win), np.std(win)
    flat = _flat(win)
    f["dist_skew_50"] = 0.0 if flat else np.mean((win - mean) ** 3) / std**3
    f["dist_kurt_50"] = 0.0 if flat else np.mean((win - mean) ** 4) / std**4 - 3
    for q in (25, 50, 75, 90):
        f[f"dist_p{q}_50"] = np.percentile(win, q)
    f["dist_iqr_50"] = np.percentile(win, 75) - np.percentile(win, 25)
    z = 0.0 if flat else (h[-1] - mean) / std
    f["anom_zscore_50"] = z
    f["anom_outlier_50"] = float(abs(z) > 3)
    median = np.median(win)
    mad = np.median(np.abs(win - median))
    f["anom_mad_score_50"] = 0.0 if mad == 0 else (h[-1] - median) / (1.4826 * mad)
    f["anom_percentile_50"] = sum(v <= h[-1] for v in win) / 50


def _trend(logs, f) -> None:
    for w in MOMENTUM_WINDOWS:
        win = logs[-w:]
        f[f"mom_{w}"] = np.mean(win[w // 2 :]) - np.mean(win[: w // 2])
        f[f"trend_{w}"] = 0.0 if _flat(win) else np.corrcoef(np.arange(w), win)[0, 1]
    f["mom_accel_30"] = np.mean(logs[-10:]) - 2 * np.mean(logs[-20:-10]) + np.mean(logs[-30:-20])
    win = logs[-50:]
    c = win - np.mean(win)
    acf = (
        [0.0] * ACF_MAX_LAG
        if _flat(win)
        else [float(np.dot(c[:-k], c[k:]) / np.dot(c, c)) for k in range(1, ACF_MAX_LAG + 1)]
    )
    for k in ACF_LAGS:
        f[f"acf_lag{k}_50"] = acf[k - 1]
    f["acf_max_50"] = max(acf)
    f["acf_argmax_lag_50"] = 0.0 if _flat(win) else acf.index(max(acf)) + 1


def _spectral(logs, f) -> None:
    win = logs[-100:]
    bands = pywt.wavedec(win, "db4", level=3)
    energies = [float(np.sum(b**2)) for b in bands]
    for name, coeffs, energy in zip(("a3", "d3", "d2", "d1"), bands, energies, strict=True):
        f[f"wav_{name}_mean"], f[f"wav_{name}_std"] = np.mean(coeffs), np.std(coeffs)
        f[f"wav_{name}_energy"] = energy
    total = sum(energies)
    f["wav_detail_share"] = 0.0 if total == 0 else sum(energies[1:]) / total
    f["wav_band_entropy"] = 0.0 if total == 0 else _entropy([e / total for e in energies])
    power = np.abs(np.fft.rfft(win - np.mean(win))[1:]) ** 2
    names = ["dom_freq", "dom_share", "centroid", "entropy", "low_share", "high_share", "power"]
    if _flat(win):
        f.update({f"fft_{n}_100": 0.0 for n in names})
        return
    shares = power / power.sum()
    freqs = np.arange(1, 51) / 100
    f["fft_dom_freq_100"] = freqs[int(np.argmax(power))]
    f["fft_dom_share_100"] = shares.max()
    f["fft_centroid_100"] = float(np.sum(shares * freqs))
    f["fft_entropy_100"] = _entropy(shares) / math.log(50)
    f["fft_low_share_100"] = shares[:10].sum()
    f["fft_high_share_100"] = shares[25:].sum()
    f["fft_power_100"] = power.sum() / 100**2


def _fit(scales, fluct):
    x, y = np.log10(scales), np.log10(fluct)
    slope, intercept = np.polyfit(x, y, 1)
    return slope, intercept, np.corrcoef(x, y)[0, 1] ** 2


def _fractal(logs, f) -> None:
    win = logs[-200:]
    profile = np.cumsum(win - np.mean(win))
    fluct = []
    for s in DFA_SCALES:
        resid = []
        for k in range(0, 200, s):
            seg = profile[k : k + s]
            slope, intercept = np.polyfit(np.arange(s), seg, 1)
            resid.extend(seg - (slope * np.arange(s) + intercept))
        fluct.append(math.sqrt(np.mean(np.square(resid))))
    if min(fluct) <= FLAT_EPS:
        f["dfa_alpha_200"], f["dfa_r2_200"] = 0.5, 0.0
    else:
        f["dfa_alpha_200"], _, f["dfa_r2_200"] = _fit(DFA_SCALES, fluct)
    ratios = []
    for s in HURST_SCALES:
        segments = [win[k : k + s] for k in range(0, 200, s)]
        if any(_flat(seg) for seg in segments):
            f["hurst_exponent_200"], f["hurst_intercept_200"], f["hurst_r2_200"] = 0.5, 0.0, 0.0
            return
        rs = [np.ptp(np.cumsum(seg - np.mean(seg))) / np.std(seg) for seg in segments]
        ratios.append(np.mean(rs))
    f["hurst_exponent_200"], f["hurst_intercept_200"], f["hurst_r2_200"] = _fit(
        HURST_SCALES, ratios
    )


def reference_features(history: np.ndarray) -> np.ndarray:
    """The 121 features of the sample that follows `history` (values[:i]), in registry order.

    Args:
        history: float64 [i] raw multipliers, i >= 500.

    Returns:
        float64 [121], ordered as FEATURE_NAMES.
    """
    h = np.asarray(history, dtype=np.float64)
    logs = np.log10(h)
    f: dict[str, float] = {}
    _rolling(h, f)
    _events(h, f)
    _distribution(h, f)
    _trend(logs, f)
    _spectral(logs, f)
    _fractal(logs, f)
    missing = set(FEATURE_NAMES) ^ set(f)
    if missing:
        raise KeyError(f"reference and registry disagree on {sorted(missing)}")
    return np.array([f[name] for name in FEATURE_NAMES], dtype=np.float64)
