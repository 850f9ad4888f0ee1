"""Spectral floors for photos: a correction of the decoded image's spectrum chosen by the sender, 18 bytes.

The patch coder's error is a fine grain spread over all frequencies, weaker than the picture's strong
coefficients (edges, texture) but as strong as its weak ones. Filters that guess it from the decode alone lose
(docs/results.md, 2026-12-04, sixth), and a gain per band alone gains little (2026-12-06, eleventh). With a
noise floor per band the filter |Y|^2 / (|Y|^2 + N) keeps each short-time spectrum's strong coefficients and
lowers the weak ones; the sender, who has the original, picks per colour plane and band the floor and the gain
that leave the least squared error (engine/floors.py). On the 24 Kodak images coded at 0.5 bpp this measured
+0.2 dB for 18 bytes (docs/results.md, session of 2026-12-06, twelfth).

Sender/receiver contract. Both sides start from the decoded (H, W, 3) uint8 RGB image (before gray or alpha
are restored) and work in float64:
- planes: Y = 0.299 R + 0.587 G + 0.114 B, Cb = -0.168736 R - 0.331264 G + 0.5 B, Cr = 0.5 R - 0.418688 G -
  0.081312 B (the RGB values themselves, no offsets), each plane extended beyond the image by mirroring
  (numpy's 'symmetric' padding: the edge pixel repeated, then the rows or columns before it);
- frame (i, j), i = 0 .. floor((H - 1) / HOP) + 1 and j likewise over W, is the plane's FRAME x FRAME block whose
  top left pixel is (i HOP - HOP, j HOP - HOP), times the separable periodic square-root Hann window
  w[m] w[n], w[n] = sqrt(1/2 - cos(2 pi n / FRAME) / 2); its 2-D real FFT has bins (ky, kx), ky in -FRAME/2 ..
  FRAME/2 - 1 (numpy's order), kx in 0 .. FRAME/2;
- bin (ky, kx) lies in band b when EDGES2[b] <= ky^2 + kx^2 < EDGES2[b + 1] (the last band has no upper
  edge); band 0 is the DC bin alone and is never changed;
- with the plane's codes (floor f_b, gain g_b for bands b = 1 .. B), N_b = FLOORS[f_b] times the mean of
  |Y|^2 over the bins of band b in every frame of the plane; every bin Y of band b is multiplied by
  GAINS[g_b] |Y|^2 / (|Y|^2 + N_b) (the factor 1 where both are 0);
- the frames are inverse-transformed, windowed again and added at their places (the squared windows sum to
  one, so codes of floor 0 and gain 1 give the plane back), the image's H x W pixels are kept, and the planes
  are turned back to RGB by the inverse of the matrix above, rounded and clipped to 0 .. 255.
A plane whose codes are all floor 0 and gain 1 is kept as it is (no transform). The codes are 2 B per plane, for
Y, Cb and Cr in turn: the floors of bands 1 .. B, then their gains, BITS bits each (container kind 15, flag bit 1).
"""
from __future__ import annotations

import numpy as np

from . import floors

FRAME, HOP = 32, 16
EDGES2 = (0, 1, 4, 16, 36, 64, 144)   # squared radial bin index: DC | 1..2 | 2..4 | 4..6 | 6..8 | 8..12 | beyond
BANDS = len(EDGES2) - 1                # coded bands (band 0, the DC bin, is left alone)
BITS = 4
GAINS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.5625, 0.625, 0.6875, 0.75, 0.8125, 0.875, 0.9375, 1.0, 1.0625, 1.125,
         1.25)
FLOORS = (0.0, 0.01, 0.015, 0.023, 0.035, 0.053, 0.08, 0.12, 0.18, 0.27, 0.41, 0.62, 0.93, 1.4, 2.1, 3.2)
N_CODES = 3 * 2 * BANDS                # per image
UNITY = (0,) * BANDS + (GAINS.index(1.0),) * BANDS   # one plane's codes that change nothing
FRAMES_AT_ONCE = 4096                  # frames transformed together (bounds memory on large images)

_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _window() -> np.ndarray:
    w = np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(FRAME) / FRAME))
    return w[:, None] * w[None, :]


