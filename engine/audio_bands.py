"""Band gains: an encoder-chosen correction of the decoded audio's spectrum, a few bits per fifth of a second.

A coded chunk is a sample of the posterior, not its mean: its error is a broadband noise, about as loud as the
speech above 2 kHz (docs/results.md, session of 2026-12-06, tenth). The sender, who has the original, can tell
how much of each band of the decode to keep: per segment of SEGMENT chunks and per band it picks the gain of
GAINS nearest the least-squares gain <X, Y> / <Y, Y> between the original's short-time spectrum X and the
decode's Y, and writes its 3-bit code. In bands where the decode is mostly noise the gain falls below one (a
Wiener-like shrink); where the decode lacks energy it may rise above one. On the 3-s speech set this gave
about +0.5 dB SNR at 12 kbps for 0.1 kbps of codes (docs/results.md, session of 2026-12-06, eleventh).

Sender/receiver contract. Both sides work on each channel's decoded signal y (M samples) at the prior's rate,
after the chunk envelope and before the clip gain is undone, with L the prior's chunk length, F = L / 2 and
H = F / 2:
- frame j (j = 0 .. floor(M / H) + 1) is y[j H - F/2 : j H + F/2] (zeros outside 0 .. M-1) times the periodic
  square-root Hann window w[n] = sqrt(1/2 - cos(2 pi n / F) / 2), and its real FFT has bins 0 .. F/2;
- bin f lies in band b when EDGES[b] * F // 32 <= f < EDGES[b + 1] * F // 32 (the last band also takes the
  Nyquist bin f = F/2);
- frame j lies in segment min(S - 1, j H // (SEGMENT L)), where S = ceil(K / SEGMENT) for K chunks per channel;
- every bin of frame j in band b is multiplied by GAINS[code[channel, segment, b]], the frames are inverse-
  transformed, windowed by w again and overlap-added at their centres (the windows' squares sum to one), and
  the first M samples are kept.
The codes are stored channel by channel, segment by segment, band by band (container kind 5, flag bit 2).
"""
from __future__ import annotations

import numpy as np

SEGMENT = 4                                   # chunks per segment (0.2 s of 16 kHz speech in 800-sample chunks)
EDGES = (0, 1, 2, 4, 6, 8, 12, 16)            # band edges in 16ths of the Nyquist frequency (at 16 kHz: 0, 0.5,
                                              # 1, 2, 3, 4, 6 and 8 kHz)
BANDS = len(EDGES) - 1
GAINS = (0.0, 0.25, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25)   # what each code multiplies its band by
BITS = 3
UNITY = GAINS.index(1.0)                      # the code of a band with nothing to correct
FRAMES_AT_ONCE = 4096                         # frames transformed together (even; bounds memory on long clips)


def usable(chunk: int) -> bool:
    """Whether a prior with chunks of this length can carry band gains (frames of chunk / 2, hop chunk / 4)."""
    return chunk % 4 == 0 and chunk >= 8


def segments(chunks_per_channel: int) -> int:
    """Segments of one channel: S = ceil(K / SEGMENT)."""
    return -(-chunks_per_channel // SEGMENT)


def n_codes(units: int, channels: int) -> int:
    """Codes in a file of `units` = channels x K chunk units."""
    return channels * segments(units // channels)


def _window(f: int) -> np.ndarray:
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(f) / f))


