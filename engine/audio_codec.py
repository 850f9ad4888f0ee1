"""The audio codec: 1-D INRs over time, one per chunk of each channel, coded as batches of units.

Sender/receiver contract. The header carries the original sample count N, channel count C and sample rate
sr, and the number of units U. The prior fixes the coded sample rate R and chunk length L. Both sides
compute M = ceil(N * R / sr) samples per channel at rate R and K = ceil(M / L) chunks per channel, and a
file is valid only if U = C * K. Unit u = c * K + k codes samples [k L, (k + 1) L) of channel c; its
weights are drawn from the prior exactly as for an image (same partition, same candidate generator, all
units share the seed and the block count). The receiver evaluates every unit on the L-point grid, keeps
the first M samples, maps them from the network scale (x / 2) back to [-1, 1], and resamples to sr with
SciPy's polyphase filter, keeping the first N samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generator, Sequence

import numpy as np
import torch

from . import container, limits, siren
from .audio_io import resample, resampled_length
from .codec import EncodeEvent, _members, _weights, code_units
from .config import FitConfig
from .container import CmbHeader
from .errors import CmbFormatError, CombinerError, MediaError, PriorError
from .prior import Prior, find_by_short_id, nearest

MAX_SAMPLE_RATE = 1_536_000
RENDER_BATCH = 256   # units evaluated together when rendering; fixed so sender and receiver compute alike


@dataclass
class EncodedAudio:
    data: bytes
    reconstruction: np.ndarray      # (N, C) float32 in [-1, 1] at the original rate: what decode returns
    sample_rate: int
    header: CmbHeader
    prior: Prior
    psnr: float                     # dB, waveform mapped to [0, 1] (peak 1), as COIN++/RECOMBINER
    snr: float                      # dB
    block_kl_bits: np.ndarray = field(repr=False, default=None)   # (U, n_blocks) KL of each block when coded
    warnings: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.header.shape[0] / self.sample_rate

    @property
    def kbps(self) -> float:
        return 8.0 * len(self.data) / self.seconds / 1000.0


def audio_psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR (dB) with both signals mapped from [-1, 1] to [0, 1] (peak 1)."""
    mse = float(np.mean((np.asarray(original, np.float64) - np.asarray(decoded, np.float64)) ** 2)) / 4.0
    return float("inf") if mse == 0 else -10.0 * np.log10(mse)


def audio_snr(original: np.ndarray, decoded: np.ndarray) -> float:
    o = np.asarray(original, np.float64)
    noise = float(np.sum((o - np.asarray(decoded, np.float64)) ** 2))
    sig = float(np.sum(o ** 2))
    if noise == 0:
        return float("inf")
    return float("-inf") if sig == 0 else 10.0 * np.log10(sig / noise)


