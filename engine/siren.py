"""Batched SIREN: B independent networks, each given as one flat weight vector, evaluated in one call.

A network's weights live in a flat vector of `cfg.n_params` floats (layer by layer, W then b, W row-major
as (in, out)). Prior, posterior, block partition and coded samples all index this one layout.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from . import cancel
from .config import InrConfig


def fourier_freqs(cfg: InrConfig, dtype=torch.float32, device=None) -> torch.Tensor:
    """(n_freqs,) the embedding's frequencies f, geometric from 1 to max_freq (sin(pi f x) has f periods on [-1, 1])."""
    return torch.logspace(0.0, math.log2(cfg.max_freq), cfg.n_freqs, base=2.0, dtype=dtype, device=device)


def fourier_embed(coords: torch.Tensor, cfg: InrConfig) -> torch.Tensor:
    """(N, in_dim) in [-1, 1] -> (N, embed_dim): [x, sin(pi f x), cos(pi f x)] for geometric f in [1, max_freq]."""
    if cfg.n_freqs == 0:
        return coords
    freqs = fourier_freqs(cfg, coords.dtype, coords.device) * math.pi
    ang = coords[:, :, None] * freqs  # (N, in_dim, F)
    return torch.cat([coords, ang.sin().flatten(1), ang.cos().flatten(1)], dim=1)


