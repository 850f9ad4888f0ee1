"""What an encode will do, known before it starts: the prior, the block count and the bit budget (the settings
panel and the live view show it). One `EncodePlan` type serves images (one unit) and audio (one unit per
chunk and channel), so the live view and the worker need not care which it is."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine import audio_codec, codec, container, prior as prior_mod
from engine.container import CmbHeader


@dataclass
class EncodePlan:
    rate: float                 # bpp for images, kbps for audio
    prior: prior_mod.Prior
    n_blocks: int               # blocks per unit
    kappa: int
    overhead_bits: int          # header + checksum
    target_bits: float          # what the rate asks for, over the whole signal
    units: int = 1
    modality: str = "image"
    warnings: list[str] = field(default_factory=list)

    @property
    def file_bits(self) -> int:
        return self.overhead_bits + 8 * container.payload_bytes(self.units * self.n_blocks, self.kappa)

    @property
    def rate_unit(self) -> str:
        return "kbps" if self.modality == "audio" else "bpp"


@dataclass
class AudioClip:
    """An opened audio file: (N, C) float32 samples in [-1, 1] at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int
    warnings: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def seconds(self) -> float:
        return self.n_samples / self.sample_rate


def _overhead_bits(hdr: CmbHeader) -> int:
    return 8 * (len(container.header_bytes(hdr)) + container.CRC_BYTES)


def plan_encode(shape: tuple[int, int, int], rate: float, prior_dirs=None, seed: int = 0) -> EncodePlan:
    """Image plan. Raises CombinerError like the engine does."""
    h, w, c = shape
    p = prior_mod.nearest("image", c, rate, prior_dirs)
    n = codec.blocks_for_rate(rate, shape, p, seed)
    hdr = CmbHeader("image", (h, w, c), p.short_id, seed, p.kappa, n)
    return EncodePlan(rate, p, n, p.kappa, _overhead_bits(hdr), rate * h * w)


def plan_audio(clip: AudioClip, kbps: float, prior_dirs=None, seed: int = 0) -> EncodePlan:
    """Audio plan, with the same prior and block count `engine.audio_codec.encode_audio` will pick."""
    n, c, sr = clip.n_samples, clip.channels, clip.sample_rate
    p = prior_mod.nearest("audio", 1, kbps, prior_dirs)
    nb, warns = audio_codec.blocks_for_kbps(kbps, n, c, sr, p, seed)
    hdr = audio_codec.audio_header(n, c, sr, p, seed, nb)
    return EncodePlan(kbps, p, nb, p.kappa, _overhead_bits(hdr), kbps * 1000.0 * clip.seconds,
                      units=hdr.units, modality="audio", warnings=warns)
