"""Level normalisation for audio: one gain per clip, so the codec's error follows the signal's level.

Speech priors are trained on clips brought to one reference level (REF_DBFS, gated RMS). The sender measures a
clip's level, quantises the gain that brings it to the reference (GAIN_STEP_DB steps, stored in the header),
codes the scaled waveform, and the receiver divides by the same quantised gain. A recording at -60 dBFS is then
coded exactly like the same recording at -23 dBFS, and comes back 37 dB quieter, with 37 dB less noise.

Level: the gated RMS of 400 ms frames (75 % overlap) in the manner of EBU R128 / ITU-R BS.1770 (without the
K-weighting filter): frames below an absolute gate of -70 dBFS are dropped, then frames more than 20 dB below the
mean energy of the rest. A clip with no frame above the absolute gate uses its plain RMS.
"""
from __future__ import annotations

import math

import numpy as np

REF_DBFS = -23.0        # level of the training clips (speech_train's median gated level is -22.8 dBFS)
GAIN_STEP_DB = 0.25     # quantisation step of the stored gain
MAX_GAIN_DB = 140.0     # a clip quieter than REF - 140 dB is coded as silence
MIN_GAIN_DB = -40.0     # louder than REF + 40 dB cannot happen for samples in [-1, 1]; bounds a forged header
ABS_GATE_DBFS = -70.0
REL_GATE_DB = -20.0


def level_dbfs(x: np.ndarray, sample_rate: int) -> float:
    """Gated RMS level (dB re full scale 1.0) of (N,) or (N, C) samples, channels pooled; -inf for silence."""
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if not np.any(x):
        return float("-inf")
    f = max(1, int(round(0.4 * sample_rate)))
    hop = max(1, f // 4)
    e = np.square(x).mean(axis=1)                       # (N,) energy per sample, channels pooled
    if x.shape[0] <= f:
        frames = np.array([e.mean()])
    else:
        c = np.concatenate([[0.0], np.cumsum(e)])
        starts = np.arange(0, x.shape[0] - f + 1, hop)
        frames = (c[starts + f] - c[starts]) / f
    gated = frames[frames > 10.0 ** (ABS_GATE_DBFS / 10.0)]
    if gated.size == 0:
        return 10.0 * math.log10(float(e.mean()))
    gated = gated[gated > gated.mean() * 10.0 ** (REL_GATE_DB / 10.0)]
    return 10.0 * math.log10(float(gated.mean()))


def gain_code(x: np.ndarray, sample_rate: int) -> int | None:
    """The quantised gain (in GAIN_STEP_DB steps) that brings the clip to REF_DBFS; None for silence."""
    lv = level_dbfs(x, sample_rate)
    if not math.isfinite(lv) or REF_DBFS - lv > MAX_GAIN_DB:
        return None
    db = min(max(REF_DBFS - lv, MIN_GAIN_DB), MAX_GAIN_DB)
    return int(round(db / GAIN_STEP_DB))


def code_range() -> tuple[int, int]:
    """Valid gain codes (a reader rejects others)."""
    return int(round(MIN_GAIN_DB / GAIN_STEP_DB)), int(round(MAX_GAIN_DB / GAIN_STEP_DB))


def factor(code: int) -> float:
    """Linear amplification of a gain code (the sender multiplies by it, the receiver divides)."""
    return 10.0 ** (code * GAIN_STEP_DB / 20.0)


def normalise(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Bring a clip to REF_DBFS (training data); silence is returned unchanged."""
    code = gain_code(x, sample_rate)
    return x if code is None else (np.asarray(x) * factor(code)).astype(np.float32)
