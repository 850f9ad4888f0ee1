"""Audio files in and out (soundfile/libsndfile), resampling (SciPy's polyphase filter), and training chunks.

Samples travel as float32 arrays of shape (N, C) in [-1, 1], whatever the file's sample format.
"""
from __future__ import annotations

import io
import os
from math import gcd
from pathlib import Path

import numpy as np

from .errors import MediaError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64"}
MAX_CHANNELS = 64


def is_audio_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int, list[str]]:
    """-> ((N, C) float32 samples in [-1, 1], sample rate, warnings). Raises MediaError with a readable reason."""
    import soundfile as sf

    p = Path(path)
    if p.is_dir():
        raise MediaError(f"{p}: is a folder, not an audio file")
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    try:
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as e:
        raise MediaError(f"{p}: not a readable audio file ({e})") from None
    warnings = []
    if x.shape[0] == 0:
        raise MediaError(f"{p}: the file holds no samples")
    if not 1 <= x.shape[1] <= MAX_CHANNELS:
        raise MediaError(f"{p}: {x.shape[1]} channels (at most {MAX_CHANNELS} are supported)")
    if not np.isfinite(x).all():
        raise MediaError(f"{p}: the file holds NaN or infinite samples")
    peak = float(np.abs(x).max())
    if peak > 1.0:  # float files may exceed full scale; the codec's range is [-1, 1]
        warnings.append(f"{p.name}: samples exceed full scale (peak {peak:.3g}); clipped to [-1, 1]")
        x = np.clip(x, -1.0, 1.0)
    return np.ascontiguousarray(x), int(sr), warnings


def audio_file_bytes(samples: np.ndarray, sample_rate: int, suffix: str) -> bytes:
    """(N, C) float samples -> file bytes: 16-bit WAV by default, FLAC or Ogg Vorbis by suffix."""
    import soundfile as sf

    fmt, subtype = {".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
                    ".oga": ("OGG", "VORBIS")}.get(suffix.lower(), ("WAV", "PCM_16"))
    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def resample(x: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    """(N, C) -> (ceil(N * rate_to / rate_from), C) with SciPy's polyphase anti-aliasing filter."""
    if rate_from == rate_to:
        return x
    from scipy.signal import resample_poly

    g = gcd(rate_from, rate_to)
    y = resample_poly(x, rate_to // g, rate_from // g, axis=0)
    n = resampled_length(x.shape[0], rate_from, rate_to)
    return np.ascontiguousarray(y[:n], dtype=np.float32)


def resampled_length(n: int, rate_from: int, rate_to: int) -> int:
    """Samples after resampling n samples (both sides of a file compute it from the header)."""
    return -(-n * rate_to // rate_from)


def load_training_chunks(folder: str | os.PathLike, chunk: int, sample_rate: int, n_items: int = 0,
                         seed: int = 0, skip: int = 0, normalise: bool = False) -> tuple[np.ndarray, list[str]]:
    """Cut every audio file in a folder (sorted, resampled, channels split) into non-overlapping chunks and
    draw a seeded random subset -> ((n, chunk, 1) float32, file names). `skip` drops the first chunks of that
    shuffled order (to continue training on unseen chunks). `normalise` brings every file to the codec's
    reference level first (audio_gain.REF_DBFS), as the encoder does with every clip it codes."""
    p = Path(folder)
    files = sorted(f for f in p.iterdir() if is_audio_path(f)) if p.is_dir() else []
    if not files:
        raise MediaError(f"{p}: no audio files in this folder")
    pieces = []
    for f in files:
        x, sr, _ = read_audio(f)
        x = resample(x, sr, sample_rate)
        if normalise:
            from .audio_gain import normalise as to_reference

            x = to_reference(x, sample_rate)
        m = x.shape[0] // chunk
        pieces.append(x[: m * chunk].T.reshape(-1, chunk))  # (C * m, chunk)
    allc = np.concatenate(pieces)
    order = np.random.default_rng(seed).permutation(allc.shape[0])[skip:]
    if n_items:
        order = order[:n_items]
    return np.ascontiguousarray(allc[order][:, :, None]), [f.name for f in files]
