"""Positional latent grids: how a latent prior's networks turn coded values into pixels.

A latent prior (``Prior.latent`` set, see config.LatentConfig) codes, per patch, one flat vector
    [latent grid of level 0 (g0, g0, c) row-major | level 1 | ... | SIREN weights]
with the same factorised Gaussian prior, block partition and A* coding as any weight vector.

Sender/receiver contract. To evaluate the patches of an image, both sides stitch every level's patch grids
into one grid over the whole patch layout (rows x cols patches in row-major order), multiply by
``latent.scale``, replicate-pad by k // 2, apply that level's learned k x k convolution (the prior's
``upsampler``), upsample bilinearly (half-pixel centres, edges clamped) to rows*p x cols*p pixels and cut the
result back into patches. The INR of patch u reads its p x p x F features beside the Fourier features of its
local coordinates. Because the grids are stitched before the convolution and the interpolation, neighbouring
patches blend into each other: there is no seam at patch borders.

The receiver always has every patch's latents before it renders. An encoder that fits an image in bands of
patch rows (images with more patches than fit in memory at once) sees the rows outside the band as fixed
`context` (their coded values above, the prior mean below); the file is the same kind either way.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import siren
from .config import InrConfig, LatentConfig


@dataclass
class Canvas:
    """One stitched layout of rows x cols patches (an image, a band of one, or a training crop).

    cells[i] is the batch index of the patch at row-major position i, or -1 where its latents come from
    `context` (rows*cols, L) instead (patches outside the batch); only batch patches get features."""

    rows: int
    cols: int
    cells: torch.Tensor                    # (rows*cols,) int64
    context: torch.Tensor | None = None    # (rows*cols, L) or None when every cell is in the batch


def uniform_canvases(n: int, rows: int, cols: int, device=None) -> list[Canvas]:
    """n layouts of rows x cols patches filling a batch in order: batch unit i*rows*cols + j is cell j of
    layout i (training crops; a batch of whole images of one size)."""
    k = rows * cols
    return [Canvas(rows, cols, torch.arange(i * k, (i + 1) * k, device=device)) for i in range(n)]


def split_upsampler(flat: torch.Tensor, cfg: LatentConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(n_upsampler,) -> per level (kernel (c, c, k, k), bias (c,))."""
    c, k = cfg.channels, cfg.kernel
    out, o = [], 0
    for _ in cfg.levels:
        w = flat[o:o + c * c * k * k].reshape(c, c, k, k)
        o += c * c * k * k
        out.append((w, flat[o:o + c]))
        o += c
    return out


