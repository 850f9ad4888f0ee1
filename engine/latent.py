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

Audio (``latent.dim`` 1) is the same in one dimension: the units are the chunks of one channel, a canvas is
1 x K chunks, every level's grid of g cells per chunk is stitched over the channel, replicate-padded by k // 2,
convolved with the level's k-tap kernel and interpolated linearly (half-sample centres, edges clamped) to
K * L samples. With every level at 2 cells per unit or more, a unit's features depend only on its own cells and
its neighbours' (conv reach 1 cell, interpolation reach 1 cell), so a receiver may evaluate a long channel in
windows with one unit of margin on each side and get what the whole canvas gives.
"""
from __future__ import annotations

import copy
import functools
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


def _kernel_shape(cfg: LatentConfig) -> tuple[int, int, int, int]:
    """conv2d weight shape of one level: (c, c, k, k), or (c, c, 1, k) for 1-D grids (one row of cells)."""
    c, k = cfg.channels, cfg.kernel
    return (c, c, k, k) if cfg.dim == 2 else (c, c, 1, k)


def split_upsampler(flat: torch.Tensor, cfg: LatentConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(n_upsampler,) -> per level (kernel (c, c, k, k) or (c, c, 1, k), bias (c,))."""
    c, shape = cfg.channels, _kernel_shape(cfg)
    size = c * c * cfg.kernel ** cfg.dim
    out, o = [], 0
    for _ in cfg.levels:
        out.append((flat[o:o + size].reshape(shape), flat[o + size:o + size + c]))
        o += size + c
    return out


