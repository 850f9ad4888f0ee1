"""What an encode will do, known before it starts: the prior, the block count and the bit budget (the settings
panel and the live view show it). One `EncodePlan` type serves images (one unit, or one unit per patch for
images of any size) and audio (one unit per chunk and channel), so the live view and the worker need not care
which it is.

Images are routed like the CLI (`engine.patch_codec.uses_patches`): patch coding (`engine.patch_codec`) unless the
image has exactly the size a single-image RGB prior was trained on (e.g. 32x32 for the CIFAR-10 priors), and
provided a patch prior is installed."""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine import audio_codec, codec, container, patch_codec, prior as prior_mod
from engine.container import CmbHeader
from engine.errors import CombinerError


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
    patch: int = 0              # patch-coded images: the patch side (units = grid[0] * grid[1] patches)
    grid: tuple[int, int] = (1, 1)   # patch-coded images: patch rows, columns
    total_blocks: int = 0       # patch-coded images and audio: blocks over all units (n_blocks is their mean)
    raised: bool = False        # the rate was below the smallest file: the file is that smallest one

    @property
    def file_bits(self) -> int:
        n = self.total_blocks if self.patch or self.modality == "audio" else self.units * self.n_blocks
        return self.overhead_bits + 8 * container.payload_bytes(n, self.kappa)

    @property
    def rate_unit(self) -> str:
        return "kbps" if self.modality == "audio" else "bpp"

    @property
    def resumable(self) -> bool:
        """More units than one encoder batch holds: the encode keeps a journal, so a cancel loses only the batch
        under way (engine/journal.py)."""
        from engine import audio_codec, patch_codec

        if self.modality == "audio":
            return self.units > audio_codec.MAX_UNITS
        return bool(self.patch) and self.units > patch_codec.MAX_UNITS


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
    """Single-INR image plan (`engine.codec.encode_batch`). Raises CombinerError like the engine does."""
    h, w, c = shape
    p = prior_mod.nearest("image", c, rate, prior_dirs)
    n = codec.blocks_for_rate(rate, shape, p, seed)
    hdr = CmbHeader("image", (h, w, c), p.short_id, seed, p.kappa, n)
    return EncodePlan(rate, p, n, p.kappa, _overhead_bits(hdr), rate * h * w)


def use_patches(shape: tuple[int, ...], prior_dirs=None) -> bool:
    """Patch coding or a single network: the engine's rule, as the CLI applies it."""
    return patch_codec.uses_patches(shape, None, prior_dirs)


def alpha_bytes(img: np.ndarray) -> bytes:
    """The alpha plane exactly as the patch codec stores it (zlib), or b"" for an image without alpha."""
    _, alpha = patch_codec.to_rgb(img)
    return zlib.compress(alpha.tobytes(), 9) if alpha is not None else b""


def plan_patches(shape: tuple[int, int, int], rate: float, prior_dirs=None, seed: int = 0, alpha: bytes = b"",
                 adaptive: bool = True) -> EncodePlan:
    """Patch-coded image plan (`engine.patch_codec.encode_image`), with the prior and block budget the engine
    will pick; `alpha` = `alpha_bytes(image)` for 2/4-channel images (it counts in the file)."""
    h, w, _ = shape
    p = prior_mod.nearest_patch(rate, prior_dirs)
    delta = patch_codec.adapts(p)   # the encoder codes network deltas for the image (kind 11 or 15)
    group = patch_codec.group_side(rate, shape, p, seed, alpha, adaptive, patch_codec.DELTA_GROUP) if delta else 0
    total, warns = patch_codec.block_budget(rate, shape, p, seed, alpha, adaptive, delta, group)
    rows, cols = patch_codec.patch_grid(h, w, p.patch)
    units = rows * cols
    overhead = 8 * patch_codec.overhead_bytes(shape, p, seed, alpha, adaptive, delta, group)
    return EncodePlan(rate, p, max(1, int(round(total / units))), p.kappa, overhead, rate * h * w,
                      units=units, warnings=warns, patch=p.patch, grid=(rows, cols), total_blocks=total,
                      raised=bool(warns))   # block_budget warns only when it raises the rate


def plan_image(shape: tuple[int, int, int], rate: float, prior_dirs=None, seed: int = 0,
               alpha: bytes = b"") -> EncodePlan:
    """The plan of whichever image codec `use_patches` picks for this shape."""
    if use_patches(shape, prior_dirs):
        return plan_patches(shape, rate, prior_dirs, seed, alpha)
    return plan_encode(shape, rate, prior_dirs, seed)


def plan_audio(clip: AudioClip, kbps: float, prior_dirs=None, seed: int = 0) -> EncodePlan:
    """Audio plan, with the same prior, gain and block budget `engine.audio_codec.encode_audio` will pick
    (n_blocks is the mean over the sounding units; the encoder splits the budget by content)."""
    sr = clip.sample_rate
    p = prior_mod.nearest("audio", 1, kbps, prior_dirs)
    budget = audio_codec.plan_budget(clip.samples, sr, kbps, p, seed)
    return EncodePlan(kbps, p, max(1, int(round(budget.total / max(1, budget.sounding)))), p.kappa,
                      8 * budget.overhead_bytes, kbps * 1000.0 * clip.seconds, units=budget.units,
                      modality="audio", warnings=budget.warnings, total_blocks=budget.total, raised=budget.raised)


def distinct_rates(ladder, plan: Callable[[float], EncodePlan]) -> list[float]:
    """The rates of `ladder` whose `plan(rate)` the installed priors can code, each giving a distinct file: a
    rung with the same prior and block count as an earlier one (e.g. past a prior's capacity) is dropped, and so
    is a rate below the smallest file (that file would not be at this rate) unless no rate is above it."""
    out, seen, floor = [], set(), None
    for r in ladder:
        try:
            p = plan(r)
        except CombinerError:
            continue
        if p.raised:
            floor = floor if floor is not None else r
            continue
        blocks = p.total_blocks if p.patch or p.modality == "audio" else min(p.n_blocks, p.prior.n_params)
        if (p.prior.id, blocks) not in seen:
            seen.add((p.prior.id, blocks))
            out.append(r)
    return out or ([floor] if floor is not None else [])
