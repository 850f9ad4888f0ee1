"""Band gains: an encoder-chosen correction of the decoded audio's spectrum, a few bits per tenth of a second.

A coded chunk is a sample of the posterior, not its mean: its error is a broadband noise, about as loud as the
speech above 2 kHz (docs/results.md, session of 2026-12-06, tenth). The sender, who has the original, can tell
how much of each band of the decode to keep: per segment of a few chunks and per band it picks the gain nearest
the least-squares gain <X, Y> / <Y, Y> between the original's short-time spectrum X and the decode's Y, and
writes its code. In bands where the decode is mostly noise the gain falls below one (a Wiener-like shrink); where
the decode lacks energy it may rise above one. On the 3-s speech set this gave +0.2 / +0.5 / +0.7 dB SNR at
6 / 12 / 24 kbps (docs/results.md, session of 2026-12-06, eleventh), and sets with noise floors (below) add
to that.

A band-gain set (SETS) fixes the segment length, the bands and the gains a code may name. The sender picks it
from the rate per channel (`set_for`): finer sets pay at higher rates, where their codes cost less of the file.

Sender/receiver contract. Both sides work on each channel's decoded signal y (M samples) at the prior's rate,
after the chunk envelope and before the clip gain is undone, with L the prior's chunk length, F = L / 2 and
H = F / 2, and the file's set s = SETS[k]:
- frame j (j = 0 .. floor(M / H) + 1) is y[j H - F/2 : j H + F/2] (zeros outside 0 .. M-1) times the periodic
  square-root Hann window w[n] = sqrt(1/2 - cos(2 pi n / F) / 2), and its real FFT has bins 0 .. F/2;
- bin f lies in band b when s.edges[b] * F // 128 <= f < s.edges[b + 1] * F // 128 (the last band also takes
  the Nyquist bin f = F/2);
- frame j lies in segment min(S - 1, j H // (s.segment L)), where S = ceil(K / s.segment) for K chunks per
  channel;
- every bin of frame j in band b is multiplied by s.gains[code[channel, segment, b]], the frames are inverse-
  transformed, windowed by w again and overlap-added at their centres (the windows' squares sum to one), and
  the first M samples are kept;
- with a set of noise floors (sets 2 and 3), each bin Y of frame j in band b is first multiplied by
  |Y|^2 / (|Y|^2 + N) (1 where both are 0), N = s.floors[floor[channel, b]] times the mean of |Y|^2 over the
  bins of band b in every frame of j's segment (the decode's own spectra, before any gain).
The codes are stored channel by channel: the set's floor codes (one per band) where it has them, then segment
by segment, band by band, s.bits each (container kind 5, flag bit 2, after the set's number).

Noise floors: within a band a gain scales the harmonics and the coded noise between them alike. The filter
|Y|^2 / (|Y|^2 + N) keeps the strong bins and lowers the weak ones, the more the larger the channel's floor N
for that band, which the sender picks (with the gains that go with it) for the least squared error. On the
3-s speech set's decodes without band gains this adds +0.24 / +0.14 / +0.13 dB SNR at 6 / 12 / 24 kbps to the
plain sets' gains, for 21 or 36 bits per channel (docs/results.md, session of 2026-12-06, twelfth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import floors


@dataclass(frozen=True)
class BandSet:
    segment: int                  # chunks per segment
    edges: tuple[int, ...]        # band edges in 64ths of the Nyquist frequency
    gains: tuple[float, ...]      # what each code multiplies its band by (2 ** bits of them)
    bits: int
    floors: tuple[float, ...] = ()  # noise floors a channel's band may name (2 ** bits of them), or none

    @property
    def bands(self) -> int:
        return len(self.edges) - 1

    @property
    def unity(self) -> int:
        """The code of a band with nothing to correct."""
        return self.gains.index(1.0)

    def segments(self, chunks_per_channel: int) -> int:
        """Segments of one channel: S = ceil(K / segment)."""
        return -(-chunks_per_channel // self.segment)

    def rows(self, chunks_per_channel: int) -> int:
        """Rows of `bands` codes per channel: one per segment, after one of floor codes where the set has them."""
        return self.segments(chunks_per_channel) + bool(self.floors)

    def n_codes(self, units: int, channels: int) -> int:
        """Codes in a file of `units` = channels x K chunk units."""
        return channels * self.rows(units // channels) * self.bands


SETS = (
    # 0: 0.2 s of 16 kHz speech per segment (800-sample chunks); bands end at 0.5, 1, 2, 3, 4, 6 and 8 kHz
    BandSet(4, (0, 4, 8, 16, 24, 32, 48, 64), (0.0, 0.25, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25), 3),
    # 1: 0.1 s per segment, two more bands (0.25 and 1.5 kHz), 16 gains
    BandSet(2, (0, 2, 4, 8, 12, 16, 24, 32, 48, 64),
            (0.0, 0.125, 0.25, 0.375, 0.5, 0.5625, 0.625, 0.6875, 0.75, 0.8125, 0.875, 0.9375, 1.0, 1.0625,
             1.125, 1.25), 4),
    # 2: set 0 with a noise floor per channel and band (a Wiener-like filter of each bin before the band gain)
    BandSet(4, (0, 4, 8, 16, 24, 32, 48, 64), (0.0, 0.25, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25), 3,
            (0.0, 0.01, 0.026, 0.068, 0.18, 0.46, 1.2, 3.0)),
    # 3: set 1 with 16 noise floors
    BandSet(2, (0, 2, 4, 8, 12, 16, 24, 32, 48, 64),
            (0.0, 0.125, 0.25, 0.375, 0.5, 0.5625, 0.625, 0.6875, 0.75, 0.8125, 0.875, 0.9375, 1.0, 1.0625,
             1.125, 1.25), 4,
            (0.0, 0.01, 0.015, 0.023, 0.035, 0.053, 0.08, 0.12, 0.18, 0.27, 0.41, 0.62, 0.93, 1.4, 2.1, 3.2)),
)
FINE_KBPS = 9.0           # sets 1 and 3 from this rate per channel up (docs/results.md: sets 0 and 2 are better
                          # at 6 kbps, 1 and 3 at 12 and 24)
FRAMES_AT_ONCE = 4096     # frames transformed together (even; bounds memory on long clips)


def set_for(kbps_per_channel: float) -> int:
    """The band-gain set the encoder uses at this rate per channel (with noise floors: sets 2 and 3)."""
    return 3 if kbps_per_channel >= FINE_KBPS else 2


def usable(chunk: int) -> bool:
    """Whether a prior with chunks of this length can carry band gains (frames of chunk / 2, hop chunk / 4)."""
    return chunk % 4 == 0 and chunk >= 8


def _window(f: int) -> np.ndarray:
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(f) / f))


def _band_of_bins(bs: BandSet, f: int) -> np.ndarray:
    """(F/2 + 1,) band of every FFT bin."""
    lo = np.array([e * f // 128 for e in bs.edges[:-1]])
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


def _blocks(bs: BandSet, m: int, chunk: int):
    """The frames of one channel of M samples in blocks of FRAMES_AT_ONCE -> (segments S, band of every bin
    (F/2 + 1,), [(first frame, last frame + 1, segment of each of those frames (n,)), ...])."""
    n_seg = bs.segments(-(-m // chunk))
    n = _frames(m, chunk)
    blocks = []
    for first in range(0, n, FRAMES_AT_ONCE):
        last = min(n, first + FRAMES_AT_ONCE)
        seg = np.minimum(n_seg - 1, np.arange(first, last) * (chunk // 4) // (bs.segment * chunk))
        blocks.append((first, last, seg))
    return n_seg, _band_of_bins(bs, chunk // 2), blocks


def _cells(seg: np.ndarray, band: np.ndarray, nb: int) -> np.ndarray:
    """(n,) segment of each frame, (F/2 + 1,) band of each bin -> (n, F/2 + 1) flat (segment, band) cell."""
    return seg[:, None] * nb + band[None, :]


def _cell_power(bs: BandSet, y: np.ndarray, chunk: int) -> np.ndarray:
    """Mean |Y|^2 over the bins of each (segment, band) cell of one channel's decode -> (S, bands)."""
    nb = bs.bands
    n_seg, band, blocks = _blocks(bs, len(y), chunk)
    tot = np.zeros(n_seg * nb)
    cnt = np.zeros(n_seg * nb)
    for first, last, seg in blocks:
        cell = _cells(seg, band, nb).ravel()
        tot += np.bincount(cell, np.abs(_spectra(y, chunk, first, last)).ravel() ** 2, n_seg * nb)
        cnt += np.bincount(cell, minlength=n_seg * nb)
    return (tot / np.maximum(cnt, 1)).reshape(n_seg, nb)