def identity_upsampler(cfg: LatentConfig) -> torch.Tensor:
    """Upsampler that starts as plain bilinear interpolation: centre tap 1 on the diagonal, zero bias."""
    c, shape = cfg.channels, _kernel_shape(cfg)
    parts = []
    for _ in cfg.levels:
        w = torch.zeros(shape)
        w[range(c), range(c), shape[2] // 2, shape[3] // 2] = 1.0
        parts += [w.reshape(-1), torch.zeros(c)]
    return torch.cat(parts)


def level_slices(cfg: LatentConfig) -> list[slice]:
    out, o = [], 0
    for g in cfg.levels:
        out.append(slice(o, o + g ** cfg.dim * cfg.channels))
        o += g ** cfg.dim * cfg.channels
    return out


def _stitched_features(lat: torch.Tensor, rows: int, cols: int, cfg: LatentConfig, patch: int,
                       ups: list[tuple[torch.Tensor, torch.Tensor]], levels: list[int],
                       at: torch.Tensor | None = None) -> torch.Tensor:
    """(n, rows*cols, L) latents of n layouts -> (n, rows*cols, p**dim, c * len(levels)) features of every unit
    from the given levels (1-D: rows 1). `at` (m,): only these points of each unit's grid (row-major indices),
    -> (n, rows*cols, m, c * len(levels)), the values of those points of the whole output
    (up to float rounding: the points are interpolated on their own, without the whole upsampling)."""
    if cfg.dim == 1:
        return _stitched_features_1d(lat, cols, cfg, patch, ups, levels, at)
    n, c, p, k = lat.shape[0], cfg.channels, patch, cfg.kernel
    feats, cells = [], []
    slices = level_slices(cfg)
    for sl, g, (w, b) in ((slices[i], cfg.levels[i], ups[i]) for i in levels):
        grid = lat[:, :, sl].reshape(n, rows, cols, g, g, c).permute(0, 5, 1, 3, 2, 4)  # (n, c, R, g, C, g)
        grid = grid.reshape(n, c, rows * g, cols * g) * cfg.scale
        if k > 1:
            grid = F.pad(grid, [k // 2] * 4, mode="replicate")
        grid = _conv_shifted(grid, w, b)                                             # (n, c, R*g, C*g)
        if at is not None:   # interpolated below at the wanted points alone (a quarter of them or fewer)
            cells.append(grid.reshape(n, c, -1))
            continue
        # a level of one cell per pixel is its own bilinear upsampling (weights 1 and 0): no interpolation
        up = grid if g == p else F.interpolate(grid, size=(rows * p, cols * p), mode="bilinear",
                                               align_corners=False)
        feats.append(up.reshape(n, c, rows, p, cols, p).permute(0, 2, 4, 3, 5, 1))  # (n, R, C, p, p, c)
    if at is not None:   # every level's four taps in one gather: (n, c, L, 4, R, C, m) -> (n, c, L, R, C, m)
        idx, wts = _bilinear_taps(tuple(cfg.levels[i] for i in levels), rows, cols, p, at)
        up = (torch.cat(cells, 2).index_select(2, idx.reshape(-1)).reshape(n, c, *idx.shape) * wts).sum(3)
        return up.permute(0, 3, 4, 5, 2, 1).reshape(n, rows * cols, len(at), c * len(levels))
    return torch.cat(feats, dim=-1).reshape(n, rows * cols, p * p, c * len(levels))


def _conv_shifted(grid: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A k x k convolution of a padded grid (n, c, H + k - 1, W + k - 1) -> (n, c, H, W), weights (c, c, k, k),
    as a sum of k * k shifted copies in a fixed order. The same values as F.conv2d up to float rounding, but
    each cell is computed by the same operations whatever the grid's size or the batch (no matrix product whose
    blocking could change with them: the same bytes whether images are coded together or apart), and on a CPU
    it is several times faster than conv2d's one-channel kernels, forward and backward (docs/results.md,
    session of 2026-12-07, nineteenth)."""
    c, k = w.shape[0], w.shape[-1]
    h, wd = grid.shape[2] - k + 1, grid.shape[3] - k + 1
    out = None
    for dy in range(k):
        for dx in range(k):
            x = grid[:, :, dy:dy + h, dx:dx + wd]
            term = (x * w[:, 0, dy, dx].view(1, 1, 1, 1) if c == 1      # (c_out, c_in) per tap, summed in order
                    else (w[None, :, :, dy, dx, None, None] * x[:, None]).sum(2))
            out = term if out is None else out + term
    return out + b.view(1, c, 1, 1)


@functools.lru_cache(maxsize=64)
def _patch_taps(grids: tuple[int, ...], p: int, device: str) -> tuple[torch.Tensor, ...]:
    """Bilinear upsampling (half-pixel centres) of each level's g x g cells per patch to p x p pixels, as seen
    from inside one patch: for every pixel row (or column) y of a patch, its first tap t0 (cells from the
    patch's first cell, -1 or g at the patch's edges: the neighbour's), t0 + 1 and the second tap's weight
    -> t0 (L, p) int64, weight (L, p) float32, g (L, 1, 1) int64. Where the stitched grid ends, clamping a tap
    to the last cell gives F.interpolate's value there (both taps on the edge cell)."""
    g = torch.tensor(grids, dtype=torch.float32)[:, None]
    src = g / p * (torch.arange(p, dtype=torch.float32) + 0.5) - 0.5               # (L, p)
    t0 = src.floor()
    return (t0.to(torch.int64).to(device), (src - t0).to(device),
            torch.tensor(grids, dtype=torch.int64, device=device)[:, None, None])


def _bilinear_taps(grids: tuple[int, ...], rows: int, cols: int, p: int,
                   at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear upsampling of every level's stitched grid (rows*g x cols*g cells, levels side by side in one
    flat vector) to rows*p x cols*p pixels, at the points `at` (m,) of every patch alone -> the four taps'
    indices into the levels' concatenated cells (L, 4, R, C, m) and their weights (L, 4, 1, 1, m): the taps and
    weights of F.interpolate, whose value at a point is sum_t weight_t * cell[index_t]."""
    t0, lam, g = _patch_taps(grids, p, str(at.device))
    dev = at.device
    yy, xx = at // p, at % p
    rg = torch.arange(rows, device=dev)[None, :, None] * g                         # (L, R, 1) first cell rows
    cg = torch.arange(cols, device=dev)[None, :, None] * g                         # (L, C, 1)
    y0 = (rg + t0[:, None, yy]).clamp(min=0)                                        # (L, R, m)
    y1 = torch.minimum(rg + t0[:, None, yy] + 1, rows * g - 1)
    y0 = torch.minimum(y0, rows * g - 1)
    x0 = (cg + t0[:, None, xx]).clamp(min=0)                                        # (L, C, m)
    x1 = torch.minimum(cg + t0[:, None, xx] + 1, cols * g - 1)
    x0 = torch.minimum(x0, cols * g - 1)
    off = torch.cumsum((rows * cols) * g.reshape(-1) ** 2, 0) - (rows * cols) * g.reshape(-1) ** 2
    ys = torch.stack([y0, y1], 1) * (cols * g[:, :, :, None]) + off[:, None, None, None]   # (L, 2, R, m)
    xs = torch.stack([x0, x1], 1)                                                   # (L, 2, C, m)
    idx = ys[:, :, None, :, None] + xs[:, None, :, None]                            # (L, 2, 2, R, C, m)
    wy = torch.stack([1 - lam[:, yy], lam[:, yy]], 1)                               # (L, 2, m)
    wx = torch.stack([1 - lam[:, xx], lam[:, xx]], 1)
    wts = wy[:, :, None, None, None] * wx[:, None, :, None, None]                   # (L, 2, 2, 1, 1, m)
    n_lev = len(grids)
    return idx.reshape(n_lev, 4, rows, cols, -1), wts.reshape(n_lev, 4, 1, 1, -1)


def _taps(x: torch.Tensor, reach: int) -> list[torch.Tensor]:
    """(..., G) -> the 2 * reach + 1 shifted views x[..., i + t - reach] (edges replicated), each (..., G)."""
    g = x.shape[-1]
    padded = torch.cat([x[..., :1].expand(*x.shape[:-1], reach), x, x[..., -1:].expand(*x.shape[:-1], reach)], -1)
    return [padded[..., t:t + g] for t in range(2 * reach + 1)]


def _stitched_features_1d(lat: torch.Tensor, cols: int, cfg: LatentConfig, chunk: int,
                          ups: list[tuple[torch.Tensor, torch.Tensor]], levels: list[int],
                          at: torch.Tensor | None = None) -> torch.Tensor:
    """(n, cols, L) latents of n runs of chunks -> (n, cols, chunk, c * len(levels)) features; with `at` (m,)
    only those samples of every chunk, (n, cols, m, c * len(levels)), bit-identical to the same samples of
    the whole output.

    The same maths as the 2-D path (replicate-padded k-tap convolution, then linear interpolation with
    half-sample centres and clamped edges), written as per-element sums whose weights depend only on a sample's
    place inside its cell, so a sample's features come out bit-identical whatever run it is computed in (a
    window of a long clip or the whole clip)."""
    n, c = lat.shape[0], cfg.channels
    feats = []
    slices = level_slices(cfg)
    for sl, g, (w, b) in ((slices[i], cfg.levels[i], ups[i]) for i in levels):
        seq = lat[:, :, sl].reshape(n, cols * g, c).transpose(1, 2) * cfg.scale       # (n, c, G) cells in order
        taps = _taps(seq, cfg.kernel // 2)
        conv = b[None, :, None].expand(n, c, seq.shape[-1])
        for t, x in enumerate(taps):                                                 # (c_out, c_in) per tap
            conv = conv + (w[None, :, :, 0, t, None] * x[:, None]).sum(2)             # (n, c, G)
        s = chunk // g                                                                # samples per cell
        pos = (torch.arange(s, dtype=lat.dtype, device=lat.device) + 0.5) / s - 0.5  # (s,) in (-1/2, 1/2)
        if at is not None:   # gather each wanted sample's three cells instead of shifting whole rows
            cell = (torch.arange(cols, device=lat.device)[:, None] * g + at[None] // s).reshape(-1)  # (cols*m,)
            last = conv.shape[-1] - 1
            left, mid, right = (conv.index_select(2, (cell + d).clamp(0, last)) for d in (-1, 0, 1))
            pos = pos[at % s].repeat(cols)                                            # (cols*m,)
            up = left * (-pos).clamp_min(0) + mid * (1 - pos.abs()) + right * pos.clamp_min(0)
            feats.append(up.reshape(n, c, cols, -1).permute(0, 2, 3, 1))              # (n, cols, m, c)
            continue
        left, mid, right = _taps(conv, 1)
        up = (left[..., None] * (-pos).clamp_min(0) + mid[..., None] * (1 - pos.abs())
              + right[..., None] * pos.clamp_min(0))                                  # (n, c, G, s)
        feats.append(up.reshape(n, c, cols, chunk).permute(0, 2, 3, 1))               # (n, cols, chunk, c)
    return torch.cat(feats, dim=-1)


def features(lat: torch.Tensor, canvases: list[Canvas], cfg: LatentConfig, patch: int,
             ups: torch.Tensor, levels: list[int] | None = None, at: torch.Tensor | None = None) -> torch.Tensor:
    """Latents of a batch (B, L) -> features (B, p**dim, F). Every batch unit must sit in exactly one canvas.
    `levels`: only these levels' features (B, p**dim, channels * len(levels)), in that order. `at` (m,): only
    these points of each unit's grid -> (B, m, F), without evaluating the others (the encoder's fitting steps
    on a subset of the points)."""
    bsz, npts = lat.shape[0], patch ** cfg.dim if at is None else len(at)
    levels = list(range(len(cfg.levels))) if levels is None else list(levels)
    nf = cfg.channels * len(levels)
    layers = split_upsampler(ups, cfg)
    if npts == 0:   # a step whose drawn points all miss these units
        return lat.new_zeros(bsz, npts, nf)
    # Layouts of one shape whose cells are all in the batch are evaluated together; a layout with context rows
    # (a band of an image) on its own.
    groups: dict[tuple[int, int], list[Canvas]] = {}
    banded = []
    for cv in canvases:
        if cv.context is None:
            groups.setdefault((cv.rows, cv.cols), []).append(cv)
        else:
            banded.append(cv)
    stacked = {shape: torch.stack([cv.cells for cv in cvs]) for shape, cvs in groups.items()}   # (n, R*C) each
    if not banded and len(stacked) == 1:
        (r, c), cells = next(iter(stacked.items()))
        if cells.numel() == bsz and bool((cells.reshape(-1) == torch.arange(bsz, device=cells.device)).all()):
            # the layouts hold the batch in order (a clip, a whole image, uniform training crops): no gather
            # into them, no scatter out
            f = _stitched_features(lat.reshape(len(cells), r * c, -1), r, c, cfg, patch, layers, levels, at)
            return f.reshape(bsz, npts, nf)
    out = lat.new_zeros(bsz, npts, nf)
    for cv in banded:
        full = cv.context.to(lat.dtype).clone()
        present = cv.cells >= 0
        full = full.index_copy(0, torch.nonzero(present)[:, 0], lat[cv.cells[present]])
        f = _stitched_features(full[None], cv.rows, cv.cols, cfg, patch, layers, levels, at)[0]
        out = out.index_copy(0, cv.cells[present], f[present])
    for (r, c), cells in stacked.items():
        f = _stitched_features(lat[cells], r, c, cfg, patch, layers, levels, at)  # (n, R*C, npts, nf)
        out = out.index_copy(0, cells.reshape(-1), f.reshape(-1, npts, nf))
    return out


class Field:
    """A prior's networks over one unit's grid: flat vectors (B, P) -> predictions (B, N, out_dim).

    emb (N, E) are the embedded grid points (all p**dim, or the subset `points` of them; `patch` is the unit's
    side: the patch side, or the chunk length of audio); plain priors need
    nothing else. Latent priors also need the `canvases` that stitch the batch's patches and `ups`; with
    `latent.shared` the coded vector is the latents alone and every patch uses the prior's INR weights."""

    def __init__(self, inr: InrConfig, emb: torch.Tensor, mix: list[torch.Tensor] | None = None,
                 latent: LatentConfig | None = None, ups: torch.Tensor | None = None,
                 canvases: list[Canvas] | None = None, patch: int = 0, points: torch.Tensor | None = None,
                 compile: bool = False, shared: torch.Tensor | None = None, grid: int = 0):
        self.inr, self.emb, self.mix = inr, emb, mix
        self.grid = grid or emb.shape[0]   # points of a unit's whole grid (emb may hold only `points` of them)
        self.shared = shared   # (P_inr,) INR weights of a shared-decoder latent prior (or (B, P_inr)); None: coded per unit
        self.latent, self.ups, self.canvases, self.patch, self.points = latent, ups, canvases, patch, points
        self.net = siren.forward
        if compile:
            try:  # about 2x faster on CPU; needs a C++ compiler, so fall back to eager when it cannot build
                self.net = torch.compile(siren.forward, dynamic=False)
            except Exception:
                pass

    def at(self, sel: torch.Tensor) -> "Field":
        """The same networks evaluated at the subset `sel` (n,) of this field's points (indices into them)."""
        out = copy.copy(self)
        out.emb = self.emb[sel]
        out.points = sel if self.points is None else self.points[sel]
        if self.points is not None:   # the subset's size varies from step to step: no compiled shapes
            out.net = siren.forward
        return out

    @property
    def n_latents(self) -> int:
        return self.latent.n_latents if self.latent is not None else 0

    def features(self, flat: torch.Tensor) -> torch.Tensor | None:
        """(B, P) -> (B, N, F) latent features at the field's points, or None for a plain prior."""
        if self.latent is None:
            return None
        return features(flat[:, :self.n_latents], self.canvases, self.latent, self.patch, self.ups,
                        at=self.points)

    def __call__(self, flat: torch.Tensor, feat: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P) -> (B, N, C); `feat` reuses features computed by `features` for the same flat vectors."""
        if self.latent is not None and feat is None:
            feat = self.features(flat)
        return self.net(self.inr_weights(flat), self.emb, self.inr, self.mix, feat)

    def units(self, flat: torch.Tensor, rows: torch.Tensor, like: torch.Tensor | None = None,
              changed: torch.Tensor | None = None) -> torch.Tensor:
        """Predictions of the batch units `rows` (n,) alone -> (n, N, C). `flat` (B, P) holds the whole batch,
        as a unit's features read its neighbours' latents. `like` (B, N, F), the features of a vector that
        differs from `flat` only at the positions `changed`: only the latent levels those touch are
        recomputed (the same values as recomputing all). Eager (a compiled network would recompile for
        every n)."""
        if self.latent is None:
            feat = None
        elif like is None or changed is None:
            feat = self.features(flat)[rows]
        else:
            c, nl = self.latent.channels, self.n_latents
            ch = changed[changed < nl]
            levels = [i for i, sl in enumerate(level_slices(self.latent))
                      if bool(((ch >= sl.start) & (ch < sl.stop)).any())]
            feat = like[rows].clone()
            if levels:
                f = features(flat[:, :nl], self.canvases, self.latent, self.patch, self.ups, levels,
                             self.points)[rows]
                for pos, i in enumerate(levels):
                    feat[..., i * c:(i + 1) * c] = f[..., pos * c:(pos + 1) * c]
        w = self.inr_weights(flat)
        w = w[:1].expand(len(rows), -1) if w.stride(0) == 0 else w[rows]
        return siren.forward(w, self.emb, self.inr, self.mix, feat)

    def inr_weights(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, P) coded vectors -> (B, P_inr) the INR weights they use."""
        if self.shared is not None:   # (P_inr,) for every unit, or (B, P_inr) one per unit (engine.hierarchy)
            return self.shared if self.shared.dim() == 2 else self.shared.expand(flat.shape[0], -1)
        return flat[:, self.n_latents:]


def macs_per_pixel(inr: InrConfig, latent: LatentConfig | None, patch: int) -> float:
    """Multiply-accumulates per decoded pixel (or sample): the INR's layers plus, for latent priors, the
    convolutions (at each level's cell rate) and the (bi)linear interpolation (2 ** dim taps per feature)."""
    mac = sum(i * o for i, o in inr.layer_shapes())
    if latent is not None:
        c, k, d = latent.channels, latent.kernel, latent.dim
        mac += sum(c * c * k ** d * (g / patch) ** d for g in latent.levels) + 2 ** d * latent.features
    return float(mac)