def _band_of_bins() -> np.ndarray:
    """(FRAME, FRAME/2 + 1) band of every 2-D real-FFT bin."""
    ky = np.fft.fftfreq(FRAME, 1.0 / FRAME).astype(np.int64)[:, None]
    kx = np.arange(FRAME // 2 + 1)[None, :]
    return np.searchsorted(np.asarray(EDGES2), ky * ky + kx * kx, side="right") - 1


def _frames(n: int) -> int:
    """Frames along a side of n pixels: every pixel lies in two."""
    return (n - 1) // HOP + 2


def _strips(h: int, w: int):
    """Frame rows in strips of about FRAMES_AT_ONCE frames -> [(first row, last row + 1), ...]."""
    rows = max(1, FRAMES_AT_ONCE // _frames(w))
    n = _frames(h)
    return [(a, min(n, a + rows)) for a in range(0, n, rows)]


def _padded(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return np.pad(plane, ((HOP, _frames(h) * HOP - h), (HOP, _frames(w) * HOP - w)), mode="symmetric")


def _spectra(padded: np.ndarray, first: int, last: int, n_cols: int) -> np.ndarray:
    """Frame rows first .. last - 1 of a padded plane -> (rows, cols, FRAME, FRAME/2 + 1) complex128."""
    view = np.lib.stride_tricks.sliding_window_view(padded[first * HOP:(last - 1) * HOP + FRAME], (FRAME, FRAME))
    return np.fft.rfft2(view[::HOP, ::HOP][:, :n_cols] * _window())


def _planes(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64) @ _YCC.T                              # (H, W, 3)


def _power(sy: np.ndarray) -> np.ndarray:
    """|Y|^2 of every bin (without the square root that np.abs takes)."""
    return sy.real ** 2 + sy.imag ** 2


def _with_power(sy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return sy, _power(sy)


def _by_band(per_bin: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Values summed over the frames, (..., FRAME, FRAME/2 + 1) -> their sum over each band's bins (BANDS + 1,)."""
    return np.bincount(band.ravel(), per_bin.reshape(-1, band.size).sum(0), BANDS + 1)


def _mean_power(padded: np.ndarray, h: int, w: int, band: np.ndarray
                ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Mean |Y|^2 over the bins of each band in every frame of one plane -> ((BANDS + 1,), the plane's spectra
    and their powers when they fit in one strip, to be used again, else None)."""
    strips = _strips(h, w)
    tot = np.zeros(BANDS + 1)
    for first, last in strips:
        sy, p = _with_power(_spectra(padded, first, last, _frames(w)))
        tot += _by_band(p, band)
    cnt = np.bincount(band.ravel(), minlength=BANDS + 1) * _frames(h) * _frames(w)
    return tot / cnt, ((sy, p) if len(strips) == 1 else None)


def choose(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """Sender side: the (H, W, 3) RGB original and decode (uint8 or float, same scale) -> (N_CODES,) int64: per
    plane the floors then the gains (see the contract) of least squared error."""
    h, w = decoded.shape[:2]
    band = _band_of_bins()
    rhos = np.asarray(FLOORS)
    xs, ys = _planes(original), _planes(decoded)
    out = []
    for c in range(3):
        px, py = _padded(xs[..., c]), _padded(ys[..., c])
        power, cached = _mean_power(py, h, w, band)
        num = np.zeros((len(rhos), BANDS + 1))
        den = np.zeros((len(rhos), BANDS + 1))
        xx = np.zeros(BANDS + 1)
        for first, last in _strips(h, w):
            sx = _spectra(px, first, last, _frames(w))
            sy, py2 = cached if cached is not None else _with_power(_spectra(py, first, last, _frames(w)))
            cross = sx.real * sy.real + sx.imag * sy.imag        # Re(X conj Y) per bin
            xx += _by_band(_power(sx), band)
            for r, rho in enumerate(rhos):   # V = f Y with f real: Re(X conj V) = f Re(X conj Y), |V|^2 = f^2 |Y|^2
                f = floors.wiener_of_power(py2, rho * power[band]) if rho > 0 else 1.0
                num[r] += _by_band(cross * f, band)
                den[r] += _by_band(py2 * f * f, band)
        best, gains = floors.pick(num[:, None, 1:], den[:, None, 1:], xx[None, 1:], GAINS)
        out += [best, gains[0]]
    return np.concatenate(out).astype(np.int64)


def apply(decoded: np.ndarray, codes) -> np.ndarray:
    """Receiver side: the (H, W, 3) uint8 RGB decode and its (N_CODES,) codes -> (H, W, 3) uint8."""
    h, w = decoded.shape[:2]
    codes = np.asarray(codes, dtype=np.int64).reshape(3, 2, BANDS)
    band = _band_of_bins()
    win = _window()
    ys = _planes(decoded)
    out = np.empty_like(ys)
    nr, nc = _frames(h), _frames(w)
    for c in range(3):
        if (codes[c].ravel() == np.asarray(UNITY)).all():   # nothing to change in this plane
            out[..., c] = ys[..., c]
            continue
        py = _padded(ys[..., c])
        power, cached = _mean_power(py, h, w, band)
        floor = np.concatenate([[0.0], np.asarray(FLOORS)[codes[c, 0]]])[band] * power[band]   # (F, F/2 + 1)
        gain = np.concatenate([[1.0], np.asarray(GAINS)[codes[c, 1]]])[band]
        acc = np.zeros(((nr + 1) * HOP, (nc + 1) * HOP))
        for first, last in _strips(h, w):
            sy, p = cached if cached is not None else _with_power(_spectra(py, first, last, nc))
            fr = np.fft.irfft2(sy * (gain * floors.wiener_of_power(p, floor)), s=(FRAME, FRAME)) * win  # (r, c, F, F)
            # overlap-add: frames of even (or odd) row and column tile the plane end to end
            for pr in (0, 1):
                for pc in (0, 1):
                    t = fr[pr::2, pc::2]
                    if not t.size:
                        continue
                    tiles = t.transpose(0, 2, 1, 3).reshape(t.shape[0] * FRAME, t.shape[1] * FRAME)
                    r0, c0 = (first + pr) * HOP, pc * HOP
                    acc[r0:r0 + tiles.shape[0], c0:c0 + tiles.shape[1]] += tiles
        out[..., c] = acc[HOP:HOP + h, HOP:HOP + w]
    rgb = out @ np.linalg.inv(_YCC).T
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def summary(codes) -> str:
    """An image's codes -> one line for `combiner info`."""
    c = np.asarray(codes, dtype=np.int64).reshape(3, 2, BANDS)
    return (f"{int((c[:, 0] > 0).sum())} of {3 * BANDS} plane bands with a noise floor, "
            f"{int((c[:, 1] < GAINS.index(1.0)).sum())} lowered, {int((c[:, 1] > GAINS.index(1.0)).sum())} raised")
