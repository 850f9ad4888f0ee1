"""Perceptual noise shaping of the speech fit: the encoder weighs each chunk's error by the chunk's own
formant-weighting filter W(z) = A(z / g1) / A(z / g2), as CELP speech coders do, so that the coding noise
follows the spectral envelope of the speech (less error where the spectrum is weak, more under the formants).

Encoder only: the receiver never sees W, the file format does not change, and a file coded with shaping decodes
as any other. A(z) is the order-`order` LPC polynomial of the chunk (autocorrelation method, Hann window, lag
window and white-noise correction). W is monic and minimum phase, so its log-magnitude averages to zero over
frequency: shaping moves the error between frequencies and leaves its overall scale alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.signal
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Shaping:
    g1: float               # numerator bandwidth expansion (how deep the noise follows the formants)
    g2: float               # denominator bandwidth expansion (FitConfig.shape_g1/g2; config.PERCEPTUAL)
    order: int = 16
    taps: int = 64          # impulse response of W, truncated (g2 ** taps is negligible)


def lpc(x: np.ndarray, order: int) -> np.ndarray:
    """(B, L) frames -> (B, order + 1) LPC polynomials a (a[:, 0] = 1) by the autocorrelation method (Hann
    window, 60 Hz lag window, white-noise correction); a silent frame gets A(z) = 1."""
    b, n = x.shape
    xw = x.astype(np.float64) * np.hanning(n)[None]
    r = np.stack([(xw[:, :n - k] * xw[:, k:]).sum(1) for k in range(order + 1)], 1)   # (B, order+1)
    r = r * np.exp(-0.5 * (2 * np.pi * 60.0 / 16000.0 * np.arange(order + 1)) ** 2)[None]
    r[:, 0] = r[:, 0] * 1.0001
    a = np.zeros((b, order + 1))
    a[:, 0] = 1.0
    for i in np.flatnonzero(r[:, 0] > 1e-12):
        a[i, 1:] = -scipy.linalg.solve_toeplitz(r[i, :order], r[i, 1:])
    return a


def impulse_responses(x: np.ndarray, s: Shaping) -> np.ndarray:
    """(B, L) chunks -> (B, taps) impulse responses of each chunk's W(z) = A(z/g1) / A(z/g2) (h[:, 0] = 1)."""
    a = lpc(x, s.order)                                                               # (B, p+1)
    p = np.arange(s.order + 1)
    imp = np.zeros(s.taps)
    imp[0] = 1.0
    return np.stack([scipy.signal.lfilter(ai * s.g1 ** p, ai * s.g2 ** p, imp) for ai in a]).astype(np.float32)


class ShapedWeight:
    """An error weight (B, N, 1) with each unit's weighting filter (B, T): stands where Objective and the coder
    take a weight tensor. The error is filtered causally within the unit, then weighed like a plain error."""

    def __init__(self, weight: torch.Tensor, h: torch.Tensor):
        self.weight, self.h = weight, h            # (B, N, 1), (B, T)

    def __getitem__(self, rows) -> "ShapedWeight":
        if isinstance(rows, tuple):
            raise ValueError("shaped errors are measured on whole units (audio measures every point)")
        return ShapedWeight(self.weight[rows], self.h[rows])

    def filtered(self, e: torch.Tensor) -> torch.Tensor:
        """(B, N, 1) error -> (B, N, 1) error through each unit's W."""
        b, n, _ = e.shape
        t = self.h.shape[1]
        x = F.pad(e[:, :, 0].unsqueeze(0), (t - 1, 0))                                # (1, B, N+T-1)
        y = F.conv1d(x, self.h.flip(1).unsqueeze(1), groups=b)                        # (1, B, N)
        return y[0].unsqueeze(-1)


def shaped(weight: torch.Tensor | None, target: torch.Tensor, s: Shaping) -> ShapedWeight:
    """Sender side: the batch's weight (or None: all ones) and target (B, N, 1) -> a ShapedWeight."""
    h = torch.from_numpy(impulse_responses(target[:, :, 0].detach().cpu().numpy(), s)).to(target.device)
    w = weight if weight is not None else torch.ones_like(target)
    return ShapedWeight(w, h)
