"""Audio files in and out (soundfile/libsndfile), resampling (SciPy's polyphase filter), and training chunks.

Samples travel as float32 arrays of shape (N, C) in [-1, 1], whatever the file's sample format.
"""
from __future__ import annotations

import contextlib
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


# What the writers accept (libsndfile/libvorbis crash or refuse beyond these).
OUTPUT_LIMITS = {"WAV": (1, 2 ** 31 - 1, 1024), "FLAC": (1, 655_350, 8), "OGG": (1, 200_000, 255)}
MAX_FILTER_TERM = 1 << 17   # largest up or down factor of a resampling ratio (SciPy's filter has 20x taps)


def _wav_declared_frames(p: Path) -> tuple[int, int] | None:
    """A RIFF/WAVE file's (declared data bytes, data bytes present), or None if it is not one we can walk."""
    try:
        with open(p, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = p.stat().st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                ck = f.read(8)
                cid, n = ck[:4], int.from_bytes(ck[4:8], "little")
                if cid == b"data":
                    if n == 0xFFFFFFFF:   # streamed: length unknown
                        return None
                    return n, size - pos - 8
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


@contextlib.contextmanager
def _c_stderr_silenced():
    """Send what C libraries write to file descriptor 2 to /dev/null inside the block (the CLI's errors are one
    line; the decoders' own chatter would add more)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _sndfile_reason(e: BaseException, p: Path) -> str:
    """libsndfile's message, made readable (it says 'File does not exist' or 'psf_fseek() failed' for files that
    exist but are garbage or cut short)."""
    msg = " ".join(str(e).split())
    low = msg.lower()
    if "does not exist" in low or "format not recognised" in low or "unknown format" in low:
        return "unknown format or corrupt data"
    if "psf_fseek" in low or "lost sync" in low or "unexpected end" in low or "truncat" in low or "short" in low:
        return "the file is truncated or corrupt"
    if ": " in msg and msg.startswith("Error opening"):
        msg = msg.split(": ", 1)[1]
    return msg or type(e).__name__


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int, list[str]]:
    """-> ((N, C) float32 samples in [-1, 1], sample rate, warnings). Raises MediaError with a readable reason."""
    import soundfile as sf

    p = Path(path)
    if p.is_dir():
        raise MediaError(f"{p}: is a folder, not an audio file")
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: the file is empty")
    try:
        with _c_stderr_silenced():   # libmpg123 prints its own warnings about garbage to the terminal
            x, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except PermissionError:
        raise MediaError(f"{p}: cannot read it (permission denied)") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError, AssertionError) as e:
        raise MediaError(f"{p}: not a readable audio file ({_sndfile_reason(e, p)})") from None
    warnings = []
    if x.shape[0] == 0:
        raise MediaError(f"{p}: the file holds no samples")
    if not 1 <= x.shape[1] <= MAX_CHANNELS:
        raise MediaError(f"{p}: {x.shape[1]} channels (at most {MAX_CHANNELS} are supported)")
    if not np.isfinite(x).all():
        raise MediaError(f"{p}: the file holds NaN or infinite samples")
    decl = _wav_declared_frames(p)
    if decl is not None and decl[1] < decl[0]:
        warnings.append(f"{p.name}: the file is truncated: its header announces {decl[0]:,} bytes of samples, "
                        f"{decl[1]:,} are present; coding the {x.shape[0]:,} samples that are there")
    peak = float(np.abs(x).max())
    if peak > 1.0:  # float files may exceed full scale; the codec's range is [-1, 1]
        warnings.append(f"{p.name}: samples exceed full scale (peak {peak:.3g}); clipped to [-1, 1]")
        x = np.clip(x, -1.0, 1.0)
    return np.ascontiguousarray(x), int(sr), warnings


def audio_format(suffix: str) -> tuple[str, str]:
    return {".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
            ".oga": ("OGG", "VORBIS")}.get(suffix.lower(), ("WAV", "PCM_16"))


def check_audio_output(channels: int, sample_rate: int, suffix: str) -> None:
    """Raise MediaError if audio of this shape cannot be written in the format named by `suffix` (checked
    before decoding: libvorbis crashes above 200 kHz, FLAC stops at 8 channels and 655,350 Hz)."""
    fmt, _ = audio_format(suffix)
    lo, hi, max_ch = OUTPUT_LIMITS[fmt]
    name = {"OGG": "Ogg Vorbis"}.get(fmt, fmt)
    if not lo <= sample_rate <= hi:
        raise MediaError(f"{name} cannot hold audio at {sample_rate} Hz (at most {hi:,} Hz); decode to .wav instead")
    if channels > max_ch:
        raise MediaError(f"{name} cannot hold {channels} channels (at most {max_ch})"
                         + ("" if fmt == "WAV" else "; decode to .wav instead"))


def audio_file_bytes(samples: np.ndarray, sample_rate: int, suffix: str) -> bytes:
    """(N, C) float samples -> file bytes: 16-bit WAV by default, FLAC or Ogg Vorbis by suffix."""
    import soundfile as sf

    from .media import deferred_signals

    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[:, None]
    check_audio_output(samples.shape[1], int(sample_rate), suffix)
    fmt, subtype = audio_format(suffix)
    buf = io.BytesIO()
    try:
        # libsndfile calls back into Python to write a BytesIO: a Ctrl+C or SIGTERM inside a callback would
        # leave it in a broken state; hold them until the file is complete.
        with deferred_signals():
            sf.write(buf, np.clip(samples, -1.0, 1.0), sample_rate, format=fmt, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise MediaError(f"cannot write audio as {fmt} ({_sndfile_reason(e, Path(suffix))})") from None
    return buf.getvalue()


def check_resample(rate_from: int, rate_to: int) -> None:
    """Raise MediaError if converting between these rates needs an impractically long filter (a rate such
    as 1,535,999 Hz against 16 kHz has no common factor: a 30-million-tap polyphase filter)."""
    g = gcd(int(rate_from), int(rate_to))
    if max(rate_from, rate_to) // g > MAX_FILTER_TERM:
        raise MediaError(f"cannot resample between {rate_from} Hz and {rate_to} Hz: the ratio "
                         f"{rate_to // g}/{rate_from // g} needs a filter that is too long; resample the audio "
                         f"to a common rate (e.g. 48000 or 44100 Hz) first")


def resample(x: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    """(N, C) -> (ceil(N * rate_to / rate_from), C) with SciPy's polyphase anti-aliasing filter."""
    if rate_from == rate_to:
        return x
    from scipy.signal import resample_poly

    check_resample(rate_from, rate_to)
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
