"""Reference audio codecs (MP3 via LAME, Opus in Ogg) through libsndfile, for comparisons at equal file size.

Used by the benchmark and the app's rate explorer. libsndfile picks the bitrate from a compression level in
[0, 1]; we search that level for the file whose size is nearest a byte budget: a coarse grid, then bisection
between the two levels whose files bracket the budget. MP3 is tried at constant bitrate (LAME's few fixed
rates) and at average bitrate (ABR, which reaches the sizes in between); the nearer file wins. Perceptual
codecs delay and resample the waveform, so decoded signals are aligned to the original (cross-correlation
over a small lag window) before a waveform metric is taken.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

FORMATS = {"mp3": ("MP3", "MPEG_LAYER_III"), "opus": ("OGG", "OPUS")}
MODES = {"mp3": ("CONSTANT", "AVERAGE"), "opus": (None,)}   # libsndfile bitrate modes tried per codec
MAX_LAG = 4096
GRID = 12       # compression levels tried first
REFINE = 10     # bisection steps between the two grid levels that bracket the budget


@dataclass
class ReferenceResult:
    codec: str
    nbytes: int
    decoded: np.ndarray      # (N, C) float32 at the original rate, aligned to the original
    level: float
    mode: str = ""           # libsndfile bitrate mode ("CONSTANT", "AVERAGE"), "" for the codec's default

    def kbps(self, seconds: float) -> float:
        return 8.0 * self.nbytes / seconds / 1000.0


def available(codec: str) -> bool:
    import soundfile as sf

    fmt, sub = FORMATS[codec]
    return fmt in sf.available_formats() and sub in sf.available_subtypes(fmt)


def _encode(x: np.ndarray, sr: int, codec: str, level: float, mode: str | None = None) -> bytes | None:
    import soundfile as sf

    fmt, sub = FORMATS[codec]
    buf = io.BytesIO()
    kw = {"bitrate_mode": mode} if mode else {}
    try:
        sf.write(buf, x, sr, format=fmt, subtype=sub, compression_level=level, **kw)
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return None  # e.g. a sample rate the codec does not take
    return buf.getvalue()


def _decode(data: bytes, n: int, c: int) -> np.ndarray:
    import soundfile as sf

    y, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return y[:, :c]


def align(original: np.ndarray, decoded: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Shift `decoded` (M, C) by the lag in [-max_lag, max_lag] that best matches `original` (N, C) -> (N, C)."""
    from scipy.signal import correlate

    n = original.shape[0]
    a, b = original.mean(1), decoded.mean(1)
    lag = 0
    if n > 1 and b.shape[0] > 1 and np.any(a) and np.any(b):
        corr = correlate(b[: n + max_lag], a, mode="full", method="fft")   # index n-1 is lag 0
        lo, hi = max(0, n - 1 - max_lag), min(corr.shape[0], n + max_lag)
        lag = int(np.argmax(corr[lo:hi])) + lo - (n - 1)
    out = np.zeros_like(original)
    src = decoded[max(0, lag):]
    dst0 = max(0, -lag)
    m = min(src.shape[0], n - dst0)
    if m > 0:
        out[dst0:dst0 + m] = src[:m]
    return out


def _nearest_level(x: np.ndarray, sr: int, codec: str, mode: str | None, target: float
                   ) -> tuple[float, bytes] | None:
    """(level, file) of this mode whose size is nearest `target` bytes, or None if the codec takes no such input."""
    tried: list[tuple[float, bytes]] = []

    def enc(level: float) -> bytes | None:
        data = _encode(x, sr, codec, level, mode)
        if data is not None:
            tried.append((level, data))
        return data

    for level in np.linspace(0.0, 0.99, GRID):
        enc(float(level))
    if not tried:
        return None
    grid = sorted(tried)
    for (l0, d0), (l1, d1) in zip(grid, grid[1:]):
        if (len(d0) - target) * (len(d1) - target) < 0:      # the budget lies between these two levels
            lo, lo_below = l0, len(d0) < target
            hi = l1
            for _ in range(REFINE):
                mid = 0.5 * (lo + hi)
                d = enc(mid)
                if d is None:
                    break
                if (len(d) < target) == lo_below:
                    lo = mid
                else:
                    hi = mid
            break
    return min(tried, key=lambda t: abs(len(t[1]) - target))


def at_size(x: np.ndarray, sr: int, codec: str, target_bytes: float) -> ReferenceResult | None:
    """Encode (N, C) float samples with `codec` at the compression level (and, for MP3, bitrate mode) whose
    file size is nearest target_bytes; decode and align. None if the codec is unavailable or takes no such
    input."""
    if not available(codec):
        return None
    best = None
    for mode in MODES[codec]:
        r = _nearest_level(x, sr, codec, mode, target_bytes)
        if r is not None and (best is None or abs(len(r[1]) - target_bytes) < abs(len(best[1]) - target_bytes)):
            best = (r[0], r[1], mode or "")
    if best is None:
        return None
    level, data, mode = best
    return ReferenceResult(codec, len(data), align(x, _decode(data, x.shape[0], x.shape[1])), level, mode)
