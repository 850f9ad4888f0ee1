"""The chunk envelope: one quantised level per chunk, so every chunk is fitted at the reference level while the
error is still weighed where the sound is.

A clip brought to the reference level (audio_gain) still has chunks 40 dB apart: vowels well above the level,
pauses and fricatives far below it. A fixed Gaussian prior over the latents makes a loud chunk's large values
expensive and leaves a quiet chunk's small values in the noise. With the envelope, each chunk of the levelled
clip is divided by its own quantised level before the network sees it, and the fit's squared error is weighed by
the square of that level, so the rate still goes to the chunks whose error is largest in the real signal.

Sender/receiver contract. The sender measures each chunk's RMS over its real samples (after the clip gain),
quantises its level relative to the reference in ENV_STEP_DB steps to a code k in [0, ENV_CODES) (clamped), and
writes the code of every unit that has blocks (ENV_BITS bits each, in unit order). The receiver multiplies a
unit's network output by ``factor(k) = 10 ** ((ENV_MIN_DB + ENV_STEP_DB * k) / 20)`` before the clip gain is
undone. Silent units (no blocks) carry no code and decode to zeros as before.
"""
from __future__ import annotations

import numpy as np

from .audio_gain import REF_DBFS

ENV_STEP_DB = 3.0      # quantisation step of a chunk's level (1.5 dB measured the same on speech_test)
ENV_MIN_DB = -30.0     # quietest level, relative to the reference (quieter chunks are coded at this level)
ENV_BITS = 4
ENV_CODES = 1 << ENV_BITS   # codes 0..15: -30 .. +15 dB


def codes(chunks: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(U, L, C) levelled chunks and their 0/1 mask -> (U,) int64 envelope codes (0 for an all-zero chunk)."""
    n = np.maximum(1.0, mask.reshape(len(mask), -1).sum(1))
    rms = np.sqrt((np.square(chunks, dtype=np.float64) * mask).reshape(len(chunks), -1).sum(1) / n)
    db = 20.0 * np.log10(np.maximum(rms, 1e-12)) - REF_DBFS
    k = np.round((db - ENV_MIN_DB) / ENV_STEP_DB)
    return np.clip(k, 0, ENV_CODES - 1).astype(np.int64)


def levels_db(k) -> np.ndarray:
    """(U,) codes -> (U,) float64 chunk levels in dB relative to the reference level."""
    return ENV_MIN_DB + ENV_STEP_DB * np.asarray(k, dtype=np.float64)


def factors(k: np.ndarray) -> np.ndarray:
    """(U,) codes -> (U,) float32 amplitude factors (what the receiver multiplies each unit's output by)."""
    return (10.0 ** (levels_db(k) / 20.0)).astype(np.float32)


def level_range(envelope, unit_blocks) -> tuple[float, float] | None:
    """A header's envelope codes and per-unit block counts -> (lowest, highest) level in dB of the units that
    have blocks, or None when no unit has any (what `combiner info` and the app show)."""
    lv = levels_db(envelope)[np.asarray(unit_blocks) > 0]
    return (float(lv.min()), float(lv.max())) if len(lv) else None


def normalise(chunks: np.ndarray, mask: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sender side: (U, L, C) chunks, (U, L, 1) mask, (U,) codes -> (chunks at the reference level,
    (U, L, 1) error weights: the mask times the square of each chunk's factor)."""
    f = factors(k)[:, None, None]
    return (chunks / f).astype(np.float32), (mask * f * f).astype(np.float32)
