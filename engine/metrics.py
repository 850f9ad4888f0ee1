"""Quality measures the fields use, in one place: PSNR and MS-SSIM for images; SNR, PSNR, STOI and wideband PESQ
for speech. The CLI, the app and the benchmarks all call these, so a number means the same everywhere.

Each measure returns a float, or None where it is not defined for the input (an image too small for the five
MS-SSIM scales, silence for PESQ): callers show "n/a" rather than a made-up value.
"""
from __future__ import annotations

import math

import numpy as np

MSSSIM_MIN_SIDE = 161   # five scales of an 11-tap Gaussian window (pytorch-msssim's own bound)


# ---- images ----------------------------------------------------------------------------------------------

def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8 arrays of one shape, peak 255."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM (Wang et al. 2003, standard 5-scale weights) of two (H, W, C) uint8 images, colour channels
    averaged; None when a side is below MSSSIM_MIN_SIDE. Uses pytorch-msssim."""
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[:, :, None], b[:, :, None]
    if min(a.shape[:2]) < MSSSIM_MIN_SIDE:
        return None
    c = min(a.shape[2], 3) if a.shape[2] != 2 else 1   # alpha is not part of the picture's quality
    ta = torch.from_numpy(np.array(a[:, :, :c])).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(np.array(b[:, :, :c])).permute(2, 0, 1)[None].double()
    return float(_ms_ssim(ta, tb, data_range=255.0, size_average=True))


def ms_ssim_db(value: float | None) -> float | None:
    """MS-SSIM as -10 log10(1 - MS-SSIM), the dB form used in learned-compression papers."""
    if value is None:
        return None
    return float("inf") if value >= 1.0 else -10.0 * math.log10(1.0 - value)


# ---- speech ----------------------------------------------------------------------------------------------

def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def snr(original: np.ndarray, decoded: np.ndarray) -> float:
    """Signal-to-noise ratio (dB) of a decoded waveform: +inf when exact, -inf for a silent original with noise;
    nan for silence decoded as silence."""
    o = np.asarray(original, np.float64)
    noise = float(np.sum((o - np.asarray(decoded, np.float64)) ** 2))
    sig = float(np.sum(o ** 2))
    if noise == 0:
        return float("nan") if sig == 0 else float("inf")
    return float("-inf") if sig == 0 else 10.0 * math.log10(sig / noise)


def audio_psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR (dB) with both waveforms mapped from [-1, 1] to [0, 1] (peak 1), the COIN++/RECOMBINER convention.
    It flatters quiet clips: judge speech by SNR, STOI and PESQ."""
    mse = float(np.mean((np.asarray(original, np.float64) - np.asarray(decoded, np.float64)) ** 2)) / 4.0
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def _at_16k(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == 16000:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(int(sr), 16000)
    return resample_poly(x, 16000 // g, int(sr) // g)


def stoi(original: np.ndarray, decoded: np.ndarray, sample_rate: int) -> float | None:
    """Short-time objective intelligibility (Taal et al. 2011; pystoi), 0..1, channels mixed to mono; None for
    clips shorter than STOI's analysis needs or with no speech frames."""
    from pystoi import stoi as _stoi

    o, d = _mono(original), _mono(decoded)
    if o.shape[0] < int(0.4 * sample_rate) or not np.any(o):
        return None
    v = float(_stoi(o, d, int(sample_rate), extended=False))
    return None if not math.isfinite(v) else v


PESQ_SECONDS = 60   # longest stretch handed to the PESQ library at once (see pesq_wb)


def pesq_wb(original: np.ndarray, decoded: np.ndarray, sample_rate: int) -> float | None:
    """Wideband PESQ (ITU-T P.862.2; the `pesq` package) at 16 kHz, MOS-LQO 1.0..4.6, channels mixed to mono;
    None when PESQ finds no utterance (silence, clips under a quarter second). Clips longer than PESQ_SECONDS
    get the length-weighted mean of their segments' scores."""
    from pesq import pesq as _pesq

    o, d = _at_16k(_mono(original), sample_rate), _at_16k(_mono(decoded), sample_rate)
    if o.shape[0] < 4000 or not np.any(o):
        return None
    # The C library crashes the process (a segfault, not an exception) on long input: 120 s worked, 300 s did
    # not. A longer clip is scored in equal consecutive segments of at most PESQ_SECONDS, and the segments'
    # scores are averaged, weighted by length (segments without an utterance are left out).
    n_seg = -(-o.shape[0] // (PESQ_SECONDS * 16000))
    scores, weights = [], []
    for so, sd in zip(np.array_split(o, n_seg), np.array_split(d, n_seg)):
        try:
            scores.append(float(_pesq(16000, so.astype(np.float32), sd.astype(np.float32), "wb")))
            weights.append(so.shape[0])
        except Exception:   # the C library reports "no utterances detected" and friends as exceptions
            continue
    return float(np.average(scores, weights=weights)) if scores else None


def speech_metrics(original: np.ndarray, decoded: np.ndarray, sample_rate: int) -> dict[str, float | None]:
    """All speech measures of one clip: {'snr', 'psnr', 'stoi', 'pesq'} (dB, dB, 0..1, MOS)."""
    return {"snr": snr(original, decoded), "psnr": audio_psnr(original, decoded),
            "stoi": stoi(original, decoded, sample_rate), "pesq": pesq_wb(original, decoded, sample_rate)}


def fmt(value: float | None, digits: int = 2) -> str:
    """A measure for display: 'n/a' for None/nan."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"