def choose(x: np.ndarray, y: np.ndarray, chunk: int, band_set: int = 0) -> np.ndarray:
    """Sender side: one channel's original x (M,) and decode y (M,), both at the prior's rate and level ->
    (rows, bands) int64 codes. Per segment and band the gain of the set nearest the least-squares gain (unity
    where the decode is silent in that band); with a set of noise floors, a first row holding each band's floor,
    the one whose filtered and gained decode has the least squared error over the channel (given that floor,
    the gains are chosen the same way on the filtered spectra)."""
    bs = SETS[band_set]
    nb = bs.bands
    n_seg, band, blocks = _blocks(bs, len(y), chunk)
    rhos = np.asarray(bs.floors or (0.0,))
    power = _cell_power(bs, y, chunk) if bs.floors else None
    num = np.zeros((len(rhos), n_seg * nb))
    den = np.zeros((len(rhos), n_seg * nb))
    xx = np.zeros(n_seg * nb)
    for first, last, seg in blocks:
        sx = _spectra(x, chunk, first, last)
        sy = _spectra(y, chunk, first, last)
        cell = _cells(seg, band, nb)                                                 # (n, F/2 + 1)
        flat = cell.ravel()
        xx += np.bincount(flat, np.abs(sx).ravel() ** 2, n_seg * nb)
        for r, rho in enumerate(rhos):
            v = sy * floors.wiener(sy, rho * power.ravel()[cell]) if rho > 0 else sy
            num[r] += np.bincount(flat, np.real(sx * np.conj(v)).ravel(), n_seg * nb)
            den[r] += np.bincount(flat, np.abs(v).ravel() ** 2, n_seg * nb)
    best, gains = floors.pick(num.reshape(len(rhos), n_seg, nb), den.reshape(len(rhos), n_seg, nb),
                              xx.reshape(n_seg, nb), bs.gains)
    out = np.concatenate([best[None], gains]) if bs.floors else gains
    return out.astype(np.int64)