def grid_coords(shape: tuple[int, ...], device=None, dtype=torch.float32) -> torch.Tensor:
    """Row-major grid of coordinates in [-1, 1] for a signal of spatial `shape` -> (prod(shape), len(shape))."""
    axes = [torch.linspace(-1.0, 1.0, n, dtype=dtype, device=device) if n > 1
            else torch.zeros(1, dtype=dtype, device=device) for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def unflatten(flat: torch.Tensor, cfg: InrConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(B, P) -> per layer (W (B, in, out), b (B, 1, out)) views."""
    out, o = [], 0
    for i, n in cfg.layer_shapes():
        w = flat[:, o:o + i * n].reshape(-1, i, n)
        o += i * n
        b = flat[:, o:o + n].reshape(-1, 1, n)
        o += n
        out.append((w, b))
    return out


def mix_shapes(cfg: InrConfig) -> list[tuple[int, int]]:
    """Shapes of the linear reparameterisation matrices A_l, one (out, out) per layer."""
    return [(o, o) for _, o in cfg.layer_shapes()]


def split_mix(flat_mix: torch.Tensor, cfg: InrConfig) -> list[torch.Tensor]:
    """(sum of out_l^2,) -> per layer A_l (out, out)."""
    out, o = [], 0
    for a, b in mix_shapes(cfg):
        out.append(flat_mix[o:o + a * b].reshape(a, b))
        o += a * b
    return out


def identity_mix(cfg: InrConfig) -> torch.Tensor:
    return torch.cat([torch.eye(o).reshape(-1) for o, _ in mix_shapes(cfg)])


# Networks of their own (one per unit) are evaluated a few at a time, about CHUNK_ROWS points of them at once: each
# network's result is the same either way (one matrix product per network), and the activations of a few
# networks stay in the CPU's cache where those of a whole image's patches do not (on a Kodak image's 96 patches
# the render is about 2x faster, a fitting step about 10 % and a whole encode about 20 % cheaper; docs/results.md,
# session of 2026-12-06, fifteenth). One network shared by every unit (`_forward_one`) goes the same way while it
# takes no gradient (speech: about 40 % off an encode; sixteenth session).
CHUNK_ROWS = 16384


def _units_per_call(n: int) -> int:
    """Units of n points each evaluated in one call: about CHUNK_ROWS points, at least one unit."""
    return max(1, CHUNK_ROWS // max(1, n))


def forward(flat: torch.Tensor, emb: torch.Tensor, cfg: InrConfig,
            mix: list[torch.Tensor] | None = None, feat: torch.Tensor | None = None) -> torch.Tensor:
    """Evaluate B networks at the same N embedded coordinates: (B, P), (N, E) -> (B, N, out_dim).

    With `mix` (RECOMBINER's linear reparameterisation) the flat vector holds h, and layer l's weights and
    bias are [W_l; b_l] = [H_l; c_l] A_l with A_l (out, out) shared by every network of a prior.
    `feat` (B, N, cfg.features): per-network input features read beside the embedding (latent grids)."""
    bsz, n, e = flat.shape[0], emb.shape[0], emb.shape[-1]
    per_call = _units_per_call(n)
    if bsz > per_call and flat.stride(0) != 0:   # a few networks at a time: their activations stay in cache
        # split, not slices: one backward node joins the parts' gradients (each slice's backward would fill a
        # zero tensor of the whole batch's size)
        flats = flat.split(per_call)
        feats = [None] * len(flats) if feat is None else feat.split(per_call)
        return torch.cat([forward(f, emb, cfg, mix, g) for f, g in zip(flats, feats)])
    layers = unflatten(flat, cfg)
    if mix is not None:
        layers = [_mixed(w, b, a) for (w, b), a in zip(layers, mix)]
    # The frequency factors scale the (small) weights rather than the (large) activations, and every bias is
    # added inside its matrix product: one pass over the activations per layer for the product, one for sin.
    w, b = (x * cfg.w0 for x in layers[0])
    if flat.stride(0) == 0 and bsz > 1:   # one network for the whole batch (a shared-decoder latent prior)
        return _forward_one(layers, w[0], b[0], emb, cfg, feat, bsz)
    pre = torch.baddbmm(b, emb.expand(bsz, n, e), w[:, :e])                # (B, N, H)
    if cfg.features:
        pre = torch.baddbmm(pre, feat, w[:, e:])
    h = cancel.watch(_sin(pre))  # (B, N, H)
    for w, b in layers[1:-1]:
        if cfg.w0_hidden != 1.0:
            w, b = w * cfg.w0_hidden, b * cfg.w0_hidden
        h = cancel.watch(_sin(torch.baddbmm(b, h, w)))
    w, b = layers[-1]
    return torch.baddbmm(b, h, w)  # (B, N, out)


def _mixed(w: torch.Tensor, b: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[W; b] A for each network: (B, in, out), (B, 1, out), A (out, out). One product per network (bmm), so a
    network's values and gradients do not depend on how many networks share its batch (with `w @ a` the
    gradient of a batch of one network differed from the same network's inside a batch)."""
    if w.stride(0) == 0:   # one network expanded over the batch
        return w @ a, b @ a
    m = a.expand(w.shape[0], *a.shape)                                       # (B, out, out)
    return torch.bmm(w, m), torch.bmm(b, m)


def _forward_one(layers: list[tuple[torch.Tensor, torch.Tensor]], w0: torch.Tensor, b0: torch.Tensor,
                 emb: torch.Tensor, cfg: InrConfig, feat: torch.Tensor | None, bsz: int) -> torch.Tensor:
    """`forward` for one network shared by all B units (its flat vector expanded over the batch): every layer
    is one matrix product over the B * N points instead of B small ones, and the embedding's part of the
    first layer is computed once. w0 (in, H), b0 (1, H): the first layer, already scaled by w0."""
    n, e = emb.shape
    per_call = _units_per_call(n)
    if bsz > per_call and cfg.features and not any(t.requires_grad for t in (w0, b0, *sum(layers[1:], ()))):
        # Units a few at a time, as `forward` does for networks of their own (about 2x faster at 512 chunks of
        # audio). Each row's products are the same, though BLAS may order a row's sum differently at another row
        # offset (float rounding). Only while the network takes no gradient (a prior's fixed network; not with
        # a clip delta, nor in prior learning): the weight gradient's sum over the rows would change its order.
        # (split: one backward node for the features' gradient, see `forward`)
        return torch.cat([_forward_one(layers, w0, b0, emb, cfg, f, len(f)) for f in feat.split(per_call)])
    pre = torch.addmm(b0, emb, w0[:e])                                       # (N, H) once
    if cfg.features:
        pre = (feat.reshape(bsz * n, -1) @ w0[e:]).reshape(bsz, n, -1) + pre  # (B, N, H)
    else:
        pre = pre.expand(bsz, n, -1)
    h = cancel.watch(_sin(pre)).reshape(bsz * n, -1)                         # (B*N, H)
    for w, b in layers[1:-1]:
        w, b = w[0], b[0]
        if cfg.w0_hidden != 1.0:
            w, b = w * cfg.w0_hidden, b * cfg.w0_hidden
        h = cancel.watch(_sin(torch.addmm(b, h, w)))
    w, b = layers[-1]
    return torch.addmm(b[0], h, w[0]).reshape(bsz, n, -1)                   # (B, N, out)


def _sin(x: torch.Tensor) -> torch.Tensor:
    """sin(x), in place where nothing needs x afterwards (no autograd graph, x a fresh dense tensor)."""
    if torch.is_grad_enabled() or x.stride(0) == 0:
        return torch.sin(x)
    return x.sin_()


def _init_bound(cfg: InrConfig, layer: int, fan_in: int, out_scale: float = 1.0) -> float:
    # First layer: U(-1/fan_in, 1/fan_in) before the w0 factor; later layers keep w0*W*x at unit scale.
    # The output layer is scaled to the signal's typical amplitude (speech is far quieter than full scale).
    if layer == 0:
        return 1.0 / fan_in
    bound = math.sqrt(6.0 / fan_in) / cfg.w0_hidden
    return bound * out_scale if layer == cfg.depth else bound


def siren_init(cfg: InrConfig, seed: int, out_scale: float = 1.0) -> torch.Tensor:
    """One SIREN initialisation (Sitzmann et al.) as a flat (P,) vector, from a CPU generator."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for li, (i, n) in enumerate(cfg.layer_shapes()):
        bound = _init_bound(cfg, li, i, out_scale)
        parts.append((torch.rand(i * n, generator=g) * 2 - 1) * bound)
        parts.append((torch.rand(n, generator=g) * 2 - 1) * bound)
    return torch.cat(parts)


def widen(flat: torch.Tensor, cfg: InrConfig, width: int, seed: int = 0) -> tuple[torch.Tensor, InrConfig]:
    """One network (P,) -> the same function with `width` hidden units per layer (Net2Net-style growth): the
    old weights keep their places, new units get a fresh SIREN initialisation, and every weight from a new
    unit into an old unit or the output is zero, so the output does not change while the new units can
    still learn (their incoming weights and the new outgoing ones receive gradient)."""
    if width < cfg.width:
        raise ValueError(f"cannot widen a network of width {cfg.width} to {width}")
    wide = dataclasses.replace(cfg, width=width)
    new = unflatten(siren_init(wide, seed)[None], wide)
    parts = []
    for li, ((w, b), (W, B)) in enumerate(zip(unflatten(flat[None], cfg), new)):
        i, n = w.shape[1:]
        W, B = W[0].clone(), B[0].clone()
        if li > 0:
            W[i:, :n] = 0.0             # new units feed nothing old: the old units compute what they did
        W[:i, :n], B[:, :n] = w[0], b[0]
        parts += [W.flatten(), B.flatten()]
    return torch.cat(parts), wide


def init_std(cfg: InrConfig, out_scale: float = 1.0) -> torch.Tensor:
    """Per-weight standard deviation of `siren_init` (uniform(-a, a) has std a/sqrt(3)) -> (P,)."""
    parts = []
    for li, (i, n) in enumerate(cfg.layer_shapes()):
        bound = _init_bound(cfg, li, i, out_scale)
        parts.append(torch.full((i * n + n,), bound / math.sqrt(3.0)))
    return torch.cat(parts)
