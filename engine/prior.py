"""Learned priors: storage (safetensors + JSON manifest), content id, and the shipped-prior registry.

A prior is everything the decoder needs besides the file: the INR architecture, the per-weight Gaussian
prior (mu_p, log sigma_p), the random weight order and average per-weight KL from which block partitions
are derived, and kappa. Its id is the SHA-256 of exactly those contents; a `.cmb` file names its prior
by the first 3 bytes of that id.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from safetensors import safe_open

from .config import InrConfig, LatentConfig
from .errors import PriorError

ID_BYTES = 3
PRIOR_SUFFIX = ".safetensors"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "priors"


@dataclass(frozen=True)
class AudioLayout:
    """How an audio prior cuts signals: one INR per `chunk` samples at `sample_rate` Hz, per channel."""

    chunk: int
    sample_rate: int


def unit_side(patch: int, audio: AudioLayout | None) -> int:
    """Side of the unit one INR codes: the patch side, else the audio chunk length, else 0 (one whole image)."""
    return patch or (audio.chunk if audio is not None else 0)


@dataclass
class Prior:
    inr: InrConfig
    modality: str                 # "image" or "audio"
    mu: np.ndarray                # (P,) float32
    logstd: np.ndarray            # (P,) float32
    order: np.ndarray             # (P,) int64 permutation: packing order of weights into blocks
    kl_profile: np.ndarray        # (P,) float32 average per-weight KL (bits) over training posteriors
    kappa: int = 16
    rate: float = 1.0             # rate the prior was trained at: bits per pixel (images), kbit/s (audio)
    beta: float = 1e-6            # beta that held training posteriors at that rate
    info: dict = field(default_factory=dict)   # provenance: data, items, steps, seed, psnr...
    post_logstd: np.ndarray | None = None  # (P,) mean posterior log-std: the encoder's starting point
    audio: AudioLayout | None = None       # audio priors only: chunk length and sample rate
    mix: np.ndarray | None = None          # flat linear-reparameterisation matrices (RECOMBINER), or None
    patch: int = 0                         # image patch priors: side of the square patch each INR codes
    latent: LatentConfig | None = None     # latent-grid patch priors: the grids at the head of each vector
    upsampler: np.ndarray | None = None    # their learned per-level convolutions (latent.split_upsampler)
    inr_weights: np.ndarray | None = None  # latent.shared priors: the one INR every patch uses

    @property
    def n_params(self) -> int:
        return int(self.mu.shape[0])

    @property
    def item_shape(self) -> tuple[int, ...] | None:
        """Shape of one training item, e.g. (32, 32, 3); priors learned before the key was renamed record it
        as `image_shape` (the shipped CIFAR-10 priors)."""
        shape = self.info.get("item_shape") or self.info.get("image_shape")
        return tuple(shape) if shape else None

    @property
    def train_steps(self) -> int:
        """Posterior steps of prior learning over all its stages (0 when the file does not record them)."""
        stages = [h for h in self.info.get("history", []) if isinstance(h, dict)] + [self.info.get("learn") or {}]
        return sum(int(h.get("first_steps", 0)) + int(h.get("rounds", 0)) * int(h.get("round_steps", 0))
                   for h in stages)

    @property
    def learned_with_deltas(self) -> bool:
        """Whether its last training stage learned with a network delta per crop (`--crop-delta`): a prior made
        for the way the encoder codes photos (a delta per image and per group of patches)."""
        return bool((self.info.get("learn") or {}).get("crop_delta"))

    @property
    def default_blocks(self) -> int:
        return max(1, int(round(float(self.kl_profile.astype(np.float64).sum()) / self.kappa)))

    def _identity(self) -> dict:
        ident = {"inr": self.inr.to_dict(), "modality": self.modality, "kappa": self.kappa}
        if self.audio is not None:
            ident["audio"] = {"chunk": self.audio.chunk, "sample_rate": self.audio.sample_rate}
        if self.patch:
            ident["patch"] = self.patch
        if self.latent is not None:
            ident["latent"] = self.latent.to_dict()
        return ident

    @property
    def id(self) -> str:
        h = hashlib.sha256(json.dumps(self._identity(), sort_keys=True).encode())
        for a in (self.mu, self.logstd, self.order, self.kl_profile, self.post_logstd, self.mix, self.upsampler, self.inr_weights):
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    @property
    def short_id(self) -> bytes:
        return bytes.fromhex(self.id)[:ID_BYTES]

    @property
    def name(self) -> str:
        return self.info.get("name") or f"{self.modality}-{self.rate:g}-{self.id[:8]}"

    def tensors(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(self.mu).to(device), torch.from_numpy(self.logstd).to(device))

    def start_logstd(self) -> np.ndarray:
        """(P,) the posterior log-std a fit starts from: the trained posteriors' mean, or 2 below the prior's
        for a prior that does not store it."""
        return self.post_logstd if self.post_logstd is not None else self.logstd - 2

    def mixers(self, device: torch.device | str) -> list[torch.Tensor] | None:
        """The per-layer reparameterisation matrices on `device`, or None for a plain-weight prior."""
        if self.mix is None:
            return None
        from .siren import split_mix

        return split_mix(torch.from_numpy(self.mix).to(device), self.inr)

    @property
    def unit_side(self) -> int:
        """Side of the unit one INR codes: the patch side of a patch prior, the chunk length of an audio prior
        (0 for single-image priors)."""
        return unit_side(self.patch, self.audio)

    def field(self, emb: torch.Tensor, device: torch.device | str, canvases=None, points=None, compile=False):
        """This prior's networks over the embedded grid `emb` (see latent.Field); latent priors also need the
        `canvases` that stitch the batch's patches into images."""
        from .latent import Field

        ups = torch.from_numpy(self.upsampler).to(device) if self.upsampler is not None else None
        shared = torch.from_numpy(self.inr_weights).to(device) if self.inr_weights is not None else None
        grid = self.unit_side ** (1 if self.audio is not None else 2)
        return Field(self.inr, emb, self.mixers(device), self.latent, ups, canvases, self.unit_side, points, compile,
                     shared, grid)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file in the same folder, then rename)."""
        manifest = dict(self._identity(), rate=self.rate, beta=self.beta, info=self.info, id=self.id)
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tensors = {"mu": self.mu, "logstd": self.logstd, "order": self.order, "kl_profile": self.kl_profile}
        if self.post_logstd is not None:
            tensors["post_logstd"] = self.post_logstd
        if self.mix is not None:
            tensors["mix"] = self.mix
        if self.upsampler is not None:
            tensors["upsampler"] = self.upsampler
        if self.inr_weights is not None:
            tensors["inr_weights"] = self.inr_weights
        save_file(tensors, str(tmp), metadata={"manifest": json.dumps(manifest)})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Prior":
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
            t = load_file(str(path))
            m = json.loads(meta["manifest"])
            p = cls(inr=InrConfig(**m["inr"]), modality=m["modality"], mu=t["mu"], logstd=t["logstd"],
                    order=t["order"], kl_profile=t["kl_profile"], kappa=int(m["kappa"]),
                    rate=float(m["rate"]), beta=float(m["beta"]), info=m.get("info", {}),
                    post_logstd=t.get("post_logstd"),
                    audio=AudioLayout(**m["audio"]) if m.get("audio") else None, mix=t.get("mix"),
                    patch=int(m.get("patch", 0)),
                    latent=LatentConfig.from_dict(m["latent"]) if m.get("latent") else None,
                    upsampler=t.get("upsampler"), inr_weights=t.get("inr_weights"))
            if (p.latent is None) != (p.upsampler is None) or (
                    p.latent is not None and (p.upsampler.shape != (p.latent.n_upsampler,)
                                              or p.inr.features != p.latent.features or not p.unit_side
                                              or p.latent.dim != p.inr.in_dim
                                              or p.latent.dim != (1 if p.audio is not None else 2)
                                              or any(g < 2 or p.unit_side % g for g in p.latent.levels))):
                raise PriorError(f"{path}: latent grids and upsampler do not fit the prior")
            shared = p.latent is not None and p.latent.shared
            if shared != (p.inr_weights is not None) or (shared and p.inr_weights.shape != (p.inr.n_params,)):
                raise PriorError(f"{path}: the shared INR weights do not fit the prior")
            coded_inr = 0 if shared else p.inr.n_params
            if p.n_params != coded_inr + (p.latent.n_latents if p.latent is not None else 0):
                raise PriorError(f"{path}: {p.n_params} prior entries do not fit the architecture")
        except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError, Exception) as e:
            if isinstance(e, PriorError):
                raise
            raise PriorError(f"{path}: not a readable prior file ({e})") from None
        if m.get("id") and m["id"] != p.id:
            raise PriorError(f"{path}: content does not match its id (file damaged?)")
        return p


def search_dirs(extra: list[str | os.PathLike] | None = None) -> list[Path]:
    """Where priors are looked up: explicit folders, $COMBINER_PRIORS (os.pathsep-separated), shipped."""
    dirs = [Path(d) for d in (extra or [])]
    env = os.environ.get("COMBINER_PRIORS")
    if env:
        dirs += [Path(d) for d in env.split(os.pathsep) if d]
    dirs.append(SHIPPED_DIR)
    return dirs


_cache: dict[Path, Prior] = {}


def available(extra: list[str | os.PathLike] | None = None) -> list[Prior]:
    """All readable priors in the search folders (files given directly are accepted too)."""
    out, seen = [], set()
    for d in search_dirs(extra):
        files = [d] if d.is_file() else sorted(d.glob("*" + PRIOR_SUFFIX)) if d.is_dir() else []
        for f in files:
            f = f.resolve()
            if f not in _cache:
                try:
                    _cache[f] = Prior.load(f)
                except PriorError:
                    continue
            p = _cache[f]
            if p.id not in seen:
                seen.add(p.id)
                out.append(p)
    return out


def find_by_short_id(short: bytes, extra=None) -> Prior:
    for p in available(extra):
        if p.short_id == short:
            return p
    raise PriorError(f"this file needs prior {short.hex()}, which is not installed "
                     f"(looked in: {', '.join(str(d) for d in search_dirs(extra))})")


LATENT_REACH = 2.5   # audio: a latent-grid prior serves rates within this factor of the rate it was trained at
# Photos: the latent prior trained at 0.3 bpp measures 1.1 to 2.2 dB above the plain priors nearest in rate on
# Kodak crops at 0.1, 0.5 and 1.0 bpp (docs/results.md, session of 2026-12-04, third), so it serves every rate
# within this factor.
PATCH_LATENT_REACH = 4.0


def _rate_key(p: Prior, rate: float, reach: float) -> tuple[bool, float]:
    """Sort key of a prior for `rate`: latent-grid priors trained within a factor `reach` of it first (reach 0:
    none), then by distance in log rate (rounded, so equal rates tie and later keys decide)."""
    dist = abs(np.log(p.rate / rate))
    return (not (p.latent is not None and reach > 0 and dist <= np.log(reach)), round(dist, 9))


def nearest(modality: str, channels: int, rate: float, extra=None) -> Prior:
    """Shipped/available prior of this modality and channel count whose training rate is nearest (in log).
    Audio: a latent-grid prior trained within a factor LATENT_REACH of the rate comes first, because on
    speech_test it measures better than every plain prior at those rates (docs/results.md)."""
    cands = [p for p in available(extra) if p.modality == modality and p.inr.out_dim == channels and not p.patch]
    if not cands:
        raise PriorError(f"no {modality} prior for {channels} channel(s) is installed "
                         f"(looked in: {', '.join(str(d) for d in search_dirs(extra))})")
    reach = LATENT_REACH if modality == "audio" else 0.0
    return min(cands, key=lambda p: _rate_key(p, rate, reach) + (-p.train_steps,))   # then the latest stage


def nearest_patch(rate: float, extra=None) -> Prior:
    """Available RGB patch prior (images of any size) for `rate` bpp: a latent-grid prior trained within a
    factor PATCH_LATENT_REACH of the rate comes first, then the training rate nearest in log, then one whose
    last stage learned with crop deltas (as the encoder codes), then the prior trained longest (a later stage)."""
    cands = [p for p in available(extra) if p.modality == "image" and p.patch and p.inr.out_dim == 3]
    if not cands:
        raise PriorError(f"no patch prior for images of any size is installed "
                         f"(looked in: {', '.join(str(d) for d in search_dirs(extra))})")
    return min(cands, key=lambda p: _rate_key(p, rate, PATCH_LATENT_REACH)
               + (p.latent is None, not p.learned_with_deltas, -p.train_steps))