def _band_of_bins(f: int) -> np.ndarray:
    """(F/2 + 1,) band of every FFT bin."""
    lo = np.array([e * f // 32 for e in EDGES[:-1]])
    return np.searchsorted(lo, np.arange(f // 2 + 1), side="right") - 1


def _spectra(y: np.ndarray, chunk: int, first: int, last: int) -> np.ndarray:
    """Frames first .. last - 1 of one channel (M,) -> their spectra (n, F/2 + 1) complex128."""
    f, h = chunk // 2, chunk // 4
    lo = first * h - f // 2
    seg = np.zeros((last - first - 1) * h + f)
    a, b = max(0, lo), min(len(y), lo + len(seg))
    if b > a:
        seg[a - lo:b - lo] = y[a:b]
    idx = np.arange(last - first)[:, None] * h + np.arange(f)[None, :]
    return np.fft.rfft(seg[idx] * _window(f), axis=1)


def _frames(m: int, chunk: int) -> int:
    """Frames that cover M samples: every sample lies in two (frame j spans samples (j - 1) H .. (j + 1) H)."""
    return m // (chunk // 4) + 2


def _segment_of_frames(first: int, last: int, chunk: int, n_seg: int) -> np.ndarray:
    return np.minimum(n_seg - 1, np.arange(first, last) * (chunk // 4) // (SEGMENT * chunk))


def choose(x: np.ndarray, y: np.ndarray, chunk: int) -> np.ndarray:
    """Sender side: one channel's original x (M,) and decode y (M,), both at the prior's rate and level ->
    (S, BANDS) int64 codes: per segment and band the gain of GAINS nearest the least-squares gain (UNITY where
    the decode is silent in that band)."""
    m = len(y)
    n_seg = segments(-(-m // chunk))
    band = _band_of_bins(chunk // 2)
    num = np.zeros((n_seg, BANDS))
    den = np.zeros((n_seg, BANDS))
    n = _frames(m, chunk)
    for first in range(0, n, FRAMES_AT_ONCE):
        last = min(n, first + FRAMES_AT_ONCE)
        sx = _spectra(np.asarray(x, np.float64), chunk, first, last)
        sy = _spectra(np.asarray(y, np.float64), chunk, first, last)
        seg = _segment_of_frames(first, last, chunk, n_seg)
        cell = seg[:, None] * BANDS + band[None, :]                                  # (n, F/2 + 1)
        num += np.bincount(cell.ravel(), np.real(sx * np.conj(sy)).ravel(), n_seg * BANDS).reshape(n_seg, BANDS)
        den += np.bincount(cell.ravel(), np.abs(sy).ravel() ** 2, n_seg * BANDS).reshape(n_seg, BANDS)
    g = np.divide(num, den, out=np.ones_like(num), where=den > 0)
    return np.abs(g[..., None] - np.asarray(GAINS)).argmin(-1).astype(np.int64)


def apply(y: np.ndarray, codes: np.ndarray, chunk: int) -> np.ndarray:
    """Receiver side: one channel's decode y (M,) at the prior's rate and its (S, BANDS) codes -> (M,) float32."""
    m = len(y)
    f, h = chunk // 2, chunk // 4
    n_seg = segments(-(-m // chunk))
    codes = np.asarray(codes, dtype=np.int64).reshape(n_seg, BANDS)
    gains = np.asarray(GAINS)[codes]                                                  # (S, BANDS)
    band = _band_of_bins(f)
    win = _window(f)
    n = _frames(m, chunk)
    out = np.zeros(n * h + f)
    for first in range(0, n, FRAMES_AT_ONCE):
        last = min(n, first + FRAMES_AT_ONCE)
        sy = _spectra(np.asarray(y, np.float64), chunk, first, last)
        g = gains[_segment_of_frames(first, last, chunk, n_seg)][:, band]              # (n, F/2 + 1)
        fr = np.fft.irfft(sy * g, n=f, axis=1) * win                                  # (n, F)
        # overlap-add: frames first, first + 2, ... tile the output end to end, and so do the others, H later
        for par in (0, 1):
            tiles = fr[par::2].reshape(-1)
            s = (first + par) * h
            out[s:s + len(tiles)] += tiles
    return out[f // 2:f // 2 + m].astype(np.float32)


def summary(codes) -> str:
    """A file's band-gain codes -> one line for `combiner info` and the app."""
    c = np.asarray(codes, dtype=np.int64)
    if not len(c):
        return "none"
    low, high = float((c < UNITY).mean()) * 100, float((c > UNITY).mean()) * 100
    return (f"{len(c) // BANDS} segments of {SEGMENT} chunks x {BANDS} bands: {low:.0f} % lowered, "
            f"{high:.0f} % raised")
