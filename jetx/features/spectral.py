"""Wavelet and Fourier features of the last 100 log multipliers, over 2-D blocks at once.

The db4 decomposition uses PyWavelets: its `wavedec(..., axis=1)` runs the filter bank in C over
a whole [n, 100] block, with exactly the filter coefficients and boundary handling ("symmetric"
extension, coefficient lengths 19/19/31/53) of a per-row `pywt.wavedec` call; re-implementing the
filter bank by hand would be slower and a second definition of db4 to keep in step.
"""

from __future__ import annotations

import numpy as np
import pywt

from jetx.features.chunk import Chunk, is_flat
from jetx.features.registry import FFT_HIGH_FROM, FFT_LOW_BINS

WAVELET = "db4"
WAVELET_LEVEL = 3
SPECTRUM_WIDTH = 100


def _entropy(shares: np.ndarray) -> np.ndarray:
    """[n] Shannon entropy (nats) of each row of shares, with 0 ln 0 = 0."""
    safe = np.where(shares > 0, shares, 1.0)
    return -(shares * np.log(safe)).sum(axis=1)


def wavelet_features(chunk: Chunk) -> np.ndarray:
    """[n, 14] mean, std, energy of the a3, d3, d2, d1 bands; detail share; band entropy.

    Energy is the sum of squared coefficients. A window of all 1.00 has log 0 everywhere and no
    energy at all: its share and entropy are 0.
    """
    win = np.ascontiguousarray(chunk.window(SPECTRUM_WIDTH, log=True))
    bands = pywt.wavedec(win, WAVELET, level=WAVELET_LEVEL, axis=1)
    columns, energies = [], []
    for coeffs in bands:  # a3, d3, d2, d1
        energy = (coeffs**2).sum(axis=1)
        columns += [coeffs.mean(axis=1), coeffs.std(axis=1), energy]
        energies.append(energy)
    energies = np.stack(energies, axis=1)
    total = energies.sum(axis=1)
    empty = total == 0
    shares = energies / np.where(empty, 1.0, total)[:, None]
    detail_share = np.where(empty, 0.0, shares[:, 1:].sum(axis=1))
    entropy = np.where(empty, 0.0, _entropy(shares))
    return np.stack([*columns, detail_share, entropy], axis=1)


def fft_features(chunk: Chunk) -> np.ndarray:
    """[n, 7] spectrum shape of the demeaned last 100 logs over frequencies k = 1..50.

    Columns: dominant frequency k/100, its power share, spectral centroid, normalised spectral
    entropy, low (k <= 10) and high (k >= 26) power shares, total power / 100^2. A flat window
    has no spectrum: every column is 0.
    """
    win = chunk.window(SPECTRUM_WIDTH, log=True)
    mean = win.mean(axis=1)
    centred = win - mean[:, None]
    flat = is_flat(centred.std(axis=1), mean)
    power = np.abs(np.fft.rfft(centred, axis=1)[:, 1:]) ** 2
    total = power.sum(axis=1)
    shares = power / np.where(flat, 1.0, total)[:, None]
    freqs = np.arange(1, power.shape[1] + 1) / SPECTRUM_WIDTH
    best = np.argmax(power, axis=1)
    result = np.stack(
        [
            freqs[best],
            shares.max(axis=1),
            shares @ freqs,
            _entropy(shares) / np.log(power.shape[1]),
            shares[:, :FFT_LOW_BINS].sum(axis=1),
            shares[:, FFT_HIGH_FROM - 1 :].sum(axis=1),
            total / SPECTRUM_WIDTH**2,
        ],
        axis=1,
    )
    result[flat] = 0.0
    return result
