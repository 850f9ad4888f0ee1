"""Noise floors and gains on short-time spectra: the filter and the sender's choice that audio band gains
(engine/audio_bands.py) and photo spectral floors (engine/image_floors.py) share.

A decode's spectrum Y is the original's X plus coding noise. Within a band, a gain g scales the strong bins
(harmonics, edges) and the noise between them alike; the factor |Y|^2 / (|Y|^2 + N) first keeps the strong
bins and lowers the weak ones, the more the larger the noise floor N. The sender, who has X, picks for each band
the floor (from a fixed set, N = rho times the band's mean |Y|^2) and for each cell of that band (a segment of
audio, or the whole image) the gain whose filtered decode has the least squared error.
"""
from __future__ import annotations

import numpy as np


def wiener(sy: np.ndarray, floor: np.ndarray | float) -> np.ndarray:
    """Each bin's factor |Y|^2 / (|Y|^2 + N) for noise powers N (broadcast to sy); 1 where both are 0."""
    return wiener_of_power(np.abs(sy) ** 2, floor)


def wiener_of_power(p: np.ndarray, floor: np.ndarray | float) -> np.ndarray:
    """`wiener` from the bins' powers p = |Y|^2 (computed once where the caller needs them again)."""
    d = p + floor
    return np.divide(p, d, out=np.ones_like(p), where=d > 0)


def pick(num: np.ndarray, den: np.ndarray, xx: np.ndarray, gains) -> tuple[np.ndarray, np.ndarray]:
    """The sender's choice from the sums, per floor r and cell (segment s, band b), num = sum Re(X conj V),
    den = sum |V|^2 over the bins of the cell, V the decode filtered with floor r, and xx = sum |X|^2:
    num, den (R, S, B), xx (S, B) -> (floor codes (B,), gain codes (S, B)), both int64.

    Given a floor, each cell's gain code is the one nearest the least-squares gain num / den (1 where den is 0),
    which is the best code for that cell; each band then takes the floor whose cells' errors
    xx - 2 g num + g^2 den sum least (the first such floor on ties, so a set whose only floor is 0 picks
    exactly the nearest gains)."""
    levels = np.asarray(gains, dtype=np.float64)
    g = np.divide(num, den, out=np.ones_like(num), where=den > 0)
    codes = np.abs(g[..., None] - levels).argmin(-1)                                # (R, S, B)
    q = levels[codes]
    err = (xx[None] - 2.0 * q * num + q * q * den).sum(1)                          # (R, B)
    best = err.argmin(0)                                                            # (B,)
    return best.astype(np.int64), codes[best, :, np.arange(len(best))].T.astype(np.int64)