def layout(n_samples: int, channels: int, sample_rate: int, prior: Prior) -> tuple[int, int]:
    """-> (M samples per channel at the prior's rate, K chunks per channel); U = channels * K."""
    m = resampled_length(n_samples, sample_rate, prior.audio.sample_rate)
    return m, -(-m // prior.audio.chunk)


def audio_header(n: int, c: int, sr: int, prior: Prior, seed: int, n_blocks: int) -> CmbHeader:
    """The header a clip of n samples x c channels at sr Hz gets with this prior and block count."""
    _, k = layout(n, c, sr, prior)
    return CmbHeader("audio", (n, c, sr), prior.short_id, seed, prior.kappa, n_blocks, c * k)


def blocks_for_kbps(kbps: float, n: int, c: int, sr: int, prior: Prior, seed: int = 0) -> tuple[int, list[str]]:
    """Blocks per unit whose file size (header and checksum included) is nearest kbps * seconds / 8 bytes.
    A rate below the smallest file (one block per unit) is raised to it, with a warning."""
    target_bits = kbps * 1000.0 * n / sr
    hdr = audio_header(n, c, sr, prior, seed, 1)
    units = hdr.units
    nb = 1
    for _ in range(3):  # the block-count varint may grow by a byte
        overhead = len(container.header_bytes(audio_header(n, c, sr, prior, seed, nb))) + container.CRC_BYTES
        nb = int(round((target_bits - 8 * overhead) / (prior.kappa * units)))
        nb = max(1, min(nb, prior.n_params))
    warns = []
    smallest = 8.0 * (overhead + container.payload_bytes(units, prior.kappa)) / (n / sr) / 1000.0
    if smallest > kbps * 1.05:
        warns.append(f"{kbps:g} kbps is below the smallest file for {n} samples x {c} channel(s) "
                     f"({smallest:.3g} kbps); coding at that")
    return nb, warns


def _chunks(x: np.ndarray, sr: int, prior: Prior) -> tuple[np.ndarray, np.ndarray, int]:
    """(N, C) at sr -> (chunks (U, L, 1) in [-1, 1], mask (U, L, 1), M)."""
    L = prior.audio.chunk
    xr = resample(x, sr, prior.audio.sample_rate)                 # (M, C)
    m, c = xr.shape
    k = -(-m // L)
    padded = np.zeros((c, k * L), dtype=np.float32)
    padded[:, :m] = np.clip(xr.T, -1.0, 1.0)
    mask = np.zeros((c, k * L), dtype=np.float32)
    mask[:, :m] = 1.0
    return padded.reshape(c * k, L, 1), mask.reshape(c * k, L, 1), m


@torch.no_grad()
def _render(prior: Prior, members: list[np.ndarray], seed: int, indices: np.ndarray, n: int, c: int, sr: int,
            device="cpu") -> np.ndarray:
    """Receiver side: indices (U, n_blocks) -> (N, C) float32 at the original rate."""
    L = prior.audio.chunk
    m, k = layout(n, c, sr, prior)
    emb = siren.fourier_embed(siren.grid_coords((L,), device=device), prior.inr)
    out = np.empty((indices.shape[0], L), dtype=np.float32)
    for s in range(0, indices.shape[0], RENDER_BATCH):
        w = _weights(prior, members, seed, indices[s:s + RENDER_BATCH], device)
        out[s:s + RENDER_BATCH] = (siren.forward(w, emb, prior.inr, prior.mixers(device))[:, :, 0] * 2.0).cpu().numpy()
    y = out.reshape(c, k * L)[:, :m].T                              # (M, C) at the prior's rate
    y = resample(np.ascontiguousarray(y), prior.audio.sample_rate, sr)[:n]
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def check_audio(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise MediaError(f"expected audio samples of shape (N, C), got {x.shape}")
    if not 1 <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise MediaError(f"sample rate {sample_rate} Hz is out of range")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(-np.iinfo(x.dtype).min)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise MediaError("audio holds NaN or infinite samples")
    return np.clip(x, -1.0, 1.0)


def encode_audio(samples: np.ndarray, sample_rate: int, kbps: float | None = None, **kw
                 ) -> Generator[EncodeEvent, None, EncodedAudio]:
    """Encode one clip, (N,) or (N, C) samples (float in [-1, 1] or integer PCM) at `sample_rate` Hz.
    Yields EncodeEvents (steps counted over the whole clip); returns EncodedAudio. See encode_audio_batch."""
    out = yield from encode_audio_batch([(samples, sample_rate)], kbps, **kw)
    return out[0]


def encode_audio_batch(clips: Sequence[tuple[np.ndarray, int]], kbps: float | None = None, *,
                       prior: Prior | None = None, n_blocks: int | None = None, fit: FitConfig = FitConfig(),
                       device: str | torch.device = "cpu", seed: int = 0, prior_dirs=None, compile: bool = False,
                       max_units: int = 512) -> Generator[EncodeEvent, None, list[EncodedAudio]]:
    """Encode clips [(samples, sample_rate), ...] at one target rate. Units of all clips that get the same block
    count are fitted and coded together, `max_units` at a time, so memory does not grow with the length of
    the audio. Yields EncodeEvents (steps counted over all units); returns one EncodedAudio per clip.
    """
    device = torch.device(device)
    xs = [(check_audio(x, sr), int(sr)) for x, sr in clips]
    if kbps is not None and not kbps > 0:
        raise CombinerError("the target rate must be positive")
    if prior is None:
        if kbps is None:
            raise ValueError("give kbps or prior")
        prior = nearest("audio", 1, kbps, prior_dirs)
    if prior.modality != "audio" or prior.audio is None or prior.inr.out_dim != 1:
        raise PriorError(f"prior {prior.name} is not a mono audio prior")
    plans = []  # per clip: (n_blocks, warnings, chunks, mask)
    for x, sr in xs:
        nb, warns = (n_blocks, []) if n_blocks is not None else blocks_for_kbps(
            kbps if kbps is not None else prior.rate, x.shape[0], x.shape[1], sr, prior, seed)
        chunks, mask, _ = _chunks(x, sr, prior)
        plans.append((nb, warns, chunks, mask))
    emb = siren.fourier_embed(siren.grid_coords((prior.audio.chunk,), device=device), prior.inr)
    indices: list[np.ndarray] = [None] * len(xs)
    coded: list[np.ndarray] = [None] * len(xs)
    all_units = sum(p[2].shape[0] for p in plans)
    before = 0
    for nb in sorted({p[0] for p in plans}):
        ids = [i for i, p in enumerate(plans) if p[0] == nb]
        chunks = np.concatenate([plans[i][2] for i in ids])
        mask = np.concatenate([plans[i][3] for i in ids])
        members = _members(prior, nb)
        idx_all = np.zeros((chunks.shape[0], nb), dtype=np.int64)
        kl_all = np.zeros((chunks.shape[0], nb))
        for s in range(0, chunks.shape[0], max_units):
            sl = slice(s, min(chunks.shape[0], s + max_units))
            target = torch.from_numpy(chunks[sl]).to(device) * 0.5       # network scale
            weight = torch.from_numpy(mask[sl]).to(device) if mask[sl].min() < 1 else None
            idx_all[sl], kl_all[sl] = yield from code_units(
                target, emb, prior, members, fit, device, seed, None, 1, compile, weight,
                total_offset=(before + s, all_units), pooled=True)
        before += chunks.shape[0]
        o = 0
        for i in ids:
            u = plans[i][2].shape[0]
            indices[i], coded[i] = idx_all[o:o + u], kl_all[o:o + u]
            o += u
    out = []
    for i, (x, sr) in enumerate(xs):
        nb, warns = plans[i][0], plans[i][1]
        n, c = x.shape
        hdr = CmbHeader("audio", (n, c, sr), prior.short_id, seed, prior.kappa, nb, indices[i].shape[0])
        data = container.write(hdr, indices[i].reshape(-1))
        # The sender's final reconstruction goes through the receiver's own path.
        recon = _render(prior, _members(prior, nb), seed, indices[i], n, c, sr)
        out.append(EncodedAudio(data, recon, sr, hdr, prior, audio_psnr(x, recon), audio_snr(x, recon),
                                coded[i], warns))
    return out


def decode_audio_full(data: bytes, prior_dirs=None, device="cpu") -> tuple[np.ndarray, int, CmbHeader, Prior]:
    """`.cmb` bytes -> ((N, C) float32 samples in [-1, 1], sample rate, header, prior)."""
    hdr, idx = container.read(bytes(data))
    if hdr.modality != "audio":
        raise CmbFormatError(f"this is an {hdr.modality} file, not audio")
    limits.check_header(hdr)
    n, c, sr = hdr.shape
    if sr > MAX_SAMPLE_RATE:
        raise CmbFormatError(f"corrupt .cmb header: sample rate {sr} Hz")
    prior = find_by_short_id(hdr.prior_id, prior_dirs)
    if prior.kappa != hdr.kappa or prior.modality != "audio" or prior.audio is None:
        raise PriorError(f"prior {hdr.prior_id.hex()} does not match this file (not an audio prior of this kappa)")
    if not 1 <= hdr.n_blocks <= prior.n_params:
        raise CmbFormatError(f"corrupt .cmb header: {hdr.n_blocks} blocks for a {prior.n_params}-weight prior")
    _, k = layout(n, c, sr, prior)
    if hdr.units != c * k:
        raise CmbFormatError(f"corrupt .cmb header: {hdr.units} units for {n} samples x {c} channel(s)")
    members = _members(prior, hdr.n_blocks)
    y = _render(prior, members, hdr.seed, idx.reshape(hdr.units, hdr.n_blocks), n, c, sr, device)
    return y, sr, hdr, prior


def decode_audio(data: bytes, prior_dirs=None) -> tuple[np.ndarray, int]:
    """`.cmb` bytes -> ((N, C) float32 samples, sample rate)."""
    y, sr, _, _ = decode_audio_full(data, prior_dirs)
    return y, sr