def identity_upsampler(cfg: LatentConfig) -> torch.Tensor:
    """Upsampler that starts as plain bilinear interpolation: centre tap 1 on the diagonal, zero bias."""
    c, k = cfg.channels, cfg.kernel
    parts = []
    for _ in cfg.levels:
        w = torch.zeros(c, c, k, k)
        w[range(c), range(c), k // 2, k // 2] = 1.0
        parts += [w.reshape(-1), torch.zeros(c)]
    return torch.cat(parts)


def _level_slices(cfg: LatentConfig) -> list[slice]:
    out, o = [], 0
    for g in cfg.levels:
        out.append(slice(o, o + g * g * cfg.channels))
        o += g * g * cfg.channels
    return out


def _stitched_features(lat: torch.Tensor, rows: int, cols: int, cfg: LatentConfig, patch: int,
                       ups: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """(n, rows*cols, L) latents of n layouts -> (n, rows*cols, p*p, F) features of every patch."""
    n, c, p = lat.shape[0], cfg.channels, patch
    feats = []
    for sl, g, (w, b) in zip(_level_slices(cfg), cfg.levels, ups):
        grid = lat[:, :, sl].reshape(n, rows, cols, g, g, c).permute(0, 5, 1, 3, 2, 4)  # (n, c, R, g, C, g)
        grid = grid.reshape(n, c, rows * g, cols * g) * cfg.scale
        if cfg.kernel > 1:
            grid = F.pad(grid, [cfg.kernel // 2] * 4, mode="replicate")
        grid = F.conv2d(grid, w, b)                                                  # (n, c, R*g, C*g)
        up = F.interpolate(grid, size=(rows * p, cols * p), mode="bilinear", align_corners=False)
        feats.append(up.reshape(n, c, rows, p, cols, p).permute(0, 2, 4, 3, 5, 1))  # (n, R, C, p, p, c)
    return torch.cat(feats, dim=-1).reshape(n, rows * cols, p * p, cfg.features)


def features(lat: torch.Tensor, canvases: list[Canvas], cfg: LatentConfig, patch: int,
             ups: torch.Tensor) -> torch.Tensor:
    """Latents of a batch (B, L) -> features (B, p*p, F). Every batch unit must sit in exactly one canvas."""
    bsz = lat.shape[0]
    layers = split_upsampler(ups, cfg)
    out = lat.new_zeros(bsz, patch * patch, cfg.features)
    # Layouts of one shape whose cells are all in the batch are evaluated together.
    groups: dict[tuple[int, int], list[Canvas]] = {}
    for cv in canvases:
        if cv.context is None:
            groups.setdefault((cv.rows, cv.cols), []).append(cv)
        else:
            full = cv.context.to(lat.dtype).clone()
            present = cv.cells >= 0
            full = full.index_copy(0, torch.nonzero(present)[:, 0], lat[cv.cells[present]])
            f = _stitched_features(full[None], cv.rows, cv.cols, cfg, patch, layers)[0]
            out = out.index_copy(0, cv.cells[present], f[present])
    for (r, c), cvs in groups.items():
        cells = torch.stack([cv.cells for cv in cvs])                      # (n, R*C)
        f = _stitched_features(lat[cells], r, c, cfg, patch, layers)       # (n, R*C, p*p, F)
        out = out.index_copy(0, cells.reshape(-1), f.reshape(-1, patch * patch, cfg.features))
    return out


class Field:
    """A prior's networks over one patch grid: flat vectors (B, P) -> predictions (B, N, out_dim).

    emb (N, E) are the embedded grid points (all p*p, or the subset `points` of them); plain priors need
    nothing else. Latent priors also need the `canvases` that stitch the batch's patches and `ups`; with
    `latent.shared` the coded vector is the latents alone and every patch uses the prior's INR weights."""

    def __init__(self, inr: InrConfig, emb: torch.Tensor, mix: list[torch.Tensor] | None = None,
                 latent: LatentConfig | None = None, ups: torch.Tensor | None = None,
                 canvases: list[Canvas] | None = None, patch: int = 0, points: torch.Tensor | None = None,
                 compile: bool = False, shared: torch.Tensor | None = None):
        self.inr, self.emb, self.mix = inr, emb, mix
        self.shared = shared   # (P_inr,) INR weights of a shared-decoder latent prior; None: coded per patch
        self.latent, self.ups, self.canvases, self.patch, self.points = latent, ups, canvases, patch, points
        self.net = siren.forward
        if compile:
            try:  # about 2x faster on CPU; needs a C++ compiler, so fall back to eager when it cannot build
                self.net = torch.compile(siren.forward, dynamic=False)
            except Exception:
                pass

    @property
    def n_latents(self) -> int:
        return self.latent.n_latents if self.latent is not None else 0

    def features(self, flat: torch.Tensor) -> torch.Tensor | None:
        """(B, P) -> (B, N, F) latent features at the field's points, or None for a plain prior."""
        if self.latent is None:
            return None
        f = features(flat[:, :self.n_latents], self.canvases, self.latent, self.patch, self.ups)
        return f if self.points is None else f[:, self.points]

    def __call__(self, flat: torch.Tensor, feat: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P) -> (B, N, C); `feat` reuses features computed by `features` for the same flat vectors."""
        if self.latent is not None and feat is None:
            feat = self.features(flat)
        return self.net(self.inr_weights(flat), self.emb, self.inr, self.mix, feat)

    def inr_weights(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, P) coded vectors -> (B, P_inr) the INR weights they use."""
        if self.shared is not None:
            return self.shared.expand(flat.shape[0], -1)
        return flat[:, self.n_latents:]


def macs_per_pixel(inr: InrConfig, latent: LatentConfig | None, patch: int) -> float:
    """Multiply-accumulates per decoded pixel: the INR's layers plus, for latent priors, the convolutions
    (at each level's cell rate) and the bilinear interpolation (4 taps per feature)."""
    mac = sum(i * o for i, o in inr.layer_shapes())
    if latent is not None:
        c, k = latent.channels, latent.kernel
        mac += sum(c * c * k * k * (g / patch) ** 2 for g in latent.levels) + 4 * latent.features
    return float(mac)