def apply(y: np.ndarray, codes: np.ndarray, chunk: int, band_set: int = 0) -> np.ndarray:
    """Receiver side: one channel's decode y (M,) at the prior's rate and its (rows, bands) codes -> (M,)
    float32."""
    bs = SETS[band_set]
    m = len(y)
    f, h = chunk // 2, chunk // 4
    n_seg, band, blocks = _blocks(bs, m, chunk)
    codes = np.asarray(codes, dtype=np.int64).reshape(bs.rows(-(-m // chunk)), bs.bands)
    gains = np.asarray(bs.gains)[codes[-n_seg:]]                                      # (S, bands)
    floor = (np.asarray(bs.floors)[codes[0]][None, :] * _cell_power(bs, y, chunk)).ravel() if bs.floors else None
    win = _window(f)
    out = np.zeros(_frames(m, chunk) * h + f)
    for first, last, seg in blocks:
        sy = _spectra(y, chunk, first, last)
        g = gains[seg][:, band]                                                        # (n, F/2 + 1)
        if floor is not None:
            g = g * floors.wiener(sy, floor[_cells(seg, band, bs.bands)])
        fr = np.fft.irfft(sy * g, n=f, axis=1) * win                                  # (n, F)
        # overlap-add: frames first, first + 2, ... tile the output end to end, and so do the others, H later
        for par in (0, 1):
            tiles = fr[par::2].reshape(-1)
            s = (first + par) * h
            out[s:s + len(tiles)] += tiles
    return out[f // 2:f // 2 + m].astype(np.float32)


def summary(codes, band_set: int = 0, channels: int = 1) -> str:
    """A file's band-gain codes (of `channels` channels) -> one line for `combiner info` and the app."""
    bs = SETS[band_set]
    c = np.asarray(codes, dtype=np.int64)
    if not len(c):
        return "none"
    rows = c.reshape(channels, -1, bs.bands)
    gains = rows[:, 1:] if bs.floors else rows
    low, high = float((gains < bs.unity).mean()) * 100, float((gains > bs.unity).mean()) * 100
    note = (f", noise floors in {float((rows[:, 0] > 0).mean()) * 100:.0f} % of the bands" if bs.floors
              else "")
    return (f"set {band_set}: {gains.shape[1]} segments of {bs.segment} chunks x {bs.bands} bands, "
            f"{low:.0f} % lowered, {high:.0f} % raised{note}")
